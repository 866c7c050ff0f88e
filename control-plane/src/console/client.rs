//! The console's typed API clients, generated from the committed OpenAPI documents
//! (`skyport console-client openapi/skyport.json > control-plane/console/api.gen.js`, and
//! likewise `openapi/broker.json` into `broker.gen.js`).
//!
//! The output is a plain JavaScript module, so the console still needs no build step:
//! one function per operation (its `operationId` in camelCase) and a JSDoc typedef per
//! schema, which editors and `tsc --checkJs` read as types. Requests go through a `send`
//! function the console supplies (cookies, CSRF token, app keys, errors), so the
//! generated code holds only what the document says: methods, paths, parameters, types.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Operations with this tag are served to broker nodes, not people: left out.
const INTERNAL_TAG: &str = "internal";

/// Why a document cannot be turned into a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the OpenAPI document is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the OpenAPI document has no `{0}`")]
    Missing(&'static str),
    #[error("{method} {path} has no operationId")]
    NoOperationId { method: String, path: String },
    #[error("two operations are both named `{0}` (operationId must be unique)")]
    Duplicate(String),
}

/// The JavaScript module for the OpenAPI document `spec` (JSON text).
pub fn generate(spec: &str) -> Result<String, ClientError> {
    let doc: Value = serde_json::from_str(spec)?;
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let version = doc["info"]["version"].as_str().unwrap_or("");
    let paths = doc["paths"]
        .as_object()
        .ok_or(ClientError::Missing("paths"))?;
    let empty = Map::new();
    let schemas = doc["components"]["schemas"].as_object().unwrap_or(&empty);

    let mut out = String::new();
    let _ = write!(
        out,
        "// Generated from the OpenAPI document \"{title}\" {version} by `skyport console-client`\n\
         // (see README, \"Web console\"): do not edit. A test regenerates and diffs it.\n\
         //\n\
         // createClient(send) returns one function per operation. Path parameters come first,\n\
         // then the JSON body (if the operation takes one), then the query parameters as an\n\
         // object; `send(method, path, {{ query, body, text }})` makes the request (`text`:\n\
         // the answer is not JSON) and resolves to the decoded answer.\n\n"
    );
    for (name, schema) in schemas {
        typedef(&mut out, name, schema);
    }
    out.push_str(
        "/**\n * @callback Send\n * @param {string} method\n * @param {string} path\n \
         * @param {{query?: Object<string, *>, body?: *, text?: boolean}} options\n \
         * @returns {Promise<*>}\n */\n\n\
         const p = encodeURIComponent;\n\n\
         /** @param {Send} send */\nexport function createClient(send) {\n  return {\n",
    );
    let mut seen = BTreeSet::new();
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        let shared = item.get("parameters");
        for method in ["get", "put", "post", "delete", "patch"] {
            let Some(op) = item.get(method) else {
                continue;
            };
            if tags(op).any(|t| t == INTERNAL_TAG) {
                continue;
            }
            let id = op["operationId"]
                .as_str()
                .ok_or_else(|| ClientError::NoOperationId {
                    method: method.to_uppercase(),
                    path: path.clone(),
                })?;
            let name = camel_case(id);
            if !seen.insert(name.clone()) {
                return Err(ClientError::Duplicate(id.to_owned()));
            }
            operation(&mut out, &name, method, path, op, shared);
        }
    }
    out.push_str("  };\n}\n");
    Ok(out)
}

