//! The panic boundary: no unwinding ever crosses into httpd.

/// Runs `f`; if it panics, logs the panic (naming `what`) at `crit` and
/// returns `fallback` instead. Every `extern "C"` function of this crate
/// wraps its body in this.
pub fn guard<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    md_engine::boundary::guard(
        what,
        fallback,
        |msg| crate::log::log(std::ptr::null(), crate::log::Lvl::Crit, msg),
        f,
    )
}
