//! Per-caller rate limits of `/api/v1`.
//!
//! Each credential (API key, admin token or console session) has its own token bucket
//! (governor's GCRA): `q` requests at once, refilled evenly over `w` seconds. Every
//! limited answer carries `RateLimit-Policy` and `RateLimit` (the IETF httpapi
//! rate-limit header fields: quota `q`, window `w`, remaining `r`, seconds `t` until the
//! bucket is full again); a refused request is 429 `rate_limited` with `Retry-After`.
//! Requests without credentials are not limited here: they are refused (401) before
//! any work, and sign-in has its own lockout.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};

use crate::app::AppState;
use crate::domain::token;
use crate::error::ApiError;

/// Name of the (only) policy in the header fields.
const POLICY: &str = "per-key";
/// Buckets kept before idle ones are forgotten.
const MAX_TRACKED: usize = 10_000;

/// `--rate-limit`: `N/DURATION` (e.g. `200/10s`), or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Requests allowed at once (the bucket's size).
    pub quota: NonZeroU32,
    /// Time to refill an empty bucket.
    pub window: Duration,
}

/// The `--rate-limit` setting: a policy, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitSetting(pub Option<RateLimitPolicy>);

impl FromStr for RateLimitSetting {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.trim().eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        let (quota, window) = raw
            .split_once('/')
            .ok_or_else(|| format!("`{raw}`: expected N/DURATION (e.g. 200/10s) or off"))?;
        let quota: NonZeroU32 = quota
            .trim()
            .parse()
            .map_err(|_| format!("`{quota}` is not a positive number of requests"))?;
        let window = humantime::parse_duration(window.trim())
            .map_err(|err| format!("`{window}` is not a duration: {err}"))?;
        if window.is_zero() || window / quota.get() == Duration::ZERO {
            return Err(format!(
                "`{raw}`: the window is too short for {quota} requests"
            ));
        }
        Ok(Self(Some(RateLimitPolicy { quota, window })))
    }
}

type KeyedLimiter =
    Governor<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// The buckets of every caller.
pub struct RateLimiter {
    policy: RateLimitPolicy,
    limiter: KeyedLimiter,
    clock: DefaultClock,
}

impl RateLimiter {
    pub fn new(policy: RateLimitPolicy) -> Self {
        let quota = Quota::with_period(policy.window / policy.quota.get())
            .expect("the period is not zero (checked when parsed)")
            .allow_burst(policy.quota);
        Self {
            policy,
            limiter: Governor::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            clock: DefaultClock::default(),
        }
    }

    fn policy_header(&self) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "\"{POLICY}\";q={};w={}",
            self.policy.quota,
            self.policy.window.as_secs().max(1)
        ))
        .expect("ASCII")
    }

    /// Seconds until a bucket with `remaining` requests left is full again.
    fn refill_secs(&self, remaining: u32) -> u64 {
        let missing = u64::from(self.policy.quota.get() - remaining.min(self.policy.quota.get()));
        let per_request = self.policy.window.as_secs_f64() / f64::from(self.policy.quota.get());
        (missing as f64 * per_request).ceil() as u64
    }

    /// Takes one request from `caller`'s bucket: the header fields to answer with, or
    /// (refused) how many seconds until a request is allowed again.
    fn check(&self, caller: &str) -> Result<[HeaderValue; 2], u64> {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(&caller.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok([
                    self.policy_header(),
                    self.state_header(remaining, self.refill_secs(remaining)),
                ])
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
        }
    }

    /// The 429 answer, retry allowed in `retry_after` seconds.
    fn refusal(&self, retry_after: u64) -> Response {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests in {:?} with this credential; retry in {retry_after} s",
                self.policy.quota, self.policy.window
            ),
        )
        .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        headers.insert("ratelimit-policy", self.policy_header());
        headers.insert("ratelimit", self.state_header(0, self.refill_secs(0)));
        response
    }

    fn state_header(&self, remaining: u32, reset_secs: u64) -> HeaderValue {
        HeaderValue::from_str(&format!("\"{POLICY}\";r={remaining};t={reset_secs}")).expect("ASCII")
    }
}

/// The credential a request carries (bearer token or session cookie), hashed: the
/// bucket's key. `None` for a request without one.
pub fn credential(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return Some(token::hash(value.trim()));
    }
    super::auth::cookie(headers, super::auth::SESSION_COOKIE)
        .map(|session| token::hash(&format!("session:{session}")))
}

/// Middleware of `/api/v1`: applies the caller's rate limit, when one is configured.
pub async fn limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(limiter) = &state.limits.rate_limiter else {
        return next.run(req).await;
    };
    let Some(caller) = credential(req.headers()) else {
        return next.run(req).await;
    };
    match limiter.check(&caller) {
        Ok([policy, current]) => {
            let mut response = next.run(req).await;
            let headers = response.headers_mut();
            headers.insert("ratelimit-policy", policy);
            headers.insert("ratelimit", current);
            response
        }
        Err(retry_after) => limiter.refusal(retry_after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_setting() {
        let RateLimitSetting(Some(p)) = "200/10s".parse().unwrap() else {
            panic!("a policy")
        };
        assert_eq!((p.quota.get(), p.window), (200, Duration::from_secs(10)));
        assert_eq!(
            "off".parse::<RateLimitSetting>().unwrap(),
            RateLimitSetting(None)
        );
        for bad in ["0/1s", "10", "x/1s", "10/0s", "10/eternity"] {
            assert!(bad.parse::<RateLimitSetting>().is_err(), "{bad}");
        }
    }
}
