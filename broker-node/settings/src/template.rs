//! Templates of external HTTP authentication and ACL requests (`url`, header values and
//! body values of a [`crate::security::HttpSource`]), as EMQX 4's `emqx_auth_http`.
//!
//! Placeholders: `%u` username, `%c` client id, `%a` peer IP address, `%r` transport
//! (`mqtt`, `mqtts`, `ws`, `wss`), `%P` password, `%p` listener port, and for ACL requests
//! `%A` action (`publish`/`subscribe`) and `%t` topic. `%%` is a literal `%`; any other
//! `%x` is an error, so a typo is caught when the settings are written, not at CONNECT.
//! A value the client did not send (no username, no password) renders as empty.
//!
//! Pure and synchronous: the control plane calls [`validate`] on API input, the broker
//! parses with [`Template::parse`] and renders per request.

use std::borrow::Cow;

/// One placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Username,
    ClientId,
    PeerHost,
    Transport,
    Password,
    ListenerPort,
    Action,
    Topic,
}

impl Placeholder {
    fn from_letter(c: char) -> Option<Self> {
        Some(match c {
            'u' => Self::Username,
            'c' => Self::ClientId,
            'a' => Self::PeerHost,
            'r' => Self::Transport,
            'P' => Self::Password,
            'p' => Self::ListenerPort,
            'A' => Self::Action,
            't' => Self::Topic,
            _ => return None,
        })
    }

    /// The letter after `%`.
    pub fn letter(self) -> char {
        match self {
            Self::Username => 'u',
            Self::ClientId => 'c',
            Self::PeerHost => 'a',
            Self::Transport => 'r',
            Self::Password => 'P',
            Self::ListenerPort => 'p',
            Self::Action => 'A',
            Self::Topic => 't',
        }
    }

    fn authorization_only(self) -> bool {
        matches!(self, Self::Action | Self::Topic)
    }
}

/// What a template is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Authentication,
    Authorization,
}

/// Why a template is invalid. Positions are byte offsets into the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder `%{found}` at byte {position}; the placeholders are %u %c %a %r %P %p \
         %A %t, and %% is a literal %"
    )]
    UnknownPlaceholder { found: char, position: usize },
    #[error("lone `%` at the end of the template; write %% for a literal %")]
    TrailingPercent,
    #[error(
        "placeholder `%{found}` at byte {position} is only available to authorization (ACL) \
         requests"
    )]
    AuthorizationOnly { found: char, position: usize },
}

/// Checks a template for any scope (`%A` and `%t` allowed).
pub fn validate(template: &str) -> Result<(), TemplateError> {
    Template::parse(template, Scope::Authorization).map(drop)
}

/// Checks a template for `scope`: `%A` and `%t` are errors in authentication templates.
pub fn validate_for(template: &str, scope: Scope) -> Result<(), TemplateError> {
    Template::parse(template, scope).map(drop)
}

/// Supplies placeholder values when rendering.
pub trait Values {
    fn value(&self, placeholder: Placeholder) -> Cow<'_, str>;
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Value(Placeholder),
}

impl Template {
    pub fn parse(template: &str, scope: Scope) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut chars = template.char_indices();
        while let Some((position, c)) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let (_, found) = chars.next().ok_or(TemplateError::TrailingPercent)?;
            if found == '%' {
                text.push('%');
                continue;
            }
            let placeholder = Placeholder::from_letter(found)
                .ok_or(TemplateError::UnknownPlaceholder { found, position })?;
            if scope == Scope::Authentication && placeholder.authorization_only() {
                return Err(TemplateError::AuthorizationOnly { found, position });
            }
            if !text.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut text)));
            }
            segments.push(Segment::Value(placeholder));
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(Self { segments })
    }

    /// Appends the rendered template to `out`, passing each value through `escape`
    /// (literal text is kept as written).
    pub fn render_into(
        &self,
        out: &mut String,
        values: &dyn Values,
        escape: &dyn Fn(&str, &mut String),
    ) {
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Value(p) => escape(&values.value(*p), out),
            }
        }
    }

    /// The rendered template, values unescaped.
    pub fn render(&self, values: &dyn Values) -> String {
        let mut out = String::new();
        self.render_into(&mut out, values, &|v, out| out.push_str(v));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sample;

    impl Values for Sample {
        fn value(&self, p: Placeholder) -> Cow<'_, str> {
            Cow::Borrowed(match p {
                Placeholder::Username => "bob",
                Placeholder::ClientId => "dev/1",
                Placeholder::PeerHost => "10.0.0.1",
                Placeholder::Transport => "mqtts",
                Placeholder::Password => "p@ss",
                Placeholder::ListenerPort => "8883",
                Placeholder::Action => "publish",
                Placeholder::Topic => "a/b",
            })
        }
    }

    #[test]
    fn renders_every_placeholder_and_literal_percent() {
        let t = Template::parse("%u|%c|%a|%r|%P|%p|%A|%t|100%%|é", Scope::Authorization).unwrap();
        assert_eq!(
            t.render(&Sample),
            "bob|dev/1|10.0.0.1|mqtts|p@ss|8883|publish|a/b|100%|é"
        );
    }

    #[test]
    fn escaping_applies_to_values_only() {
        let t = Template::parse("http://h/a?x=%c&y=/", Scope::Authentication).unwrap();
        let mut out = String::new();
        t.render_into(&mut out, &Sample, &|v, out| {
            out.push_str(&v.replace('/', "%2F"))
        });
        assert_eq!(out, "http://h/a?x=dev%2F1&y=/");
    }

    #[test]
    fn errors_are_precise() {
        assert_eq!(
            validate("http://h/?u=%u&x=%z"),
            Err(TemplateError::UnknownPlaceholder {
                found: 'z',
                position: 17
            })
        );
        assert_eq!(validate("abc%"), Err(TemplateError::TrailingPercent));
        assert_eq!(validate("%A %t"), Ok(()));
        assert_eq!(
            validate_for("t=%t", Scope::Authentication),
            Err(TemplateError::AuthorizationOnly {
                found: 't',
                position: 2
            })
        );
        assert_eq!(validate(""), Ok(()));
        assert_eq!(validate("100%%"), Ok(()));
    }
}
