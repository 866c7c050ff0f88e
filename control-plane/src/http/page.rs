//! Cursor pagination shared by list endpoints.

use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::Id;
use crate::error::ApiError;

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

/// `?limit=&cursor=` of a list endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A validated page request.
pub struct Page {
    pub after: Option<Id>,
    pub limit: i64,
}

impl PageQuery {
    pub fn parse(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_LIMIT}, got {limit}"),
            ));
        }
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(Page { after, limit })
    }
}

fn decode_cursor(cursor: &str) -> Result<Id, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| s.strip_prefix("after:").and_then(|id| id.parse().ok()))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "the cursor is not one this API issued")
        })
}

fn encode_cursor(id: Id) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{id}"))
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Cursor for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// Builds a page from rows fetched with `limit + 1`, so a full page knows whether
    /// another follows.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        page: &Page,
        id: impl Fn(&R) -> Id,
        map: impl Fn(R) -> T,
    ) -> Self {
        let more = rows.len() as i64 > page.limit;
        rows.truncate(page.limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|r| encode_cursor(id(r))))
            .flatten();
        Paged {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}
