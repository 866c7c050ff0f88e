//! An action's bounded buffer: rule outputs wait here, in order, until their sink takes
//! them. Kept in memory and mirrored in `rules.redb` (see `store.rs`); beyond the bound
//! (messages or bytes) the oldest are dropped and counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::store::BufferOp;

/// How much an action's buffer holds before the oldest entries are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_messages: 10_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Counters of one action.
#[derive(Debug, Default)]
pub struct Counters {
    pub success: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub retried: AtomicU64,
}

/// One action's buffer.
pub struct Buffer {
    action: Arc<str>,
    limits: Limits,
    state: Mutex<State>,
    ready: Notify,
    disk: flume::Sender<BufferOp>,
    pub counters: Counters,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(u64, Bytes)>,
    bytes: usize,
    next_seq: u64,
}

impl Buffer {
    /// A buffer holding `restored` (entries read back from the store).
    pub fn new(
        action: &str,
        limits: Limits,
        disk: flume::Sender<BufferOp>,
        restored: Vec<(u64, Bytes)>,
    ) -> Self {
        let bytes = restored.iter().map(|(_, d)| d.len()).sum();
        let next_seq = restored.last().map_or(1, |(seq, _)| seq + 1);
        Self {
            action: action.into(),
            limits,
            state: Mutex::new(State {
                queue: restored.into(),
                bytes,
                next_seq,
            }),
            ready: Notify::new(),
            disk,
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `data`, dropping the oldest entries beyond the bound. Never blocks on I/O.
    pub fn push(&self, data: Bytes) {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.bytes += data.len();
        let _ = self.disk.send(BufferOp::Put {
            action: self.action.clone(),
            seq,
            data: data.clone(),
        });
        state.queue.push_back((seq, data));
        let mut dropped_to = None;
        while state.queue.len() > self.limits.max_messages
            || (state.bytes > self.limits.max_bytes && state.queue.len() > 1)
        {
            let Some((seq, data)) = state.queue.pop_front() else {
                break;
            };
            state.bytes -= data.len();
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            dropped_to = Some(seq);
        }
        drop(state);
        if let Some(seq) = dropped_to {
            let _ = self.disk.send(BufferOp::DeleteUpTo {
                action: self.action.clone(),
                seq,
            });
        }
        self.ready.notify_one();
    }

    /// Up to `max` entries from the front, waiting while there are none.
    pub async fn peek(&self, max: usize) -> Vec<(u64, Bytes)> {
        loop {
            let notified = self.ready.notified();
            {
                let state = self.lock();
                if !state.queue.is_empty() {
                    return state.queue.iter().take(max).cloned().collect();
                }
            }
            notified.await;
        }
    }

    /// The sink took every entry up to `seq`: forget them.
    pub fn ack(&self, seq: u64) {
        let mut state = self.lock();
        while state.queue.front().is_some_and(|(s, _)| *s <= seq) {
            if let Some((_, data)) = state.queue.pop_front() {
                state.bytes -= data.len();
            }
        }
        drop(state);
        let _ = self.disk.send(BufferOp::DeleteUpTo {
            action: self.action.clone(),
            seq,
        });
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// Forgets everything, on disk too (the action was removed).
    pub fn discard(&self) {
        let mut state = self.lock();
        state.queue.clear();
        state.bytes = 0;
        let _ = self.disk.send(BufferOp::DeleteAll {
            action: self.action.clone(),
        });
    }
}
