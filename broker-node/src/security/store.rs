//! Files under `<node dir>/security/`: read once on open, replaced atomically on every
//! change, so a crash mid-write leaves either the old or the new table, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::SecurityError;

/// Subdirectory of the node directory holding users, ACL rules and bans.
pub const DIR_NAME: &str = "security";

/// A table readers see as an immutable snapshot (lock-free, for the hot path) and writers
/// replace whole: clone, change, write to disk, then publish. A failed write publishes
/// nothing, so memory never runs ahead of the disk.
pub(crate) struct Persisted<T> {
    path: PathBuf,
    current: ArcSwap<T>,
    /// Serialises writers so that no change is lost between clone and publish.
    writer: Mutex<()>,
}

impl<T> Persisted<T>
where
    T: Clone + Default + Serialize + DeserializeOwned,
{
    /// Loads `<dir>/security/<file>`, or starts empty when it does not exist yet.
    pub(crate) fn open(dir: &Path, file: &str) -> Result<Self, SecurityError> {
        let path = dir.join(DIR_NAME).join(file);
        let value = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| SecurityError::Corrupt {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => T::default(),
            Err(source) => return Err(SecurityError::Store { path, source }),
        };
        Ok(Self {
            path,
            current: ArcSwap::from_pointee(value),
            writer: Mutex::new(()),
        })
    }

    /// The current snapshot; cheap, never blocks.
    pub(crate) fn load(&self) -> Guard<Arc<T>> {
        self.current.load()
    }

    /// Applies `change` to a copy of the table, persists it and publishes it. If `change`
    /// or the write fails, nothing changes. Blocking (file I/O): call from a blocking
    /// context in async code.
    pub(crate) fn update<R, E>(&self, change: impl FnOnce(&mut T) -> Result<R, E>) -> Result<R, E>
    where
        E: From<std::io::Error>,
    {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = T::clone(&self.current.load());
        let result = change(&mut next)?;
        write_atomically(&self.path, &next)?;
        self.current.store(Arc::new(next));
        Ok(result)
    }
}

/// Writes `value` as JSON next to `path`, flushes it, then renames it over `path`.
fn write_atomically<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    // Make the rename itself durable; not every filesystem supports syncing a directory.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_change_publishes_nothing_and_success_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("skyport-store-{}", std::process::id()));
        let table: Persisted<Vec<u32>> = Persisted::open(&dir, "t.json").unwrap();
        let err: Result<(), std::io::Error> = table.update(|v| {
            v.push(1);
            Err(std::io::Error::other("no"))
        });
        assert!(err.is_err());
        assert!(table.load().is_empty());
        table
            .update(|v| {
                v.push(2);
                Ok::<_, std::io::Error>(())
            })
            .unwrap();
        let reopened: Persisted<Vec<u32>> = Persisted::open(&dir, "t.json").unwrap();
        assert_eq!(**reopened.load(), vec![2]);
        std::fs::write(dir.join(DIR_NAME).join("t.json"), "not json").unwrap();
        assert!(matches!(
            Persisted::<Vec<u32>>::open(&dir, "t.json"),
            Err(SecurityError::Corrupt { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
