//! A signed-in console user, as the browser would be: a session cookie, its CSRF token,
//! and the project it acts in, over plain HTTP (no bearer token).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api::{Api, Reply};

/// A console session against one control plane.
#[derive(Clone)]
pub struct Person {
    pub base: String,
    /// `skyport_session=…`, as the browser sends it.
    pub cookie: String,
    pub csrf: String,
    /// Sent as `X-Skyport-Project` when set.
    pub project: Option<String>,
    /// The raw `Set-Cookie` of the sign-in.
    pub set_cookie: String,
    http: reqwest::Client,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// `POST /session` without following up: the raw reply.
pub async fn sign_in_reply(
    base: &str,
    email: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> (Reply, String) {
    let mut req = client()
        .post(format!("{base}/api/v1/session"))
        .json(&json!({ "email": email, "password": password }));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request sent");
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (Api::reply_of(resp).await, set_cookie)
}

impl Person {
    /// Signs in; panics unless it succeeds.
    pub async fn sign_in(base: &str, email: &str, password: &str) -> Person {
        let (reply, set_cookie) = sign_in_reply(base, email, password, &[]).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let cookie = set_cookie
            .split(';')
            .next()
            .expect("cookie pair")
            .to_owned();
        Person {
            base: base.to_owned(),
            cookie,
            csrf: reply.body["csrf_token"]
                .as_str()
                .expect("csrf token")
                .to_owned(),
            project: None,
            set_cookie,
            http: client(),
        }
    }

    /// The same session acting in `project`.
    pub fn in_project(&self, project: &str) -> Person {
        Person {
            project: Some(project.to_owned()),
            ..self.clone()
        }
    }

    /// A request with the cookie, the CSRF token when `csrf`, and the project header.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .header("cookie", &self.cookie);
        if csrf {
            req = req.header("x-csrf-token", &self.csrf);
        }
        if let Some(project) = &self.project {
            req = req.header("x-skyport-project", project);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Api::reply_of(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call_with(Method::GET, path, None, false).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call_with(Method::POST, path, Some(body), true).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call_with(Method::PUT, path, Some(body), true).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call_with(Method::DELETE, path, None, true).await
    }
}

/// Creates a console user with the admin client; returns the user's id.
pub async fn create_user(admin: &Api, email: &str, password: &str) -> String {
    let reply = admin
        .post("/users", json!({ "email": email, "password": password }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["id"].as_str().expect("user id").to_owned()
}

/// Adds a user to a project with `role` (admin client).
pub async fn add_member(admin: &Api, project: &str, email: &str, role: &str) {
    let reply = admin
        .post(
            &format!("/projects/{project}/members"),
            json!({ "email": email, "role": role }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}
