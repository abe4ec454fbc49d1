//! What only the server around the engine can do, for the engine's
//! long-running parts (renewal workers, OCSP refresh): write a log line as
//! it happens, and ask for a graceful restart. httpd's glue implements it with `ap_log_error`; the tests
//! with a vector.

use crate::base::log::Level;
use std::sync::Arc;

pub trait Host: Send + Sync {
    /// Writes one line to the server's error log now.
    fn log(&self, level: Level, msg: &str);

    /// Asks the server for a graceful restart (from its parent process),
    /// which installs staged certificates. Hosts that cannot restart
    /// ignore it.
    fn graceful_restart(&self) {}

    /// Gives memory the process freed back to the system (after a renewal
    /// run over thousands of MDs, whose transient memory a long-lived
    /// child would otherwise keep resident). Hosts that cannot ignore it.
    fn release_memory(&self) {}
}

/// Runs `f` with every note made on this thread going to `host` as it is
/// made (see [`crate::base::log::with_sink`]).
pub fn live<R>(host: &Arc<dyn Host>, f: impl FnOnce() -> R) -> R {
    let h = host.clone();
    crate::base::log::with_sink(move |level, msg| h.log(level, msg), f)
}