fn tags(op: &Value) -> impl Iterator<Item = &str> {
    op["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// One client function, with its JSDoc.
fn operation(
    out: &mut String,
    name: &str,
    method: &str,
    path: &str,
    op: &Value,
    shared: Option<&Value>,
) {
    let params: Vec<&Value> = shared
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(op["parameters"].as_array().into_iter().flatten())
        .collect();
    let in_path: Vec<&Value> = params
        .iter()
        .copied()
        .filter(|p| p["in"] == "path")
        .collect();
    let in_query: Vec<&Value> = params
        .iter()
        .copied()
        .filter(|p| p["in"] == "query")
        .collect();
    let body = op["requestBody"]["content"]["application/json"]["schema"].as_object();
    let (answer, text) = response(op);

    out.push_str("    /**\n");
    for line in doc_lines(op["summary"].as_str().or(op["description"].as_str())) {
        let _ = writeln!(out, "     * {line}");
    }
    let mut args = Vec::new();
    for param in &in_path {
        let arg = identifier(param["name"].as_str().unwrap_or("id"));
        let _ = writeln!(
            out,
            "     * @param {{{}}} {arg}{}",
            type_of(&param["schema"]),
            described(&param["description"])
        );
        args.push(arg);
    }
    if let Some(schema) = body {
        let required = op["requestBody"]["required"].as_bool().unwrap_or(false);
        let ty = type_of(&Value::Object(schema.clone()));
        let _ = writeln!(
            out,
            "     * @param {{{ty}}} {}",
            if required { "body" } else { "[body]" }
        );
        args.push("body".to_owned());
    }
    if !in_query.is_empty() {
        let fields: Vec<String> = in_query
            .iter()
            .map(|q| {
                let key = q["name"].as_str().unwrap_or("");
                let optional = if q["required"] == true { "" } else { "?" };
                format!("{}{optional}: {}", property(key), type_of(&q["schema"]))
            })
            .collect();
        let required = in_query.iter().any(|q| q["required"] == true);
        let _ = writeln!(
            out,
            "     * @param {{{{{}}}}} {}",
            fields.join(", "),
            if required { "query" } else { "[query]" }
        );
        for q in &in_query {
            if let Some(d) = one_line(&q["description"]) {
                let _ = writeln!(
                    out,
                    "     *   - `{}`: {d}",
                    q["name"].as_str().unwrap_or("")
                );
            }
        }
        args.push("query".to_owned());
    }
    let _ = writeln!(out, "     * @returns {{Promise<{answer}>}}\n     */");

    let mut url = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        url.push_str(&template_text(&rest[..start]));
        let _ = write!(url, "${{p({})}}", identifier(&rest[start + 1..start + len]));
        rest = &rest[start + len + 1..];
    }
    url.push_str(&template_text(rest));
    let mut options = Vec::new();
    if !in_query.is_empty() {
        options.push("query");
    }
    if body.is_some() {
        options.push("body");
    }
    if text {
        options.push("text: true");
    }
    let options = if options.is_empty() {
        "{}".to_owned()
    } else {
        format!("{{ {} }}", options.join(", "))
    };
    let _ = writeln!(
        out,
        "    {name}: ({}) => send(\"{}\", `{url}`, {options}),\n",
        args.join(", "),
        method.to_uppercase(),
    );
}

/// The type of a successful answer, and whether it is text rather than JSON.
fn response(op: &Value) -> (String, bool) {
    let mut types = Vec::new();
    let mut text = false;
    let mut empty = false;
    for (status, answer) in op["responses"].as_object().into_iter().flatten() {
        if !status.starts_with('2') {
            continue;
        }
        match answer["content"].as_object() {
            Some(content) if !content.is_empty() => {
                for (media, body) in content {
                    if !media.contains("json") {
                        text = true;
                    }
                    push_unique(&mut types, type_of(&body["schema"]));
                }
            }
            _ => empty = true,
        }
    }
    if empty {
        push_unique(&mut types, "null".to_owned());
    }
    let answer = if types.is_empty() {
        "null".to_owned()
    } else {
        types.join("|")
    };
    (answer, text)
}

fn push_unique(types: &mut Vec<String>, ty: String) {
    if !types.contains(&ty) {
        types.push(ty);
    }
}

/// A `@typedef` for a named schema: objects list their properties with descriptions.
fn typedef(out: &mut String, name: &str, schema: &Value) {
    out.push_str("/**\n");
    for line in doc_lines(schema["description"].as_str()) {
        let _ = writeln!(out, " * {line}");
    }
    let properties = schema["properties"].as_object();
    // `additionalProperties: false` (a body that refuses unknown fields) is still plain.
    let plain_object = schema["type"] == "object"
        && properties.is_some()
        && matches!(
            schema.get("additionalProperties"),
            None | Some(Value::Bool(false))
        );
    if let (true, Some(properties)) = (plain_object, properties) {
        let _ = writeln!(out, " * @typedef {{Object}} {}", type_name(name));
        for (key, prop) in properties {
            let field = if required(schema, key) {
                key.clone()
            } else {
                format!("[{key}]")
            };
            let _ = writeln!(
                out,
                " * @property {{{}}} {field}{}",
                type_of(prop),
                described(&prop["description"])
            );
        }
    } else {
        let _ = writeln!(
            out,
            " * @typedef {{{}}} {}",
            type_of(schema),
            type_name(name)
        );
    }
    out.push_str(" */\n\n");
}

fn required(schema: &Value, key: &str) -> bool {
    schema["required"]
        .as_array()
        .is_some_and(|r| r.iter().any(|k| k == key))
}

/// A JSDoc (TypeScript-flavoured) type expression for a schema.
fn type_of(schema: &Value) -> String {
    let Some(obj) = schema.as_object() else {
        return "*".to_owned();
    };
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        return type_name(reference.rsplit('/').next().unwrap_or(reference));
    }
    for (key, joiner) in [("oneOf", "|"), ("anyOf", "|"), ("allOf", " & ")] {
        if let Some(parts) = obj.get(key).and_then(Value::as_array) {
            let mut types = Vec::new();
            for part in parts {
                push_unique(&mut types, type_of(part));
            }
            return format!("({})", types.join(joiner));
        }
    }
    if let Some(value) = obj.get("const") {
        return value.to_string();
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        let literals: Vec<String> = values.iter().map(Value::to_string).collect();
        return literals.join("|");
    }
    match obj.get("type") {
        Some(Value::Array(kinds)) => {
            let types: Vec<String> = kinds
                .iter()
                .filter_map(Value::as_str)
                .map(|kind| type_of_kind(kind, obj))
                .collect();
            types.join("|")
        }
        Some(Value::String(kind)) => type_of_kind(kind, obj),
        _ => "*".to_owned(),
    }
}

