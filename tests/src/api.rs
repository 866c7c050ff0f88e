//! A thin client of the control-plane REST API.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// An API client bound to one control plane and one bearer token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

/// A response: status, headers and body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Asserts a problem document with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.content_type, "application/problem+json",
            "errors are problem documents; body: {}",
            self.text
        );
        assert_eq!(
            self.body["code"], code,
            "unexpected problem code; body: {}",
            self.text
        );
        assert_eq!(self.body["status"], status);
    }
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        }
    }

    /// The same control plane, another token.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: token.to_owned(),
            ..self.clone()
        }
    }

    /// Sends a request to `/api/v1{path}`; `body` is sent as JSON when present.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::reply(req.send().await.expect("request sent")).await
    }

    /// Sends a request with extra headers; `body` is sent as JSON when present.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::reply(req.send().await.expect("request sent")).await
    }

    /// The value of header `name` of a reply, as text.
    pub fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Sends raw bytes with a content type.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body.to_owned());
        Self::reply(req.send().await.expect("request sent")).await
    }

    async fn reply(resp: reqwest::Response) -> Reply {
        Self::reply_of(resp).await
    }

    /// Reads a response into a [`Reply`].
    pub async fn reply_of(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Reply {
            status,
            headers,
            content_type,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a project (admin token) and an API key in it; returns (project id, client
    /// with the key).
    pub async fn project_with_key(&self, name: &str) -> (String, Api) {
        let project = self.post("/projects", json!({ "name": name })).await;
        assert_eq!(project.status, StatusCode::CREATED, "{}", project.text);
        let id = project.body["id"].as_str().expect("project id").to_owned();
        let key = self
            .post(
                &format!("/projects/{id}/api-keys"),
                json!({ "name": "test" }),
            )
            .await;
        assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
        let secret = key.body["secret"].as_str().expect("secret").to_owned();
        (id, self.with_token(&secret))
    }

    /// Creates a deployment and returns its id.
    pub async fn create_deployment(&self, name: &str, plan: &str) -> String {
        let reply = self
            .post("/deployments", json!({ "name": name, "plan": plan }))
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
        assert_eq!(reply.body["status"], "provisioning");
        reply.body["id"].as_str().expect("deployment id").to_owned()
    }

    /// Creates a deployment that lets anonymous MQTT clients in (the default refuses
    /// them), for tests about something else than authentication; returns its id.
    pub async fn create_open_deployment(&self, name: &str, plan: &str) -> String {
        let id = self.create_deployment(name, plan).await;
        let reply = self
            .put(
                &format!("/deployments/{id}/authentication"),
                json!({"allow_anonymous": true, "sources": [{"type": "built_in"}]}),
            )
            .await;
        // 202 when the new broker has not started within the apply timeout: the chain
        // is stored and applies as it starts.
        assert!(
            matches!(reply.status, StatusCode::OK | StatusCode::ACCEPTED),
            "{}",
            reply.text
        );
        id
    }

    /// Polls the deployment until its status is `status` with the spec observed
    /// (bounded: panics after 60 s, reporting the last state).
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            let reply = self.get(&format!("/deployments/{id}")).await;
            if reply.status == StatusCode::OK
                && reply.body["status"] == status
                && reply.body["observed_generation"] == reply.body["generation"]
            {
                return reply.body;
            }
            last = reply.body;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("deployment {id} never reached `{status}`; last seen: {last}");
    }

    /// Polls until the deployment is gone (404).
    pub async fn wait_gone(&self, id: &str) {
        for _ in 0..600 {
            if self.get(&format!("/deployments/{id}")).await.status == StatusCode::NOT_FOUND {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("deployment {id} was never removed");
    }
}

/// Sum of `field` over the points of a `GET /deployments/{id}/metrics` answer.
pub fn sum_points(metrics: &Value, field: &str) -> u64 {
    metrics["points"]
        .as_array()
        .expect("a metrics answer has points")
        .iter()
        .map(|p| p[field].as_u64().unwrap_or(0))
        .sum()
}
