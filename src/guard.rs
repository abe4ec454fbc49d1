//! The panic boundary: no unwinding ever crosses into httpd.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn panic_text(p: &(dyn Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.as_str()
    } else {
        "unknown panic"
    }
}

/// Runs `f`; if it panics, logs the panic (naming `what`) and returns
/// `fallback` instead. Every `extern "C"` function of this crate wraps its
/// body in this.
pub fn guard<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            // Logging itself must not unwind out of here either.
            let text = panic_text(p.as_ref()).to_string();
            let _ = catch_unwind(AssertUnwindSafe(|| {
                crate::log::log(
                    std::ptr::null(),
                    crate::log::Lvl::Crit,
                    &format!(
                        "internal error in {what}: {text}. This is a bug in mod_md (Rust); \
                         please report it with this log line."
                    ),
                );
            }));
            fallback
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_panics() {
        assert_eq!(guard("t", 7, || 3), 3);
        assert_eq!(guard("t", 7, || -> i32 { panic!("boom") }), 7);
        assert_eq!(panic_text(&"x"), "x");
    }
}
