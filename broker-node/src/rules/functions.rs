//! The SQL functions rules can call, EMQX's names and argument orders.

use base64::Engine as _;
use serde_json::Value;

use super::eval::{number, text, Ctx};

macro_rules! functions {
    ($($variant:ident = $name:literal ($min:expr, $max:expr)),* $(,)?) => {
        /// A function known to the rule engine.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Function { $($variant),* }

        impl Function {
            /// The function called `name` (lower case).
            pub fn named(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// Fewest and most arguments.
            pub fn arity(self) -> (usize, usize) {
                match self { $(Self::$variant => ($min, $max)),* }
            }

            /// Every function's name, for the documentation.
            pub const NAMES: &[&str] = &[$($name),*];
        }
    };
}

const MANY: usize = usize::MAX;

functions! {
    // the input's fields, as functions
    Clientid = "clientid"(0, 0),
    Username = "username"(0, 0),
    Qos = "qos"(0, 0),
    Peerhost = "peerhost"(0, 0),
    Topic = "topic"(0, 1),
    // strings
    Lower = "lower"(1, 1),
    Upper = "upper"(1, 1),
    Trim = "trim"(1, 1),
    Ltrim = "ltrim"(1, 1),
    Rtrim = "rtrim"(1, 1),
    Reverse = "reverse"(1, 1),
    Strlen = "strlen"(1, 1),
    Substr = "substr"(2, 3),
    Concat = "concat"(1, MANY),
    Replace = "replace"(3, 3),
    Split = "split"(2, 2),
    Tokens = "tokens"(2, 2),
    Nth = "nth"(2, 2),
    Str = "str"(1, 1),
    Int = "int"(1, 1),
    Float = "float"(1, 1),
    Bool = "bool"(1, 1),
    RegexMatch = "regex_match"(2, 2),
    RegexReplace = "regex_replace"(3, 3),
    IsNull = "is_null"(1, 1),
    IsNotNull = "is_not_null"(1, 1),
    Coalesce = "coalesce"(1, MANY),
    // math
    Abs = "abs"(1, 1),
    Ceil = "ceil"(1, 1),
    Floor = "floor"(1, 1),
    Round = "round"(1, 1),
    Sqrt = "sqrt"(1, 1),
    Power = "power"(2, 2),
    Exp = "exp"(1, 1),
    Log = "log"(1, 1),
    Log10 = "log10"(1, 1),
    Log2 = "log2"(1, 1),
    Sin = "sin"(1, 1),
    Cos = "cos"(1, 1),
    Tan = "tan"(1, 1),
    Mod = "mod"(2, 2),
    // encodings
    JsonDecode = "json_decode"(1, 1),
    JsonEncode = "json_encode"(1, 1),
    Base64Encode = "base64_encode"(1, 1),
    Base64Decode = "base64_decode"(1, 1),
    Sha256 = "sha256"(1, 1),
    // time
    NowTimestamp = "now_timestamp"(0, 1),
    NowRfc3339 = "now_rfc3339"(0, 1),
    UnixTsToRfc3339 = "unix_ts_to_rfc3339"(1, 2),
    Rfc3339ToUnixTs = "rfc3339_to_unix_ts"(1, 2),
}

impl Function {
    /// Applies the function to already evaluated arguments.
    pub fn call(self, args: &[Value], ctx: &Ctx) -> Result<Value, String> {
        use Function as F;
        let s = |i: usize| text(&args[i]);
        let n = |i: usize| {
            number(&args[i]).ok_or_else(|| format!("argument {} is not a number", i + 1))
        };
        let string = |v: String| Ok(Value::String(v));
        let float = |x: f64| Ok(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number));
        match self {
            F::Clientid => Ok(ctx.field("clientid")),
            F::Username => Ok(ctx.field("username")),
            F::Qos => Ok(ctx.field("qos")),
            F::Peerhost => Ok(ctx.field("peerhost")),
            F::Topic => {
                let topic = ctx.field("topic");
                match args.first() {
                    None => Ok(topic),
                    Some(level) => {
                        let level = number(level).ok_or("topic(n) takes a level number")? as usize;
                        Ok(text(&topic)
                            .split('/')
                            .nth(level.saturating_sub(1))
                            .filter(|_| level > 0)
                            .map_or(Value::Null, |l| Value::String(l.to_owned())))
                    }
                }
            }
            F::Lower => string(s(0).to_lowercase()),
            F::Upper => string(s(0).to_uppercase()),
            F::Trim => string(s(0).trim().to_owned()),
            F::Ltrim => string(s(0).trim_start().to_owned()),
            F::Rtrim => string(s(0).trim_end().to_owned()),
            F::Reverse => string(s(0).chars().rev().collect()),
            F::Strlen => Ok(s(0).chars().count().into()),
            F::Substr => {
                let start = n(1)?.max(0.0) as usize;
                let whole = s(0);
                let chars = whole.chars().skip(start);
                match args.get(2) {
                    Some(len) => {
                        let len = number(len).ok_or("argument 3 is not a number")?.max(0.0);
                        string(chars.take(len as usize).collect())
                    }
                    None => string(chars.collect()),
                }
            }
            F::Concat => string(args.iter().map(text).collect()),
            F::Replace => string(s(0).replace(&s(1), &s(2))),
            F::Split | F::Tokens => {
                let sep = s(1);
                if sep.is_empty() {
                    return Err("the separator is empty".into());
                }
                Ok(Value::Array(
                    s(0).split(sep.as_str())
                        .filter(|p| self == F::Split || !p.is_empty())
                        .map(|p| Value::String(p.to_owned()))
                        .collect(),
                ))
            }
            F::Nth => {
                let i = n(0)? as usize;
                match &args[1] {
                    Value::Array(items) if i >= 1 => {
                        Ok(items.get(i - 1).cloned().unwrap_or(Value::Null))
                    }
                    _ => Err("nth(n, list) takes a position from 1 and a list".into()),
                }
            }
            F::Str => string(s(0)),
            F::Int => match &args[0] {
                Value::Bool(b) => Ok(i64::from(*b).into()),
                v => number(v)
                    .map(|x| Value::from(x.trunc() as i64))
                    .ok_or_else(|| format!("cannot convert {v} to int")),
            },
            F::Float => number(&args[0]).map_or_else(
                || Err(format!("cannot convert {} to float", args[0])),
                float,
            ),
            F::Bool => match &args[0] {
                Value::Bool(b) => Ok(Value::Bool(*b)),
                Value::String(t) if t == "true" => Ok(Value::Bool(true)),
                Value::String(t) if t == "false" => Ok(Value::Bool(false)),
                Value::Number(x) => Ok(Value::Bool(x.as_f64() != Some(0.0))),
                v => Err(format!("cannot convert {v} to bool")),
            },
            F::RegexMatch => {
                let re = regex::Regex::new(&s(1)).map_err(|e| e.to_string())?;
                Ok(Value::Bool(re.is_match(&s(0))))
            }
            F::RegexReplace => {
                let re = regex::Regex::new(&s(1)).map_err(|e| e.to_string())?;
                string(re.replace_all(&s(0), s(2).as_str()).into_owned())
            }
            F::IsNull => Ok(Value::Bool(args[0].is_null())),
            F::IsNotNull => Ok(Value::Bool(!args[0].is_null())),
            F::Coalesce => Ok(args
                .iter()
                .find(|v| !v.is_null())
                .cloned()
                .unwrap_or(Value::Null)),
            F::Abs => match &args[0] {
                Value::Number(x) if x.is_i64() => {
                    Ok(x.as_i64().unwrap_or(0).saturating_abs().into())
                }
                _ => float(n(0)?.abs()),
            },
            F::Ceil => Ok((n(0)?.ceil() as i64).into()),
            F::Floor => Ok((n(0)?.floor() as i64).into()),
            F::Round => Ok((n(0)?.round() as i64).into()),
            F::Sqrt => float(n(0)?.sqrt()),
            F::Power => float(n(0)?.powf(n(1)?)),
            F::Exp => float(n(0)?.exp()),
            F::Log => float(n(0)?.ln()),
            F::Log10 => float(n(0)?.log10()),
            F::Log2 => float(n(0)?.log2()),
            F::Sin => float(n(0)?.sin()),
            F::Cos => float(n(0)?.cos()),
            F::Tan => float(n(0)?.tan()),
            F::Mod => super::eval::arithmetic(&args[0], super::sql::Op::Mod, &args[1]),
            F::JsonDecode => serde_json::from_str(&s(0)).map_err(|e| format!("json_decode: {e}")),
            F::JsonEncode => string(args[0].to_string()),
            F::Base64Encode => string(base64::engine::general_purpose::STANDARD.encode(s(0))),
            F::Base64Decode => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s(0))
                    .map_err(|e| format!("base64_decode: {e}"))?;
                string(String::from_utf8_lossy(&bytes).into_owned())
            }
            F::Sha256 => {
                use sha2::Digest;
                string(hex::encode(sha2::Sha256::digest(s(0).as_bytes())))
            }
            F::NowTimestamp => {
                let now = chrono::Utc::now();
                Ok(match unit(args.first())? {
                    Unit::Second => now.timestamp().into(),
                    Unit::Millisecond => now.timestamp_millis().into(),
                })
            }
            F::NowRfc3339 => string(rfc3339(chrono::Utc::now(), unit(args.first())?)),
            F::UnixTsToRfc3339 => {
                let unit = unit(args.get(1))?;
                let ts = n(0)? as i64;
                let at = match unit {
                    Unit::Second => chrono::DateTime::from_timestamp(ts, 0),
                    Unit::Millisecond => chrono::DateTime::from_timestamp_millis(ts),
                }
                .ok_or("timestamp out of range")?;
                string(rfc3339(at, unit))
            }
            F::Rfc3339ToUnixTs => {
                let at = chrono::DateTime::parse_from_rfc3339(&s(0)).map_err(|e| e.to_string())?;
                Ok(match unit(args.get(1))? {
                    Unit::Second => at.timestamp().into(),
                    Unit::Millisecond => at.timestamp_millis().into(),
                })
            }
        }
    }
}

enum Unit {
    Second,
    Millisecond,
}

fn unit(arg: Option<&Value>) -> Result<Unit, String> {
    match arg.map(text).as_deref() {
        None | Some("second") => Ok(Unit::Second),
        Some("millisecond") => Ok(Unit::Millisecond),
        Some(other) => Err(format!(
            "unit must be 'second' or 'millisecond'; got {other:?}"
        )),
    }
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>, unit: Unit) -> String {
    let precision = match unit {
        Unit::Second => chrono::SecondsFormat::Secs,
        Unit::Millisecond => chrono::SecondsFormat::Millis,
    };
    at.to_rfc3339_opts(precision, true)
}
