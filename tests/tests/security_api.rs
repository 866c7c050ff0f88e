//! Broker security through the real binaries: deployment app keys, authentication and
//! authorization chains, and custom TLS certificates. Every change lands in the
//! deployment's `security.json` (and TLS files) without restarting the broker; bad input
//! is refused with a precise problem code and changes nothing; secrets never reach the
//! database in the clear.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use skyport_tests::{Api, Backend, ControlPlane};
use sqlx::{Connection, PgConnection};

// ---------------------------------------------------------------------------------------
// Fixtures

/// A control plane with one running dedicated deployment.
struct Fixture {
    cp: ControlPlane,
    api: Api,
    id: String,
}

impl Fixture {
    async fn start(backend: Backend) -> Self {
        Self::start_with_env(backend, &[]).await
    }

    async fn start_with_env(backend: Backend, env: &[(&str, &str)]) -> Self {
        let cp = ControlPlane::start_with_env(backend, &[], env);
        let (_, api) = cp.api.project_with_key("acme").await;
        let id = api.create_deployment("secure", "dedicated").await;
        api.wait_status(&id, "running").await;
        Self { cp, api, id }
    }

    fn path(&self, rest: &str) -> String {
        format!("/deployments/{}{rest}", self.id)
    }

    fn dir(&self) -> PathBuf {
        self.cp.data_dir.path().join("deployments").join(&self.id)
    }

    /// The broker's `security.json`.
    fn security(&self) -> Value {
        let text = std::fs::read_to_string(self.dir().join("security.json"))
            .expect("security.json exists");
        serde_json::from_str(&text).expect("security.json is JSON")
    }

    async fn generation(&self) -> i64 {
        self.api.get(&self.path("")).await.body["generation"]
            .as_i64()
            .unwrap()
    }

    /// Waits until the broker reflects the latest change (observed generation caught up).
    async fn settle(&self) -> Value {
        self.api.wait_status(&self.id, "running").await
    }

    fn broker_pids(&self) -> Vec<u32> {
        let pids = self.cp.broker_processes();
        assert_eq!(pids.len(), 1, "one broker runs: {pids:?}");
        pids
    }

    /// Event types of the deployment, oldest first.
    async fn events(&self) -> Vec<String> {
        let reply = self.api.get(&self.path("/events?limit=100")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Every byte of the SQLite database (main file and write-ahead log).
    fn sqlite_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for name in ["skyport.db", "skyport.db-wal"] {
            if let Ok(b) = std::fs::read(self.cp.data_dir.path().join(name)) {
                bytes.extend(b);
            }
        }
        assert!(!bytes.is_empty(), "the SQLite database exists");
        bytes
    }
}

/// A resource as read, without where it stands on its way to the broker (`revision`,
/// `applied`, `apply_status`).
fn spec(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        for key in ["revision", "applied", "apply_status"] {
            object.remove(key);
        }
    }
    body
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[track_caller]
fn assert_field(reply: &skyport_tests::api::Reply, status: u16, code: &str, field: Option<&str>) {
    reply.assert_problem(status, code);
    match field {
        Some(field) => assert_eq!(reply.body["field"], field, "{}", reply.text),
        None => assert!(reply.body.get("field").is_none(), "{}", reply.text),
    }
}

/// A CA: self-signed, able to sign.
fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2090, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

/// An intermediate CA signed by `issuer`.
fn intermediate(
    name: &str,
    issuer: &(rcgen::Certificate, KeyPair),
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2090, 1, 1);
    let cert = params.signed_by(&key, &issuer.0, &issuer.1).unwrap();
    (cert, key)
}

/// A server certificate for `names` valid between the given years, and its key (PEM).
fn leaf(
    names: &[&str],
    issuer: Option<&(rcgen::Certificate, KeyPair)>,
    from_year: i32,
    to_year: i32,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.not_before = rcgen::date_time_ymd(from_year, 1, 1);
    params.not_after = rcgen::date_time_ymd(to_year, 1, 1);
    let cert = match issuer {
        Some((ca, ca_key)) => params.signed_by(&key, ca, ca_key).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.pem(), key.serialize_pem())
}

