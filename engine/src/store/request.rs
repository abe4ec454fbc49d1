//! Requests an operator leaves in the store for the running httpd (issue
//! 16): `a2md renew <md>` asks for a new certificate now, whatever the
//! renewal window says (after a CA's mass-revocation notice, a key
//! compromise, a changed profile). The request is a small file
//! `<store>/requests/<md>.json`, written as root and handed to the owner of
//! `staging/` (httpd's `User`), so that the renewal job, which runs as that
//! user, can remove it once a new certificate is staged. httpd need not run:
//! the next start picks it up. The C module ignores the directory.

use crate::base::time::{self, Micros};
use crate::store::{Group, Store, StoreError};
use serde::{Deserialize, Serialize};

/// One pending request for an MD.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Request {
    /// What is asked for: `renew`.
    pub action: String,
    /// When it was made (seconds since the epoch).
    pub since: i64,
    /// Why, as the operator said (free text), if at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Request {
    pub fn renew(now: Micros, reason: Option<String>) -> Request {
        Request {
            action: "renew".into(),
            since: now / time::USEC_PER_SEC,
            reason,
        }
    }

    pub(crate) fn since_micros(&self) -> Micros {
        time::from_secs(self.since)
    }
}

fn file(md: &str) -> String {
    format!("{}.json", md.replace('/', "_"))
}

/// The pending request for `md`, if any (one that does not parse is none).
pub fn load(store: &Store, md: &str) -> Option<Request> {
    let data = store.load_bytes(Group::Requests, "", &file(md)).ok()??;
    serde_json::from_slice(&data).ok()
}

/// Whether a request for `md` is pending (a cheap check for every run).
/// The request files there are now: one listing for a run over every MD
/// (see [`is_pending`]), not a look per MD.
pub(crate) fn pending_files(store: &Store) -> std::collections::HashSet<String> {
    store.names(Group::Requests).into_iter().collect()
}

/// Whether `files` ([`pending_files`]) has a request for `md`.
pub(crate) fn is_pending(files: &std::collections::HashSet<String>, md: &str) -> bool {
    files.contains(&file(md))
}

/// Leaves `req` for `md`, replacing an older one; the group and the file
/// are given to the renewal job's user (the store's `user`).
pub fn save(store: &Store, md: &str, req: &Request) -> Result<(), StoreError> {
    store.prepare_group(Group::Requests)?;
    let data = serde_json::to_vec_pretty(req).map_err(|e| crate::store::err(e.to_string()))?;
    store.save_bytes(Group::Requests, "", &file(md), &data, false)?;
    store.hand_to_user(Group::Requests, "", &file(md))
}

/// Removes the request of `md` once it is answered, unless a newer one
/// came meanwhile.
pub fn clear(store: &Store, md: &str, answered: &Request) {
    if load(store, md).is_some_and(|r| r.since <= answered.since) {
        store.remove(Group::Requests, "", &file(md));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_kept_until_answered_and_a_newer_one_survives() {
        let (_d, store) = crate::testutil::tmpstore("request");
        assert!(load(&store, "a.org").is_none() && !is_pending(&pending_files(&store), "a.org"));
        let now = time::now();
        let first = Request::renew(now, Some("mass revocation".into()));
        save(&store, "a.org", &first).unwrap();
        assert!(is_pending(&pending_files(&store), "a.org"));
        assert!(!is_pending(&pending_files(&store), "b.org"));
        assert_eq!(load(&store, "a.org"), Some(first.clone()));
        // a newer request made while the first one was being answered stays
        let second = Request::renew(now + 5 * time::USEC_PER_SEC, None);
        save(&store, "a.org", &second).unwrap();
        clear(&store, "a.org", &first);
        assert_eq!(load(&store, "a.org"), Some(second.clone()));
        clear(&store, "a.org", &second);
        assert!(!is_pending(&pending_files(&store), "a.org"));
    }
}
