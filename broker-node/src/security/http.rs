//! External HTTP authentication and ACL, as EMQX 4's `emqx_auth_http`: the deployment
//! owner's service answers 200 to allow, 200 with the body `ignore` to pass the decision
//! to the next source, anything else to deny. A request that fails or times out denies
//! too: a broken auth service must not open the door.
//!
//! One [`HttpAuthority`] is built per source each time the settings change (never per
//! request): its templates are parsed once, it owns a pooled HTTP client and a decision
//! cache keyed by a SHA-256 of the fully rendered request (so passwords are not kept in
//! memory as keys). Only the service's answers are cached; failures and timeouts are
//! retried by the next CONNECT. Concurrent identical requests share one round trip.
//!
//! These requests are the deployment's own outbound traffic, so they leave from the
//! deployment's egress address (NAT gateway) when it has one; a new egress address
//! gets new clients. (Metering reports to the control plane are the platform's traffic
//! and never use it.)

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use moka::future::Cache;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use sha2::{Digest, Sha256};

use super::settings::{HttpMethod, HttpSource};
use super::template::{Placeholder, Scope, Template, TemplateError, Values};
use super::{Action, ClientInfo};

/// Most decisions one source's cache holds.
const CACHE_CAPACITY: u64 = 100_000;
/// Largest answer body read, in bytes (only `ignore` matters).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Characters kept as-is in substituted values: RFC 3986 unreserved ones.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The service's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allow,
    /// Ask the next source.
    Ignore,
    Deny(Denial),
}

/// Why a request denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The service answered with this non-200 status.
    Status(u16),
    /// No answer within `timeout_ms`.
    Timeout,
    /// Connection or protocol failure.
    Unreachable,
    /// A substituted value cannot go in a header (e.g. a control character).
    BadRequest,
    /// The source's settings are unusable (logged when they were applied).
    Misconfigured,
}

/// What a request is about: the client, and for ACL requests the action and topic.
pub struct Subject<'a> {
    pub client: &'a ClientInfo,
    pub password: Option<&'a [u8]>,
    pub action: Option<Action>,
    pub topic: Option<&'a str>,
}

impl Values for Subject<'_> {
    fn value(&self, placeholder: Placeholder) -> Cow<'_, str> {
        match placeholder {
            Placeholder::Username => Cow::Borrowed(self.client.username.as_deref().unwrap_or("")),
            Placeholder::ClientId => Cow::Borrowed(&self.client.client_id),
            Placeholder::PeerHost => Cow::Owned(self.client.peer.ip().to_string()),
            Placeholder::Transport => Cow::Borrowed(self.client.transport.name()),
            Placeholder::Password => String::from_utf8_lossy(self.password.unwrap_or_default()),
            Placeholder::ListenerPort => Cow::Owned(self.client.listener_port.to_string()),
            Placeholder::Action => Cow::Borrowed(match self.action {
                Some(Action::Publish) => "publish",
                Some(Action::Subscribe) => "subscribe",
                None => "",
            }),
            Placeholder::Topic => Cow::Borrowed(self.topic.unwrap_or("")),
        }
    }
}

/// Why a source's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid template in {field}: {source}")]
    Template {
        field: String,
        #[source]
        source: TemplateError,
    },
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

struct Compiled {
    method: reqwest::Method,
    url: Template,
    headers: Vec<(HeaderName, Template)>,
    params: Vec<(String, Template)>,
    json: bool,
    client: reqwest::Client,
    timeout: Duration,
}

/// One external HTTP source, ready to ask.
pub struct HttpAuthority {
    source: HttpSource,
    scope: Scope,
    local_address: Option<IpAddr>,
    compiled: Result<Compiled, String>,
    cache: Option<Cache<[u8; 32], Answer>>,
}

impl HttpAuthority {
    /// Prepares `source` for `scope`, its requests leaving from `local_address` when set
    /// (the egress address). Unusable settings are logged and make every request
    /// deny, so a bad file never lets clients in.
    pub fn new(source: &HttpSource, scope: Scope, local_address: Option<IpAddr>) -> Self {
        let compiled = compile(source, scope, local_address).map_err(|e| {
            tracing::error!(url = %source.url, error = %e, "external HTTP source unusable; it denies every request");
            e.to_string()
        });
        let cache = (source.cache_ttl_ms > 0).then(|| {
            Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(Duration::from_millis(source.cache_ttl_ms))
                .build()
        });
        Self {
            source: source.clone(),
            scope,
            local_address,
            compiled,
            cache,
        }
    }