fn type_of_kind(kind: &str, obj: &Map<String, Value>) -> String {
    match kind {
        "string" => "string".to_owned(),
        "integer" | "number" => "number".to_owned(),
        "boolean" => "boolean".to_owned(),
        "null" => "null".to_owned(),
        "array" => format!(
            "Array<{}>",
            obj.get("items").map_or_else(|| "*".to_owned(), type_of)
        ),
        "object" => {
            let extra = match obj.get("additionalProperties") {
                Some(Value::Bool(false)) | None => None,
                Some(Value::Bool(true)) => Some("*".to_owned()),
                Some(schema) => Some(type_of(schema)),
            };
            match (obj.get("properties").and_then(Value::as_object), extra) {
                (Some(props), _) if !props.is_empty() => {
                    let fields: Vec<String> = props
                        .iter()
                        .map(|(key, prop)| {
                            let optional = if obj
                                .get("required")
                                .and_then(Value::as_array)
                                .is_some_and(|r| r.iter().any(|k| k == key))
                            {
                                ""
                            } else {
                                "?"
                            };
                            format!("{}{optional}: {}", property(key), type_of(prop))
                        })
                        .collect();
                    format!("{{{}}}", fields.join(", "))
                }
                (_, Some(value)) => format!("Object<string, {value}>"),
                _ => "Object".to_owned(),
            }
        }
        _ => "*".to_owned(),
    }
}

/// A schema name as a JavaScript identifier (`Paged_AppKeyView` stays as it is).
fn type_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A parameter name usable as a JavaScript argument.
fn identifier(name: &str) -> String {
    const RESERVED: &[&str] = &[
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "export",
        "extends",
        "finally",
        "for",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "new",
        "return",
        "super",
        "switch",
        "this",
        "throw",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "let",
        "static",
        "enum",
        "await",
        "p",
        "send",
        "body",
        "query",
    ];
    let mut id = type_name(name);
    if id.starts_with(|c: char| c.is_ascii_digit()) || RESERVED.contains(&id.as_str()) {
        id.push('_');
    }
    id
}

