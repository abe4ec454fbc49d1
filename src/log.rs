//! Logging through `ap_log_error` with the module's index, so that
//! `LogLevel md:debug` works and lines read `[md:<level>]`.

use crate::ffi;
use md_engine::base::log::Level;
use std::ffi::CString;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicI32, Ordering};

/// httpd's level for one of the engine's (the one log-level enum of both
/// crates, with httpd's numbers, checked at compile time).
fn raw(level: Level) -> c_int {
    level as c_int
}

const _: () = assert!(
    Level::Emerg as u32 == ffi::APLOG_EMERG
        && Level::Error as u32 == ffi::APLOG_ERR
        && Level::Warn as u32 == ffi::APLOG_WARNING
        && Level::Debug as u32 == ffi::APLOG_DEBUG
        && Level::Trace1 as u32 == ffi::APLOG_TRACE1
);

/// Our module's index in httpd's per-server and per-connection
/// configuration vectors. httpd assigns it when it loads the module, just
/// before `register_hooks`, which records it here; it is read everywhere
/// else (log lines name their module by it).
static MODULE_INDEX: AtomicI32 = AtomicI32::new(-1);

/// Called by `register_hooks` with `md_module.module_index`.
pub fn set_module_index(i: c_int) {
    MODULE_INDEX.store(i, Ordering::Relaxed);
}

pub fn module_index() -> c_int {
    MODULE_INDEX.load(Ordering::Relaxed)
}

/// Logs `msg` for server `s` (NULL = httpd's main server log). The caller's
/// source file and line appear in debug lines, as httpd does for C modules.
#[track_caller]
pub fn log(s: *const ffi::server_rec, level: Level, msg: &str) {
    log_status(s, level, 0, msg);
}

/// Like [`log`], with an APR status that httpd prints as `(n)text: `.
#[track_caller]
pub fn log_status(s: *const ffi::server_rec, level: Level, status: i32, msg: &str) {
    log_at(std::panic::Location::caller(), s, level, status, msg);
}

fn log_at(
    here: &std::panic::Location<'_>,
    s: *const ffi::server_rec,
    level: Level,
    status: i32,
    msg: &str,
) {
    let file =
        CString::new(here.file().rsplit('/').next().unwrap_or("mod_md.rs")).unwrap_or_default();
    let line = c_int::try_from(here.line()).unwrap_or(0);
    let text = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: all pointers are valid C strings for the duration of the call;
    // `s` is NULL or a server_rec owned by httpd; "%s" consumes exactly one
    // string argument.
    unsafe {
        ffi::ap_log_error_(
            file.as_ptr(),
            line,
            module_index(),
            raw(level),
            status,
            s,
            c"%s".as_ptr(),
            text.as_ptr(),
        );
    }
}

/// The error log of one server (the main server for the watchdogs), as
/// the engine's `Host` for its long-running parts.
pub struct ServerLog(pub usize);

impl md_engine::base::host::Host for ServerLog {
    fn log(&self, level: Level, msg: &str) {
        log(self.0 as *const ffi::server_rec, level, msg);
    }

    fn release_memory(&self) {
        release_free_memory();
    }
}

/// Gives the allocator's free memory back to the system (glibc keeps freed
/// heap pages otherwise, and every forked child would carry them).
pub fn release_free_memory() {
    // SAFETY: malloc_trim only returns free memory of the allocator's
    // arenas to the system, under the allocator's own locks; it touches no
    // live object.
    unsafe { libc::malloc_trim(0) };
}