    /// Whether this was built from exactly `source` for `scope` and `local_address` (and
    /// can be kept, with its pool and cache, across a settings change that did not touch
    /// it).
    pub fn is_for(&self, source: &HttpSource, scope: Scope, local_address: Option<IpAddr>) -> bool {
        self.scope == scope && self.source == *source && self.local_address == local_address
    }

    /// Asks the service (or the cache).
    pub async fn ask(&self, subject: &Subject<'_>) -> Answer {
        let compiled = match &self.compiled {
            Ok(compiled) => compiled,
            Err(_) => return Answer::Deny(Denial::Misconfigured),
        };
        let request = compiled.render(subject);
        let result = match &self.cache {
            None => compiled.send(request).await,
            Some(cache) => cache
                .try_get_with(request.key(), compiled.send(request))
                .await
                .map_err(|denial| *denial),
        };
        result.unwrap_or_else(|denial| {
            tracing::warn!(url = %self.source.url, ?denial, "external HTTP source failed; denying");
            Answer::Deny(denial)
        })
    }
}

fn compile(
    source: &HttpSource,
    scope: Scope,
    local_address: Option<IpAddr>,
) -> Result<Compiled, SourceError> {
    let template = |field: String, text: &str| {
        Template::parse(text, scope).map_err(|source| SourceError::Template { field, source })
    };
    let url = template("url".into(), &source.url)?;
    let mut json = false;
    let mut headers = Vec::new();
    for (name, value) in &source.headers {
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| SourceError::HeaderName(name.clone()))?;
        if header == CONTENT_TYPE {
            json = value
                .split(';')
                .next()
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        }
        headers.push((header, template(format!("headers.{name}"), value)?));
    }
    let params = source
        .body
        .iter()
        .map(|(k, v)| Ok((k.clone(), template(format!("body.{k}"), v)?)))
        .collect::<Result<Vec<_>, SourceError>>()?;
    let timeout = Duration::from_millis(source.timeout_ms.max(1));
    let client =
        build_client(source.pool_size, timeout, local_address).map_err(SourceError::Client)?;
    Ok(Compiled {
        method: match source.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
        },
        url,
        headers,
        params,
        json,
        client,
        timeout,
    })
}

