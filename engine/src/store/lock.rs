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
