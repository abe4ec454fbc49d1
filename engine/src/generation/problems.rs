//! Problems a start met in the store (issue 25), said once per start.

use crate::base::log::{Level, Note, Notes};
use std::collections::HashMap;

/// Plans the start: see the module comment. `user` is the uid the store's
/// child-written groups are handed to (only when running as root).
/// Problems a start met in the store, per MD (issue 25): each said once
/// per start, though httpd's dry run and real run (in the same parent
/// process) both meet it, and kept for md-status (`store.problems`).
struct StartProblems {
    /// The last start-up phase was a dry run: the real run that follows
    /// belongs to the same start.
    after_dry_run: bool,
    by_md: Option<HashMap<String, Vec<String>>>,
}

static PROBLEMS: std::sync::Mutex<StartProblems> = std::sync::Mutex::new(StartProblems {
    after_dry_run: false,
    by_md: None,
});

fn problems() -> std::sync::MutexGuard<'static, StartProblems> {
    PROBLEMS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A start-up phase begins: a dry run, or a real run that no dry run
/// came before (a graceful restart), begins a new start.
pub(crate) fn problems_begin(dry_run: bool) {
    let mut p = problems();
    if dry_run || !p.after_dry_run {
        p.by_md = None;
    }
    p.after_dry_run = dry_run;
}

/// Records a store problem of `md`; true when this start had not met it
/// yet (the caller says it).
pub(crate) fn store_problem(md: &str, msg: &str) -> bool {
    let mut p = problems();
    let v = p
        .by_md
        .get_or_insert_with(HashMap::new)
        .entry(md.to_string())
        .or_default();
    if v.iter().any(|m| m == msg) {
        return false;
    }
    v.push(msg.to_string());
    true
}

/// The store problems this start met for `md`.
pub(crate) fn store_problems(md: &str) -> Vec<String> {
    problems()
        .by_md
        .as_ref()
        .and_then(|m| m.get(md).cloned())
        .unwrap_or_default()
}

pub(crate) fn problem_note(md: &str, level: Level, msg: String, notes: &mut dyn Notes) {
    if store_problem(md, &msg) {
        notes.push(Note::new(level, msg));
    }
}
