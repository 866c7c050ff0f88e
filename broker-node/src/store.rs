//! The node's durable state on its data volume: persistent sessions, their queued and
//! in-flight messages, retained messages, and the inbound log that makes a QoS 1/2
//! message durable before its publisher is acknowledged.
//!
//! The store is [redb](https://docs.rs/redb): a pure-Rust, ACID, copy-on-write B-tree in
//! one file, with no background compaction threads and a stable file format — chosen over
//! sled (unmaintained, unstable format) and RocksDB (a C++ build and far more memory) for
//! a broker that must start in a second and stay small. All writes go through one writer
//! thread that commits whatever has accumulated in one transaction (group commit, fsync
//! once per batch); a caller that needs durability waits for its batch's commit.

use std::path::Path;
use std::sync::mpsc as std_mpsc;

use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

/// Client id → session record (JSON).
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (client id, position in the session's queue) → stored message.
const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
/// Topic → stored retained message.
const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
/// Inbound log: sequence → stored message with its arrival time.
const INBOUND: TableDefinition<u64, &[u8]> = TableDefinition::new("inbound");
/// (inbound sequence, client id): the session has taken the message into its queue.
const TAKEN: TableDefinition<(u64, &str), ()> = TableDefinition::new("taken");
/// (client id, packet id): a QoS 2 PUBLISH of a persistent session was received and
/// acknowledged with PUBREC, and its PUBREL is still to come. Kept so that the same
/// PUBLISH sent again after a crash is not delivered twice [MQTT-4.3.3-10].
const INCOMING: TableDefinition<(&str, u16), ()> = TableDefinition::new("incoming_qos2");

/// Why the store could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("session store {path}: {source}")]
pub struct StoreError {
    pub path: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// One change to the store.
#[derive(Debug)]
pub enum Op {
    PutSession {
        client_id: String,
        record: Vec<u8>,
    },
    /// Removes a session, its queue, its received QoS 2 packet ids and nothing else.
    DeleteSession {
        client_id: String,
    },
    /// A QoS 2 packet id received (PUBREC sent) and not yet released.
    PutIncoming {
        client_id: String,
        pkid: u16,
    },
    /// The client released it (PUBREL).
    DeleteIncoming {
        client_id: String,
        pkid: u16,
    },
    PutQueued {
        client_id: String,
        position: u64,
        message: Vec<u8>,
    },
    DeleteQueued {
        client_id: String,
        position: u64,
    },
    PutRetained {
        topic: String,
        message: Vec<u8>,
    },
    DeleteRetained {
        topic: String,
    },
    PutInbound {
        seq: u64,
        message: Vec<u8>,
    },
    Taken {
        seq: u64,
        client_id: String,
    },
    /// Drops inbound entries below `below` and their `taken` marks.
    TrimInbound {
        below: u64,
    },
}

struct Batch {
    ops: Vec<Op>,
    done: Option<oneshot::Sender<()>>,
}

/// Handle to the store. Cheap to clone; the last clone to go closes the file (after its
/// writer has committed everything queued).
#[derive(Clone)]
pub struct Store {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    writer: std::sync::Mutex<Option<std_mpsc::Sender<Batch>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    db: std::sync::Arc<Database>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer thread once it has drained it.
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// Everything read back at start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sessions: Vec<(String, Vec<u8>)>,
    /// Per client id, its queue in order: (position, message).
    pub queues: std::collections::HashMap<String, Vec<(u64, Vec<u8>)>>,
    pub retained: Vec<(String, Vec<u8>)>,
    pub inbound: Vec<(u64, Vec<u8>)>,
    pub taken: std::collections::HashSet<(u64, String)>,
    /// Per client id, the QoS 2 packet ids received and not yet released.
    pub incoming: std::collections::HashMap<String, Vec<u16>>,
}

impl Store {
    /// Opens (or creates) the store file at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError {
            path: path.display().to_string(),
            source: e,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
        }
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        // Create the tables so readers never meet a missing one.
        let tx = db.begin_write().map_err(|e| err(e.into()))?;
        {
            tx.open_table(SESSIONS).map_err(|e| err(e.into()))?;
            tx.open_table(QUEUE).map_err(|e| err(e.into()))?;
            tx.open_table(RETAINED).map_err(|e| err(e.into()))?;
            tx.open_table(INBOUND).map_err(|e| err(e.into()))?;
            tx.open_table(TAKEN).map_err(|e| err(e.into()))?;
            tx.open_table(INCOMING).map_err(|e| err(e.into()))?;
        }
        tx.commit().map_err(|e| err(e.into()))?;
        let db = std::sync::Arc::new(db);
        let (writer, batches) = std_mpsc::channel::<Batch>();
        let thread_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("session-store".into())
            .spawn(move || write_loop(&thread_db, &batches))
            .map_err(|e| err(e.into()))?;
        Ok(Self {
            inner: std::sync::Arc::new(Inner {
                writer: std::sync::Mutex::new(Some(writer)),
                thread: std::sync::Mutex::new(Some(thread)),
                db,
            }),
        })
    }

    /// Queues `ops` for the next commit without waiting.
    pub fn write(&self, ops: Vec<Op>) {
        if !ops.is_empty() {
            self.send(Batch { ops, done: None });
        }
    }

    /// Queues `ops` and waits until they are committed to disk.
    pub async fn write_durable(&self, ops: Vec<Op>) {
        let (done, committed) = oneshot::channel();
        if self.send(Batch {
            ops,
            done: Some(done),
        }) {
            let _ = committed.await;
        }
    }

    fn send(&self, batch: Batch) -> bool {
        let writer = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.as_ref().is_some_and(|w| w.send(batch).is_ok())
    }

    /// Reads the whole store (at start, before anything writes).
    pub fn load(&self) -> Result<Loaded, Box<redb::Error>> {
        self.read_all().map_err(Box::new)
    }

    #[expect(
        clippy::result_large_err,
        reason = "redb's error type; boxed by `load`"
    )]
    fn read_all(&self) -> Result<Loaded, redb::Error> {
        let tx = self.inner.db.begin_read()?;
        let mut loaded = Loaded::default();
        for row in tx.open_table(SESSIONS)?.iter()? {
            let (k, v) = row?;
            loaded
                .sessions
                .push((k.value().to_owned(), v.value().to_vec()));
        }
        for row in tx.open_table(QUEUE)?.iter()? {
            let (k, v) = row?;
            let (client_id, position) = k.value();
            loaded
                .queues
                .entry(client_id.to_owned())
                .or_default()
                .push((position, v.value().to_vec()));
        }
        for row in tx.open_table(RETAINED)?.iter()? {
            let (k, v) = row?;
            loaded
                .retained
                .push((k.value().to_owned(), v.value().to_vec()));
        }
        for row in tx.open_table(INBOUND)?.iter()? {
            let (k, v) = row?;
            loaded.inbound.push((k.value(), v.value().to_vec()));
        }
        for row in tx.open_table(TAKEN)?.iter()? {
            let (k, _) = row?;
            let (seq, client_id) = k.value();
            loaded.taken.insert((seq, client_id.to_owned()));
        }
        for row in tx.open_table(INCOMING)?.iter()? {
            let (k, _) = row?;
            let (client_id, pkid) = k.value();
            loaded
                .incoming
                .entry(client_id.to_owned())
                .or_default()
                .push(pkid);
        }
        Ok(loaded)
    }
}

