//! People and roles through the real `skyport`: console users (API and `skyport users
//! add`), project members with roles enforced alike for people and API keys, sign-in
//! sessions behind an HttpOnly SameSite=Strict cookie with a CSRF token, sign-out that
//! ends the session on the server, the lock after 10 wrong passwords in a row, and
//! session-bound app keys (the console's own) ending with their sign-in session.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use skyport_tests::console::{add_member, create_user, sign_in_reply, Person};
use skyport_tests::{binary, Backend, ControlPlane};

const PASSWORD: &str = "correct horse battery";

async fn roles_and_sessions(backend: Backend) {
    let cp = ControlPlane::start_with(backend, &[]);
    let admin = &cp.api;
    let (project, owner_key) = admin.project_with_key("acme").await;
    let (other_project, _) = admin.project_with_key("globex").await;

    // Users: bad input is refused precisely and creates nothing.
    admin
        .post(
            "/users",
            json!({"email": "not-an-address", "password": PASSWORD}),
        )
        .await
        .assert_problem(422, "invalid_email");
    admin
        .post(
            "/users",
            json!({"email": "ada@example.com", "password": "short"}),
        )
        .await
        .assert_problem(422, "weak_password");
    owner_key
        .post(
            "/users",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await
        .assert_problem(403, "admin_required");
    assert_eq!(admin.get("/users").await.body["items"], json!([]));

    create_user(admin, "Ada@Example.com", PASSWORD).await;
    admin
        .post(
            "/users",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await
        .assert_problem(409, "email_taken");
    create_user(admin, "dev@example.com", PASSWORD).await;
    create_user(admin, "outsider@example.com", PASSWORD).await;
    let users = admin.get("/users").await;
    assert_eq!(users.body["items"].as_array().unwrap().len(), 3);
    assert!(
        !users.text.contains("argon2") && !users.text.contains(PASSWORD),
        "no password material is ever returned: {}",
        users.text
    );

    // The CLI adds a user straight into a project, with a role.
    let mut child = Command::new(binary("skyport"))
        .args(["--data-dir"])
        .arg(cp.data_dir.path())
        .args(["--database-url", cp.database_url()])
        .args(["users", "add", "viewer@example.com", "--password-stdin"])
        .args(["--project", &project, "--role", "viewer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skyport users add");
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("viewer of project"), "{stdout}");
    assert!(
        !stdout.contains(PASSWORD),
        "the given password is not echoed"
    );

    add_member(admin, &project, "ada@example.com", "owner").await;
    admin
        .post(
            &format!("/projects/{project}/members"),
            json!({"email": "ada@example.com", "role": "viewer"}),
        )
        .await
        .assert_problem(409, "already_member");
    admin
        .post(
            &format!("/projects/{project}/members"),
            json!({"email": "nobody@example.com", "role": "viewer"}),
        )
        .await
        .assert_problem(422, "unknown_user");
    admin
        .post(
            &format!("/projects/{project}/members"),
            json!({"email": "dev@example.com", "role": "admin"}),
        )
        .await
        .assert_problem(422, "invalid_role");

    // Sign-in: a wrong password or unknown address is 401; a good one sets the cookie.
    let (wrong, cookie) =
        sign_in_reply(&cp.base_url, "ada@example.com", "wrong password!", &[]).await;
    wrong.assert_problem(401, "invalid_credentials");
    assert!(cookie.is_empty());
    let (unknown, _) = sign_in_reply(&cp.base_url, "who@example.com", PASSWORD, &[]).await;
    unknown.assert_problem(401, "invalid_credentials");

    let ada = Person::sign_in(&cp.base_url, "ADA@example.com", PASSWORD).await;
    let attrs: Vec<&str> = ada.set_cookie.split(';').map(str::trim).collect();
    assert!(attrs[0].starts_with("skyport_session="), "{attrs:?}");
    assert!(attrs.contains(&"HttpOnly"), "{attrs:?}");
    assert!(attrs.contains(&"SameSite=Strict"), "{attrs:?}");
    assert!(attrs.contains(&"Path=/"), "{attrs:?}");
    assert!(
        !attrs.contains(&"Secure"),
        "plain HTTP: not Secure ({attrs:?})"
    );
    let (_, over_tls) = sign_in_reply(
        &cp.base_url,
        "ada@example.com",
        PASSWORD,
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(
        over_tls.split(';').any(|a| a.trim() == "Secure"),
        "{over_tls}"
    );

    let me = ada.get("/session").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["user"]["email"], "ada@example.com");
    assert_eq!(me.body["csrf_token"], ada.csrf.as_str());

    // A person sees their projects with their role, and nobody else's.
    let projects = ada.get("/projects").await;
    assert_eq!(
        projects.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        projects.text
    );
    assert_eq!(projects.body["items"][0]["id"], project.as_str());
    assert_eq!(projects.body["items"][0]["role"], "owner");
    ada.get(&format!("/projects/{other_project}"))
        .await
        .assert_problem(404, "not_found");

    // Deployments need the project header, and unsafe methods the CSRF token.
    ada.post(
        "/deployments",
        json!({"name": "line-1", "plan": "dedicated"}),
    )
    .await
    .assert_problem(400, "project_required");
    let ada_p = ada.in_project(&project);
    ada_p
        .call_with(
            Method::POST,
            "/deployments",
            Some(json!({"name": "line-1", "plan": "dedicated"})),
            false,
        )
        .await
        .assert_problem(403, "csrf_failed");
    let mut forged = ada_p.clone();
    forged.csrf = "forged".into();
    forged
        .post(
            "/deployments",
            json!({"name": "line-1", "plan": "dedicated"}),
        )
        .await
        .assert_problem(403, "csrf_failed");
    assert_eq!(
        owner_key.get("/deployments").await.body["items"],
        json!([]),
        "refused requests created nothing"
    );
    let created = ada_p
        .post(
            "/deployments",
            json!({"name": "line-1", "plan": "dedicated"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let dep = created.body["id"].as_str().unwrap().to_owned();
    let events = owner_key.get(&format!("/deployments/{dep}/events")).await;
    assert!(
        events.text.contains("user:"),
        "the event log names the person: {}",
        events.text
    );
    ada.in_project(&other_project)
        .get("/deployments")
        .await
        .assert_problem(404, "not_found");

    // Roles: the viewer reads but changes nothing, as a person or through a viewer key.
    let viewer = Person::sign_in(&cp.base_url, "viewer@example.com", PASSWORD)
        .await
        .in_project(&project);
    assert_eq!(
        viewer.get(&format!("/deployments/{dep}")).await.status,
        StatusCode::OK
    );
    viewer
        .post(&format!("/deployments/{dep}/stop"), json!({}))
        .await
        .assert_problem(403, "forbidden_role");
    viewer
        .delete(&format!("/deployments/{dep}"))
        .await
        .assert_problem(403, "forbidden_role");
    viewer
        .get(&format!("/projects/{project}/api-keys"))
        .await
        .assert_problem(403, "forbidden_role");
    assert_eq!(
        viewer
            .get(&format!("/projects/{project}/members"))
            .await
            .status,
        StatusCode::OK
    );
    let d = owner_key.get(&format!("/deployments/{dep}")).await;
    assert_ne!(d.body["desired_state"], "stopped", "{}", d.text);

    let key = ada
        .post(
            &format!("/projects/{project}/api-keys"),
            json!({"name": "dashboard", "role": "viewer"}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    assert_eq!(key.body["role"], "viewer");
    let viewer_key = admin.with_token(key.body["secret"].as_str().unwrap());
    assert_eq!(viewer_key.get("/deployments").await.status, StatusCode::OK);
    viewer_key
        .post("/deployments", json!({"name": "nope", "plan": "dedicated"}))
        .await
        .assert_problem(403, "forbidden_role");
    viewer_key
        .post(&format!("/deployments/{dep}/stop"), json!({}))
        .await
        .assert_problem(403, "forbidden_role");
    viewer_key
        .post(
            &format!("/projects/{project}/api-keys"),
            json!({"name": "x"}),
        )
        .await
        .assert_problem(403, "forbidden_role");

    // A developer changes deployments but not members.
    add_member(admin, &project, "dev@example.com", "developer").await;
    let dev = Person::sign_in(&cp.base_url, "dev@example.com", PASSWORD)
        .await
        .in_project(&project);
    let stop = dev
        .post(&format!("/deployments/{dep}/stop"), json!({}))
        .await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.text);
    dev.post(
        &format!("/projects/{project}/members"),
        json!({"email": "outsider@example.com", "role": "owner"}),
    )
    .await
    .assert_problem(403, "forbidden_role");

    // The only owner cannot step down or leave.
    let ada_id = me.body["user"]["id"].as_str().unwrap().to_owned();
    ada.put(
        &format!("/projects/{project}/members/{ada_id}"),
        json!({"role": "viewer"}),
    )
    .await
    .assert_problem(409, "last_owner");
    ada.delete(&format!("/projects/{project}/members/{ada_id}"))
        .await
        .assert_problem(409, "last_owner");

    // Non-members see nothing; the admin token and existing keys keep working.
    let outsider = Person::sign_in(&cp.base_url, "outsider@example.com", PASSWORD)
        .await
        .in_project(&project);
    assert_eq!(outsider.get("/projects").await.body["items"], json!([]));
    outsider
        .get(&format!("/deployments/{dep}"))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        admin.get(&format!("/projects/{project}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        owner_key.get(&format!("/deployments/{dep}")).await.status,
        StatusCode::OK
    );

    // Sign-out needs the CSRF token, then ends the session on the server.
    ada.call_with(Method::DELETE, "/session", None, false)
        .await
        .assert_problem(403, "csrf_failed");
    assert_eq!(ada.get("/session").await.status, StatusCode::OK);
    let out = ada.delete("/session").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    ada.get("/session")
        .await
        .assert_problem(401, "invalid_session");
    ada_p
        .get("/deployments")
        .await
        .assert_problem(401, "invalid_session");

    owner_key.delete(&format!("/deployments/{dep}")).await;
    owner_key.wait_gone(&dep).await;
}

async fn lockout(backend: Backend) {
    let cp = ControlPlane::start_with(backend, &[]);
    create_user(&cp.api, "bob@example.com", PASSWORD).await;
    create_user(&cp.api, "eve@example.com", PASSWORD).await;

    // A good password resets the count: 9 wrong, 1 right, 9 wrong is no lock.
    for _ in 0..9 {
        let (r, _) = sign_in_reply(&cp.base_url, "eve@example.com", "not the password", &[]).await;
        r.assert_problem(401, "invalid_credentials");
    }
    Person::sign_in(&cp.base_url, "eve@example.com", PASSWORD).await;

    for _ in 0..9 {
        let (r, _) = sign_in_reply(&cp.base_url, "bob@example.com", "not the password", &[]).await;
        r.assert_problem(401, "invalid_credentials");
    }
    let (tenth, _) = sign_in_reply(&cp.base_url, "bob@example.com", "not the password", &[]).await;
    tenth.assert_problem(429, "too_many_attempts");
    // Even the right password is refused while the account is locked, and no cookie is set.
    let (locked, cookie) = sign_in_reply(&cp.base_url, "bob@example.com", PASSWORD, &[]).await;
    locked.assert_problem(429, "too_many_attempts");
    assert!(cookie.is_empty());
    // Other accounts are unaffected.
    Person::sign_in(&cp.base_url, "eve@example.com", PASSWORD).await;
}

/// The deployment API's answer to `app_id:secret` (`GET /api/v4/clients`).
async fn broker_status(api_url: &str, app_id: &str, secret: &str) -> StatusCode {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{api_url}/api/v4/clients"))
        .basic_auth(app_id, Some(secret))
        .send()
        .await
        .expect("deployment API reachable")
        .status()
}

/// Polls until `check` holds (bounded: 120 s), explaining `what` otherwise.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..240 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn session_bound_app_keys(backend: Backend) {
    // Short sessions, purged every second: the first session below expires while idle.
    let cp = ControlPlane::start_with(
        backend,
        &[
            "--console-session-ttl",
            "60s",
            "--console-session-purge-interval",
            "1s",
        ],
    );
    let (project, key) = cp.api.project_with_key("bound").await;
    create_user(&cp.api, "ada@example.com", PASSWORD).await;
    add_member(&cp.api, &project, "ada@example.com", "developer").await;
    let dep = key.create_deployment("bound", "dedicated").await;
    let api_url = key.wait_status(&dep, "running").await["endpoints"]["api"]
        .as_str()
        .expect("api endpoint")
        .to_owned();
    let keys_path = format!("/deployments/{dep}/app-keys");
    let names = || async {
        let list = key.get(&keys_path).await;
        let mut names: Vec<String> = list.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };

    // An API key's caller has no session to bind a key to: refused, nothing created.
    key.post(&keys_path, json!({"name": "bound", "session_bound": true}))
        .await
        .assert_problem(422, "session_required");
    assert!(names().await.is_empty());

    // Two sign-ins of one person, each with a bound key; the first also makes a plain one.
    let first = Person::sign_in(&cp.base_url, "ada@example.com", PASSWORD)
        .await
        .in_project(&project);
    let second = Person::sign_in(&cp.base_url, "ada@example.com", PASSWORD)
        .await
        .in_project(&project);
    let create = |who: &Person, name: &str, bound: bool| {
        let body = json!({"name": name, "session_bound": bound});
        let path = format!("{keys_path}?wait=false");
        let who = who.clone();
        async move {
            let r = who.post(&path, body).await;
            assert!(
                matches!(r.status, StatusCode::CREATED | StatusCode::ACCEPTED),
                "{}",
                r.text
            );
            assert_eq!(r.body["session_bound"], bound, "{}", r.text);
            (
                r.body["app_id"].as_str().unwrap().to_owned(),
                r.body["app_secret"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (first_id, first_secret) = create(&first, "first-console", true).await;
    let (kept_id, kept_secret) = create(&first, "kept", false).await;
    let (second_id, second_secret) = create(&second, "second-console", true).await;
    for (id, secret) in [
        (&first_id, &first_secret),
        (&kept_id, &kept_secret),
        (&second_id, &second_secret),
    ] {
        eventually("the broker to accept a new app key", || async {
            broker_status(&api_url, id, secret).await == StatusCode::OK
        })
        .await;
    }

    // Signing out deletes that session's bound key at once, and the broker refuses it.
    let out = second.delete("/session").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    assert_eq!(names().await, ["first-console", "kept"]);
    eventually(
        "the broker to refuse the signed-out session's key",
        || async {
            broker_status(&api_url, &second_id, &second_secret).await == StatusCode::UNAUTHORIZED
        },
    )
    .await;
    assert_eq!(
        broker_status(&api_url, &first_id, &first_secret).await,
        StatusCode::OK
    );

    // The first session expires unused: the purger deletes it and its bound key only.
    eventually("the expired session's key to be purged", || async {
        names().await == ["kept"]
    })
    .await;
    eventually("the broker to refuse the expired session's key", || async {
        broker_status(&api_url, &first_id, &first_secret).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(
        broker_status(&api_url, &kept_id, &kept_secret).await,
        StatusCode::OK
    );
    first
        .get("/session")
        .await
        .assert_problem(401, "invalid_session");
}

#[tokio::test]
async fn session_bound_app_keys_end_with_their_session_sqlite() {
    session_bound_app_keys(Backend::Sqlite).await;
}

#[tokio::test]
async fn session_bound_app_keys_end_with_their_session_postgres() {
    session_bound_app_keys(Backend::Postgres).await;
}

#[tokio::test]
async fn roles_and_sessions_sqlite() {
    roles_and_sessions(Backend::Sqlite).await;
}

#[tokio::test]
async fn roles_and_sessions_postgres() {
    roles_and_sessions(Backend::Postgres).await;
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_account_sqlite() {
    lockout(Backend::Sqlite).await;
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_account_postgres() {
    lockout(Backend::Postgres).await;
}

/// A viewer's console reads a deployment's API (clients, users, rules, bans) with a
/// read-only key bound to its sign-in: the only key a viewer may create. The broker
/// refuses that key's writes with 403 `forbidden_role`, and every other key, and every
/// key change, stays refused to viewers.
#[tokio::test]
async fn a_viewer_reads_the_deployment_api_with_a_read_only_session_key() {
    let cp = ControlPlane::start_with(Backend::Sqlite, &[]);
    let (project, key) = cp.api.project_with_key("readers").await;
    create_user(&cp.api, "vic@example.com", PASSWORD).await;
    add_member(&cp.api, &project, "vic@example.com", "viewer").await;
    let dep = key.create_deployment("read", "dedicated").await;
    let api_url = key.wait_status(&dep, "running").await["endpoints"]["api"]
        .as_str()
        .expect("api endpoint")
        .to_owned();
    let keys_path = format!("/deployments/{dep}/app-keys");
    let count = || async {
        key.get(&keys_path).await.body["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let viewer = Person::sign_in(&cp.base_url, "vic@example.com", PASSWORD)
        .await
        .in_project(&project);

    // Anything but a read-only, session-bound key needs `developer`.
    for body in [
        json!({"name": "full"}),
        json!({"name": "full", "session_bound": true}),
        json!({"name": "kept", "read_only": true}),
    ] {
        viewer
            .post(&keys_path, body)
            .await
            .assert_problem(403, "forbidden_role");
    }
    let viewer_key = cp.api.with_token(
        cp.api
            .post(
                &format!("/projects/{project}/api-keys"),
                json!({"name": "dash", "role": "viewer"}),
            )
            .await
            .body["secret"]
            .as_str()
            .unwrap(),
    );
    viewer_key
        .post(
            &keys_path,
            json!({"name": "x", "read_only": true, "session_bound": true}),
        )
        .await
        .assert_problem(403, "forbidden_role");
    assert_eq!(count().await, 0, "refused requests created nothing");

    let made = viewer
        .post(
            &format!("{keys_path}?wait=false"),
            json!({"name": "web console", "read_only": true, "session_bound": true}),
        )
        .await;
    assert!(
        matches!(made.status, StatusCode::CREATED | StatusCode::ACCEPTED),
        "{}",
        made.text
    );
    assert_eq!(made.body["read_only"], true, "{}", made.text);
    assert_eq!(made.body["session_bound"], true, "{}", made.text);
    let (id, secret) = (
        made.body["app_id"].as_str().unwrap().to_owned(),
        made.body["app_secret"].as_str().unwrap().to_owned(),
    );
    eventually("the broker to accept the viewer's key", || async {
        broker_status(&api_url, &id, &secret).await == StatusCode::OK
    })
    .await;
    let listed = viewer.get(&keys_path).await;
    assert_eq!(
        listed.body["items"][0]["read_only"], true,
        "{}",
        listed.text
    );
    viewer
        .delete(&format!("{keys_path}/{id}"))
        .await
        .assert_problem(403, "forbidden_role");

    // The broker lets it read and refuses every change.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let add_user = http
        .post(format!("{api_url}/api/v4/auth_username"))
        .basic_auth(&id, Some(&secret))
        .json(&json!({"username": "sneaky", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(add_user.status(), StatusCode::FORBIDDEN);
    let problem: serde_json::Value = add_user.json().await.unwrap();
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .starts_with("forbidden_role:"),
        "{problem}"
    );
    let users: serde_json::Value = http
        .get(format!("{api_url}/api/v4/auth_username"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["data"], json!([]), "the refused write added nobody");

    // Signing out deletes it, as every session-bound key.
    assert_eq!(
        viewer.delete("/session").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(count().await, 0);
}
