//! Runs a parsed statement against one input: the WHERE condition, then the SELECT list
//! into the output object that actions render.

use std::cell::OnceCell;

use serde_json::{Map, Value};

use super::sql::{Expr, Field, Op, Statement};

/// One input's fields (EMQX's names), with the payload decoded as JSON on first use.
pub struct Ctx {
    fields: Map<String, Value>,
    decoded: OnceCell<Value>,
}

impl Ctx {
    pub fn new(fields: Map<String, Value>) -> Self {
        Self {
            fields,
            decoded: OnceCell::new(),
        }
    }

    /// A top-level field, `null` when absent.
    pub fn field(&self, name: &str) -> Value {
        self.fields.get(name).cloned().unwrap_or(Value::Null)
    }

    /// `payload` as JSON (null when it is not JSON).
    fn payload(&self) -> &Value {
        self.decoded
            .get_or_init(|| match self.fields.get("payload") {
                Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
                Some(other) => other.clone(),
                None => Value::Null,
            })
    }

    fn path(&self, path: &[String]) -> Value {
        let Some((first, rest)) = path.split_first() else {
            return Value::Null;
        };
        if rest.is_empty() {
            return self.field(first);
        }
        let mut at = if first == "payload" {
            self.payload()
        } else {
            match self.fields.get(first.as_str()) {
                Some(v) => v,
                None => return Value::Null,
            }
        };
        for key in rest {
            at = match at {
                Value::Object(map) => match map.get(key.as_str()) {
                    Some(v) => v,
                    None => return Value::Null,
                },
                Value::Array(items) => match key
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i.checked_sub(1)?))
                {
                    Some(v) => v,
                    None => return Value::Null,
                },
                _ => return Value::Null,
            };
        }
        at.clone()
    }
}

/// What the rule produced for one input, or why it failed.
pub enum Outcome {
    /// The WHERE condition did not hold.
    Skipped,
    Selected(Map<String, Value>),
}

/// Runs `statement` on `ctx`.
pub fn run(statement: &Statement, ctx: &Ctx) -> Result<Outcome, String> {
    if let Some(condition) = &statement.condition {
        if eval(condition, ctx)? != Value::Bool(true) {
            return Ok(Outcome::Skipped);
        }
    }
    let mut out = Map::new();
    for field in &statement.fields {
        match field {
            Field::All => {
                for (k, v) in &ctx.fields {
                    out.insert(k.clone(), v.clone());
                }
            }
            Field::Expr { expr, key } => insert(&mut out, key, eval(expr, ctx)?),
        }
    }
    Ok(Outcome::Selected(out))
}

/// Puts `value` under the dotted `key`, making objects on the way.
fn insert(out: &mut Map<String, Value>, key: &[String], value: Value) {
    let Some((last, parents)) = key.split_last() else {
        return;
    };
    let mut at = out;
    for k in parents {
        let entry = at
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(map) = entry else {
            return;
        };
        at = map;
    }
    at.insert(last.clone(), value);
}

pub fn eval(expr: &Expr, ctx: &Ctx) -> Result<Value, String> {
    Ok(match expr {
        Expr::Const(v) => v.clone(),
        Expr::Path(path) => ctx.path(path),
        Expr::Not(inner) => match eval(inner, ctx)? {
            Value::Bool(b) => Value::Bool(!b),
            Value::Null => Value::Null,
            other => return Err(format!("NOT of a non-boolean {other}")),
        },
        Expr::Neg(inner) => {
            let v = eval(inner, ctx)?;
            arithmetic(&Value::from(0), Op::Sub, &v)?
        }
        Expr::IsNull(inner, is) => Value::Bool(eval(inner, ctx)?.is_null() == *is),
        Expr::In(inner, list, negated) => {
            let v = eval(inner, ctx)?;
            let mut found = false;
            for item in list {
                if compare(&v, Op::Eq, &eval(item, ctx)?) {
                    found = true;
                    break;
                }
            }
            Value::Bool(found != *negated)
        }
        Expr::Binary(left, op, right) => match op {
            Op::And => {
                let l = eval(left, ctx)?;
                if l != Value::Bool(true) {
                    return Ok(Value::Bool(false));
                }
                Value::Bool(eval(right, ctx)? == Value::Bool(true))
            }
            Op::Or => {
                if eval(left, ctx)? == Value::Bool(true) {
                    return Ok(Value::Bool(true));
                }
                Value::Bool(eval(right, ctx)? == Value::Bool(true))
            }
            Op::TopicMatch => {
                let topic = text(&eval(left, ctx)?);
                let filter = text(&eval(right, ctx)?);
                Value::Bool(crate::mqtt::topic::matches(&topic, &filter))
            }
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod => {
                arithmetic(&eval(left, ctx)?, *op, &eval(right, ctx)?)?
            }
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                Value::Bool(compare(&eval(left, ctx)?, *op, &eval(right, ctx)?))
            }
        },
        Expr::Call(function, args) => {
            let values = args
                .iter()
                .map(|a| eval(a, ctx))
                .collect::<Result<Vec<_>, _>>()?;
            function.call(&values, ctx)?
        }
        Expr::Case {
            operand,
            branches,
            otherwise,
        } => {
            let operand = operand.as_deref().map(|e| eval(e, ctx)).transpose()?;
            for (when, then) in branches {
                let w = eval(when, ctx)?;
                let hit = match &operand {
                    Some(o) => compare(o, Op::Eq, &w),
                    None => w == Value::Bool(true),
                };
                if hit {
                    return eval(then, ctx);
                }
            }
            match otherwise {
                Some(e) => eval(e, ctx)?,
                None => Value::Null,
            }
        }
    })
}

