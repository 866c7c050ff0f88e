//! Success answers in EMQX 4's shape: `{"code": 0}`, `{"code": 0, "data": …}`, and for
//! lists `{"code": 0, "data": […], "meta": {"page", "limit", "count"}}` paged with the
//! `_page` and `_limit` query parameters.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;

/// Default and largest page size.
pub const MAX_LIMIT: usize = 10_000;

/// `{"code": 0}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    /// Always 0.
    pub code: u32,
}

pub fn done() -> Json<Done> {
    Json(Done { code: 0 })
}

/// `{"code": 0, "data": …}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    /// Always 0.
    pub code: u32,
    pub data: T,
}

pub fn data<T>(data: T) -> Json<Data<T>> {
    Json(Data { code: 0, data })
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    /// Always 0.
    pub code: u32,
    pub data: Vec<T>,
    pub meta: Meta,
}

/// Where a page is in its list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    /// Page number, from 1.
    pub page: usize,
    /// Page size.
    pub limit: usize,
    /// Items in the whole list.
    pub count: usize,
}

/// The `_page` and `_limit` query parameters, as documented.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1)]
    _page: Option<usize>,
    /// Page size, 1 to 10000 (default 10000).
    #[param(minimum = 1, maximum = 10000)]
    _limit: Option<usize>,
}

/// Which page of a list to answer, from `_page` and `_limit`.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub page: usize,
    pub limit: usize,
}

impl Paging {
    /// The page of `items`.
    pub fn page<T>(self, items: Vec<T>) -> Json<Paged<T>> {
        let count = items.len();
        let data = items
            .into_iter()
            .skip((self.page - 1).saturating_mul(self.limit))
            .take(self.limit)
            .collect();
        Json(Paged {
            code: 0,
            data,
            meta: Meta {
                page: self.page,
                limit: self.limit,
                count,
            },
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        let number = |name: &str, default: usize, max: usize| match params.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(format!(
                    "{name} must be an integer from 1 to {max}; got {text:?}"
                ))),
            },
        };
        Ok(Self {
            page: number("_page", 1, usize::MAX)?,
            limit: number("_limit", MAX_LIMIT, MAX_LIMIT)?,
        })
    }
}