fn write_loop(db: &Database, batches: &std_mpsc::Receiver<Batch>) {
    while let Ok(first) = batches.recv() {
        let mut done = Vec::new();
        let mut ops = Vec::new();
        let mut next = Some(first);
        while let Some(batch) = next {
            ops.extend(batch.ops);
            done.extend(batch.done);
            next = if ops.len() < 10_000 {
                batches.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(e) = commit(db, ops) {
            tracing::error!(error = %e, "session store write failed");
        }
        for done in done {
            let _ = done.send(());
        }
    }
}

#[expect(clippy::result_large_err, reason = "redb's error type, logged at once")]
fn commit(db: &Database, ops: Vec<Op>) -> Result<(), redb::Error> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate);
    {
        let mut sessions = tx.open_table(SESSIONS)?;
        let mut queue = tx.open_table(QUEUE)?;
        let mut retained = tx.open_table(RETAINED)?;
        let mut inbound = tx.open_table(INBOUND)?;
        let mut taken = tx.open_table(TAKEN)?;
        let mut incoming = tx.open_table(INCOMING)?;
        for op in ops {
            match op {
                Op::PutSession { client_id, record } => {
                    sessions.insert(client_id.as_str(), record.as_slice())?;
                }
                Op::DeleteSession { client_id } => {
                    sessions.remove(client_id.as_str())?;
                    let id = client_id.as_str();
                    queue.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
                    incoming.retain_in((id, 0)..=(id, u16::MAX), |_, _| false)?;
                }
                Op::PutIncoming { client_id, pkid } => {
                    incoming.insert((client_id.as_str(), pkid), ())?;
                }
                Op::DeleteIncoming { client_id, pkid } => {
                    incoming.remove((client_id.as_str(), pkid))?;
                }
                Op::PutQueued {
                    client_id,
                    position,
                    message,
                } => {
                    queue.insert((client_id.as_str(), position), message.as_slice())?;
                }
                Op::DeleteQueued {
                    client_id,
                    position,
                } => {
                    queue.remove((client_id.as_str(), position))?;
                }
                Op::PutRetained { topic, message } => {
                    retained.insert(topic.as_str(), message.as_slice())?;
                }
                Op::DeleteRetained { topic } => {
                    retained.remove(topic.as_str())?;
                }
                Op::PutInbound { seq, message } => {
                    inbound.insert(seq, message.as_slice())?;
                }
                Op::Taken { seq, client_id } => {
                    taken.insert((seq, client_id.as_str()), ())?;
                }
                Op::TrimInbound { below } => {
                    inbound.retain_in(0..below, |_, _| false)?;
                    taken.retain_in((0, "")..(below, ""), |_, _| false)?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        {
            let store = Store::open(&path).unwrap();
            store
                .write_durable(vec![
                    Op::PutSession {
                        client_id: "c".into(),
                        record: b"{}".to_vec(),
                    },
                    Op::PutQueued {
                        client_id: "c".into(),
                        position: 2,
                        message: b"two".to_vec(),
                    },
                    Op::PutQueued {
                        client_id: "c".into(),
                        position: 1,
                        message: b"one".to_vec(),
                    },
                    Op::PutQueued {
                        client_id: "d".into(),
                        position: 1,
                        message: b"other".to_vec(),
                    },
                    Op::PutInbound {
                        seq: 7,
                        message: b"m".to_vec(),
                    },
                    Op::Taken {
                        seq: 7,
                        client_id: "c".into(),
                    },
                    Op::PutIncoming {
                        client_id: "c".into(),
                        pkid: 9,
                    },
                    Op::PutIncoming {
                        client_id: "c".into(),
                        pkid: 10,
                    },
                    Op::PutIncoming {
                        client_id: "d".into(),
                        pkid: 9,
                    },
                    Op::DeleteIncoming {
                        client_id: "c".into(),
                        pkid: 10,
                    },
                ])
                .await;
            store
                .write_durable(vec![Op::DeleteSession {
                    client_id: "d".into(),
                }])
                .await;
        }
        let store = Store::open(&path).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.sessions, vec![("c".to_owned(), b"{}".to_vec())]);
        assert_eq!(
            loaded.queues["c"],
            vec![(1, b"one".to_vec()), (2, b"two".to_vec())]
        );
        assert!(!loaded.queues.contains_key("d"));
        assert!(loaded.taken.contains(&(7, "c".to_owned())));
        assert_eq!(loaded.incoming["c"], [9]);
        assert!(!loaded.incoming.contains_key("d"), "gone with its session");
        store
            .write_durable(vec![Op::TrimInbound { below: 8 }])
            .await;
        let loaded = store.load().unwrap();
        assert!(loaded.inbound.is_empty() && loaded.taken.is_empty());
    }
}
