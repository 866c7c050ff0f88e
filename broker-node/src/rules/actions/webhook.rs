//! `data_to_webserver`: one HTTP request per output to a `web_hook` resource. A 2xx
//! answer delivers; a 5xx, 429 or no answer is retried; any other answer refuses the
//! output (counted as failed, not retried).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{param, payload, Failure};
use crate::rules::resource::{self, Connection, Resource};
use crate::rules::template::Template;

pub struct WebHook {
    pub resource: Arc<Resource>,
    method: Option<reqwest::Method>,
    path: Template,
    headers: Vec<(String, Template)>,
    body: Template,
}

impl WebHook {
    pub fn prepare(params: &Map<String, Value>, resource: Arc<Resource>) -> Result<Self, String> {
        let method = match params.get("method") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => Some(
                reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("method {m:?} is not an HTTP method"))?,
            ),
            Some(other) => return Err(format!("method must be a string; got {other}")),
        };
        let headers = resource::headers(params, "headers")?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    Template::parse(&v).map_err(|e| format!("headers.{k}: {e}"))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            resource,
            method,
            path: Template::parse(&param(params, "path", "")?).map_err(|e| format!("path: {e}"))?,
            headers,
            body: Template::parse(&param(params, "body", "")?).map_err(|e| format!("body: {e}"))?,
        })
    }

    pub async fn deliver(&self, batch: &[Map<String, Value>]) -> Result<(), Failure> {
        let Connection::WebHook {
            client,
            url,
            headers,
            method,
        } = &self.resource.conn
        else {
            return Err(Failure::refused("not a web_hook resource"));
        };
        for output in batch {
            let mut target = url.to_string();
            let path = self.path.render(output);
            if !path.is_empty() {
                target = format!(
                    "{}/{}",
                    target.trim_end_matches('/'),
                    path.trim_start_matches('/')
                );
            }
            let body = payload(&self.body, output);
            let mut request = client
                .request(
                    self.method.clone().unwrap_or_else(|| method.clone()),
                    &target,
                )
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            for (k, v) in headers {
                request = request.header(k, v);
            }
            for (k, v) in &self.headers {
                request = request.header(k, v.render(output));
            }
            let response = request
                .body(body)
                .send()
                .await
                .map_err(|e| Failure::retry(format!("webhook {}: {e}", redact(&target))))?;
            let status = response.status();
            if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                return Err(Failure::retry(format!("webhook answered {status}")));
            }
            if !status.is_success() {
                return Err(Failure::refused(format!("webhook answered {status}")));
            }
        }
        Ok(())
    }
}

/// The URL without its query string (which may carry tokens), for logs.
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
