//! Authentication, authorization, bans and TLS of a real `skyport-broker`, driven by
//! mosquitto clients, with `security.json` and the deployment API changed while it runs.

mod common;

use std::time::{Duration, Instant};

use common::{open_security, publish, security_json, unique, Broker, Pki, Subscriber, Target};
use reqwest::Method;
use serde_json::json;

/// Retries `attempt` until it returns true: the broker applies a new `security.json`
/// within about a second of the write.
async fn eventually<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !attempt().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `mosquitto_pub` as `client_id`, with optional credentials: (succeeded, stderr+stdout).
async fn connect_as(
    target: &Target,
    version: &str,
    client_id: &str,
    user: Option<(&str, &str)>,
) -> (bool, String) {
    let mut extra = vec!["-i", client_id, "-d"];
    if let Some((username, password)) = user {
        extra.extend(["-u", username, "-P", password]);
    }
    let (status, output) = publish(target, version, 1, "auth/probe", "x", &extra).await;
    (status.success(), output)
}

#[tokio::test]
async fn anonymous_clients_are_refused_until_allowed() {
    let broker = Broker::start_with_security(&["tcp"], security_json(json!({}))).await;
    let target = broker.mqtt("tcp");
    for (version, refusal) in [
        ("mqttv311", "bad user name or password"),
        ("mqttv5", "bad user name or password"),
    ] {
        let (ok, output) = connect_as(&target, version, &unique("anon"), None).await;
        assert!(!ok, "{version}: anonymous client connected: {output}");
        assert!(
            output.to_lowercase().contains(refusal),
            "{version}: expected {refusal:?}: {output}"
        );
    }
    broker.set_security(&open_security());
    eventually("anonymous clients allowed", || async {
        connect_as(&target, "mqttv311", &unique("anon"), None)
            .await
            .0
    })
    .await;
}

