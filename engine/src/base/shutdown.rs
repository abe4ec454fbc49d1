//! Process shutdown: when an httpd child exits, the renewal work that runs
//! on threads of its own must stop at a safe point before the process tears
//! down its libraries (OpenSSL's atexit cleanup races threads still inside
//! libcrypto). The glue raises the flag at child exit; HTTP transfers abort,
//! polls stop waiting, and a job that ends this way records no error (its
//! staged order resumes on the next run).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

static REQUESTED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Raised when the work on this thread must stop although the process
    /// goes on: another node of a cluster took its lease over.
    static ABANDON: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `f` with `flag` as this thread's abandon flag: while it runs,
/// [`requested`] is also true once `flag` is raised.
pub(crate) fn with_abandon<R>(flag: Arc<AtomicBool>, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Arc<AtomicBool>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let prev = self.0.take();
            ABANDON.with(|a| *a.borrow_mut() = prev);
        }
    }
    let prev = ABANDON.with(|a| a.borrow_mut().replace(flag));
    let _reset = Reset(prev);
    f()
}

/// Whether the work on this thread was abandoned (see [`with_abandon`]).
pub(crate) fn abandoned() -> bool {
    ABANDON.with(|a| {
        a.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    })
}

/// Asks every running job of this process to stop.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether this process is shutting down (or this thread's work was
/// abandoned).
pub(crate) fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst) || abandoned()
}

/// Sleeps up to `d`, returning early (false) when shutdown is requested.
pub(crate) fn sleep(d: std::time::Duration) -> bool {
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
