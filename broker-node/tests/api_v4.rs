//! The deployment API's `/api/v4` users, ACL rules and bans (EMQX 4 shapes), served
//! in-process on a loopback port over a real `Security`, plus the external HTTP
//! authentication and ACL sources against a local auth service.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};
use skyport_broker::api::{self, Readiness};
use skyport_broker::security::settings::{
    AppKey, Authentication, Authorization, Decision, HttpMethod, HttpSource, SecuritySettings,
    Source,
};
use skyport_broker::security::{
    app_secret_sha256, Action, ClientInfo, ConnectVerdict, Security, Transport,
};

use common::TempDir;

const APP_ID: &str = "app1";
const APP_SECRET: &str = "app1-secret";
/// A read-only key (as the control plane makes for a console viewer), same secret.
const READER_ID: &str = "reader1";

/// `/api/v4` over a fresh `Security` in a temp dir, served on a loopback port.
struct Api {
    base: String,
    security: Security,
    dir: TempDir,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    background: tokio::task::JoinHandle<()>,
}

impl Api {
    async fn start() -> Self {
        let dir = TempDir::new();
        Self::start_in(dir).await
    }

    async fn start_in(dir: TempDir) -> Self {
        let security = Security::open(dir.path()).unwrap();
        security.set_settings(SecuritySettings {
            app_keys: vec![
                AppKey {
                    app_id: APP_ID.into(),
                    secret_sha256: app_secret_sha256(APP_SECRET),
                    read_only: false,
                },
                AppKey {
                    app_id: READER_ID.into(),
                    secret_sha256: app_secret_sha256(APP_SECRET),
                    read_only: true,
                },
            ],
            ..SecuritySettings::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let meter = std::sync::Arc::new(skyport_broker::metering::Meter::default());
        // The broker's session store in a directory of its own: a restarted API (same
        // security store) must not wait for the previous broker's last HTTP connection.
        let (broker, background) = skyport_broker::broker::Broker::open(
            &dir.path().join(common::unique("broker")),
            meter,
            security.clone(),
            skyport_broker::broker::Options {
                max_sessions: Some(100),
                max_tps: None,
                counting: true,
                connect_timeout: std::time::Duration::from_secs(10),
            },
        )
        .unwrap();
        let app = api::router(Readiness::default(), security.clone(), broker)
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base: format!("http://{addr}"),
            security,
            dir,
            http: reqwest::Client::new(),
            server,
            background,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v4{path}", self.base))
            .basic_auth(APP_ID, Some(APP_SECRET))
    }

    /// Sends and returns the status and JSON body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            // As EMQX's documented `curl -d` examples: JSON without a JSON content type.
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, value)
    }

    async fn stop(self) -> TempDir {
        // The server and the broker's own task hold the broker (and its session store).
        self.server.abort();
        self.background.abort();
        let _ = self.server.await;
        let _ = self.background.await;
        self.dir
    }
}

