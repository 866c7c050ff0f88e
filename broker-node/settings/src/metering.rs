//! Usage reports, as a broker node sends them to the control plane's ingest endpoint
//! (`POST /internal/v1/metering/reports`).
//!
//! The control plane reads them with its own, stricter types (documented in its OpenAPI
//! document; every counter bounded, minutes checked); its tests feed it reports built
//! from these, so the two cannot drift.

use serde::{Deserialize, Serialize};

/// One report: the usage of one node since its previous report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub deployment_id: String,
    pub node_id: String,
    /// Start of the process lifetime that produced the report (unix ms).
    pub epoch: i64,
    /// 1, 2, 3… within the epoch.
    pub seq: u64,
    pub minutes: Vec<MinuteRecord>,
}

/// What happened in one wall-clock minute (or the part of it since the last report).
/// Counters add up across records of the same minute; maxima take the maximum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteRecord {
    /// Start of the minute, RFC 3339 UTC (e.g. `2026-11-29T07:25:00Z`).
    pub minute: String,
    /// Messages and bytes, summed over the sampled seconds.
    #[serde(flatten)]
    pub counts: Counts,
    pub sessions_max: u64,
    pub connected_max: u64,
    pub offline_persistent_max: u64,
    /// Sum over sampled seconds of the session count (session-seconds).
    pub session_seconds: u64,
    /// Seconds sampled.
    pub seconds: u64,
    /// Highest TPS-counted messages in any one second.
    pub tps_max: u64,
}

/// Counters of one interval (the node's meter takes and resets them every second).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub messages_in: u64,
    pub messages_out: u64,
    pub retained_out: u64,
    pub http_published: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dropped: u64,
}

impl Counts {
    /// Messages the TPS rule counts.
    pub fn tps_messages(&self) -> u64 {
        self.messages_in + self.messages_out + self.retained_out + self.http_published
    }

    pub fn add(&mut self, other: &Counts) {
        self.messages_in += other.messages_in;
        self.messages_out += other.messages_out;
        self.retained_out += other.retained_out;
        self.http_published += other.http_published;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.dropped += other.dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_flat_in_a_minute_record() {
        let record = MinuteRecord {
            minute: "2026-11-29T07:25:00Z".into(),
            counts: Counts {
                messages_in: 3,
                ..Counts::default()
            },
            seconds: 60,
            ..MinuteRecord::default()
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["messages_in"], 3);
        assert_eq!(json["seconds"], 60);
        assert!(json.get("counts").is_none());
        assert_eq!(
            serde_json::from_value::<MinuteRecord>(json).unwrap(),
            record
        );
    }
}
