//! Errors of the deployment API in EMQX 4's shape: `{"code": <EMQX return code>,
//! "message": "..."}` with a matching HTTP status.
//!
//! Refusals that EMQX has no code for (what a deployment's plan does not allow) are
//! RFC 9457 `application/problem+json` instead, with a stable string `code`
//! (`plan_not_supported`, `plan_limit_reached`), as the control plane answers them.
//!
//! EMQX 4 return codes used here: 102 unknown error (500), 103 wrong app id or secret
//! (401), 104 empty username or password (400), 105 the object does not exist (404),
//! 107 missing request parameter (400), 108 invalid request parameter (400, or 409 when
//! a limit would be exceeded), 109 body is not JSON (400), 113 already exists (409),
//! 115 invalid topic (400). Skyport adds 403 with code 403 for what an app key's role
//! forbids (a read-only key's writes), its message starting with `forbidden_role:` as the
//! control plane's problem code.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::security::acl::{AclError, RuleError};
use crate::security::banned::BanError;
use crate::security::users::UserError;

pub const UNKNOWN_ERROR: u32 = 102;
pub const BAD_CREDENTIALS: u32 = 103;
pub const EMPTY_USERNAME_OR_PASSWORD: u32 = 104;
pub const NOT_FOUND: u32 = 105;
pub const MISSING_PARAMETER: u32 = 107;
pub const INVALID_PARAMETER: u32 = 108;
pub const NOT_JSON: u32 = 109;
pub const ALREADY_EXISTS: u32 = 113;
pub const INVALID_TOPIC: u32 = 115;
/// Skyport's own: the app key's role does not allow the request (not an EMQX 4 code).
pub const FORBIDDEN_ROLE: u32 = 403;

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// EMQX 4 return code (never 0).
    #[schema(example = 108)]
    pub code: u32,
    /// What went wrong, for people.
    pub message: String,
}

/// A refusal as `application/problem+json` (RFC 9457), the control plane's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`; `code` identifies the problem.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub type_: String,
    /// Short summary of the HTTP status.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// Stable, machine-readable problem code.
    #[schema(example = "plan_not_supported")]
    pub code: String,
}

/// An error of the deployment API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
    /// Answered as problem+json with this code instead of EMQX's shape.
    pub problem: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            problem: None,
        }
    }

    /// A refusal answered as problem+json with stable code `problem`.
    pub fn problem(status: StatusCode, problem: &'static str, detail: impl Into<String>) -> Self {
        Self {
            problem: Some(problem),
            ..Self::new(status, INVALID_PARAMETER, detail)
        }
    }

    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::bad_request(INVALID_PARAMETER, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, NOT_FOUND, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS, message)
    }

    /// 403: a read-only app key asked for a change.
    pub fn forbidden_role(message: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            FORBIDDEN_ROLE,
            format!("forbidden_role: {message}"),
        )
    }

    /// A failure of ours: logged with its cause, answered generically.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "deployment API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            UNKNOWN_ERROR,
            "internal error; see the broker's log",
        )
    }

    /// Prefixes the message with the position of the failing item of a batch.
    pub fn at_item(mut self, index: Option<usize>) -> Self {
        if let Some(i) = index {
            self.message = format!("item {i}: {}", self.message);
        }
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(code) = self.problem {
            let body = Problem {
                type_: "about:blank".to_owned(),
                title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
                status: self.status.as_u16(),
                detail: self.message,
                code: code.to_owned(),
            };
            let mut response = (self.status, Json(body)).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            return response;
        }
        let body = ErrorBody {
            code: self.code,
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"skyport\""),
            );
        }
        response
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::EmptyName { .. } | UserError::EmptyPassword => {
                Self::bad_request(EMPTY_USERNAME_OR_PASSWORD, e.to_string())
            }
            UserError::NameTooLong { .. }
            | UserError::PasswordTooLong { .. }
            | UserError::Duplicate { .. } => Self::invalid(e.to_string()),
            UserError::Exists { .. } => {
                Self::new(StatusCode::CONFLICT, ALREADY_EXISTS, e.to_string())
            }
            UserError::NotFound { .. } => Self::not_found(e.to_string()),
            UserError::Hash(_) | UserError::Io(_) => Self::internal(&e),
        }
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        match e {
            RuleError::Topic { .. } => Self::bad_request(INVALID_TOPIC, e.to_string()),
            RuleError::EmptySubject { .. } => {
                Self::bad_request(EMPTY_USERNAME_OR_PASSWORD, e.to_string())
            }
            RuleError::SubjectTooLong { .. } => Self::invalid(e.to_string()),
        }
    }
}

impl From<AclError> for ApiError {
    fn from(e: AclError) -> Self {
        match e {
            AclError::TooMany { .. } => {
                Self::new(StatusCode::CONFLICT, INVALID_PARAMETER, e.to_string())
            }
            AclError::NotFound => Self::not_found(e.to_string()),
            AclError::Io(_) => Self::internal(&e),
        }
    }
}

impl From<BanError> for ApiError {
    fn from(e: BanError) -> Self {
        match e {
            BanError::EmptyWho
            | BanError::WhoTooLong { .. }
            | BanError::BadPeerHost { .. }
            | BanError::AlreadyExpired { .. } => Self::invalid(e.to_string()),
            BanError::TooMany => Self::new(StatusCode::CONFLICT, INVALID_PARAMETER, e.to_string()),
            BanError::NotFound { .. } => Self::not_found(e.to_string()),
            BanError::Io(_) => Self::internal(&e),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(&e)
    }
}

/// Runs a blocking store operation (hashing, file I/O) off the async runtime.
pub async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?.map_err(Into::into)
}
