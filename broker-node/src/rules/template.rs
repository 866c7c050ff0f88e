//! `${field}` templates that actions render from a rule's output (`${payload.a.b}` walks
//! into objects, and into a JSON string payload).

use serde_json::{Map, Value};

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(Vec<String>),
}

impl Template {
    /// Parses `text`; an unclosed `${` is an error naming its byte offset.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let Some(len) = rest[start + 2..].find('}') else {
                return Err(format!("unclosed ${{ at offset {}", offset + start));
            };
            let name = rest[start + 2..start + 2 + len].trim();
            if name.is_empty() {
                return Err(format!("empty ${{}} at offset {}", offset + start));
            }
            parts.push(Part::Field(name.split('.').map(str::to_owned).collect()));
            offset += start + 3 + len;
            rest = &rest[start + 3 + len..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self(parts))
    }

    /// Whether the template has no text at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Renders with strings as they are and other values as JSON (missing: `undefined`,
    /// as EMQX).
    pub fn render(&self, output: &Map<String, Value>) -> String {
        self.render_with(output, |v| match v {
            None => "undefined".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        })
    }

    /// Renders with each field's value formatted by `format`.
    pub fn render_with(
        &self,
        output: &Map<String, Value>,
        format: impl Fn(Option<&Value>) -> String,
    ) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) => out.push_str(&format(lookup(output, path).as_ref())),
            }
        }
        out
    }
}

/// The value at `path` in `output`; a JSON string on the way is decoded.
pub fn lookup(output: &Map<String, Value>, path: &[String]) -> Option<Value> {
    let (first, rest) = path.split_first()?;
    let mut at = output.get(first.as_str())?.clone();
    for key in rest {
        if let Value::String(text) = &at {
            at = serde_json::from_str(text).ok()?;
        }
        at = match at {
            Value::Object(mut map) => map.remove(key.as_str())?,
            _ => return None,
        };
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_fields() {
        let Value::Object(out) = json!({"a": "x", "n": 2, "payload": "{\"t\": 1}"}) else {
            panic!()
        };
        let t = Template::parse("k:${a}:${n}:${payload.t}:${missing}").unwrap();
        assert_eq!(t.render(&out), "k:x:2:1:undefined");
        assert!(Template::parse("oops ${a")
            .unwrap_err()
            .contains("offset 5"));
    }
}