#[tokio::test]
async fn built_in_users_connect_with_the_right_password_only() {
    let broker = Broker::start_with_security(&["tcp"], security_json(json!({}))).await;
    let target = broker.mqtt("tcp");
    let created = broker
        .api(Method::POST, "/api/v4/auth_username")
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200, "{}", created.text().await.unwrap());
    let created = broker
        .api(Method::POST, "/api/v4/auth_clientid")
        .json(&json!({"clientid": "sensor-7", "password": "battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200, "{}", created.text().await.unwrap());

    for version in ["mqttv311", "mqttv5"] {
        let right = connect_as(
            &target,
            version,
            &unique("a"),
            Some(("alice", "correct horse")),
        )
        .await;
        assert!(right.0, "{version}: alice refused: {}", right.1);
        let wrong = connect_as(&target, version, &unique("a"), Some(("alice", "wrong"))).await;
        assert!(!wrong.0, "{version}: wrong password accepted");
        assert!(
            wrong.1.to_lowercase().contains("bad user name or password"),
            "{}",
            wrong.1
        );
        let unknown = connect_as(&target, version, &unique("a"), Some(("mallory", "x"))).await;
        assert!(!unknown.0, "{version}: unknown user accepted");
        let by_id = connect_as(&target, version, "sensor-7", Some(("", "battery staple"))).await;
        assert!(by_id.0, "{version}: client id auth refused: {}", by_id.1);
    }
    // The password is never returned.
    let listed = broker
        .api(Method::GET, "/api/v4/auth_username")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("alice") && !listed.contains("correct horse"),
        "{listed}"
    );
}

#[tokio::test]
async fn acl_refusals_never_reach_subscribers() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    for rule in [
        json!({"login": "$all", "topic": "secret/#", "action": "pub", "access": "deny"}),
        json!({"login": "$all", "topic": "private/#", "action": "sub", "access": "deny"}),
    ] {
        let response = broker
            .api(Method::POST, "/api/v4/acl")
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    for (version, refused) in [("mqttv311", "128"), ("mqttv5", "135")] {
        // A refused subscription is answered with the protocol's failure code.
        let sub = Subscriber::spawn(&target, version, 1, "private/x", &[]);
        let output = sub.finish_any().await;
        assert!(
            output
                .iter()
                .any(|l| l.contains("Subscribed (mid: 1):") && l.ends_with(refused)),
            "{version}: {output:#?}"
        );

        // A refused publish is dropped: the subscriber only gets the allowed one after it.
        let topic = unique("secret/data");
        let sub = Subscriber::start(&target, version, 1, "secret/#", &[]).await;
        let (status, output) =
            publish(&target, version, 1, &topic, "must-not-arrive", &["-d"]).await;
        assert!(status.success(), "{output}");
        if version == "mqttv5" {
            assert!(
                output.contains("RC:135"),
                "v5 PUBACK without 0x87: {output}"
            );
        }
        // Rules change at once, for connected clients too.
        let deleted = broker
            .api(Method::DELETE, "/api/v4/acl/$all/topic/secret%2F%23")
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 200, "{}", deleted.text().await.unwrap());
        let (status, output) = publish(&target, version, 1, &topic, "allowed-now", &["-d"]).await;
        assert!(status.success() && !output.contains("RC:135"), "{output}");
        let output = sub.finish().await;
        assert!(
            !output.iter().any(|l| l == "must-not-arrive"),
            "{output:#?}"
        );
        assert!(output.iter().any(|l| l == "allowed-now"), "{output:#?}");
        let response = broker
            .api(Method::POST, "/api/v4/acl")
            .json(&json!({"login": "$all", "topic": "secret/#", "action": "pub", "access": "deny"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn banned_clients_are_refused_until_the_ban_expires() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let client_id = unique("banned");
    let until = chrono::Utc::now().timestamp() + 3;
    let response = broker
        .api(Method::POST, "/api/v4/banned")
        .json(&json!({"who": client_id, "as": "clientid", "reason": "test", "until": until}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    for (version, refusal) in [("mqttv311", "not authorised"), ("mqttv5", "banned")] {
        let (ok, output) = connect_as(&target, version, &client_id, None).await;
        assert!(!ok, "{version}: banned client connected");
        assert!(
            output.to_lowercase().contains(refusal),
            "{version}: {output}"
        );
    }
    let other = connect_as(&target, "mqttv311", &unique("free"), None).await;
    assert!(other.0, "an unbanned client was refused: {}", other.1);
    eventually("the ban expires", || async {
        connect_as(&target, "mqttv311", &client_id, None).await.0
    })
    .await;
}

/// `security.json` with a custom certificate from `pki`, two-way when `client_ca` is set.
fn custom_tls(pki: &Pki, client_ca: Option<&Pki>) -> serde_json::Value {
    let mut tls = json!({
        "tls_type": if client_ca.is_some() { "two-way" } else { "one-way" },
        "cert_file": pki.cert_file,
        "key_file": pki.key_file,
    });
    if let Some(ca) = client_ca {
        tls["ca_file"] = json!(ca.ca_file);
    }
    let mut settings = open_security();
    settings["tls"] = tls;
    settings
}

fn tls_target(broker: &Broker, ca: &Pki) -> Target {
    Target {
        ca_file: Some(ca.ca_file.clone()),
        ..broker.mqtt("tls")
    }
}

#[tokio::test]
async fn two_way_tls_admits_only_clients_of_the_uploaded_ca() {
    let broker = Broker::start(&["tls"]).await;
    let custom = Pki::generate(broker.dir.path(), "custom");
    let stranger = Pki::generate(broker.dir.path(), "stranger");
    broker.set_security(&custom_tls(&custom, Some(&custom)));
    let target = tls_target(&broker, &custom);
    let (good_cert, good_key) = custom.client_cert("device-1");
    let (bad_cert, bad_key) = stranger.client_cert("device-2");
    let with_cert = |cert: &std::path::Path, key: &std::path::Path| {
        vec![
            "--cert".to_owned(),
            cert.display().to_string(),
            "--key".to_owned(),
            key.display().to_string(),
        ]
    };
    let good = with_cert(&good_cert, &good_key);
    eventually("the custom two-way certificate is served", || async {
        let extra: Vec<&str> = good.iter().map(String::as_str).collect();
        publish(&target, "mqttv311", 1, "tls/probe", "x", &extra)
            .await
            .0
            .success()
    })
    .await;
    let (status, output) = publish(&target, "mqttv311", 1, "tls/probe", "x", &[]).await;
    assert!(
        !status.success(),
        "a client without a certificate connected: {output}"
    );
    let bad = with_cert(&bad_cert, &bad_key);
    let extra: Vec<&str> = bad.iter().map(String::as_str).collect();
    let (status, output) = publish(&target, "mqttv311", 1, "tls/probe", "x", &extra).await;
    assert!(
        !status.success(),
        "a client of another CA connected: {output}"
    );

    // Back to the Skyport-issued certificate, one-way.
    broker.set_security(&open_security());
    let default = broker.mqtt("tls");
    eventually("the default certificate is served again", || async {
        publish(&default, "mqttv5", 1, "tls/probe", "x", &[])
            .await
            .0
            .success()
    })
    .await;
}

#[tokio::test]
async fn every_change_applies_without_dropping_a_connected_subscriber() {
    let broker = Broker::start(&["tcp", "tls"]).await;
    let target = broker.mqtt("tcp");
    let topic = unique("steady/topic");
    let sub = Subscriber::start(&target, "mqttv311", 1, &topic, &["-i", "steady-sub"]).await;

    let api = |method, path: &str, body: serde_json::Value| {
        let request = broker.api(method, path).json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
    };
    api(
        Method::POST,
        "/api/v4/auth_username",
        json!({"username": "u1", "password": "p1"}),
    )
    .await;
    api(
        Method::POST,
        "/api/v4/acl",
        json!({"login": "$all", "topic": "elsewhere/#", "action": "pubsub", "access": "deny"}),
    )
    .await;
    api(
        Method::POST,
        "/api/v4/banned",
        json!({"who": "someone-else", "as": "clientid"}),
    )
    .await;
    // External authentication first in the chain: a service that admits only `u2`.
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_addr = service.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/auth",
        axum::routing::post(|body: String| async move {
            if body.contains("username=u2") {
                (axum::http::StatusCode::OK, "allow")
            } else {
                (axum::http::StatusCode::OK, "ignore")
            }
        }),
    );
    tokio::spawn(async move { axum::serve(service, app).await.unwrap() });
    let mut settings = open_security();
    settings["authentication"]["chain"] = json!([
        {"type": "http", "url": format!("http://{service_addr}/auth"),
         "body": {"username": "%u"}, "cache_ttl_ms": 0},
        {"type": "built_in"},
    ]);
    broker.set_security(&settings);
    eventually("the external authenticator is in force", || async {
        let extra = ["-u", "u2", "-P", "anything"];
        let (status, _) = publish(&target, "mqttv311", 1, "auth/probe", "x", &extra).await;
        status.success() && {
            // u1's built-in password still decides for u1.
            let wrong = ["-u", "u1", "-P", "wrong"];
            !publish(&target, "mqttv311", 1, "auth/probe", "x", &wrong)
                .await
                .0
                .success()
        }
    })
    .await;

    // A new certificate for new handshakes (and anonymous still allowed).
    let custom = Pki::generate(broker.dir.path(), "rotated");
    let mut with_tls = custom_tls(&custom, None);
    with_tls["authentication"] = settings["authentication"].clone();
    broker.set_security(&with_tls);
    let rotated = tls_target(&broker, &custom);
    eventually("new TLS handshakes get the new certificate", || async {
        publish(&rotated, "mqttv311", 1, "tls/probe", "x", &[])
            .await
            .0
            .success()
    })
    .await;
    let (status, _) = publish(&broker.mqtt("tls"), "mqttv311", 1, "tls/probe", "x", &[]).await;
    assert!(!status.success(), "the old certificate is still served");

    let (status, output) = publish(&target, "mqttv311", 1, &topic, "still-here", &[]).await;
    assert!(status.success(), "{output}");
    let output = sub.finish().await;
    assert!(output.iter().any(|l| l == "still-here"), "{output:#?}");
    let connects = output
        .iter()
        .filter(|l| l.contains("sending CONNECT"))
        .count();
    assert_eq!(connects, 1, "the subscriber reconnected: {output:#?}");
}

#[tokio::test]
async fn the_deployment_api_requires_an_app_key() {
    let broker = Broker::start(&["tcp"]).await;
    let url = format!("http://{}/api/v4/auth_username", broker.addrs.api);
    let client = reqwest::Client::new();
    let none = client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = client
        .get(&url)
        .basic_auth(common::APP_ID, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = broker
        .api(Method::GET, "/api/v4/auth_username")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    // Removing the key from the settings revokes it.
    broker.set_security(&json!({"authentication": {"allow_anonymous": true}}));
    eventually("the removed key is refused", || async {
        broker
            .api(Method::GET, "/api/v4/auth_username")
            .send()
            .await
            .unwrap()
            .status()
            == 401
    })
    .await;
}

#[tokio::test]
async fn a_subscribe_with_allowed_and_denied_filters_gets_both_answers() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let rule = json!({"login": "$all", "topic": "private/#", "action": "sub", "access": "deny"});
    let response = broker
        .api(Method::POST, "/api/v4/acl")
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for (version, refused) in [("mqttv311", "128"), ("mqttv5", "135")] {
        let open = unique("open/topic");
        // One SUBSCRIBE with three filters; the engine sees only the allowed two.
        let sub = Subscriber::start(
            &target,
            version,
            1,
            &open,
            &["-t", "private/x", "-t", "open/other"],
        )
        .await;
        let (status, output) = publish(&target, version, 1, &open, "through", &[]).await;
        assert!(status.success(), "{output}");
        let output = sub.finish().await;
        assert!(
            output
                .iter()
                .any(|l| *l == format!("Subscribed (mid: 1): 1, {refused}, 1")),
            "{version}: {output:#?}"
        );
        assert!(output.iter().any(|l| l == "through"), "{output:#?}");
    }
}

#[tokio::test]
async fn a_denied_publish_can_disconnect_the_client() {
    let mut settings = open_security();
    settings["authorization"] = json!({"disconnect_on_deny": true});
    let broker = Broker::start_with_security(&["tcp"], settings).await;
    let target = broker.mqtt("tcp");
    let rule = json!({"login": "$all", "topic": "cmd/#", "action": "pub", "access": "deny"});
    let response = broker
        .api(Method::POST, "/api/v4/acl")
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let topic = unique("cmd/reboot");
    let watcher = Subscriber::start(&target, "mqttv311", 1, "cmd/#", &["-W", "3"]).await;
    for version in ["mqttv311", "mqttv5"] {
        let (status, output) = publish(&target, version, 1, &topic, "denied", &["-d"]).await;
        assert!(!status.success(), "{version}: still connected: {output}");
        assert!(!output.contains("received PUBACK"), "{version}: {output}");
    }
    let output = watcher.finish_any().await;
    assert!(!output.iter().any(|l| l == "denied"), "{output:#?}");
}

#[tokio::test]
async fn tls_below_1_2_is_refused() {
    let broker = Broker::start(&["tls"]).await;
    let addr = broker.addrs.tls.unwrap().to_string();
    let handshake = |version: &str| {
        std::process::Command::new("openssl")
            // Security level 0: the client itself would offer TLS 1.0/1.1.
            .args([
                "s_client",
                "-connect",
                &addr,
                version,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ])
            .arg("-CAfile")
            .arg(&broker.pki.ca_file)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed")
    };
    for old in ["-tls1", "-tls1_1"] {
        let out = handshake(old);
        assert!(!out.status.success(), "{old} handshake succeeded");
    }
    for current in ["-tls1_2", "-tls1_3"] {
        let out = handshake(current);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{current}: {text}"
        );
    }
}