/// An object key in a type literal, quoted when it is not an identifier.
fn property(key: &str) -> String {
    let plain = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// `getDeployment` from `get_deployment`.
fn camel_case(id: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in id.chars() {
        if !c.is_ascii_alphanumeric() {
            upper = !out.is_empty();
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Literal text inside a template literal.
fn template_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('`', "\\`")
        .replace("${", "\\${")
}

/// A description as comment lines, never closing the comment early.
fn doc_lines(text: Option<&str>) -> Vec<String> {
    text.map(|t| t.replace("*/", "*\\/"))
        .map(|t| t.lines().map(|l| l.trim_end().to_owned()).collect())
        .unwrap_or_default()
}

/// A description on one line, for a `@param` or `@property`.
fn one_line(description: &Value) -> Option<String> {
    let text = description.as_str()?.replace("*/", "*\\/");
    let words: Vec<&str> = text.split_whitespace().collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn described(description: &Value) -> String {
    one_line(description).map_or_else(String::new, |d| format!(" - {d}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r##"{
      "openapi": "3.1.0",
      "info": {"title": "T", "version": "1"},
      "paths": {
        "/things/{thing_id}": {
          "get": {"operationId": "get_thing", "summary": "One thing.",
            "parameters": [
              {"name": "thing_id", "in": "path", "required": true, "schema": {"type": "string"}},
              {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
            "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}}},
          "delete": {"operationId": "delete_thing",
            "parameters": [{"name": "thing_id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"204": {"description": "gone"}}}
        },
        "/acl/$all/{as}": {
          "post": {"operationId": "add", "requestBody": {"required": true,
              "content": {"application/json": {"schema": {"type": "array", "items": {"type": "string"}}}}},
            "parameters": [{"name": "as", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"content": {"text/plain": {"schema": {"type": "string"}}}}}}
        },
        "/report": {"post": {"operationId": "report", "tags": ["internal"], "responses": {}}}
      },
      "components": {"schemas": {
        "Thing": {"type": "object", "description": "A thing.", "required": ["id"],
          "properties": {"id": {"type": "string"}, "kind": {"type": ["string", "null"], "enum": ["a", "b", null]},
            "tags": {"type": "object", "additionalProperties": {"type": "integer"}}}}
      }}
    }"##;

    #[test]
    fn one_function_per_operation_with_types() {
        let js = generate(SPEC).unwrap();
        assert!(js.contains(" * @typedef {Object} Thing\n"), "{js}");
        assert!(js.contains(" * @property {string} id\n"), "{js}");
        assert!(js.contains(r#" * @property {"a"|"b"|null} [kind]"#), "{js}");
        assert!(
            js.contains(" * @property {Object<string, number>} [tags]"),
            "{js}"
        );
        assert!(
            js.contains("getThing: (thing_id, query) => send(\"GET\", `/things/${p(thing_id)}`, { query }),"),
            "{js}"
        );
        assert!(js.contains("@returns {Promise<Thing>}"), "{js}");
        assert!(
            js.contains(
                "deleteThing: (thing_id) => send(\"DELETE\", `/things/${p(thing_id)}`, {}),"
            ),
            "{js}"
        );
        assert!(js.contains("@returns {Promise<null>}"), "{js}");
        // `$all` stays literal; a reserved-ish parameter name is renamed; text answers.
        assert!(
            js.contains(
                "add: (as, body) => send(\"POST\", `/acl/$all/${p(as)}`, { body, text: true }),"
            ),
            "{js}"
        );
        assert!(
            !js.contains("report"),
            "internal operations are left out: {js}"
        );
    }

    #[test]
    fn duplicate_operation_ids_are_refused() {
        let spec = SPEC.replace("\"delete_thing\"", "\"get_thing\"");
        assert!(matches!(generate(&spec), Err(ClientError::Duplicate(id)) if id == "get_thing"));
    }
}
