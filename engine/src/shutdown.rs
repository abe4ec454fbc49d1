//! Process shutdown: when an httpd child exits, the renewal work that runs
//! on threads of its own must stop at a safe point before the process tears
//! down its libraries (OpenSSL's atexit cleanup races threads still inside
//! libcrypto). The glue raises the flag at child exit; HTTP transfers abort,
//! polls stop waiting, and a job that ends this way records no error (its
//! staged order resumes on the next run).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every running job of this process to stop.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether this process is shutting down.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Sleeps up to `d`, returning early (false) when shutdown is requested.
pub fn sleep(d: std::time::Duration) -> bool {
    let end = std::time::Instant::now() + d;
    loop {
        if requested() {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(std::time::Duration::from_millis(50)));
    }
}