/// An X.509 version 1 certificate (openssl x509 -req without extensions), valid to 2126.
const V1_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBMDCB1wIUEi/7KIWaPMc0oNM0WSh/AdpkdwIwCgYIKoZIzj0EAwIwGjEYMBYG
A1UEAwwPdjEuZXhhbXBsZS50ZXN0MCAXDTI2MTEyOTEwMTMzMloYDzIxMjYxMTA1
MTAxMzMyWjAaMRgwFgYDVQQDDA92MS5leGFtcGxlLnRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAToHk1GHFk77BnuHC3EN4Opq5Gkr+z/4AqtYKmtYRQWugxc
ZUkWAE4LE2nmCWKD4bvdqs9jjcKTfRBhqk488FJtMAoGCCqGSM49BAMCA0gAMEUC
IDe6GgJmmAgkfPr4IN02UA7snuC9SmGfqcaR1tli3n/UAiEA+7Pukfa4QUud4gvB
KmJ/alV7/iqwv3gf/IX2C2H7jyc=
-----END CERTIFICATE-----
";
/// The key of [`V1_CERT`].
const V1_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGR1TQWT8ILUIkbce
/oaV6LwZ3bmyXJo/qTE5i1H4D+qhRANCAAToHk1GHFk77BnuHC3EN4Opq5Gkr+z/
4AqtYKmtYRQWugxcZUkWAE4LE2nmCWKD4bvdqs9jjcKTfRBhqk488FJt
-----END PRIVATE KEY-----
";
/// [`V1_KEY`] encrypted with a passphrase, PKCS#8.
const ENCRYPTED_PKCS8_KEY: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgMV4MxFchToQICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEEDaAfBw8FrjuOhmYbTzo/QEgZBZ
LEES14i4FtrlxhSLmXiHuI2m0mSY4jgroL+XRjxpaHvhbwAcW5rkmv1x50s6xUFI
9Bcd+EpgFjdXbWxk5+zpAA0VcJ1VEOlmU6EWRGtmfg62t4Dun/K+U8bLUegUI0gR
uiwwa0vUZ23FI5jxoR00F2KCZvPe8myAZR+19+dL5WzCelNCgf9sKYDC2us02N8=
-----END ENCRYPTED PRIVATE KEY-----
";
/// [`V1_KEY`] encrypted the legacy OpenSSL way.
const ENCRYPTED_LEGACY_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
Proc-Type: 4,ENCRYPTED
DEK-Info: AES-256-CBC,B0CEC48C0D92561CFD371CC9BE6557FE

MCcPS0AzIidxP3YCRjNa0kgBSLiNQTGkWrLpXtMTyWyuSMUSxjsbsJK+V2+yfBP3
fINDNG+AQWx/ggKLhAz9uFaxYBXeq64CeeLgH4r2M4aKKRXTV9X5msg0XGpnFW8o
CyyL8GzUl9vmNoCjrCdGmEsqIzMMwWE2WJ8wZR8F3eE=
-----END EC PRIVATE KEY-----
";

