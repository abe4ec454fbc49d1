//! The panic boundary: no unwinding ever crosses into httpd.

/// Runs `f`; if it panics, logs the panic (naming `what`) at `crit` and
/// returns `fallback` instead. The unwinding is stopped by
/// `std::panic::catch_unwind` in `md_engine::boundary::guard` (one boundary
/// for both crates); the report goes to httpd's main error log. Every `extern "C"` function of this crate wraps its
/// body in this. Release builds keep `panic = "unwind"` so that this works.
pub fn guard<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    md_engine::boundary::guard(
        what,
        fallback,
        |msg| crate::log::log(std::ptr::null(), md_engine::log::Level::Crit, msg),
        f,
    )
}

/// Test hook: `MD_RS_TEST_PANIC=<point>` in httpd's environment makes that
/// point panic, so the end-to-end tests can show that httpd survives. Never
/// set in production.
pub fn test_panic(point: &str) {
    if std::env::var_os("MD_RS_TEST_PANIC").is_some_and(|v| v == point) {
        panic!("test panic at {point}");
    }
}
