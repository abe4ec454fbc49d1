//! The global store lock (`MDStoreLocks`, spec §5.6).

use super::*;

/// The global store lock (§5.6); released when dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: fs::File,
}

impl Store {
    /// Takes `<root>/store.lock` (flock, exclusive), retrying every 100 ms
    /// for at most `wait`. Used around the start-up installation when
    /// `MDStoreLocks` is on, so that several httpd sharing a store do not
    /// install the same staged set at once.
    pub fn lock(&self, wait: std::time::Duration) -> Result<StoreLock, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.root.join("store.lock");
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let start = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StoreLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(std::time::Duration::from_millis(100))
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(format!("{} is locked by another process", path.display()))
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()))
                }
            }
        }
    }
}

/// A process's hold on one MD's staging area (released when dropped, or
/// when the process ends).
#[derive(Debug)]
pub struct MdLock {
    _dir: fs::File,
}

impl Store {
    /// Takes `staging/<md>` for this process if no other process of this
    /// server holds it (flock on the directory: no file is added to the
    /// store). After a graceful restart a child of the old generation may
    /// still be busy with an MD's order until its next safe point; the new
    /// generation's run must not work on the same order meanwhile (both
    /// would ask the CA to validate the same challenge). `Ok(None)`: held
    /// by another process.
    pub(crate) fn lock_md(&self, name: &str) -> Result<Option<MdLock>, StoreError> {
        let dir = self.ensure_name_dir(Group::Staging, name)?;
        let f =
            fs::File::open(&dir).map_err(|e| err(format!("cannot open {}: {e}", dir.display())))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(MdLock { _dir: f })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                Err(err(format!("cannot lock {}: {e}", dir.display())))
            }
        }
    }
}
