//! Rules of authentication and authorization chains: what an HTTP source may say.
//!
//! The chains themselves are the types the broker reads ([`skyport_settings::security`]);
//! this module checks a chain before it is stored, so the broker never receives one it
//! would refuse.

use std::ops::RangeInclusive;

use skyport_settings::security::{HttpSource, Source};
use skyport_settings::template::{self, Scope};

/// Most sources one chain may hold.
pub const MAX_SOURCES: usize = 8;
/// Bounds of an HTTP source's request timeout, in milliseconds.
pub const TIMEOUT_MS: RangeInclusive<i64> = 1..=60_000;
/// Bounds of an HTTP source's decision cache lifetime, in milliseconds (0 disables it).
pub const CACHE_TTL_MS: RangeInclusive<i64> = 0..=3_600_000;
/// Bounds of an HTTP source's idle connection pool.
pub const POOL_SIZE: RangeInclusive<i64> = 1..=1024;
/// Longest URL, header value or body value template, in bytes.
const MAX_TEMPLATE_LEN: usize = 4096;
/// Most headers or body parameters of one source.
const MAX_PARAMS: usize = 32;

/// Which chain a source belongs to: authorization sources also see the action and topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainKind {
    Authentication,
    Authorization,
}

impl ChainKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainKind::Authentication => "authentication",
            ChainKind::Authorization => "authorization",
        }
    }
}

/// Why a chain was refused: a stable problem code and the offending request field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub field: String,
    pub detail: String,
}

impl Invalid {
    fn new(code: &'static str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            code,
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// Checks a whole chain: its length, a single built-in source, and every HTTP source.
/// Fields are named as in the request, `sources[i]…`.
pub fn check_chain(sources: &[Source], kind: ChainKind) -> Result<(), Invalid> {
    if sources.len() > MAX_SOURCES {
        return Err(Invalid::new(
            "too_many_sources",
            "sources",
            format!(
                "a chain holds at most {MAX_SOURCES} sources, got {}",
                sources.len()
            ),
        ));
    }
    let mut built_in = false;
    for (i, source) in sources.iter().enumerate() {
        match source {
            Source::BuiltIn if built_in => {
                return Err(Invalid::new(
                    "duplicate_built_in",
                    format!("sources[{i}]"),
                    "the built-in source may appear only once in a chain",
                ))
            }
            Source::BuiltIn => built_in = true,
            Source::Http(http) => check_http(http, kind, &format!("sources[{i}]"))?,
        }
    }
    Ok(())
}

/// Checks one HTTP source; `at` is its position in the request (`sources[i]`).
fn check_http(http: &HttpSource, kind: ChainKind, at: &str) -> Result<(), Invalid> {
    let url_field = format!("{at}.url");
    check_template(&http.url, kind)
        .map_err(|msg| Invalid::new("invalid_template", &url_field, msg))?;
    check_url(&http.url).map_err(|msg| Invalid::new("invalid_url", &url_field, msg))?;
    if http.headers.len() > MAX_PARAMS || http.body.len() > MAX_PARAMS {
        return Err(Invalid::new(
            "too_many_parameters",
            at,
            format!("at most {MAX_PARAMS} headers and {MAX_PARAMS} body parameters"),
        ));
    }
    for (name, value) in &http.headers {
        let field = format!("{at}.headers.{name}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(Invalid::new(
                "invalid_header",
                field,
                format!("`{name}` is not a valid HTTP header name"),
            ));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(Invalid::new(
                "invalid_header",
                field,
                "header values must be visible ASCII or spaces (no line breaks)",
            ));
        }
        check_template(value, kind).map_err(|msg| Invalid::new("invalid_template", field, msg))?;
    }
    for (name, value) in &http.body {
        let field = format!("{at}.body.{name}");
        if name.is_empty() || name.len() > 256 {
            return Err(Invalid::new(
                "invalid_body",
                field,
                "body parameter names are 1 to 256 characters",
            ));
        }
        check_template(value, kind).map_err(|msg| Invalid::new("invalid_template", field, msg))?;
    }
    Ok(())
}

/// Checks an integer field against its bounds.
pub fn check_range(
    value: i64,
    range: &RangeInclusive<i64>,
    code: &'static str,
    field: String,
) -> Result<(), Invalid> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(Invalid::new(
            code,
            field,
            format!(
                "must be between {} and {}, got {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// An absolute `http` or `https` URL with a host. Placeholders may appear in the path
/// and query, not in the scheme, host or port.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not an absolute URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not `{}`",
            parsed.scheme()
        ));
    }
    let Some(host) = parsed.host_str() else {
        return Err("the URL has no host".into());
    };
    if host.contains('%') {
        return Err("placeholders are not allowed in the host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the URL are not allowed; use an Authorization header".into());
    }
    Ok(())
}

/// Checks a template with the broker's own parser: `%u %c %a %r %P %p`, plus `%A %t` in
/// authorization chains; `%%` is a literal `%` (so a URL percent-encoding is `%%2F`).
pub fn check_template(text: &str, kind: ChainKind) -> Result<(), String> {
    if text.len() > MAX_TEMPLATE_LEN {
        return Err(format!("templates are at most {MAX_TEMPLATE_LEN} bytes"));
    }
    let scope = match kind {
        ChainKind::Authentication => Scope::Authentication,
        ChainKind::Authorization => Scope::Authorization,
    };
    template::validate_for(text, scope).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let auth = ChainKind::Authentication;
        let acl = ChainKind::Authorization;
        assert!(check_template("u=%u&c=%c&a=%a&r=%r&P=%P&p=%p", auth).is_ok());
        assert!(check_template("%A %t", acl).is_ok());
        assert!(check_template("%A", auth)
            .unwrap_err()
            .contains("authorization"));
        assert!(check_template("%t", auth).is_err());
        assert!(check_template("%x", acl).unwrap_err().contains("%x"));
        assert!(check_template("100%%", auth).is_ok());
        assert!(check_template("a%%20b", auth).is_ok());
        assert!(check_template("a%20b", auth).is_err());
        assert!(check_template("50%", auth).is_err());
    }

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:9000/auth?u=%u").is_ok());
        assert!(check_url("https://auth.example.com/acl/%t").is_ok());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("/relative").is_err());
        assert!(check_url("http://user:pw@example.com").is_err());
    }
}