/// A value as text: strings as they are, everything else as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A value as a number: numbers, and strings that hold one.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn compare(l: &Value, op: Op, r: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (l, r) {
        (Value::Number(_), _) | (_, Value::Number(_)) => match (number(l), number(r)) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => None,
        },
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (a, b) if a == b => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ordering) {
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Ne, None) => true,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        _ => false,
    }
}

/// `l op r` for + - * / %: integers stay integers; `+` of two strings concatenates.
pub fn arithmetic(l: &Value, op: Op, r: &Value) -> Result<Value, String> {
    if let (Op::Add, Value::String(a), Value::String(b)) = (op, l, r) {
        return Ok(Value::String(format!("{a}{b}")));
    }
    if let (Some(a), Some(b)) = (l.as_i64(), r.as_i64()) {
        let result = match op {
            Op::Add => a.checked_add(b),
            Op::Sub => a.checked_sub(b),
            Op::Mul => a.checked_mul(b),
            Op::Div if b != 0 && a % b == 0 => Some(a / b),
            Op::Div => None,
            Op::Mod => a.checked_rem(b),
            _ => None,
        };
        if let Some(n) = result {
            return Ok(n.into());
        }
        if op == Op::Mod {
            return Err("modulo by zero".into());
        }
    }
    let (Some(a), Some(b)) = (number(l), number(r)) else {
        return Err(format!("cannot compute {l} {op:?} {r}"));
    };
    let x = match op {
        Op::Add => a + b,
        Op::Sub => a - b,
        Op::Mul => a * b,
        Op::Div if b == 0.0 => return Err("division by zero".into()),
        Op::Div => a / b,
        Op::Mod => a % b,
        _ => return Err(format!("{op:?} is not arithmetic")),
    };
    Ok(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn select(sql: &str, input: Value) -> Option<Value> {
        let statement = super::super::sql::parse(sql).unwrap();
        let Value::Object(fields) = input else {
            panic!()
        };
        match run(&statement, &Ctx::new(fields)).unwrap() {
            Outcome::Skipped => None,
            Outcome::Selected(out) => Some(Value::Object(out)),
        }
    }

    #[test]
    fn selects_and_filters() {
        let input = json!({"topic": "s/1/temp", "clientid": "c1", "qos": 1,
            "payload": "{\"t\": 21.5, \"n\": {\"x\": 3}, \"l\": [7, 8]}"});
        assert_eq!(
            select(
                "SELECT payload.t AS temp, payload.n.x * 2 AS x2, nth(2, split(topic, '/')) AS dev, \
                 upper(clientid) AS c, payload.l[2] AS second FROM \"s/#\" WHERE payload.t > 20 AND topic =~ 's/+/temp'",
                input.clone()
            ),
            Some(json!({"temp": 21.5, "x2": 6, "dev": "1", "c": "C1", "second": 8}))
        );
        assert_eq!(
            select("SELECT * FROM \"s/#\" WHERE payload.t < 20", input.clone()),
            None
        );
        assert_eq!(
            select(
                "SELECT payload.n FROM \"s/#\" WHERE qos IN (1, 2) AND clientid <> 'x'",
                input.clone()
            ),
            Some(json!({"payload": {"n": {"x": 3}}}))
        );
        assert_eq!(
            select(
                "SELECT base64_encode('hi') AS b, json_encode(payload.n) AS j, \
                 CASE WHEN qos = 1 THEN 'one' ELSE 'other' END AS q, 'a' + 'b' AS ab, 7 / 2 AS half \
                 FROM \"s/#\"",
                input
            ),
            Some(json!({"b": "aGk=", "j": "{\"x\":3}", "q": "one", "ab": "ab", "half": 3.5}))
        );
    }
}
