//! Rule SQL, EMQX's dialect: `SELECT <fields | *> FROM "<topic filter>"[, …] [WHERE …]`.
//!
//! The statement is parsed by `sqlparser` (generic dialect) and turned into the small
//! expression tree of [`Expr`] that `eval` runs; anything the rule engine cannot run is
//! refused here with its line and column, so a stored rule always runs. EMQX's topic
//! match operator `=~` is not SQL: it is rewritten to `~` (same positions) before parsing.

use sqlparser::ast::{
    self, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, SetExpr,
    Spanned, TableFactor, UnaryOperator,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Location;

use super::functions::Function;

/// A parsed rule statement.
#[derive(Debug, Clone)]
pub struct Statement {
    pub fields: Vec<Field>,
    /// Topic filters (or `$events/…` names) the rule listens to.
    pub sources: Vec<String>,
    pub condition: Option<Expr>,
}

/// One item of the SELECT list.
#[derive(Debug, Clone)]
pub enum Field {
    /// `*`: every field of the input.
    All,
    /// An expression and the (possibly dotted) key it is put under.
    Expr { expr: Expr, key: Vec<String> },
}

/// An expression the rule engine evaluates.
#[derive(Debug, Clone)]
pub enum Expr {
    Const(serde_json::Value),
    /// A field of the input, `payload.a.b` as `["payload", "a", "b"]`.
    Path(Vec<String>),
    Binary(Box<Expr>, Op, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    IsNull(Box<Expr>, bool),
    In(Box<Expr>, Vec<Expr>, bool),
    Call(Function, Vec<Expr>),
    Case {
        operand: Option<Box<Expr>>,
        branches: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    /// `topic =~ 'filter'`: the topic matches the MQTT filter.
    TopicMatch,
}

/// A statement the rule engine refuses, with where (1-based line and column; 0 when the
/// parser gave none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SQL at line {line}, column {column}: {message}")]
pub struct SqlError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl SqlError {
    fn at(location: Location, message: impl Into<String>) -> Self {
        Self {
            line: location.line,
            column: location.column,
            message: message.into(),
        }
    }

    fn of(node: &impl Spanned, message: impl Into<String>) -> Self {
        Self::at(node.span().start, message)
    }
}

/// Longest statement accepted.
pub const MAX_SQL_BYTES: usize = 16 * 1024;

/// Parses `sql` into a [`Statement`] the engine can run.
pub fn parse(sql: &str) -> Result<Statement, SqlError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(SqlError::at(
            Location { line: 1, column: 1 },
            format!(
                "the statement is {} bytes; at most {MAX_SQL_BYTES}",
                sql.len()
            ),
        ));
    }
    let text = rewrite_topic_match(sql);
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, &text).map_err(|e| parser_error(e, sql))?;
    if statements.len() != 1 {
        return Err(SqlError::at(
            Location { line: 1, column: 1 },
            format!("expected one SELECT statement; got {}", statements.len()),
        ));
    }
    let statement = statements.remove(0);
    let ast::Statement::Query(query) = &statement else {
        return Err(SqlError::of(&statement, "only SELECT statements are rules"));
    };
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return Err(SqlError::of(
            query.as_ref(),
            "WITH, ORDER BY and LIMIT are not supported in rules",
        ));
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(SqlError::of(query.as_ref(), "expected SELECT … FROM …"));
    };
    let select = select.as_ref();
    if select.distinct.is_some() || select.having.is_some() || !select.sort_by.is_empty() {
        return Err(SqlError::of(
            select,
            "DISTINCT, GROUP BY and HAVING are not supported",
        ));
    }
    if let ast::GroupByExpr::Expressions(exprs, _) = &select.group_by {
        if let Some(first) = exprs.first() {
            return Err(SqlError::of(first, "GROUP BY is not supported"));
        }
    }
    let sources = sources(select)?;
    let fields = select
        .projection
        .iter()
        .map(field)
        .collect::<Result<Vec<_>, _>>()?;
    let condition = select.selection.as_ref().map(expr).transpose()?;
    Ok(Statement {
        fields,
        sources,
        condition,
    })
}

/// The parser's error with its position; at the end of `sql` when the statement ended
/// too early (sqlparser gives no position then).
fn parser_error(e: ParserError, sql: &str) -> SqlError {
    let text = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "the statement is nested too deeply".to_owned(),
    };
    // sqlparser ends its messages with " at Line: L, Column: C".
    if let Some((message, at)) = text.rsplit_once(" at Line: ") {
        if let Some((line, column)) = at.split_once(", Column: ") {
            if let (Ok(line), Ok(column)) = (line.trim().parse(), column.trim().parse()) {
                return SqlError {
                    line,
                    column,
                    message: message.to_owned(),
                };
            }
        }
    }
    let line = sql.lines().count().max(1) as u64;
    let column = sql.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
    SqlError {
        line,
        column,
        message: text,
    }
}