fn client(id: &str, username: Option<&str>) -> ClientInfo {
    ClientInfo {
        client_id: id.into(),
        username: username.map(str::to_owned),
        peer: "127.0.0.1:40000".parse().unwrap(),
        transport: Transport::Mqtt,
        listener_port: 1883,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_v4_route_needs_an_app_key_but_health_does_not() {
    let api = Api::start().await;
    for (user, secret) in [
        (None, None),
        (Some(APP_ID), Some("wrong")),
        (Some("nobody"), Some(APP_SECRET)),
    ] {
        let mut request = api.http.get(format!("{}/api/v4/auth_username", api.base));
        if let Some(user) = user {
            request = request.basic_auth(user, secret);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"skyport\""
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], 103, "{body}");
    }
    // Unknown routes under /api/v4 are 401 without a key, 404 with one.
    let response = api
        .http
        .get(format!("{}/api/v4/nope", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (status, body) = api.call(Method::GET, "/nope", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!(105))
    );

    let health = api
        .http
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = api
        .http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_app_key_reads_but_changes_nothing() {
    let api = Api::start().await;
    let (status, _) = api
        .call(
            Method::POST,
            "/auth_username",
            Some(json!({"username": "u1", "password": "p1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let as_reader = |method: Method, path: &str| {
        api.http
            .request(method, format!("{}/api/v4{path}", api.base))
            .basic_auth(READER_ID, Some(APP_SECRET))
    };
    let list: Value = as_reader(Method::GET, "/auth_username")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([{"username": "u1"}]), "{list}");
    for (method, path, body) in [
        (
            Method::POST,
            "/auth_username",
            json!({"username": "u2", "password": "p2"}),
        ),
        (
            Method::PUT,
            "/auth_username/u1",
            json!({"password": "changed"}),
        ),
        (Method::DELETE, "/auth_username/u1", json!(null)),
        (
            Method::POST,
            "/mqtt/publish",
            json!({"topic": "a", "payload": "x"}),
        ),
        (Method::DELETE, "/clients/c1", json!(null)),
    ] {
        let response = as_reader(method.clone(), path)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], 403, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("forbidden_role:"),
            "{body}"
        );
    }
    // Nothing changed: the old password still works, no second user.
    let (_, list) = api.call(Method::GET, "/auth_username", None).await;
    assert_eq!(list["data"], json!([{"username": "u1"}]), "{list}");
    assert!(matches!(
        api.security
            .authenticate(&client("c", Some("u1")), Some(b"p1"))
            .await,
        ConnectVerdict::Allow
    ));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_broker_guards_api_v4() {
    let broker = common::Broker::start(&["tcp"]).await;
    let base = format!("http://{}", broker.addrs.api);
    let response = reqwest::get(format!("{base}/api/v4/banned")).await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let response = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn username_users_crud_and_authentication() {
    let api = Api::start().await;
    let (status, body) = api
        .call(
            Method::POST,
            "/auth_username",
            Some(json!({"username": "bob", "password": "pw1"})),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"code": 0})));

    let (status, body) = api
        .call(
            Method::POST,
            "/auth_username",
            Some(json!([{"username": "u1", "password": "a"}, {"username": "u2", "password": "b"}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"code": 0, "data": {"u1": "ok", "u2": "ok"}}));

    // Already exists: 409, code 113, and the batch changes nothing.
    let (status, body) = api
        .call(
            Method::POST,
            "/auth_username",
            Some(
                json!([{"username": "u3", "password": "a"}, {"username": "bob", "password": "b"}]),
            ),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!(113))
    );
    assert_eq!(body["message"], "username \"bob\" already exists");

    // Bad input: precise codes, nothing changed.
    let cases = [
        (
            json!({"username": "", "password": "x"}),
            104,
            "the username must not be empty",
        ),
        (
            json!({"username": "x", "password": ""}),
            104,
            "the password must not be empty",
        ),
        (json!({"username": "x"}), 107, "missing field `password`"),
        (
            json!({"username": "x", "password": "p", "pasword": 1}),
            108,
            "unknown field",
        ),
        (json!({"username": 5, "password": "p"}), 108, "invalid type"),
        (json!([]), 107, "the list of users is empty"),
        (
            json!([{"username": "ok", "password": "p"}, {"username": "x"}]),
            107,
            "item 1: missing field `password`",
        ),
        (json!("bob"), 108, "the body must be an object or an array"),
    ];
    for (input, code, message) in cases {
        let (status, body) = api
            .call(Method::POST, "/auth_username", Some(input.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{input}: {body}");
        assert_eq!(body["code"], code, "{input}: {body}");
        let text = body["message"].as_str().unwrap();
        assert!(text.contains(message), "{input}: {text}");
    }
    let response = api
        .request(Method::POST, "/auth_username")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], 109);
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"username": format!("m{i}"), "password": "p"}))
        .collect();
    let (status, body) = api
        .call(Method::POST, "/auth_username", Some(Value::Array(too_many)))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(108))
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("at most 10000 users per request"));

    // Listing and paging; never a password.
    let (_, body) = api.call(Method::GET, "/auth_username", None).await;
    assert_eq!(
        body,
        json!({"code": 0, "data": [{"username": "bob"}, {"username": "u1"}, {"username": "u2"}],
               "meta": {"page": 1, "limit": 10000, "count": 3}})
    );
    let (_, body) = api
        .call(Method::GET, "/auth_username?_page=2&_limit=2", None)
        .await;
    assert_eq!(body["data"], json!([{"username": "u2"}]));
    assert_eq!(body["meta"], json!({"page": 2, "limit": 2, "count": 3}));
    let (status, body) = api.call(Method::GET, "/auth_username?_limit=0", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(108))
    );
    let (status, body) = api.call(Method::GET, "/auth_username/bob", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"code": 0, "data": {"username": "bob"}})
        )
    );
    let (status, body) = api.call(Method::GET, "/auth_username/nobody", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!(105))
    );

    let bob = client("c1", Some("bob"));
    assert_eq!(
        api.security.authenticate(&bob, Some(b"pw1")).await,
        ConnectVerdict::Allow
    );
    let (status, _) = api
        .call(
            Method::PUT,
            "/auth_username/bob",
            Some(json!({"password": "pw2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.security.authenticate(&bob, Some(b"pw1")).await,
        ConnectVerdict::BadCredentials
    );
    assert_eq!(
        api.security.authenticate(&bob, Some(b"pw2")).await,
        ConnectVerdict::Allow
    );
    let (status, body) = api
        .call(
            Method::PUT,
            "/auth_username/nobody",
            Some(json!({"password": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!(105))
    );

    // Persisted: a new `Security` on the same directory knows bob's new password.
    let dir = api.stop().await;
    let api = Api::start_in(dir).await;
    assert_eq!(
        api.security.authenticate(&bob, Some(b"pw2")).await,
        ConnectVerdict::Allow
    );
    let (status, body) = api.call(Method::DELETE, "/auth_username/bob", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"code": 0})));
    let (status, _) = api.call(Method::DELETE, "/auth_username/bob", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.security.authenticate(&bob, Some(b"pw2")).await,
        ConnectVerdict::BadCredentials
    );
    let raw = std::fs::read_to_string(api.dir.path().join("security/users.json")).unwrap();
    assert!(
        !raw.contains("\"a\"") && raw.contains("$argon2id$"),
        "{raw}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clientid_users_crud() {
    let api = Api::start().await;
    let (status, _) = api
        .call(
            Method::POST,
            "/auth_clientid",
            Some(json!({"clientid": "dev/1", "password": "pw"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = api.call(Method::GET, "/auth_clientid", None).await;
    assert_eq!(body["data"], json!([{"clientid": "dev/1"}]));
    let (status, body) = api.call(Method::GET, "/auth_clientid/dev%2F1", None).await;
    assert_eq!(
        (status, body["data"].clone()),
        (StatusCode::OK, json!({"clientid": "dev/1"}))
    );
    // The username field is not a client id.
    let (status, body) = api
        .call(
            Method::POST,
            "/auth_clientid",
            Some(json!({"username": "x", "password": "pw"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(108))
    );

    let dev = client("dev/1", None);
    assert_eq!(
        api.security.authenticate(&dev, Some(b"pw")).await,
        ConnectVerdict::Allow
    );
    assert_eq!(
        api.security.authenticate(&dev, None).await,
        ConnectVerdict::BadCredentials
    );
    let (status, _) = api
        .call(Method::DELETE, "/auth_clientid/dev%2F1", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.security.authenticate(&dev, Some(b"pw")).await,
        ConnectVerdict::BadCredentials
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acl_rules_crud_and_authorization() {
    let api = Api::start().await;
    let mut settings = api.security.settings().as_ref().clone();
    settings.authorization.no_match = Decision::Deny;
    api.security.set_settings(settings);

    let (status, body) = api
        .call(
            Method::POST,
            "/acl",
            Some(json!({"clientid": "c1", "topic": "t/#", "action": "pub", "access": "deny"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"code": 0, "data": {"clientid": "c1", "topic": "t/#", "action": "pub",
                                   "access": "deny", "result": "ok"}})
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/acl",
            Some(json!([
                {"username": "bob", "topic": "t/%u/#", "action": "publish", "access": "allow"},
                {"login": "$all", "topic": "eq #", "action": "subscribe", "access": "deny"},
                {"topic": "public/#", "action": "all", "access": "allow"},
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][1]["all"], "$all");
    assert_eq!(body["data"][2]["action"], "pubsub");

    // Invalid rules: precise errors, nothing added.
    let cases = [
        (
            json!({"topic": "a/#/b", "action": "pub", "access": "allow"}),
            115,
            "`#` must be alone in the last level",
        ),
        (
            json!({"topic": "a+", "action": "pub", "access": "allow"}),
            115,
            "`+` must be alone",
        ),
        (
            json!({"topic": "", "action": "pub", "access": "allow"}),
            115,
            "empty",
        ),
        (
            json!({"topic": "a", "action": "write", "access": "allow"}),
            108,
            "action must be",
        ),
        (
            json!({"topic": "a", "action": "pub", "access": "maybe"}),
            108,
            "access must be",
        ),
        (
            json!({"topic": "a", "action": "pub"}),
            107,
            "missing field `access`",
        ),
        (
            json!({"clientid": "c", "username": "u", "topic": "a", "action": "pub", "access": "allow"}),
            108,
            "one subject",
        ),
        (
            json!({"login": "bob", "topic": "a", "action": "pub", "access": "allow"}),
            108,
            "login is only accepted",
        ),
        (
            json!({"username": "", "topic": "a", "action": "pub", "access": "allow"}),
            104,
            "username must not be empty",
        ),
        (
            json!([{"topic": "ok", "action": "pub", "access": "allow"}, {"topic": "a/#/b", "action": "pub", "access": "allow"}]),
            115,
            "item 1: invalid topic filter",
        ),
    ];
    for (input, code, message) in cases {
        let (status, body) = api.call(Method::POST, "/acl", Some(input.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{input}: {body}");
        assert_eq!(body["code"], code, "{input}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{input}: {body}"
        );
    }
    let too_many: Vec<Value> = (0..1_001)
        .map(|i| json!({"topic": format!("x/{i}"), "action": "pub", "access": "allow"}))
        .collect();
    let (status, _) = api
        .call(Method::POST, "/acl", Some(Value::Array(too_many)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, body) = api.call(Method::GET, "/acl", None).await;
    assert_eq!(body["meta"]["count"], 4, "{body}");
    assert_eq!(body["data"][0]["clientid"], "c1");
    let (_, body) = api.call(Method::GET, "/acl/clientid", None).await;
    assert_eq!(body["meta"]["count"], 1);
    let (_, body) = api.call(Method::GET, "/acl/username/bob", None).await;
    assert_eq!(
        body["data"],
        json!([{"username": "bob", "topic": "t/%u/#", "action": "pub", "access": "allow"}])
    );
    let (_, body) = api.call(Method::GET, "/acl/$all", None).await;
    assert_eq!(body["meta"]["count"], 2);

    let s = &api.security;
    let bob_on_c1 = client("c1", Some("bob"));
    let bob = client("c2", Some("bob"));
    assert!(
        !s.authorize(&bob_on_c1, Action::Publish, "t/bob/x").await,
        "first rule denies c1"
    );
    assert!(s.authorize(&bob, Action::Publish, "t/bob/x").await);
    assert!(
        !s.authorize(&bob, Action::Publish, "t/alice/x").await,
        "no_match is deny"
    );
    assert!(
        !s.authorize(&bob, Action::Subscribe, "#").await,
        "eq # denies"
    );
    assert!(s.authorize(&bob, Action::Subscribe, "public/+/x").await);
    assert!(!s.authorize(&bob, Action::Subscribe, "public2/#").await);

    // Replacing a rule keeps its place; deleting takes percent-encoded topics.
    let (status, _) = api
        .call(
            Method::POST,
            "/acl",
            Some(json!({"clientid": "c1", "topic": "t/#", "action": "pub", "access": "allow"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(s.authorize(&bob_on_c1, Action::Publish, "t/x").await);
    let (status, body) = api
        .call(Method::DELETE, "/acl/$all/topic/public%2F%23", None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"code": 0})));
    assert!(!s.authorize(&bob, Action::Subscribe, "public/+/x").await);
    let (status, body) = api
        .call(Method::DELETE, "/acl/$all/topic/public%2F%23", None)
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!(105))
    );
    let (status, _) = api
        .call(Method::DELETE, "/acl/clientid/c1/topic/t%2F%23", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/acl/username/bob/topic/t%2F%25u%2F%23",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = api.call(Method::GET, "/acl", None).await;
    assert_eq!(body["meta"]["count"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bans_crud_and_enforcement() {
    let api = Api::start().await;
    let mut settings = api.security.settings().as_ref().clone();
    settings.authentication.allow_anonymous = true;
    api.security.set_settings(settings);
    let c1 = client("c1", None);
    assert_eq!(
        api.security.authenticate(&c1, None).await,
        ConnectVerdict::Allow
    );

    let now = chrono::Utc::now().timestamp();
    let (status, body) = api
        .call(
            Method::POST,
            "/banned",
            Some(json!({"who": "c1", "as": "clientid", "reason": "spam"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["by"], APP_ID);
    let until = body["data"]["until"].as_i64().unwrap();
    assert!((now + 299..=now + 302).contains(&until), "{body}");
    assert_eq!(
        api.security.authenticate(&c1, None).await,
        ConnectVerdict::Banned
    );

    let (status, _) = api
        .call(
            Method::POST,
            "/banned",
            Some(json!({"who": "127.0.0.1", "as": "peerhost", "until": now + 3600})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.security.authenticate(&client("c9", None), None).await,
        ConnectVerdict::Banned
    );

    for (input, message) in [
        (
            json!({"who": "x", "as": "ip"}),
            "as must be clientid, username or peerhost",
        ),
        (
            json!({"who": "nope", "as": "peerhost"}),
            "is not an IP address",
        ),
        (
            json!({"who": "", "as": "username"}),
            "who must not be empty",
        ),
        (
            json!({"who": "x", "as": "username", "until": 1}),
            "the ban would never apply",
        ),
    ] {
        let (status, body) = api.call(Method::POST, "/banned", Some(input.clone())).await;
        assert_eq!(
            (status, body["code"].clone()),
            (StatusCode::BAD_REQUEST, json!(108)),
            "{input}"
        );
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{body}"
        );
    }

    let (_, body) = api.call(Method::GET, "/banned", None).await;
    assert_eq!(body["meta"]["count"], 2, "{body}");
    assert_eq!(body["data"][0]["as"], "clientid");
    let (status, _) = api.call(Method::DELETE, "/banned/clientid/c1", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.call(Method::DELETE, "/banned/clientid/c1", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!(105))
    );
    let (status, _) = api
        .call(Method::DELETE, "/banned/peerhost/127.0.0.1", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.security.authenticate(&c1, None).await,
        ConnectVerdict::Allow
    );
}

/// What the auth service last received: content type, query (as JSON), body.
type Received = (Option<String>, String, String);

/// A stand-in for the deployment owner's auth service: decides by username, counts and
/// records what it is sent.
#[derive(Clone, Default)]
struct AuthService {
    hits: Arc<AtomicUsize>,
    last: Arc<Mutex<Option<Received>>>,
}

impl AuthService {
    async fn start(self) -> String {
        async fn decide(
            State(service): State<AuthService>,
            Query(query): Query<BTreeMap<String, String>>,
            headers: HeaderMap,
            body: String,
        ) -> (StatusCode, String) {
            service.hits.fetch_add(1, Ordering::SeqCst);
            let content_type = headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let query_text = serde_json::to_string(&query).unwrap();
            *service.last.lock().unwrap() = Some((content_type, query_text, body.clone()));
            let who = query
                .get("username")
                .cloned()
                .or_else(|| {
                    serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|v| v["username"].as_str().map(str::to_owned))
                })
                .or_else(|| form_value(&body, "username"))
                .unwrap_or_default();
            match who.as_str() {
                "allow" => (StatusCode::OK, "ok".into()),
                "ignore" => (StatusCode::OK, " ignore\n".into()),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    (StatusCode::OK, String::new())
                }
                "unauthorized" => (StatusCode::UNAUTHORIZED, String::new()),
                _ => (StatusCode::FORBIDDEN, String::new()),
            }
        }
        let app = Router::new()
            .route("/auth", post(decide).get(decide))
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/auth")
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn last(&self) -> Received {
        self.last.lock().unwrap().clone().unwrap()
    }
}

fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

fn http_source(url: &str, method: HttpMethod, cache_ttl_ms: u64) -> HttpSource {
    HttpSource {
        url: url.into(),
        method,
        body: BTreeMap::from([
            ("username".into(), "%u".into()),
            ("clientid".into(), "%c".into()),
            ("password".into(), "%P".into()),
        ]),
        headers: BTreeMap::new(),
        timeout_ms: 300,
        cache_ttl_ms,
        pool_size: 4,
    }
}

fn http_settings(source: HttpSource, allow_anonymous: bool) -> SecuritySettings {
    SecuritySettings {
        authentication: Authentication {
            allow_anonymous,
            chain: vec![Source::Http(source), Source::BuiltIn],
        },
        ..SecuritySettings::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn external_http_authentication() {
    let service = AuthService::default();
    let url = service.clone().start().await;
    let dir = TempDir::new();
    let security = Security::open(dir.path()).unwrap();
    security.set_settings(http_settings(http_source(&url, HttpMethod::Post, 0), false));

    let verdict = |name: &'static str| {
        let security = security.clone();
        async move {
            security
                .authenticate(&client("c1", Some(name)), Some(b"pw"))
                .await
        }
    };
    assert_eq!(verdict("allow").await, ConnectVerdict::Allow);
    assert_eq!(verdict("deny").await, ConnectVerdict::NotAuthorized);
    assert_eq!(
        verdict("unauthorized").await,
        ConnectVerdict::BadCredentials
    );
    // `ignore` defers: the built-in source knows nobody, anonymous is off.
    assert_eq!(verdict("ignore").await, ConnectVerdict::BadCredentials);
    let started = std::time::Instant::now();
    assert_eq!(verdict("slow").await, ConnectVerdict::NotAuthorized);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "timeout not applied"
    );
    assert_eq!(service.hits(), 5, "no cache: every CONNECT asks");

    // Form body by default.
    let (content_type, _, body) = service.last();
    assert_eq!(
        content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(body, "clientid=c1&password=pw&username=slow");

    // `ignore` then anonymous on: let in.
    security.set_settings(http_settings(http_source(&url, HttpMethod::Post, 0), true));
    assert_eq!(verdict("ignore").await, ConnectVerdict::Allow);

    // JSON body when the headers say so.
    let mut json_source = http_source(&url, HttpMethod::Post, 0);
    json_source
        .headers
        .insert("Content-Type".into(), "application/json".into());
    security.set_settings(http_settings(json_source, false));
    assert_eq!(verdict("allow").await, ConnectVerdict::Allow);
    let (content_type, _, body) = service.last();
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"username": "allow", "clientid": "c1", "password": "pw"})
    );

    // GET: parameters in the query string, values escaped.
    security.set_settings(http_settings(
        http_source(&format!("{url}?transport=%r&port=%p"), HttpMethod::Get, 0),
        false,
    ));
    assert_eq!(
        security
            .authenticate(&client("c/1 x", Some("allow")), Some(b"p&w"))
            .await,
        ConnectVerdict::Allow
    );
    let (_, query, body) = service.last();
    assert_eq!(body, "");
    assert_eq!(
        serde_json::from_str::<Value>(&query).unwrap(),
        json!({"transport": "mqtt", "port": "1883", "username": "allow", "clientid": "c/1 x", "password": "p&w"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn external_http_decisions_are_cached() {
    let service = AuthService::default();
    let url = service.clone().start().await;
    let dir = TempDir::new();
    let security = Security::open(dir.path()).unwrap();
    let source = http_source(&url, HttpMethod::Post, 60_000);
    security.set_settings(http_settings(source.clone(), false));

    let allow = client("c1", Some("allow"));
    for _ in 0..5 {
        assert_eq!(
            security.authenticate(&allow, Some(b"pw")).await,
            ConnectVerdict::Allow
        );
    }
    assert_eq!(service.hits(), 1);
    // Another password is another request.
    assert_eq!(
        security.authenticate(&allow, Some(b"other")).await,
        ConnectVerdict::Allow
    );
    assert_eq!(service.hits(), 2);
    // Denials from the service are cached too; timeouts are not.
    let deny = client("c1", Some("deny"));
    for _ in 0..3 {
        assert_eq!(
            security.authenticate(&deny, Some(b"pw")).await,
            ConnectVerdict::NotAuthorized
        );
    }
    assert_eq!(service.hits(), 3);
    let slow = client("c1", Some("slow"));
    for _ in 0..2 {
        assert_eq!(
            security.authenticate(&slow, Some(b"pw")).await,
            ConnectVerdict::NotAuthorized
        );
    }
    assert_eq!(service.hits(), 5);

    // Unchanged settings keep the cache; changed settings start a new one.
    let mut settings = http_settings(source.clone(), false);
    settings.app_keys.push(AppKey {
        app_id: "k".into(),
        secret_sha256: app_secret_sha256("s"),
        read_only: false,
    });
    security.set_settings(settings);
    assert_eq!(
        security.authenticate(&allow, Some(b"pw")).await,
        ConnectVerdict::Allow
    );
    assert_eq!(service.hits(), 5);
    let mut changed = source;
    changed.timeout_ms = 400;
    security.set_settings(http_settings(changed, false));
    assert_eq!(
        security.authenticate(&allow, Some(b"pw")).await,
        ConnectVerdict::Allow
    );
    assert_eq!(service.hits(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn external_http_authorization() {
    let service = AuthService::default();
    let url = service.clone().start().await;
    let dir = TempDir::new();
    let security = Security::open(dir.path()).unwrap();
    let source = HttpSource {
        body: BTreeMap::from([
            ("username".into(), "%u".into()),
            ("action".into(), "%A".into()),
            ("topic".into(), "%t".into()),
        ]),
        ..http_source(&url, HttpMethod::Get, 0)
    };
    security.set_settings(SecuritySettings {
        authorization: Authorization {
            no_match: Decision::Deny,
            disconnect_on_deny: false,
            chain: vec![Source::Http(source), Source::BuiltIn],
        },
        ..SecuritySettings::default()
    });
    assert!(
        security
            .authorize(&client("c", Some("allow")), Action::Subscribe, "a/#")
            .await
    );
    let (_, query, _) = service.last();
    assert_eq!(
        serde_json::from_str::<Value>(&query).unwrap(),
        json!({"username": "allow", "action": "subscribe", "topic": "a/#"})
    );
    assert!(
        !security
            .authorize(&client("c", Some("deny")), Action::Publish, "a")
            .await
    );
    // `ignore` falls through to the (empty) built-in rules, then `no_match`.
    assert!(
        !security
            .authorize(&client("c", Some("ignore")), Action::Publish, "a")
            .await
    );
    assert!(
        !security
            .authorize(&client("c", Some("slow")), Action::Publish, "a")
            .await
    );
}
