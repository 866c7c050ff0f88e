//! `data_to_pgsql` and `data_to_mysql`: an INSERT template per output; a batch becomes
//! one multi-row INSERT (one statement: all rows or none). Values are rendered as quoted
//! SQL literals, which the database casts to each column's type (both sessions treat a
//! backslash as an ordinary character, see `resource/sql.rs`).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{param, Failure};
use crate::rules::resource::{self, Connection, Resource};
use crate::rules::template::Template;

pub struct Insert {
    pub resource: Arc<Resource>,
    /// Everything up to and including `VALUES`.
    head: String,
    /// The row tuple, e.g. `(${a}, ${b})`.
    row: Template,
    /// What follows the tuple (e.g. `ON CONFLICT DO NOTHING`).
    tail: String,
    pub batch_size: usize,
}

impl Insert {
    pub fn prepare(params: &Map<String, Value>, resource: Arc<Resource>) -> Result<Self, String> {
        let sql = param(params, "sql", "")?;
        let upper = sql.to_ascii_uppercase();
        let at = upper
            .find("VALUES")
            .filter(|_| upper.trim_start().starts_with("INSERT"))
            .ok_or("sql must be INSERT INTO … VALUES (…)")?;
        let head = sql[..at + "VALUES".len()].to_owned();
        let rest = &sql[at + "VALUES".len()..];
        let open = rest.find('(').ok_or("sql: VALUES needs a (…) tuple")?;
        let close = tuple_end(rest, open).ok_or("sql: unbalanced parentheses after VALUES")?;
        let row = Template::parse(&rest[open..=close]).map_err(|e| format!("sql: {e}"))?;
        let batch_size = resource::unsigned(params, "batch_size", 100)?;
        if !(1..=1000).contains(&batch_size) {
            return Err(format!("batch_size must be 1 to 1000; got {batch_size}"));
        }
        Ok(Self {
            resource,
            head,
            row,
            tail: rest[close + 1..]
                .trim_end()
                .trim_end_matches(';')
                .to_owned(),
            batch_size: batch_size as usize,
        })
    }

    /// The statement inserting every output of `batch`.
    pub fn statement(&self, batch: &[Map<String, Value>]) -> String {
        let rows: Vec<String> = batch
            .iter()
            .map(|output| self.row.render_with(output, literal))
            .collect();
        format!("{} {}{}", self.head, rows.join(", "), self.tail)
    }

    pub async fn deliver(&self, batch: &[Map<String, Value>]) -> Result<(), Failure> {
        let statement = self.statement(batch);
        let (done, service) = match &self.resource.conn {
            Connection::Pgsql { pool } => (
                sqlx::raw_sql(&statement).execute(pool).await.map(drop),
                "PostgreSQL",
            ),
            Connection::Mysql { pool } => (
                sqlx::raw_sql(&statement).execute(pool).await.map(drop),
                "MySQL",
            ),
            _ => return Err(Failure::refused("not an SQL resource")),
        };
        match done {
            Ok(()) => Ok(()),
            // The database refused the statement (a constraint, a bad value): trying
            // again cannot help.
            Err(sqlx::Error::Database(e)) => Err(Failure::refused(format!("{service}: {e}"))),
            Err(e) => Err(Failure::retry(format!("{service}: {e}"))),
        }
    }
}

/// Where the tuple opened at `open` closes (quotes respected).
fn tuple_end(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// A value as an SQL literal: NULL, or a single-quoted string (quotes doubled, NUL
/// characters removed, which PostgreSQL text cannot hold; backslashes are ordinary
/// characters in both databases' sessions).
fn literal(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => return "NULL".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    format!("'{}'", text.replace('\0', "").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::literal;
    use serde_json::json;

    #[test]
    fn literals_are_quoted() {
        assert_eq!(literal(Some(&json!("it's"))), "'it''s'");
        assert_eq!(literal(Some(&json!(3))), "'3'");
        assert_eq!(literal(None), "NULL");
        assert_eq!(literal(Some(&json!({"a": 1}))), "'{\"a\":1}'");
    }
}
