//! The panic boundary: no unwinding ever crosses into httpd.

/// Runs `f`; if it panics, logs the panic (naming `what`) at `crit` and
/// returns `fallback` instead. The unwinding is stopped by
/// `std::panic::catch_unwind` in `md_engine::base::boundary::guard` (one boundary
/// for both crates); the report goes to httpd's main error log. Every `extern "C"` function of this crate wraps its
/// body in this. Release builds keep `panic = "unwind"` so that this works.
pub fn guard<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    md_engine::base::boundary::guard(
        what,
        fallback,
        |msg| crate::log::log(std::ptr::null(), md_engine::base::log::Level::Crit, msg),
        f,
    )
}

pub use md_engine::base::boundary::test_panic;
