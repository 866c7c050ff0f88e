//! Rules, resources and action buffers on the node's data volume (`rules.redb`, its own
//! redb file beside the session store).
//!
//! Rules and resources are written durably by the API before it answers. Buffer entries
//! are written by one writer thread that commits what has accumulated durably twice a
//! second and when the node stops, leaving out entries delivered in the meantime: a
//! planned restart keeps every buffered message, a crash may lose the last half second
//! of them.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

/// Rule id → rule record (JSON).
const RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("rules");
/// Resource id → resource record (JSON).
const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");
/// (action id, sequence) → one rule output waiting for its sink.
const BUFFER: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("buffer");

/// How often buffered entries are made durable.
const SYNC_EVERY: Duration = Duration::from_millis(500);

/// A change to an action's buffer.
pub enum BufferOp {
    Put {
        action: Arc<str>,
        seq: u64,
        data: bytes::Bytes,
    },
    /// Removes the action's entries up to and including `seq`.
    DeleteUpTo { action: Arc<str>, seq: u64 },
    /// Removes every entry of the action (it was deleted).
    DeleteAll { action: Arc<str> },
    /// Commits durably, then answers.
    Sync(oneshot::Sender<()>),
}

/// The rule engine's store. Cheap to clone.
#[derive(Clone)]
pub struct RuleStore {
    db: Arc<Database>,
    writer: flume::Sender<BufferOp>,
}

/// A failure of the rule store (boxed: redb's errors are large).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreError(Box<redb::Error>);

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        Self(Box::new(e.into()))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

impl RuleStore {
    /// Opens (or creates) `path` and starts the buffer writer.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let db = Arc::new(Database::create(path)?);
        let tx = db.begin_write()?;
        tx.open_table(RULES)?;
        tx.open_table(RESOURCES)?;
        tx.open_table(BUFFER)?;
        tx.commit()?;
        let (writer, rx) = flume::unbounded();
        let for_thread = db.clone();
        std::thread::Builder::new()
            .name("rules-buffer".into())
            .spawn(move || write_buffers(&for_thread, &rx))
            .map_err(redb::Error::Io)?;
        Ok(Self { db, writer })
    }

    /// The sender buffers write through.
    pub fn buffer_writer(&self) -> flume::Sender<BufferOp> {
        self.writer.clone()
    }

    /// Makes every buffered entry durable (planned stop).
    pub async fn sync(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(BufferOp::Sync(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub fn rules(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.all(RULES)
    }

    pub fn resources(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.all(RESOURCES)
    }

    fn all(&self, table: TableDefinition<&str, &[u8]>) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(table)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    pub fn put_rule(&self, id: &str, record: &[u8]) -> StoreResult<()> {
        self.put(RULES, id, record)
    }

    pub fn delete_rule(&self, id: &str) -> StoreResult<()> {
        self.delete(RULES, id)
    }

    pub fn put_resource(&self, id: &str, record: &[u8]) -> StoreResult<()> {
        self.put(RESOURCES, id, record)
    }

    pub fn delete_resource(&self, id: &str) -> StoreResult<()> {
        self.delete(RESOURCES, id)
    }

    fn put(&self, table: TableDefinition<&str, &[u8]>, id: &str, record: &[u8]) -> StoreResult<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(table)?.insert(id, record)?;
        tx.commit()?;
        Ok(())
    }

    fn delete(&self, table: TableDefinition<&str, &[u8]>, id: &str) -> StoreResult<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(table)?.remove(id)?;
        tx.commit()?;
        Ok(())
    }

    /// The entries buffered for `action`, oldest first.
    pub fn buffered(&self, action: &str) -> StoreResult<Vec<(u64, bytes::Bytes)>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(BUFFER)?;
        let mut out = Vec::new();
        for row in table.range((action, 0)..=(action, u64::MAX))? {
            let (k, v) = row?;
            out.push((k.value().1, bytes::Bytes::copy_from_slice(v.value())));
        }
        Ok(out)
    }

    /// Actions that have buffered entries.
    pub fn buffered_actions(&self) -> StoreResult<Vec<String>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(BUFFER)?;
        let mut out: Vec<String> = Vec::new();
        for row in table.iter()? {
            let (k, _) = row?;
            let action = k.value().0;
            if out.last().map(String::as_str) != Some(action) {
                out.push(action.to_owned());
            }
        }
        Ok(out)
    }
}

/// Pending ops beyond which the writer commits before the next sync is due.
const MAX_PENDING: usize = 200_000;

