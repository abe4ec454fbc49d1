//! The panic boundary: no unwinding ever crosses into httpd.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; if it panics, logs the panic (naming `what`) at `crit` and
/// returns `fallback` instead. Every `extern "C"` function of this crate
/// wraps its body in this. Release builds keep `panic = "unwind"` so that
/// this works.
pub fn guard<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = md_engine::boundary::report_text(what, payload.as_ref());
            // Logging must not unwind out of here either.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                crate::log::log(std::ptr::null(), crate::log::Lvl::Crit, &msg)
            }));
            fallback
        }
    }
}

/// Test hook: `MD_RS_TEST_PANIC=<point>` in httpd's environment makes that
/// point panic, so the end-to-end tests can show that httpd survives. Never
/// set in production.
pub fn test_panic(point: &str) {
    if std::env::var_os("MD_RS_TEST_PANIC").is_some_and(|v| v == point) {
        panic!("test panic at {point}");
    }
}
