//! Time series over stored usage: which table answers a step, which buckets a range
//! covers, and what each point reports.
//!
//! Buckets are aligned on multiples of the step since the Unix epoch (so `1d` buckets are
//! UTC days) and cover every bucket that intersects `[from, to)`. Steps that are whole
//! hours are answered from the hour table (kept longer), other whole-minute steps from the
//! minute table.

use std::collections::HashMap;

use super::{Granularity, Usage};
use crate::store::UsageRow;

/// Most points one query may return.
pub const MAX_POINTS: i64 = 1440;
/// Longest step: a (leap) year.
pub const MAX_STEP_SECONDS: i64 = 366 * 24 * 3600;

/// A validated series request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub granularity: Granularity,
    /// Start of the first bucket (Unix seconds).
    pub start: i64,
    /// End of the last bucket (exclusive).
    pub end: i64,
    pub step: i64,
}

/// Why a series request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    InvalidStep(String),
    InvalidRange,
    TooManyPoints(i64),
}

impl Plan {
    /// Plans the buckets of `[from, to)` (Unix seconds) at `step_seconds`.
    pub fn new(from: i64, to: i64, step_seconds: i64) -> Result<Self, PlanError> {
        if step_seconds <= 0 || step_seconds % 60 != 0 {
            return Err(PlanError::InvalidStep(
                "step must be a positive whole number of minutes, e.g. 1m, 5m, 1h or 1d".into(),
            ));
        }
        if step_seconds > MAX_STEP_SECONDS {
            return Err(PlanError::InvalidStep("step must be at most 366d".into()));
        }
        if from > to {
            return Err(PlanError::InvalidRange);
        }
        let granularity = if step_seconds % 3600 == 0 {
            Granularity::Hour
        } else {
            Granularity::Minute
        };
        let start = from.div_euclid(step_seconds) * step_seconds;
        let end = if from == to {
            start
        } else {
            // Ceiling of `to` to a bucket boundary.
            (to - 1).div_euclid(step_seconds) * step_seconds + step_seconds
        };
        let points = (end - start) / step_seconds;
        if points > MAX_POINTS {
            return Err(PlanError::TooManyPoints(points));
        }
        Ok(Plan {
            granularity,
            start,
            end,
            step: step_seconds,
        })
    }

    /// Every bucket, filled from `rows` (bucket starts as keys); empty buckets are zero.
    pub fn points(&self, rows: Vec<UsageRow>) -> Vec<Point> {
        let by_start: HashMap<i64, Usage> = rows
            .into_iter()
            .map(|r| (r.period_start, r.usage))
            .collect();
        (self.start..self.end)
            .step_by(usize::try_from(self.step).unwrap_or(usize::MAX))
            .map(|start| {
                Point::new(
                    start,
                    self.step,
                    by_start.get(&start).copied().unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// One point of a series: the usage of the bucket `[start, start + step)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub start: i64,
    pub sessions_max: i64,
    /// Session-seconds over the bucket's seconds: the time-weighted mean session count.
    pub sessions_avg: f64,
    pub connected_max: i64,
    pub offline_persistent_max: i64,
    pub tps_max: i64,
    /// Messages over the bucket's seconds.
    pub tps_avg: f64,
    pub usage: Usage,
}

impl Point {
    fn new(start: i64, step: i64, usage: Usage) -> Self {
        let seconds = step as f64;
        Point {
            start,
            sessions_max: usage.sessions_max,
            sessions_avg: usage.session_seconds as f64 / seconds,
            connected_max: usage.connected_max,
            offline_persistent_max: usage.offline_persistent_max,
            tps_max: usage.tps_max,
            tps_avg: usage.messages() as f64 / seconds,
            usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_range_aligned_on_the_step() {
        let plan = Plan::new(90, 330, 120).unwrap();
        assert_eq!(
            (plan.start, plan.end, plan.granularity),
            (0, 360, Granularity::Minute)
        );
        let plan = Plan::new(7200, 7200 + 86_400, 3600).unwrap();
        assert_eq!(
            (plan.start, plan.end, plan.granularity),
            (7200, 7200 + 86_400, Granularity::Hour)
        );
        assert_eq!(Plan::new(60, 60, 60).unwrap().points(vec![]).len(), 0);
    }

    #[test]
    fn bad_requests_are_refused_precisely() {
        assert!(matches!(
            Plan::new(0, 60, 30),
            Err(PlanError::InvalidStep(_))
        ));
        assert!(matches!(
            Plan::new(0, 60, 0),
            Err(PlanError::InvalidStep(_))
        ));
        assert_eq!(Plan::new(120, 60, 60), Err(PlanError::InvalidRange));
        assert_eq!(
            Plan::new(0, 1441 * 60, 60),
            Err(PlanError::TooManyPoints(1441))
        );
        assert!(Plan::new(0, 1440 * 60, 60).is_ok());
    }

    #[test]
    fn averages_are_over_the_whole_bucket() {
        let plan = Plan::new(0, 120, 60).unwrap();
        let usage = Usage {
            session_seconds: 600,
            messages_in: 30,
            messages_out: 60,
            seconds: 60,
            ..Default::default()
        };
        let points = plan.points(vec![UsageRow {
            period_start: 60,
            usage,
        }]);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].usage, Usage::default());
        assert_eq!(points[1].sessions_avg, 10.0);
        assert_eq!(points[1].tps_avg, 1.5);
    }
}