/// The pooled client of one source. `local_address` binds outgoing connections to one
/// local IP (for NAT gateways).
fn build_client(
    pool_size: usize,
    timeout: Duration,
    local_address: Option<IpAddr>,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(pool_size)
        .connect_timeout(timeout)
        .local_address(local_address)
        // The decision comes from the configured service, not from wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A request with every value substituted.
#[derive(Debug, PartialEq, Eq)]
struct Rendered {
    url: String,
    headers: Vec<(HeaderName, String)>,
    /// POST body; `None` for GET.
    body: Option<(Vec<u8>, &'static str)>,
}

impl Rendered {
    fn key(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(self.url.as_bytes());
        for (name, value) in &self.headers {
            field(name.as_str().as_bytes());
            field(value.as_bytes());
        }
        if let Some((body, content_type)) = &self.body {
            field(content_type.as_bytes());
            field(body);
        }
        hash.finalize().into()
    }
}

fn escape(value: &str, out: &mut String) {
    out.extend(utf8_percent_encode(value, COMPONENT));
}

fn form(params: &[(String, Template)], subject: &Subject<'_>, out: &mut String) {
    for (i, (key, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        escape(key, out);
        out.push('=');
        value.render_into(out, subject, &escape);
    }
}

impl Compiled {
    fn render(&self, subject: &Subject<'_>) -> Rendered {
        let mut url = String::new();
        self.url.render_into(&mut url, subject, &escape);
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.render(subject)))
            .collect();
        let body = if self.method == reqwest::Method::GET {
            if !self.params.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                form(&self.params, subject, &mut url);
            }
            None
        } else if self.json {
            let object: BTreeMap<&str, String> = self
                .params
                .iter()
                .map(|(k, v)| (k.as_str(), v.render(subject)))
                .collect();
            let bytes = serde_json::to_vec(&object).unwrap_or_default();
            Some((bytes, "application/json"))
        } else {
            let mut text = String::new();
            form(&self.params, subject, &mut text);
            Some((text.into_bytes(), "application/x-www-form-urlencoded"))
        };
        Rendered { url, headers, body }
    }

    async fn send(&self, request: Rendered) -> Result<Answer, Denial> {
        let mut builder = self
            .client
            .request(self.method.clone(), &request.url)
            .timeout(self.timeout);
        let mut has_content_type = false;
        for (name, value) in request.headers {
            let value = HeaderValue::try_from(value).map_err(|_| Denial::BadRequest)?;
            has_content_type |= name == CONTENT_TYPE;
            builder = builder.header(name, value);
        }
        if let Some((body, content_type)) = request.body {
            if !has_content_type {
                builder = builder.header(CONTENT_TYPE, content_type);
            }
            builder = builder.body(body);
        }
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                Denial::Timeout
            } else if e.is_builder() {
                Denial::BadRequest
            } else {
                Denial::Unreachable
            }
        };
        let mut response = builder.send().await.map_err(failed)?;
        if response.status() != reqwest::StatusCode::OK {
            return Ok(Answer::Deny(Denial::Status(response.status().as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                // Too long to be `ignore`.
                return Ok(Answer::Allow);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(if body.trim_ascii() == b"ignore" {
            Answer::Ignore
        } else {
            Answer::Allow
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Transport;

    fn source(url: &str, method: HttpMethod) -> HttpSource {
        HttpSource {
            url: url.into(),
            method,
            body: BTreeMap::from([
                ("clientid".into(), "%c".into()),
                ("password".into(), "%P".into()),
                ("user name".into(), "%u".into()),
            ]),
            headers: BTreeMap::from([("X-Port".into(), "%p/%r".into())]),
            timeout_ms: 1000,
            cache_ttl_ms: 0,
            pool_size: 1,
        }
    }

    fn client() -> ClientInfo {
        ClientInfo {
            client_id: "dev/1 ü".into(),
            username: Some("bob&co".into()),
            peer: "[::1]:4000".parse().unwrap(),
            transport: Transport::Wss,
            listener_port: 8084,
        }
    }

    fn render(source: &HttpSource, scope: Scope) -> Rendered {
        let compiled = compile(source, scope, None).unwrap();
        let client = client();
        compiled.render(&Subject {
            client: &client,
            password: Some(b"p=w"),
            action: Some(Action::Subscribe),
            topic: Some("a/#"),
        })
    }

    #[test]
    fn get_puts_params_in_the_query_and_escapes_url_values() {
        let r = render(
            &source("http://h:1/auth/%c?ip=%a&A=%A&t=%t", HttpMethod::Get),
            Scope::Authorization,
        );
        assert_eq!(
            r.url,
            "http://h:1/auth/dev%2F1%20%C3%BC?ip=%3A%3A1&A=subscribe&t=a%2F%23\
             &clientid=dev%2F1%20%C3%BC&password=p%3Dw&user%20name=bob%26co"
        );
        assert_eq!(
            r.headers,
            vec![(HeaderName::from_static("x-port"), "8084/wss".into())]
        );
        assert_eq!(r.body, None);
    }

    #[test]
    fn post_sends_a_form_or_json() {
        let r = render(
            &source("http://h/auth", HttpMethod::Post),
            Scope::Authentication,
        );
        let (body, content_type) = r.body.unwrap();
        assert_eq!(content_type, "application/x-www-form-urlencoded");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "clientid=dev%2F1%20%C3%BC&password=p%3Dw&user%20name=bob%26co"
        );

        let mut json = source("http://h/auth", HttpMethod::Post);
        json.headers.insert(
            "Content-Type".into(),
            "Application/JSON; charset=utf-8".into(),
        );
        let r = render(&json, Scope::Authentication);
        let (body, _) = r.body.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"clientid": "dev/1 ü", "password": "p=w", "user name": "bob&co"})
        );
    }

    #[test]
    fn cache_keys_differ_by_every_rendered_part() {
        let s = source("http://h/auth", HttpMethod::Post);
        let compiled = compile(&s, Scope::Authentication, None).unwrap();
        let c = client();
        let key = |password: &'static [u8]| {
            compiled
                .render(&Subject {
                    client: &c,
                    password: Some(password),
                    action: None,
                    topic: None,
                })
                .key()
        };
        assert_eq!(key(b"a"), key(b"a"));
        assert_ne!(key(b"a"), key(b"b"));
    }

    #[tokio::test]
    async fn bad_settings_deny() {
        let authority = HttpAuthority::new(
            &source("http://h/%t", HttpMethod::Get),
            Scope::Authentication,
            None,
        );
        let c = client();
        let subject = Subject {
            client: &c,
            password: None,
            action: None,
            topic: None,
        };
        assert_eq!(
            authority.ask(&subject).await,
            Answer::Deny(Denial::Misconfigured)
        );
    }
}
