//! Per-second sampling of the meter into per-minute records, the unit reports carry.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use super::meter::{Counts, Meter};

/// What happened in one wall-clock minute; part of the report format, so defined with it
/// in `skyport-settings`.
pub use skyport_settings::metering::MinuteRecord;

fn minute_label(unix_minute: i64) -> String {
    chrono::DateTime::from_timestamp(unix_minute, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:00Z").to_string())
        .unwrap_or_default()
}

/// Collects one-second samples into minute records until they are drained.
#[derive(Debug, Default)]
pub struct Aggregator {
    pending: Mutex<BTreeMap<i64, MinuteRecord>>,
}

impl Aggregator {
    /// Takes the meter's counters for the second that began at `second` (unix seconds)
    /// and folds them, with the session count at `now`, into that second's minute.
    pub fn sample(&self, meter: &Meter, second: i64, now: Instant) {
        let counts = meter.take();
        let sessions = meter.sessions(now);
        self.fold(
            second,
            &counts,
            sessions.connected,
            sessions.offline_persistent,
        );
    }

    fn fold(&self, second: i64, c: &Counts, connected: u64, offline: u64) {
        let minute = second.div_euclid(60) * 60;
        let mut pending = self.pending.lock().expect("aggregator lock");
        let r = pending.entry(minute).or_insert_with(|| MinuteRecord {
            minute: minute_label(minute),
            ..Default::default()
        });
        r.counts.add(c);
        let sessions = connected + offline;
        r.sessions_max = r.sessions_max.max(sessions);
        r.connected_max = r.connected_max.max(connected);
        r.offline_persistent_max = r.offline_persistent_max.max(offline);
        r.session_seconds += sessions;
        r.seconds += 1;
        r.tps_max = r.tps_max.max(c.tps_messages());
    }

    /// Everything sampled since the last drain, oldest minute first.
    pub fn drain(&self) -> Vec<MinuteRecord> {
        std::mem::take(&mut *self.pending.lock().expect("aggregator lock"))
            .into_values()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_fold_into_their_minute() {
        let meter = Meter::default();
        let agg = Aggregator::default();
        let now = Instant::now();
        let base = 1_764_400_020; // 07:07:00 UTC on a minute boundary
        assert_eq!(base % 60, 0);
        meter.publish_in();
        meter.publish_out(false);
        meter.session_connected("c");
        agg.sample(&meter, base, now);
        for _ in 0..5 {
            meter.publish_in();
        }
        agg.sample(&meter, base + 1, now);
        meter.publish_in();
        agg.sample(&meter, base + 60, now);
        let drained = agg.drain();
        assert_eq!(drained.len(), 2);
        assert_eq!(drained[0].minute, "2025-11-29T07:07:00Z");
        assert_eq!(drained[0].counts.messages_in, 6);
        assert_eq!(drained[0].counts.messages_out, 1);
        assert_eq!(drained[0].tps_max, 5);
        assert_eq!((drained[0].seconds, drained[0].session_seconds), (2, 2));
        assert_eq!(drained[1].counts.messages_in, 1);
        assert!(agg.drain().is_empty());
    }
}
