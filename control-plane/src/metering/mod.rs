//! Metering: usage reports from broker nodes, rolled up per minute, hour and month.
//!
//! Each broker node counts exactly (product spec §5) and sends, every interval, the
//! *delta* since its previous report, per UTC minute, to
//! `POST /internal/v1/metering/reports`. A report is identified by the node, the node
//! process's `epoch` (its start time in ms) and a `seq` that starts at 1 per epoch and
//! grows by one. The control plane applies report `seq` only right after `seq - 1` of the
//! same (deployment, node, epoch): older ones are duplicates (acknowledged, ignored),
//! newer ones are a gap (409 `seq_gap` with the `expected_seq` to resend from). So a lost,
//! repeated or reordered report never drops or double-counts usage.
//!
//! Roll-ups are computed on write: applying a report upserts its minutes into the minute,
//! hour and month tables in the same transaction that advances the cursor. All three
//! merges are associative (sums add, maxima take the max), so the coarser tables are
//! exactly what re-aggregating the finer one would give, with no lateness window and no
//! background job to fall behind. Retention ([`retention`]) then only deletes old minute
//! and hour rows; months are kept.

pub mod report;
pub mod retention;
pub mod series;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use skyport_settings::config::MeteringTarget;

use crate::domain::{token, Id};
use crate::store::{Deployment, Store, StoreResult};

pub use report::{Report, ReportOutcome};

/// Prefix of node tokens, so leaked ones are recognisable.
pub const NODE_TOKEN_PREFIX: &str = "skn_";

/// Usage of one deployment over one period (a minute, an hour or a month), merged over
/// its nodes and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Usage {
    /// PUBLISH packets received from clients.
    pub messages_in: i64,
    /// PUBLISH packets sent to subscribers (retained deliveries excluded).
    pub messages_out: i64,
    /// Retained messages delivered on subscribe.
    pub retained_out: i64,
    /// Messages published through the deployment HTTP API.
    pub http_published: i64,
    /// MQTT application-layer bytes received.
    pub bytes_in: i64,
    /// MQTT application-layer bytes sent.
    pub bytes_out: i64,
    /// Messages dropped (offline queue overflow, throttling).
    pub dropped: i64,
    /// Highest session count (connected + persistent offline) in any second.
    pub sessions_max: i64,
    /// Highest connected-client count in any second.
    pub connected_max: i64,
    /// Highest persistent-offline session count in any second.
    pub offline_persistent_max: i64,
    /// Sum over sampled seconds of the session count (session-seconds).
    pub session_seconds: i64,
    /// Number of sampled seconds.
    pub seconds: i64,
    /// Highest TPS (messages counted by the TPS rule) in any second.
    pub tps_max: i64,
}

impl Usage {
    /// Adds `other` in: counters add, maxima take the max.
    pub fn merge(&mut self, other: &Usage) {
        self.messages_in = self.messages_in.saturating_add(other.messages_in);
        self.messages_out = self.messages_out.saturating_add(other.messages_out);
        self.retained_out = self.retained_out.saturating_add(other.retained_out);
        self.http_published = self.http_published.saturating_add(other.http_published);
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
        self.dropped = self.dropped.saturating_add(other.dropped);
        self.sessions_max = self.sessions_max.max(other.sessions_max);
        self.connected_max = self.connected_max.max(other.connected_max);
        self.offline_persistent_max = self
            .offline_persistent_max
            .max(other.offline_persistent_max);
        self.session_seconds = self.session_seconds.saturating_add(other.session_seconds);
        self.seconds = self.seconds.saturating_add(other.seconds);
        self.tps_max = self.tps_max.max(other.tps_max);
    }

    /// The TPS-counted total: in + out + retained + HTTP-published.
    pub fn messages(&self) -> i64 {
        self.messages_in
            .saturating_add(self.messages_out)
            .saturating_add(self.retained_out)
            .saturating_add(self.http_published)
    }
}

/// The periods usage is kept at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    Minute,
    Hour,
    Month,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Month];

    /// Start (Unix seconds) of the period of this granularity that contains `minute`
    /// (Unix seconds of a minute start).
    pub fn period_start(self, minute: i64) -> i64 {
        match self {
            Granularity::Minute => minute - minute.rem_euclid(60),
            Granularity::Hour => minute - minute.rem_euclid(3600),
            Granularity::Month => {
                let t = DateTime::from_timestamp(minute, 0).unwrap_or_default();
                month_start(t.year(), t.month()).unwrap_or_default()
            }
        }
    }
}

