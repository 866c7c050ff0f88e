//! A validated usage report and the outcome of applying it.

use std::collections::BTreeMap;

use super::{Granularity, Usage};
use crate::domain::Id;

/// Largest value any counter of one minute entry may carry (keeps sums far from
/// overflowing 64 bits).
pub const MAX_VALUE: i64 = 1_000_000_000_000_000;
/// Most minute entries one report may carry (five hours; the largest such report stays
/// under the 256 KiB body limit).
pub const MAX_MINUTES: usize = 300;
/// Longest node id, in bytes.
pub const MAX_NODE_ID_LEN: usize = 128;

/// One report of one broker node: the usage delta since its previous report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub deployment_id: Id,
    pub node_id: String,
    /// The node process's lifetime (its start, in ms).
    pub epoch: i64,
    /// 1, 2, 3, … within the epoch.
    pub seq: i64,
    /// Usage per minute (Unix seconds of the minute start); entries of the same minute
    /// are merged.
    pub minutes: BTreeMap<i64, Usage>,
}

impl Report {
    /// The report's usage merged into periods of `granularity`, in period order (the
    /// order rows are written in, so concurrent reports lock rows in the same order).
    pub fn periods(&self, granularity: Granularity) -> BTreeMap<i64, Usage> {
        let mut periods = BTreeMap::<i64, Usage>::new();
        for (&minute, usage) in &self.minutes {
            periods
                .entry(granularity.period_start(minute))
                .or_default()
                .merge(usage);
        }
        periods
    }
}

/// What applying a report did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Applied; reports up to `acked_seq` of its epoch are in.
    Applied { acked_seq: i64 },
    /// Already applied before (`seq` ≤ the last applied one); nothing changed.
    Duplicate { acked_seq: i64 },
    /// Reports before this one are missing: resend from `expected_seq`.
    Gap { expected_seq: i64 },
}
