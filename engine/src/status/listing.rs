//! The managed domains as a store alone tells them (issue 28: `a2md list`
//! and `a2md status` with or without httpd running, on a store this module
//! or the C module wrote): md-status's object for each, built from its
//! `md.json`, its live certificates and its staging job, and a one-word
//! state with the reason an admin looks for.

use crate::base::time::{self, Micros, TimeSlice};
use crate::config::{Md, MdDef, Settings, LIFE_NORM};
use crate::lifecycle::jobfile::Job;
use crate::lifecycle::state::{cert_renew_at, CertInfo};
use crate::status::mdstatus::{certs_json, md_json};
use crate::store::{Group, Store};
use serde_json::{json, Value};

/// The names of the store's MDs (installed or staged), sorted.
pub fn names(store: &Store) -> Vec<String> {
    let mut out: Vec<String> = store
        .names(Group::Domains)
        .into_iter()
        .chain(store.names(Group::Staging))
        .filter(|n| {
            store.exists(Group::Domains, n, "md.json") || store.exists(Group::Staging, n, "md.json")
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The live certificates of an MD by key name (`rsa`, a curve).
fn live_certs(store: &Store, name: &str) -> Vec<Option<CertInfo>> {
    let mut files: Vec<String> = store
        .names_in(Group::Domains, name)
        .into_iter()
        .filter(|f| f.starts_with("pubcert") && f.ends_with(".pem"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let key = f
                .trim_start_matches("pubcert")
                .trim_end_matches(".pem")
                .trim_start_matches('.');
            let key = if key.is_empty() { "rsa" } else { key };
            let pem = store.load_bytes(Group::Domains, name, f).ok().flatten()?;
            CertInfo::from_pem(key, &pem)
        })
        .collect()
}

/// md-status's object for MD `name` from the store alone, with `state-text`
/// (ok, renewing, error, renewed and waiting for a restart, expired, no
/// certificate) and
/// `problem` when there is one. `None`: no such MD.
pub fn md(store: &Store, name: &str, now: Micros) -> Option<Value> {
    let stored = [Group::Domains, Group::Staging]
        .iter()
        .find_map(|g| store.load_json(*g, name, "md.json").ok().flatten())?;
    let strs = |k: &str| -> Vec<String> {
        stored
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut m = Md::from_def(&MdDef::new(strs("domains")), &Settings::default(), None);
    m.name = name.to_string();
    if let Some(w) = stored.get("renew-window").and_then(Value::as_str) {
        if let Ok(ts) = TimeSlice::parse(w, LIFE_NORM) {
            m.renew_window = ts;
        }
    }
    let certs = live_certs(store, name);
    let renew_at = certs
        .iter()
        .flatten()
        .map(|c| cert_renew_at(&m, c))
        .min()
        .unwrap_or(now);
    let mut j = md_json(store, &m, &certs_json(&certs), renew_at, true, false, now);
    if let (Some(o), Some(s)) = (j.as_object_mut(), stored.as_object()) {
        for (k, v) in s {
            o.insert(k.clone(), v.clone());
        }
        if let Some(h) = o.get_mut("eab").and_then(|e| e.get_mut("hmac")) {
            *h = json!("***");
        }
        o.remove("watched");
    }
    let job = Job::load(store, Group::Staging, name).ok();
    let until = certs.iter().flatten().map(|c| c.not_after).min();
    // a job file alone (the renewal job's bookkeeping of an MD not due) is
    // no renewal; staged files or a due MD are
    let staging = store
        .names_in(Group::Staging, name)
        .iter()
        .any(|f| f != "job.json" && !f.starts_with('.'));
    let (state, problem) = match (&job, until) {
        (Some(jb), _) if jb.errors > 0 && !jb.finished => {
            let p = jb
                .last
                .as_ref()
                .and_then(|r| r.detail.clone().or_else(|| r.problem.clone()))
                .unwrap_or_else(|| "the last renewal failed".into());
            ("error", Some(p))
        }
        (Some(jb), _) if jb.finished && staging => (
            "renewed: served hot by a running httpd, installed at its next restart",
            None,
        ),
        (Some(_), _) if staging || renew_at <= now => ("renewing", None),
        (_, None) => ("no certificate", None),
        (_, Some(u)) if u <= now => ("expired", None),
        (_, Some(_)) => ("ok", None),
    };
    if let Some(o) = j.as_object_mut() {
        o.insert("state-text".into(), json!(state));
        if let Some(p) = problem {
            o.insert("problem".into(), json!(p));
        }
        if let Some(u) = until {
            o.insert(
                "days-left".into(),
                json!((u - now) / time::USEC_PER_SEC / 86400),
            );
        }
    }
    Some(j)
}
