//! Requests an operator leaves in the store for the running httpd (issue
//! 16): `a2md renew <md>` asks for a new certificate now, whatever the
//! renewal window says (after a CA's mass-revocation notice, a key
//! compromise, a changed profile). The request is a small file
//! `<store>/requests/<md>.json`, written as root and handed to the owner of
//! `staging/` (httpd's `User`), so that the renewal job, which runs as that
//! user, can remove it once a new certificate is staged. httpd need not run:
//! the next start picks it up. The C module ignores the directory.

use crate::base::time::{self, Micros};
use crate::store::{Group, Store};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::PathBuf;

/// The directory below the store root.
pub const DIR: &str = "requests";

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

fn path(store: &Store, md: &str) -> PathBuf {
    store
        .root()
        .join(DIR)
        .join(format!("{}.json", md.replace('/', "_")))
}

/// The pending request for `md`, if any (one that does not parse is none).
pub fn load(store: &Store, md: &str) -> Option<Request> {
    let data = fs::read(path(store, md)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Whether a request for `md` is pending (a cheap check for every run).
pub(crate) fn pending(store: &Store, md: &str) -> bool {
    path(store, md).exists()
}

/// Leaves `req` for `md`, replacing an older one; directory and file are
/// given to the owner of `staging/` (the renewal job's user).
pub fn save(store: &Store, md: &str, req: &Request) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = fs::metadata(store.group_dir(Group::Staging)).ok();
    let dir = store.root().join(DIR);
    if !dir.is_dir() {
        fs::create_dir_all(&dir)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    }
    let file = path(store, md);
    let data = serde_json::to_vec_pretty(req).map_err(io::Error::other)?;
    crate::base::util::write_atomic(&file, &data, 0o644)?;
    if let Some(m) = owner {
        for p in [&dir, &file] {
            let own = fs::metadata(p)?;
            if own.uid() != m.uid() || own.gid() != m.gid() {
                std::os::unix::fs::chown(p, Some(m.uid()), Some(m.gid()))?;
            }
        }
    }
    Ok(())
}

/// Removes the request of `md` once it is answered, unless a newer one
/// came meanwhile.
pub fn clear(store: &Store, md: &str, answered: &Request) {
    if load(store, md).is_some_and(|r| r.since <= answered.since) {
        let _ = fs::remove_file(path(store, md));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_kept_until_answered_and_a_newer_one_survives() {
        let d = std::env::temp_dir().join(format!("md-request-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let store = Store::open(&d, None, &mut Vec::new()).unwrap();
        assert!(load(&store, "a.org").is_none() && !pending(&store, "a.org"));
        let now = time::now();
        let first = Request::renew(now, Some("mass revocation".into()));
        save(&store, "a.org", &first).unwrap();
        assert!(pending(&store, "a.org"));
        assert_eq!(load(&store, "a.org"), Some(first.clone()));
        // a newer request made while the first one was being answered stays
        let second = Request::renew(now + 5 * time::USEC_PER_SEC, None);
        save(&store, "a.org", &second).unwrap();
        clear(&store, "a.org", &first);
        assert_eq!(load(&store, "a.org"), Some(second.clone()));
        clear(&store, "a.org", &second);
        assert!(!pending(&store, "a.org"));
        let _ = fs::remove_dir_all(d);
    }
}