/// A line from the middle of a PEM block: present wherever the PEM is.
fn pem_fragment(pem: &str) -> String {
    let lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    lines[lines.len() / 2].to_owned()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Waits (5 s at most) until the TLS listener at `url` serves a certificate whose
/// subject mentions `name`, as `openssl s_client` sees it.
async fn served_subject_becomes(url: &str, name: &str) {
    let addr = url.trim_start_matches("mqtts://").to_owned();
    let mut last = String::new();
    for _ in 0..50 {
        let out = tokio::process::Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-servername", "localhost"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("running openssl s_client");
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if last
            .lines()
            .any(|l| l.starts_with("subject=") && l.contains(name))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr} never served a certificate for {name}; last: {last}");
}

// ---------------------------------------------------------------------------------------
// App keys

async fn app_keys_scenario(f: &Fixture) -> (String, String) {
    let pids = f.broker_pids();
    let generation = f.generation().await;

    let created = f
        .api
        .post(&f.path("/app-keys"), json!({"name": "dashboard"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let app_id = created.body["app_id"].as_str().unwrap().to_owned();
    let secret = created.body["app_secret"].as_str().unwrap().to_owned();
    assert_eq!(created.body["name"], "dashboard");
    assert!(created.body["created_at"].is_string());
    assert!(
        secret.starts_with("skd_") && secret.len() >= 4 + 43,
        "{secret}"
    );
    assert_eq!(
        f.generation().await,
        generation + 1,
        "a new key bumps the generation"
    );

    // Two more, then page through all three.
    for name in ["ci", "ops"] {
        let reply = f
            .api
            .post(&f.path("/app-keys"), json!({ "name": name }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/app-keys?limit=2&cursor={c}"),
            None => "/app-keys?limit=2".to_owned(),
        };
        let page = f.api.get(&f.path(&query)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert!(!page.text.contains(&secret), "secrets are shown only once");
        for item in page.body["items"].as_array().unwrap() {
            assert!(item.get("app_secret").is_none());
            names.push(item["name"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["dashboard", "ci", "ops"]);

    // The broker gets the hash, without a restart.
    f.settle().await;
    let security = f.security();
    let keys = security["app_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    assert!(keys.contains(&json!({"app_id": app_id, "secret_sha256": sha256_hex(&secret)})));
    assert!(!serde_json::to_string(&security).unwrap().contains(&secret));
    assert_eq!(f.broker_pids(), pids, "the broker was not restarted");

    // Bad input changes nothing.
    let before = f.generation().await;
    assert_field(
        &f.api.post(&f.path("/app-keys"), json!({"name": ""})).await,
        422,
        "invalid_name",
        Some("name"),
    );
    assert_field(
        &f.api
            .post(&f.path("/app-keys"), json!({"name": "x", "secret": "mine"}))
            .await,
        422,
        "unknown_field",
        Some("secret"),
    );
    assert_field(
        &f.api.delete(&f.path("/app-keys/not-an-id")).await,
        404,
        "not_found",
        None,
    );
    assert_field(
        &f.api
            .delete(&f.path("/app-keys/0192f0a0-0000-7000-8000-000000000000"))
            .await,
        404,
        "not_found",
        None,
    );
    assert_field(
        &f.api.get(&f.path("/app-keys?limit=0")).await,
        400,
        "invalid_limit",
        None,
    );
    assert_eq!(f.generation().await, before);

    // Revoke one: gone from the list and from the broker's file.
    let deleted = f.api.delete(&f.path(&format!("/app-keys/{app_id}"))).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_field(
        &f.api.delete(&f.path(&format!("/app-keys/{app_id}"))).await,
        404,
        "not_found",
        None,
    );
    f.settle().await;
    let keys = f.security()["app_keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k["app_id"] != app_id.as_str()));
    assert_eq!(f.broker_pids(), pids, "the broker was not restarted");
    (app_id, secret)
}

#[tokio::test(flavor = "multi_thread")]
async fn app_keys_are_created_listed_revoked_and_delivered_without_restart() {
    let f = Fixture::start(Backend::Sqlite).await;
    let (_, secret) = app_keys_scenario(&f).await;
    let db = f.sqlite_bytes();
    assert!(!contains(&db, &secret), "the secret is not in the database");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_keeps_only_hashes_and_ciphertext() {
    let f = Fixture::start(Backend::Postgres).await;
    let (app_id, secret) = app_keys_scenario(&f).await;
    let kept = f
        .api
        .post(&f.path("/app-keys"), json!({"name": "kept"}))
        .await;
    let kept_secret = kept.body["app_secret"].as_str().unwrap().to_owned();
    let (cert, key) = leaf(&["pg.example.test"], None, 2020, 2090);
    let reply = f
        .api
        .put(
            &f.path("/tls"),
            json!({"tls_type": "one-way", "cert": cert, "key": key}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let mut conn = PgConnection::connect(f.cp.database_url()).await.unwrap();
    let mut dump = String::new();
    for table in [
        "deployment_app_keys",
        "deployment_tls",
        "deployment_auth_chains",
        "deployment_events",
    ] {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                .fetch_all(&mut conn)
                .await
                .unwrap();
        dump.push_str(&rows.join("\n"));
    }
    assert!(
        !dump.contains(&secret) && !dump.contains(&kept_secret),
        "no app secret"
    );
    assert!(!dump.contains(&app_id), "the revoked key is gone");
    assert!(dump.contains(&sha256_hex(&kept_secret)), "the hash is kept");
    assert!(
        !dump.contains(&pem_fragment(&key)),
        "no plaintext private key"
    );
    assert!(!dump.contains("PRIVATE KEY"));
    let ciphertext: String = sqlx::query_scalar("SELECT key_ciphertext FROM deployment_tls")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ciphertext.starts_with("aes256gcm:"), "{ciphertext}");
    conn.close().await.unwrap();

    // The broker still gets the plaintext key, in a private file.
    f.settle().await;
    let on_disk = std::fs::read_to_string(f.dir().join("tls/custom.key")).unwrap();
    assert_eq!(on_disk.trim(), key.trim());
    assert_eq!(mode(&f.dir().join("tls/custom.key")), 0o600);
}

// ---------------------------------------------------------------------------------------
// Authentication and authorization chains

/// Bad chains and the problem each one answers; each must leave the chain as it was.
fn bad_chains(kind: &str) -> Vec<(Value, &'static str, Option<String>)> {
    let http = |extra: Value| {
        let mut source = json!({"type": "http", "url": "http://127.0.0.1:9/auth"});
        for (k, v) in extra.as_object().unwrap() {
            source[k] = v.clone();
        }
        json!({ "sources": [source] })
    };
    let f = |s: &str| Some(s.to_owned());
    let mut cases = vec![
        (
            json!({"sources": [{"type": "ldap"}]}),
            "invalid_source_type",
            f("sources[0].type"),
        ),
        (
            json!({"sources": [{"type": "http"}]}),
            "missing_field",
            f("sources[0].url"),
        ),
        (json!({}), "missing_field", None),
        (
            json!({"sources": [], "extra": 1}),
            "unknown_field",
            f("extra"),
        ),
        (
            json!({"sources": [{"type": "built_in", "url": "http://x"}]}),
            "field_not_allowed",
            f("sources[0].url"),
        ),
        (
            json!({"sources": [{"type": "http", "url": "http://x", "verb": "get"}]}),
            "unknown_field",
            f("sources[0].verb"),
        ),
        (
            http(json!({"url": "ftp://127.0.0.1/auth"})),
            "invalid_url",
            f("sources[0].url"),
        ),
        (
            http(json!({"url": "/relative"})),
            "invalid_url",
            f("sources[0].url"),
        ),
        (
            http(json!({"url": "http://127.0.0.1/auth?u=%x"})),
            "invalid_template",
            f("sources[0].url"),
        ),
        (
            http(json!({"method": "put"})),
            "invalid_method",
            f("sources[0].method"),
        ),
        (
            http(json!({"timeout_ms": 0})),
            "invalid_timeout_ms",
            f("sources[0].timeout_ms"),
        ),
        (
            http(json!({"timeout_ms": 60001})),
            "invalid_timeout_ms",
            f("sources[0].timeout_ms"),
        ),
        (
            http(json!({"timeout_ms": "fast"})),
            "invalid_timeout_ms",
            f("sources[0].timeout_ms"),
        ),
        (
            http(json!({"cache_ttl_ms": -1})),
            "invalid_cache_ttl_ms",
            f("sources[0].cache_ttl_ms"),
        ),
        (
            http(json!({"cache_ttl_ms": 3600001})),
            "invalid_cache_ttl_ms",
            f("sources[0].cache_ttl_ms"),
        ),
        (
            http(json!({"pool_size": 0})),
            "invalid_pool_size",
            f("sources[0].pool_size"),
        ),
        (
            http(json!({"pool_size": 1025})),
            "invalid_pool_size",
            f("sources[0].pool_size"),
        ),
        (
            http(json!({"headers": {"bad header": "x"}})),
            "invalid_header",
            f("sources[0].headers.bad header"),
        ),
        (
            http(json!({"headers": {"x-user": "%z"}})),
            "invalid_template",
            f("sources[0].headers.x-user"),
        ),
        (
            http(json!({"body": {"u": "50%"}})),
            "invalid_template",
            f("sources[0].body.u"),
        ),
        (
            json!({"sources": [{"type": "built_in"}, {"type": "built_in"}]}),
            "duplicate_built_in",
            f("sources[1]"),
        ),
        (
            json!({"sources": vec![json!({"type": "http", "url": "http://127.0.0.1:9/"}); 9]}),
            "too_many_sources",
            f("sources"),
        ),
    ];
    if kind == "authentication" {
        cases.push((
            http(json!({"body": {"topic": "%t"}})),
            "invalid_template",
            f("sources[0].body.topic"),
        ));
        cases.push((
            http(json!({"url": "http://127.0.0.1/acl/%A"})),
            "invalid_template",
            f("sources[0].url"),
        ));
        cases.push((
            json!({"allow_anonymous": "yes", "sources": []}),
            "invalid_allow_anonymous",
            f("allow_anonymous"),
        ));
    } else {
        cases.push((
            json!({"no_match": "maybe", "sources": []}),
            "invalid_no_match",
            f("no_match"),
        ));
        cases.push((
            json!({"disconnect_on_deny": 1, "sources": []}),
            "invalid_disconnect_on_deny",
            f("disconnect_on_deny"),
        ));
    }
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_chain_round_trips_validates_and_reloads_without_restart() {
    let f = Fixture::start(Backend::Sqlite).await;
    let pids = f.broker_pids();

    let defaults = f.api.get(&f.path("/authentication")).await;
    assert_eq!(defaults.status, StatusCode::OK, "{}", defaults.text);
    assert_eq!(
        defaults.body["apply_status"], "applied",
        "{}",
        defaults.text
    );
    assert_eq!(
        spec(&defaults.body),
        json!({"allow_anonymous": false, "sources": [{"type": "built_in"}]})
    );

    // One reachable HTTP source (a listener of ours) and one unreachable.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap().port();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let generation = f.generation().await;
    let chain = json!({
        "allow_anonymous": true,
        "sources": [
            {"type": "http", "url": format!("http://127.0.0.1:{up}/auth?u=%u&c=%c"),
             "method": "get", "headers": {"x-peer": "%a", "x-proto": "%r"},
             "body": {"password": "%P", "port": "%p"}, "timeout_ms": 2000, "cache_ttl_ms": 0,
             "pool_size": 4},
            {"type": "built_in"},
            {"type": "http", "url": format!("http://127.0.0.1:{down}/auth")},
        ]
    });
    let put = f.api.put(&f.path("/authentication"), chain.clone()).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let warnings = put.body["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{}", put.text);
    assert_eq!(warnings[0]["code"], "http_source_unreachable");
    assert_eq!(warnings[0]["source"], 2);
    assert!(warnings[0]["detail"]
        .as_str()
        .unwrap()
        .contains(&down.to_string()));
    let stored = json!({
        "allow_anonymous": true,
        "sources": [
            chain["sources"][0].clone(),
            {"type": "built_in"},
            {"type": "http", "url": format!("http://127.0.0.1:{down}/auth"), "method": "post",
             "body": {}, "headers": {}, "timeout_ms": 5000, "cache_ttl_ms": 60000, "pool_size": 8},
        ]
    });
    assert_eq!(put.body["sources"], stored["sources"], "defaults filled in");
    assert_eq!(f.generation().await, generation + 1);
    assert_eq!(
        spec(&f.api.get(&f.path("/authentication")).await.body),
        stored
    );

    f.settle().await;
    let security = f.security();
    let authn = &security["authentication"];
    assert_eq!(authn["allow_anonymous"], true);
    assert_eq!(authn["chain"][0]["type"], "http");
    assert_eq!(authn["chain"][0]["method"], "get");
    assert_eq!(authn["chain"][0]["headers"]["x-peer"], "%a");
    assert_eq!(authn["chain"][1], json!({"type": "built_in"}));
    assert_eq!(authn["chain"][2]["timeout_ms"], 5000);
    assert_eq!(security["authorization"]["no_match"], "allow", "untouched");
    assert_eq!(f.broker_pids(), pids, "the broker was not restarted");

    for (body, code, field) in bad_chains("authentication") {
        let reply = f.api.put(&f.path("/authentication"), body.clone()).await;
        assert_field(&reply, 422, code, field.as_deref());
        assert_eq!(
            spec(&f.api.get(&f.path("/authentication")).await.body),
            stored,
            "{body} changed nothing"
        );
    }
    assert_eq!(
        f.generation().await,
        generation + 1,
        "no refused PUT bumped it"
    );
    drop(listener);
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_chain_round_trips_validates_and_reloads_without_restart() {
    let f = Fixture::start(Backend::Sqlite).await;
    let pids = f.broker_pids();
    let defaults = f.api.get(&f.path("/authorization")).await;
    assert_eq!(
        spec(&defaults.body),
        json!({"no_match": "allow", "disconnect_on_deny": false, "sources": [{"type": "built_in"}]})
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let chain = json!({
        "no_match": "deny",
        "disconnect_on_deny": true,
        "sources": [
            {"type": "http", "url": format!("http://127.0.0.1:{port}/acl?action=%A&topic=%t"),
             "headers": {"content-type": "application/json"}, "body": {"clientid": "%c"}},
        ]
    });
    let put = f.api.put(&f.path("/authorization"), chain).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.body["warnings"], json!([]), "the source is reachable");
    assert_eq!(put.body["no_match"], "deny");
    let stored = spec(&f.api.get(&f.path("/authorization")).await.body);
    assert_eq!(stored["disconnect_on_deny"], true);
    assert_eq!(stored["sources"][0]["method"], "post");

    f.settle().await;
    let authz = f.security()["authorization"].clone();
    assert_eq!(authz["no_match"], "deny");
    assert_eq!(authz["disconnect_on_deny"], true);
    assert_eq!(
        authz["chain"][0]["url"],
        format!("http://127.0.0.1:{port}/acl?action=%A&topic=%t")
    );
    assert_eq!(f.broker_pids(), pids, "the broker was not restarted");

    // An empty chain is allowed: no_match decides everything.
    let empty = f
        .api
        .put(&f.path("/authorization"), json!({"sources": []}))
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(
        empty.body["no_match"], "allow",
        "defaults apply to omitted fields"
    );
    let stored = spec(&f.api.get(&f.path("/authorization")).await.body);

    let generation = f.generation().await;
    for (body, code, field) in bad_chains("authorization") {
        let reply = f.api.put(&f.path("/authorization"), body.clone()).await;
        assert_field(&reply, 422, code, field.as_deref());
        assert_eq!(
            spec(&f.api.get(&f.path("/authorization")).await.body),
            stored,
            "{body}"
        );
    }
    assert_eq!(f.generation().await, generation);
    drop(listener);
}

// ---------------------------------------------------------------------------------------
// TLS

#[tokio::test(flavor = "multi_thread")]
async fn custom_tls_is_validated_stored_encrypted_and_delivered_without_restart() {
    let f = Fixture::start(Backend::Sqlite).await;
    let pids = f.broker_pids();

    let default = f.api.get(&f.path("/tls")).await;
    assert_eq!(default.status, StatusCode::OK, "{}", default.text);
    assert_eq!(default.body["source"], "skyport");
    assert_eq!(default.body["tls_type"], "one-way");
    assert_eq!(default.body["status"], "active");
    assert!(default.body["issuer"]
        .as_str()
        .unwrap()
        .contains("Skyport CA"));

    // Root → intermediate → leaf; the chain is leaf + intermediate.
    let root = ca("Test Root CA");
    let inter = intermediate("Test Intermediate CA", &root);
    let (leaf_pem, key_pem) = leaf(
        &["mqtt.example.test", "127.0.0.1"],
        Some(&inter),
        2020,
        2090,
    );
    let chain = format!("{leaf_pem}{}", inter.0.pem());
    let generation = f.generation().await;
    let put = f
        .api
        .put(
            &f.path("/tls"),
            json!({"tls_type": "one-way", "cert": chain, "key": key_pem}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.body["source"], "custom");
    assert_eq!(put.body["tls_type"], "one-way");
    assert_eq!(put.body["status"], "active");
    assert_eq!(put.body["sans"], json!(["mqtt.example.test", "127.0.0.1"]));
    assert!(put.body["subject"]
        .as_str()
        .unwrap()
        .contains("mqtt.example.test"));
    assert!(put.body["issuer"]
        .as_str()
        .unwrap()
        .contains("Test Intermediate CA"));
    assert!(put.body["expires_at"]
        .as_str()
        .unwrap()
        .starts_with("2090-01-01"));
    assert!(
        !put.text.contains("PRIVATE KEY"),
        "the key is never returned"
    );
    assert_eq!(f.generation().await, generation + 1);
    let got = f.api.get(&f.path("/tls")).await;
    assert_eq!(got.body, put.body);

    // Delivered next to the running broker.
    f.settle().await;
    let security = f.security();
    assert_eq!(
        security["tls"],
        json!({"tls_type": "one-way", "cert_file": "tls/custom.pem", "key_file": "tls/custom.key", "ca_file": null})
    );
    let dir = f.dir();
    let served = std::fs::read_to_string(dir.join("tls/custom.pem")).unwrap();
    assert!(
        served.contains(&pem_fragment(&leaf_pem)) && served.contains(&pem_fragment(&inter.0.pem()))
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("tls/custom.key"))
            .unwrap()
            .trim(),
        key_pem.trim()
    );
    assert_eq!(mode(&dir.join("tls/custom.key")), 0o600);
    assert_eq!(f.broker_pids(), pids, "the broker was not restarted");
    let mqtts = f.settle().await["endpoints"]["mqtts"]
        .as_str()
        .unwrap()
        .to_owned();
    served_subject_becomes(&mqtts, "mqtt.example.test").await;

    // The database holds ciphertext only.
    let db = f.sqlite_bytes();
    assert!(
        !contains(&db, &pem_fragment(&key_pem)),
        "no plaintext key in the database"
    );
    let mut conn = sqlx::SqliteConnection::connect(f.cp.database_url())
        .await
        .unwrap();
    let stored: String = sqlx::query_scalar("SELECT key_ciphertext FROM deployment_tls")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert!(stored.starts_with("aes256gcm:") && !stored.contains("PRIVATE KEY"));

    // Two-way with the client CA.
    let client_ca = ca("Client CA");
    let put = f
        .api
        .put(
            &f.path("/tls"),
            json!({"tls_type": "two-way", "cert": chain, "key": key_pem, "ca_cert": client_ca.0.pem()}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.body["tls_type"], "two-way");
    f.settle().await;
    assert_eq!(f.security()["tls"]["ca_file"], "tls/client-ca.pem");
    assert_eq!(
        std::fs::read_to_string(dir.join("tls/client-ca.pem"))
            .unwrap()
            .trim(),
        client_ca.0.pem().trim()
    );

    // Refused uploads leave everything as it was.
    let current = f.api.get(&f.path("/tls")).await.body;
    let generation = f.generation().await;
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let (expired, expired_key) = leaf(&["old.example.test"], None, 2000, 2001);
    let (future, future_key) = leaf(&["new.example.test"], None, 2090, 2091);
    let (orphan, orphan_key) = leaf(&["orphan.example.test"], Some(&inter), 2020, 2090);
    let (self_signed, self_key) = leaf(&["self.example.test"], None, 2020, 2090);
    let ca_pem = client_ca.0.pem();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"tls_type": "one-way", "cert": "hello", "key": self_key}),
            "tls_not_pem",
            "cert",
        ),
        (
            json!({"tls_type": "one-way", "cert": self_signed, "key": "not a key"}),
            "tls_not_pem",
            "key",
        ),
        (
            json!({"tls_type": "two-way", "cert": self_signed, "key": self_key, "ca_cert": "nope"}),
            "tls_not_pem",
            "ca_cert",
        ),
        (
            json!({"tls_type": "one-way", "cert": self_signed, "key": other_key}),
            "tls_key_mismatch",
            "key",
        ),
        (
            json!({"tls_type": "one-way", "cert": expired, "key": expired_key}),
            "tls_cert_expired",
            "cert",
        ),
        (
            json!({"tls_type": "one-way", "cert": future, "key": future_key}),
            "tls_cert_not_yet_valid",
            "cert",
        ),
        (
            json!({"tls_type": "one-way", "cert": orphan, "key": orphan_key}),
            "tls_chain_incomplete",
            "cert",
        ),
        (
            json!({"tls_type": "one-way", "cert": V1_CERT, "key": ENCRYPTED_PKCS8_KEY}),
            "tls_key_encrypted",
            "key",
        ),
        (
            json!({"tls_type": "one-way", "cert": V1_CERT, "key": ENCRYPTED_LEGACY_KEY}),
            "tls_key_encrypted",
            "key",
        ),
        (
            json!({"tls_type": "one-way", "cert": V1_CERT, "key": V1_KEY}),
            "tls_cert_not_v3",
            "cert",
        ),
        (
            json!({"tls_type": "two-way", "cert": self_signed, "key": self_key}),
            "tls_ca_required",
            "ca_cert",
        ),
        (
            json!({"tls_type": "one-way", "cert": self_signed, "key": self_key, "ca_cert": ca_pem}),
            "tls_ca_not_allowed",
            "ca_cert",
        ),
        (
            json!({"tls_type": "three-way", "cert": self_signed, "key": self_key}),
            "invalid_tls_type",
            "tls_type",
        ),
        (
            json!({"tls_type": "one-way", "key": self_key}),
            "missing_field",
            "",
        ),
    ];
    for (body, code, field) in cases {
        let reply = f.api.put(&f.path("/tls"), body).await;
        reply.assert_problem(422, code);
        if !field.is_empty() {
            assert_eq!(reply.body["field"], field, "{}", reply.text);
        }
        for secret in [&self_key, &other_key, &key_pem] {
            assert!(
                !reply.text.contains(&pem_fragment(secret)),
                "{}",
                reply.text
            );
        }
        assert_eq!(f.api.get(&f.path("/tls")).await.body, current, "{code}");
    }
    assert_eq!(
        f.generation().await,
        generation,
        "refused uploads bump nothing"
    );

    // Back to Skyport's certificate: the custom files go, the broker stays.
    let deleted = f.api.delete(&f.path("/tls")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_eq!(f.api.get(&f.path("/tls")).await.body["source"], "skyport");
    f.settle().await;
    assert_eq!(f.security()["tls"], Value::Null);
    for file in ["tls/custom.pem", "tls/custom.key", "tls/client-ca.pem"] {
        assert!(!dir.join(file).exists(), "{file} removed");
    }
    served_subject_becomes(&mqtts, "CN = 127.0.0.1").await;
    let generation = f.generation().await;
    let again = f.api.delete(&f.path("/tls")).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT, "idempotent");
    assert_eq!(
        f.generation().await,
        generation,
        "nothing to remove, nothing bumped"
    );
    assert_eq!(f.broker_pids(), pids, "the broker was never restarted");

    let events = f.events().await;
    let tls_events: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|t| t.starts_with("tls."))
        .collect();
    assert_eq!(tls_events, ["tls.updated", "tls.updated", "tls.removed"]);
}

// ---------------------------------------------------------------------------------------
// Scoping, keys and defaults

#[tokio::test(flavor = "multi_thread")]
async fn another_projects_deployment_is_not_found_and_the_admin_is_refused() {
    let f = Fixture::start(Backend::Sqlite).await;
    let (_, stranger) = f.cp.api.project_with_key("stranger").await;
    let (cert, key) = leaf(&["x.example.test"], None, 2020, 2090);
    let requests: Vec<(reqwest::Method, &str, Option<Value>)> = vec![
        (reqwest::Method::GET, "/app-keys", None),
        (
            reqwest::Method::POST,
            "/app-keys",
            Some(json!({"name": "x"})),
        ),
        (
            reqwest::Method::DELETE,
            "/app-keys/0192f0a0-0000-7000-8000-000000000000",
            None,
        ),
        (reqwest::Method::GET, "/authentication", None),
        (
            reqwest::Method::PUT,
            "/authentication",
            Some(json!({"sources": []})),
        ),
        (reqwest::Method::GET, "/authorization", None),
        (
            reqwest::Method::PUT,
            "/authorization",
            Some(json!({"sources": []})),
        ),
        (reqwest::Method::GET, "/tls", None),
        (
            reqwest::Method::PUT,
            "/tls",
            Some(json!({"tls_type": "one-way", "cert": cert, "key": key})),
        ),
        (reqwest::Method::DELETE, "/tls", None),
    ];
    let generation = f.generation().await;
    for (method, path, body) in requests {
        let reply = stranger
            .call(method.clone(), &f.path(path), body.clone())
            .await;
        assert_field(&reply, 404, "not_found", None);
        let admin = f.cp.api.call(method, &f.path(path), body).await;
        admin.assert_problem(403, "project_key_required");
    }
    assert_eq!(f.generation().await, generation);
    assert!(f.security()["app_keys"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_key_is_generated_private_or_taken_from_the_environment() {
    // Generated: DATA_DIR/secret-key, mode 0600, never printed.
    let generated = ControlPlane::start();
    let path = generated.data_dir.path().join("secret-key");
    assert!(path.exists());
    assert_eq!(mode(&path), 0o600);

    // Given: used as is, nothing written; the key decrypts what it sealed after a restart.
    let given = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let mut f = Fixture::start_with_env(Backend::Sqlite, &[("SKYPORT_SECRET_KEY", given)]).await;
    assert!(!f.cp.data_dir.path().join("secret-key").exists());
    let (cert, key) = leaf(&["k.example.test"], None, 2020, 2090);
    let put = f
        .api
        .put(
            &f.path("/tls"),
            json!({"tls_type": "one-way", "cert": cert, "key": key}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    f.settle().await;
    std::fs::remove_file(f.dir().join("tls/custom.key")).unwrap();
    f.cp.restart();
    f.api = Api::new(&f.cp.base_url, &f.api.token);
    // A spec change makes the restarted control plane re-apply (and decrypt) the key.
    let reply = f
        .api
        .post(&f.path("/app-keys"), json!({"name": "nudge"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    f.settle().await;
    let mut restored = String::new();
    for _ in 0..50 {
        if let Ok(text) = std::fs::read_to_string(f.dir().join("tls/custom.key")) {
            restored = text;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(restored.trim(), key.trim());
}