/// Unix seconds of the first instant of `year`-`month` (UTC).
pub fn month_start(year: i32, month: u32) -> Option<i64> {
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .map(|t| t.timestamp())
}

/// Where brokers send their reports and how they authenticate; given to the
/// orchestrator, which writes it into each broker's configuration.
#[derive(Clone)]
pub struct ReportingTarget {
    /// `http://<control plane>/internal/v1/metering/reports`.
    pub url: String,
    /// How often brokers report.
    pub interval: Duration,
    store: Arc<dyn Store>,
}

impl ReportingTarget {
    /// Reports go to `internal_url` (the control plane's base URL, as brokers reach it)
    /// every `interval`, which must not be zero.
    pub fn new(
        internal_url: &str,
        interval: Duration,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !interval.is_zero(),
            "--metering-interval must be longer than zero"
        );
        Ok(Self {
            url: format!(
                "{}/internal/v1/metering/reports",
                internal_url.trim_end_matches('/')
            ),
            interval,
            store,
        })
    }

    /// Records `node_token` as the deployment's (its hash only) and returns the
    /// `"metering"` section of the broker configuration, which carries the token itself.
    pub async fn enroll(
        &self,
        deployment: &Deployment,
        node_token: &str,
    ) -> StoreResult<MeteringTarget> {
        self.store
            .register_node_token(
                deployment.id,
                deployment.project_id,
                &token::hash(node_token),
            )
            .await?;
        Ok(MeteringTarget {
            url: self.url.clone(),
            token: Some(node_token.to_owned()),
            token_file: None,
            interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// The base URL brokers reach the control plane at: `explicit` (`--internal-url`), or
/// `http://` and the address the API is bound to, with loopback for an unspecified one.
pub fn internal_url(explicit: Option<&str>, bound: SocketAddr) -> anyhow::Result<String> {
    if let Some(url) = explicit {
        let parsed = reqwest::Url::parse(url)
            .map_err(|err| anyhow::anyhow!("--internal-url `{url}` is not a URL: {err}"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https"),
            "--internal-url `{url}` must be an http:// or https:// URL"
        );
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}", SocketAddr::new(ip, bound.port())))
}

/// A new node token.
pub fn generate_node_token() -> String {
    token::generate(NODE_TOKEN_PREFIX)
}

/// The deployment a node token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeToken {
    pub deployment_id: Id,
    pub project_id: Id,
    /// False once the deployment is deleted (its reports are then refused with 404).
    pub deployment_exists: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_contain_their_minute() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 29, 7, 25, 0)
            .unwrap()
            .timestamp();
        assert_eq!(Granularity::Minute.period_start(t), t);
        assert_eq!(
            Granularity::Hour.period_start(t),
            Utc.with_ymd_and_hms(2026, 11, 29, 7, 0, 0)
                .unwrap()
                .timestamp()
        );
        assert_eq!(
            Granularity::Month.period_start(t),
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
                .unwrap()
                .timestamp()
        );
    }

    #[test]
    fn internal_url_defaults_to_the_bound_address() {
        let url = |explicit, addr: &str| internal_url(explicit, addr.parse().unwrap());
        assert_eq!(
            url(None, "127.0.0.1:4000").unwrap(),
            "http://127.0.0.1:4000"
        );
        assert_eq!(url(None, "0.0.0.0:4000").unwrap(), "http://127.0.0.1:4000");
        assert_eq!(url(None, "[::]:4000").unwrap(), "http://[::1]:4000");
        assert_eq!(
            url(Some("http://cp.skyport:8080/"), "0.0.0.0:1").unwrap(),
            "http://cp.skyport:8080"
        );
        assert!(url(Some("cp:8080"), "0.0.0.0:1").is_err());
    }

    #[test]
    fn merge_adds_counters_and_keeps_maxima() {
        let mut a = Usage {
            messages_in: 1,
            sessions_max: 5,
            session_seconds: 10,
            seconds: 2,
            ..Default::default()
        };
        a.merge(&Usage {
            messages_in: 2,
            sessions_max: 3,
            tps_max: 7,
            session_seconds: 1,
            seconds: 1,
            ..Default::default()
        });
        assert_eq!(
            (
                a.messages_in,
                a.sessions_max,
                a.tps_max,
                a.session_seconds,
                a.seconds
            ),
            (3, 5, 7, 11, 3)
        );
    }
}
