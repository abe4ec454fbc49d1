//! Moving a store between backends (issue 27): every file of one storage
//! written into another, byte for byte, private keys (and the store's own
//! key) as secrets. `a2md store-export` copies a file store into etcd,
//! `a2md store-import` back into a directory the C module can use.

use super::storage::Storage;
use super::{err, Group, StoreError, ACCOUNT_KEY, STORE_FILE};
use std::path::Path;

/// Every group of a store, the root (`md_store.json`) first.
const GROUPS: [Group; 11] = [
    Group::None,
    Group::Accounts,
    Group::Challenges,
    Group::Domains,
    Group::Staging,
    Group::Archive,
    Group::Ocsp,
    Group::Crl,
    Group::Leases,
    Group::Requests,
    Group::Tmp,
];

/// Whether a file is secret: a private key, or the store's own key.
pub(crate) fn is_secret(g: Group, file: &str) -> bool {
    file.contains("privkey") || file == ACCOUNT_KEY || (g == Group::None && file == STORE_FILE)
}

/// The files of a store: (group, name, file); `name` `""` for a file
/// directly in its group. Temp files and the leases of running servers
/// are left out.
pub fn files(s: &dyn Storage) -> Vec<(Group, String, String)> {
    let mut out = Vec::new();
    for g in GROUPS {
        if g == Group::None {
            if s.stat(g, "", STORE_FILE).ok().flatten().is_some() {
                out.push((g, String::new(), STORE_FILE.to_string()));
            }
            continue;
        }
        if g == Group::Tmp || g == Group::Leases {
            continue;
        }
        for entry in s.list(g, "") {
            if crate::base::util::is_tmp_name(&entry) {
                continue;
            }
            let inner = s.list(g, &entry);
            if inner.is_empty() {
                out.push((g, String::new(), entry));
                continue;
            }
            for f in inner {
                if !crate::base::util::is_tmp_name(&f) {
                    out.push((g, entry.clone(), f));
                }
            }
        }
    }
    out.retain(|(g, name, file)| {
        // a name with no files looks like a file: only what reads is one
        *g == Group::None || s.read(*g, name, file).ok().flatten().is_some()
    });
    out
}

/// Copies every file of `from` into `to`, which must hold no store yet;
/// how many files.
pub fn copy(from: &dyn Storage, to: &dyn Storage) -> Result<usize, StoreError> {
    if to.stat(Group::None, "", STORE_FILE)?.is_some() {
        return Err(err(format!(
            "{} holds a store already: move it away first (nothing was copied)",
            to.describe(Group::None, "", "")
        )));
    }
    let list = files(from);
    if !list
        .iter()
        .any(|(g, _, f)| *g == Group::None && f == STORE_FILE)
    {
        return Err(err(format!(
            "{} holds no store ({STORE_FILE} is missing)",
            from.describe(Group::None, "", "")
        )));
    }
    // md_store.json first: the file store writes into a store only
    let meta = from
        .read(Group::None, "", STORE_FILE)?
        .ok_or_else(|| err(format!("{STORE_FILE} vanished")))?;
    to.write(Group::None, "", STORE_FILE, &meta, true, true)?;
    let mut n = 0;
    let stopped = |n: usize, e: StoreError| {
        err(format!(
            "{e}; the copy stopped after {} of {} files: remove what it made in {} and run it \
             again",
            n + 1,
            list.len(),
            to.describe(Group::None, "", "")
        ))
    };
    for (g, name, file) in list.iter().filter(|(g, _, _)| *g != Group::None) {
        let data = from
            .read(*g, name, file)
            .and_then(|d| {
                d.ok_or_else(|| err(format!("{} vanished", from.describe(*g, name, file))))
            })
            .map_err(|e| stopped(n, e))?;
        (|| {
            to.write(*g, name, file, &data, is_secret(*g, file), true)?;
            // what httpd's User writes or reads stays its own (a copy made
            // as root would leave staged keys the renewal job cannot read)
            if g.owned_by_user() || file == ACCOUNT_KEY {
                if !name.is_empty() {
                    to.hand_to_user(*g, name, "")?;
                }
                to.hand_to_user(*g, name, file)?;
            }
            Ok(())
        })()
        .map_err(|e| stopped(n, e))?;
        n += 1;
    }
    Ok(n + 1)
}

/// Copies the file store at `dir` into the etcd store `etcd` (`export`), or
/// the etcd store into `dir`, which then is the C module's file store with
/// its groups prepared; `user` (httpd's `User`) gets what it works on when
/// this runs as root. How many files.
pub fn between(
    dir: &Path,
    etcd: &crate::config::EtcdSettings,
    export: bool,
    user: Option<u32>,
) -> Result<usize, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let user = user.filter(|_| std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0));
    let mut notes = Vec::new();
    // the etcd store's local cache is not needed here
    let cache = std::env::temp_dir().join(format!("a2md-etcd-{}", std::process::id()));
    let remote = super::etcd_store::EtcdStorage::configured(etcd, &cache, &mut notes);
    let _ = std::fs::remove_dir_all(&cache);
    let remote = remote?;
    let files = super::files::FileStorage::open(dir, user, &mut notes)?;
    let n = if export {
        copy(&files, &remote)?
    } else {
        let n = copy(&remote, &files)?;
        // the groups as httpd's parent prepares them
        super::Store::open(dir, user, &mut notes)?;
        n
    };
    Ok(n)
}
