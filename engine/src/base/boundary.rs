//! The panic boundary used by every C entry point of the glue: run a
//! closure, and turn a panic into a fallback value plus a report.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The message of a panic payload.
pub(crate) fn panic_text(p: &(dyn Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.as_str()
    } else {
        "unknown panic"
    }
}

/// The log message for a panic caught at entry point `what`.
pub(crate) fn report_text(what: &str, payload: &(dyn Any + Send)) -> String {
    format!(
        "internal error in {what}: {}. This is a bug in mod_md (Rust); please report it \
         with this log line.",
        panic_text(payload)
    )
}

/// Runs `f`. If it panics, calls `report` with a message naming `what` and
/// returns `fallback`. A panic inside `report` is swallowed too: nothing
/// unwinds out of this function.
pub fn guard<R>(what: &str, fallback: R, report: impl FnOnce(&str), f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = report_text(what, p.as_ref());
            let _ = catch_unwind(AssertUnwindSafe(|| report(&msg)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn passes_results_and_stops_panics() {
        let seen = RefCell::new(String::new());
        assert_eq!(guard("t", 7, |m| *seen.borrow_mut() = m.into(), || 3), 3);
        assert!(seen.borrow().is_empty());
        let r = guard(
            "post_config",
            -1,
            |m| *seen.borrow_mut() = m.into(),
            || -> i32 { panic!("boom {}", 42) },
        );
        assert_eq!(r, -1);
        assert!(seen
            .borrow()
            .starts_with("internal error in post_config: boom 42."));
        // a panicking reporter does not escape either
        assert_eq!(
            guard("t", 1, |_| panic!("in report"), || -> i32 { panic!("x") }),
            1
        );
    }
}