/// `a =~ b` → `a  ~ b` outside quotes, keeping every other character where it was.
fn rewrite_topic_match(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' || c == '`' => quote = Some(c),
            None if c == '=' && chars.peek() == Some(&'~') => {
                out.push(' ');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

fn sources(select: &ast::Select) -> Result<Vec<String>, SqlError> {
    if select.from.is_empty() {
        return Err(SqlError::of(
            select,
            "missing FROM \"<topic filter>\" (the topics the rule listens to)",
        ));
    }
    let mut sources = Vec::new();
    for table in &select.from {
        if let Some(join) = table.joins.first() {
            return Err(SqlError::of(&join.relation, "JOIN is not supported"));
        }
        let TableFactor::Table { name, .. } = &table.relation else {
            return Err(SqlError::of(
                &table.relation,
                "FROM takes double-quoted topic filters",
            ));
        };
        let [ast::ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return Err(SqlError::of(
                name,
                "FROM takes double-quoted topic filters, e.g. FROM \"t/#\"",
            ));
        };
        let filter = ident.value.clone();
        let valid = if let Some(event) = filter.strip_prefix("$events/") {
            super::input::EVENTS.contains(&event)
        } else {
            crate::mqtt::topic::valid_filter(&filter) && !filter.starts_with("$share/")
        };
        if !valid {
            return Err(SqlError::at(
                ident.span.start,
                format!("{filter:?} is not a valid topic filter or $events/ topic"),
            ));
        }
        sources.push(filter);
    }
    Ok(sources)
}

fn field(item: &SelectItem) -> Result<Field, SqlError> {
    match item {
        SelectItem::Wildcard(_) => Ok(Field::All),
        SelectItem::UnnamedExpr(e) => {
            let parsed = expr(e)?;
            let key = match &parsed {
                Expr::Path(path) => path.clone(),
                _ => vec![e.to_string()],
            };
            Ok(Field::Expr { expr: parsed, key })
        }
        SelectItem::ExprWithAlias { expr: e, alias } => Ok(Field::Expr {
            expr: expr(e)?,
            key: alias.value.split('.').map(str::to_owned).collect(),
        }),
        other => Err(SqlError::of(other, "unsupported SELECT item")),
    }
}

fn expr(e: &ast::Expr) -> Result<Expr, SqlError> {
    use ast::Expr as E;
    Ok(match e {
        E::Identifier(ident) => Expr::Path(vec![ident.value.clone()]),
        E::CompoundIdentifier(idents) => {
            Expr::Path(idents.iter().map(|i| i.value.clone()).collect())
        }
        E::Value(value) => Expr::Const(constant(value)?),
        // `payload.list[1]`: EMQX's 1-based array index (and `a.b` after it).
        E::CompoundFieldAccess { root, access_chain } => {
            let Expr::Path(mut path) = expr(root)? else {
                return Err(SqlError::of(e, "only fields can be indexed"));
            };
            for access in access_chain {
                match access {
                    ast::AccessExpr::Dot(ast::Expr::Identifier(ident)) => {
                        path.push(ident.value.clone())
                    }
                    ast::AccessExpr::Subscript(ast::Subscript::Index { index }) => {
                        match expr(index)? {
                            Expr::Const(serde_json::Value::Number(n)) if n.as_u64().is_some() => {
                                path.push(n.to_string())
                            }
                            Expr::Const(serde_json::Value::String(key)) => path.push(key),
                            _ => {
                                return Err(SqlError::of(
                                    index,
                                    "an index is a number (from 1) or a quoted key",
                                ))
                            }
                        }
                    }
                    _ => return Err(SqlError::of(e, format!("unsupported access `{e}`"))),
                }
            }
            Expr::Path(path)
        }
        E::Nested(inner) => expr(inner)?,
        E::UnaryOp { op, expr: inner } => match op {
            UnaryOperator::Not => Expr::Not(Box::new(expr(inner)?)),
            UnaryOperator::Minus => Expr::Neg(Box::new(expr(inner)?)),
            UnaryOperator::Plus => expr(inner)?,
            _ => return Err(SqlError::of(e, format!("unsupported operator {op}"))),
        },
        E::BinaryOp { left, op, right } => {
            let op = match op {
                BinaryOperator::Plus => Op::Add,
                BinaryOperator::Minus => Op::Sub,
                BinaryOperator::Multiply => Op::Mul,
                BinaryOperator::Divide => Op::Div,
                BinaryOperator::Modulo => Op::Mod,
                BinaryOperator::Eq => Op::Eq,
                BinaryOperator::NotEq => Op::Ne,
                BinaryOperator::Lt => Op::Lt,
                BinaryOperator::LtEq => Op::Le,
                BinaryOperator::Gt => Op::Gt,
                BinaryOperator::GtEq => Op::Ge,
                BinaryOperator::And => Op::And,
                BinaryOperator::Or => Op::Or,
                BinaryOperator::PGRegexMatch => Op::TopicMatch,
                other => return Err(SqlError::of(e, format!("unsupported operator {other}"))),
            };
            Expr::Binary(Box::new(expr(left)?), op, Box::new(expr(right)?))
        }
        E::IsNull(inner) => Expr::IsNull(Box::new(expr(inner)?), true),
        E::IsNotNull(inner) => Expr::IsNull(Box::new(expr(inner)?), false),
        E::In {
            expr: inner,
            target: ast::InTarget::List(list),
            negated,
            ..
        } => Expr::In(
            Box::new(expr(inner)?),
            list.iter().map(expr).collect::<Result<_, _>>()?,
            *negated,
        ),
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => Expr::Case {
            operand: operand.as_deref().map(expr).transpose()?.map(Box::new),
            branches: conditions
                .iter()
                .map(|w| Ok((expr(&w.condition)?, expr(&w.result)?)))
                .collect::<Result<_, SqlError>>()?,
            otherwise: else_result.as_deref().map(expr).transpose()?.map(Box::new),
        },
        E::Function(f) => call(f)?,
        other => {
            return Err(SqlError::of(
                other,
                format!("unsupported expression `{other}`"),
            ))
        }
    })
}

fn constant(value: &ast::ValueWithSpan) -> Result<serde_json::Value, SqlError> {
    use ast::Value as V;
    Ok(match &value.value {
        V::Number(text, _) => {
            if let Ok(n) = text.parse::<i64>() {
                n.into()
            } else {
                text.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| SqlError::of(value, format!("bad number {text}")))?
            }
        }
        V::SingleQuotedString(s) => serde_json::Value::String(s.clone()),
        V::Boolean(b) => serde_json::Value::Bool(*b),
        V::Null => serde_json::Value::Null,
        other => {
            return Err(SqlError::of(
                value,
                format!("unsupported literal {other}; strings are single-quoted"),
            ))
        }
    })
}

fn call(f: &ast::Function) -> Result<Expr, SqlError> {
    let name = f.name.to_string().to_ascii_lowercase();
    let Some(function) = Function::named(&name) else {
        return Err(SqlError::of(&f.name, format!("unknown function {name}")));
    };
    let args = match &f.args {
        FunctionArguments::None => Vec::new(),
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => expr(e),
                other => Err(SqlError::of(other, "unsupported function argument")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        FunctionArguments::Subquery(q) => {
            return Err(SqlError::of(q.as_ref(), "subqueries are not supported"))
        }
    };
    let (min, max) = function.arity();
    if args.len() < min || args.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(SqlError::of(
            f,
            format!("{name} takes {expected} argument(s); got {}", args.len()),
        ));
    }
    Ok(Expr::Call(function, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_emqx_statements() {
        let s = parse(
            "SELECT payload.temp AS t, clientid, upper(topic) FROM \"sensors/#\", \"a/+\" \
             WHERE payload.temp > 20 AND topic =~ 'sensors/+/x'",
        )
        .unwrap();
        assert_eq!(s.sources, vec!["sensors/#", "a/+"]);
        assert_eq!(s.fields.len(), 3);
        assert!(matches!(
            s.condition,
            Some(Expr::Binary(_, Op::And, ref right)) if matches!(**right, Expr::Binary(_, Op::TopicMatch, _))
        ));
        assert!(parse("SELECT * FROM \"$events/client_connected\"").is_ok());
    }

    #[test]
    fn bad_statements_say_where() {
        let e = parse("SELECT a FROM \"t/#\" WHERE a >").unwrap_err();
        assert_eq!((e.line, e.column), (1, 30), "{e}");
        let e = parse("SELECT nosuch(a) FROM \"t/#\"").unwrap_err();
        assert_eq!((e.line, e.column), (1, 8), "{e}");
        let e = parse("SELECT a FROM \"t/#/x\"").unwrap_err();
        assert_eq!((e.line, e.column), (1, 15), "{e}");
        let e = parse("SELECT a FROM \"$events/nope\"").unwrap_err();
        assert!(e.message.contains("$events/nope"), "{e}");
        let e = parse("DELETE FROM t").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert!(parse("SELECT a").is_err());
    }
}