/// The buffer writer: ops accumulate in memory and are committed durably every
/// [`SYNC_EVERY`] (or at once when asked to sync), after [`coalesce`] has dropped
/// entries already delivered. Nothing is weaker than committing each batch without
/// fsync (a crash loses the last half second either way), and a sink that keeps up
/// costs no disk writes at all.
fn write_buffers(db: &Database, rx: &flume::Receiver<BufferOp>) {
    let mut pending: Vec<BufferOp> = Vec::new();
    let mut due = Instant::now() + SYNC_EVERY;
    loop {
        let op = if pending.is_empty() {
            rx.recv().map_err(|_| flume::RecvTimeoutError::Disconnected)
        } else {
            rx.recv_deadline(due)
        };
        let sync = match op {
            Ok(op) => {
                let mut sync = matches!(op, BufferOp::Sync(_));
                if pending.is_empty() {
                    due = Instant::now() + SYNC_EVERY;
                }
                pending.push(op);
                for op in rx.try_iter().take(10_000) {
                    sync |= matches!(op, BufferOp::Sync(_));
                    pending.push(op);
                }
                sync
            }
            Err(flume::RecvTimeoutError::Timeout) => true,
            Err(flume::RecvTimeoutError::Disconnected) => {
                if pending.is_empty() {
                    return;
                }
                true
            }
        };
        if !(sync || Instant::now() >= due || pending.len() >= MAX_PENDING) {
            continue;
        }
        let mut replies = Vec::new();
        if let Err(e) = apply(db, coalesce(std::mem::take(&mut pending)), &mut replies) {
            tracing::error!(error = %e, "cannot write the rule buffers");
        }
        for reply in replies {
            let _ = reply.send(());
        }
    }
}

/// Drops what needs no writing: entries a later op of the same batch deletes, and every
/// deletion of an action but its furthest one.
fn coalesce(ops: Vec<BufferOp>) -> Vec<BufferOp> {
    use std::collections::HashMap;
    let mut delete_to: HashMap<Arc<str>, u64> = HashMap::new();
    let mut discarded_at: HashMap<Arc<str>, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            BufferOp::DeleteUpTo { action, seq } => {
                let to = delete_to.entry(action.clone()).or_insert(*seq);
                *to = (*to).max(*seq);
            }
            BufferOp::DeleteAll { action } => {
                discarded_at.insert(action.clone(), i);
            }
            BufferOp::Put { .. } | BufferOp::Sync(_) => {}
        }
    }
    ops.into_iter()
        .enumerate()
        .filter(|(i, op)| match op {
            BufferOp::Put { action, seq, .. } => {
                delete_to.get(action).is_none_or(|to| seq > to)
                    && discarded_at.get(action).is_none_or(|at| i > at)
            }
            BufferOp::DeleteUpTo { action, seq } => delete_to.get(action) == Some(seq),
            BufferOp::DeleteAll { .. } | BufferOp::Sync(_) => true,
        })
        .map(|(_, op)| op)
        .collect()
}

/// Applies `ops` in one durable transaction.
fn apply(
    db: &Database,
    ops: Vec<BufferOp>,
    replies: &mut Vec<oneshot::Sender<()>>,
) -> StoreResult<()> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate);
    {
        let mut table = tx.open_table(BUFFER)?;
        for op in ops {
            match op {
                BufferOp::Put { action, seq, data } => {
                    table.insert((&*action, seq), data.as_ref())?;
                }
                BufferOp::DeleteUpTo { action, seq } => {
                    table.retain_in((&*action, 0)..=(&*action, seq), |_, _| false)?;
                }
                BufferOp::DeleteAll { action } => {
                    table.retain_in((&*action, 0)..=(&*action, u64::MAX), |_, _| false)?;
                }
                BufferOp::Sync(reply) => replies.push(reply),
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(action: &Arc<str>, seq: u64) -> BufferOp {
        BufferOp::Put {
            action: action.clone(),
            seq,
            data: bytes::Bytes::from_static(b"x"),
        }
    }

    fn kept(ops: &[BufferOp]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                BufferOp::Put { action, seq, .. } => format!("put {action} {seq}"),
                BufferOp::DeleteUpTo { action, seq } => format!("delete {action} ..={seq}"),
                BufferOp::DeleteAll { action } => format!("discard {action}"),
                BufferOp::Sync(_) => "sync".to_owned(),
            })
            .collect()
    }

    #[test]
    fn delivered_entries_are_never_written() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let ops = vec![
            put(&a, 1),
            put(&a, 2),
            put(&b, 1),
            BufferOp::DeleteUpTo {
                action: a.clone(),
                seq: 1,
            },
            put(&a, 3),
            BufferOp::DeleteUpTo {
                action: a.clone(),
                seq: 2,
            },
            put(&b, 2),
            BufferOp::DeleteAll { action: b.clone() },
            put(&b, 3),
        ];
        assert_eq!(
            kept(&coalesce(ops)),
            ["put a 3", "delete a ..=2", "discard b", "put b 3"]
        );
    }
}
