//! The storage seam: what the engine needs from a store, in two traits after
//! certmagic's `Storage` and `Locker`. [`Store`](super::Store) is the one
//! façade the rest of the engine uses (JSON, keys encrypted with the store
//! key, healing of broken files); it reaches the store only through these
//! traits. [`FileStorage`](super::files::FileStorage) is the implementation
//! (the C module's directory layout); a distributed store plugs in here.
//!
//! A place in a store is a group, a name in it (an MD, an account id; `""`
//! for a file directly in the group, or at the root with [`Group::None`])
//! and a file name (`""` for the name itself, in [`Storage::stat`]).

use super::{Group, StoreError};
use crate::base::time::Micros;
use std::path::PathBuf;
use std::sync::Arc;

/// What [`Storage::stat`] tells about a file (or, with file `""`, a name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Last modification, microseconds since the epoch.
    pub modified: Micros,
    /// Changes whenever the content is replaced.
    pub stamp: Stamp,
    /// A symbolic link (the module never writes one: not to be trusted).
    pub symlink: bool,
    /// The owner (a uid), where the store has owners.
    pub owner: Option<u32>,
}

/// Identifies one version of a file: the file store's device, inode,
/// size and modification time; a store with revisions would use those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(pub [i64; 5]);

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e] = self.0;
        write!(f, "{a}:{b}:{c}:{d}.{e}")
    }
}

/// Reading and writing a store's files.
pub trait Storage: std::fmt::Debug + Send + Sync {
    /// Where an admin finds a place, for messages (a path for files).
    fn describe(&self, g: Group, name: &str, file: &str) -> String;

    /// The content of a file; `None` when it does not exist.
    fn read(&self, g: Group, name: &str, file: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces a file atomically: a reader sees the old content or the new,
    /// never a part. `secret` for private keys (never readable by others);
    /// `durable` false where losing the write in a crash costs nothing.
    fn write(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
        secret: bool,
        durable: bool,
    ) -> Result<(), StoreError>;

    /// Creates a file only if it does not exist: `Ok(false)` when another
    /// writer was first (another process, another node of a cluster).
    /// `durable`: forced to disk before it counts (as [`Storage::write`]).
    fn create(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
        secret: bool,
        durable: bool,
    ) -> Result<bool, StoreError>;

    /// What is known of a file or, with file `""`, of a name; `None` when
    /// it does not exist, an error when it cannot be looked at (a file that
    /// is there but not readable is not a missing one).
    fn stat(&self, g: Group, name: &str, file: &str) -> Result<Option<Stat>, StoreError>;

    /// Removes a file (a missing one is no error).
    fn remove(&self, g: Group, name: &str, file: &str) -> Result<(), StoreError>;

    /// Renames a file within its name (`<file>` to `<to>`), replacing `to`.
    fn rename(&self, g: Group, name: &str, file: &str, to: &str) -> Result<(), StoreError>;

    /// The names in a group (`name` `""`) or the files of a name, sorted.
    fn list(&self, g: Group, name: &str) -> Vec<String>;

    /// Removes a name with all its files (a missing one is no error).
    fn remove_name(&self, g: Group, name: &str) -> Result<(), StoreError>;

    /// Moves a name with all its files to another group and/or name in one
    /// step (installing a staged set, archiving a live one, renaming an
    /// MD). Fails when the target exists.
    fn move_name(
        &self,
        from: Group,
        name: &str,
        to: Group,
        to_name: &str,
    ) -> Result<(), StoreError>;

    /// Makes a group ready for use: created if missing, with the access the
    /// processes that use it need (the renewal job runs as httpd's `User`).
    fn prepare_group(&self, g: Group) -> Result<(), StoreError>;

    /// Opens a group to the renewal job once something is stored in it
    /// (the parent does this when it installs a staged set).
    fn open_group(&self, g: Group) -> Result<(), StoreError>;

    /// Makes a file readable by the renewal job (httpd's `User`) while it
    /// stays closed to everyone else (an account key).
    fn hand_to_user(&self, g: Group, name: &str, file: &str) -> Result<(), StoreError>;

    /// Removes what writers that died left behind (temp files older than
    /// ten minutes); how many.
    fn sweep(&self) -> usize;

    /// Whether the store is still there (its `md_store.json`): a store on a
    /// share that went away must not be rebuilt on the empty mount point.
    fn present(&self) -> bool;

    /// The local file mod_ssl and the admin's tools read for a place: the
    /// file itself for the file store; a distributed store keeps a local
    /// copy of what is served.
    fn local_path(&self, g: Group, name: &str, file: &str) -> PathBuf;

    /// A copy for a thread of httpd's parent, which the children never
    /// touch: its own connections and caches (a lock one of them holds
    /// while the parent forks would block the child forever), brought up to
    /// date by [`Storage::refresh`]. `None`: this storage is safe to share
    /// as it is (the file store).
    fn detached(&self) -> Option<(Arc<dyn Storage>, Arc<dyn Locker>)> {
        None
    }

    /// What keeps the store from being written now, for md-status (a
    /// distributed store that cannot be reached); `None` when all is well.
    fn problem(&self) -> Option<String> {
        None
    }

    /// A child process of httpd starts, before it serves: a store kept
    /// elsewhere brings its copy up to date and keeps it so from now on.
    fn child_started(&self) {}

    /// Brings what this process knows of the store up to date (a detached
    /// copy, before it looks); nothing for a store read afresh each time.
    fn refresh(&self) {}
}

/// Exclusion between processes that share a store.
pub trait Locker: std::fmt::Debug + Send + Sync {
    /// The store-wide lock (`MDStoreLocks`), waiting at most `wait`.
    fn lock_store(&self, wait: std::time::Duration) -> Result<Guard, StoreError>;

    /// One MD's order for this process, if no other process holds it:
    /// `Ok(None)` when one does. Released with the guard or the process.
    fn lock_md(&self, name: &str) -> Result<Option<Guard>, StoreError>;

    /// Whether the store's cluster grants and expires leases itself
    /// ([`Locker::grant`]); then every server on it takes part in the
    /// cluster's coordination.
    fn grants_leases(&self) -> bool {
        false
    }

    /// A lease of `ttl` granted by the store's cluster (etcd), kept alive by
    /// its holder and expired by the cluster when the holder stops; `None`
    /// where the store has no such leases (the file store: leases are then
    /// files with their holder's expiry time, `store::lease`).
    fn grant(&self, _ttl: std::time::Duration) -> Result<Option<Box<dyn Granted>>, StoreError> {
        Ok(None)
    }
}

/// A lease granted by the store's cluster; revoked when dropped.
pub trait Granted: Send + Sync {
    /// Creates `file` in `g`/`name` if it does not exist, attached to this
    /// lease (it vanishes with it); `Ok(false)` when it exists.
    fn create(&self, g: Group, name: &str, file: &str, data: &[u8]) -> Result<bool, StoreError>;

    /// Replaces `file`, still attached to this lease.
    fn write(&self, g: Group, name: &str, file: &str, data: &[u8]) -> Result<(), StoreError>;

    /// Keeps the lease alive for its time again; `Ok(false)` when the
    /// cluster let it expire (another holder may have it now).
    fn keep_alive(&self) -> Result<bool, StoreError>;
}

/// A held lock, released when dropped.
pub struct Guard {
    _held: Box<dyn std::any::Any + Send>,
}

impl Guard {
    /// Holds `lock` (a file handle, a session) until dropped.
    pub fn new(lock: impl std::any::Any + Send) -> Guard {
        Guard {
            _held: Box::new(lock),
        }
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Guard")
    }
}

#[cfg(test)]
mod tests {
    //! The seam holds: a store kept in memory serves the façade, the store
    //! key and the leases of a cluster, with no file system at all.
    use super::*;
    use crate::store::{err, Store};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    type Place = (&'static str, String, String);

    #[derive(Debug, Default)]
    struct Memory {
        files: Mutex<BTreeMap<Place, (Vec<u8>, i64)>>,
        rev: std::sync::atomic::AtomicI64,
    }

    fn at(g: Group, name: &str, file: &str) -> Place {
        (g.dir_name(), name.to_string(), file.to_string())
    }

    impl Memory {
        fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<Place, (Vec<u8>, i64)>> {
            self.files.lock().unwrap()
        }
        fn next(&self) -> i64 {
            self.rev.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
        }
    }

    impl Storage for Memory {
        fn describe(&self, g: Group, name: &str, file: &str) -> String {
            format!("mem:{}/{name}/{file}", g.dir_name())
        }
        fn read(&self, g: Group, name: &str, file: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.files().get(&at(g, name, file)).map(|(d, _)| d.clone()))
        }
        fn write(
            &self,
            g: Group,
            name: &str,
            file: &str,
            data: &[u8],
            _secret: bool,
            _durable: bool,
        ) -> Result<(), StoreError> {
            let rev = self.next();
            self.files().insert(at(g, name, file), (data.to_vec(), rev));
            Ok(())
        }
        fn create(
            &self,
            g: Group,
            name: &str,
            file: &str,
            data: &[u8],
            _secret: bool,
            _durable: bool,
        ) -> Result<bool, StoreError> {
            let rev = self.next();
            let mut f = self.files();
            if f.contains_key(&at(g, name, file)) {
                return Ok(false);
            }
            f.insert(at(g, name, file), (data.to_vec(), rev));
            Ok(true)
        }
        fn stat(&self, g: Group, name: &str, file: &str) -> Result<Option<Stat>, StoreError> {
            let f = self.files();
            let found = if file.is_empty() {
                f.iter()
                    .filter(|((gg, n, _), _)| *gg == g.dir_name() && (name.is_empty() || n == name))
                    .map(|(_, (_, r))| *r)
                    .max()
            } else {
                f.get(&at(g, name, file)).map(|(_, r)| *r)
            };
            Ok(found.map(|rev| Stat {
                modified: crate::base::time::now(),
                stamp: Stamp([rev, 0, 0, 0, 0]),
                symlink: false,
                owner: None,
            }))
        }
        fn remove(&self, g: Group, name: &str, file: &str) -> Result<(), StoreError> {
            self.files().remove(&at(g, name, file));
            Ok(())
        }
        fn rename(&self, g: Group, name: &str, file: &str, to: &str) -> Result<(), StoreError> {
            let mut f = self.files();
            let v = f.remove(&at(g, name, file)).ok_or_else(|| err("missing"))?;
            f.insert(at(g, name, to), v);
            Ok(())
        }
        fn list(&self, g: Group, name: &str) -> Vec<String> {
            let f = self.files();
            let mut v: Vec<String> = f
                .keys()
                .filter(|(gg, n, _)| *gg == g.dir_name() && (name.is_empty() || n == name))
                .map(|(_, n, file)| {
                    if name.is_empty() && !n.is_empty() {
                        n
                    } else {
                        file
                    }
                })
                .cloned()
                .collect();
            v.dedup();
            v
        }
        fn remove_name(&self, g: Group, name: &str) -> Result<(), StoreError> {
            self.files()
                .retain(|(gg, n, _), _| !(*gg == g.dir_name() && n == name));
            Ok(())
        }
        fn move_name(
            &self,
            from: Group,
            name: &str,
            to: Group,
            to_name: &str,
        ) -> Result<(), StoreError> {
            let mut f = self.files();
            if f.keys()
                .any(|(g, n, _)| *g == to.dir_name() && n == to_name)
            {
                return Err(err("target exists"));
            }
            let moving: Vec<Place> = f
                .keys()
                .filter(|(g, n, _)| *g == from.dir_name() && n == name)
                .cloned()
                .collect();
            for p in moving {
                let v = f.remove(&p).expect("listed");
                f.insert((to.dir_name(), to_name.to_string(), p.2), v);
            }
            Ok(())
        }
        fn prepare_group(&self, _g: Group) -> Result<(), StoreError> {
            Ok(())
        }
        fn open_group(&self, _g: Group) -> Result<(), StoreError> {
            Ok(())
        }
        fn hand_to_user(&self, _g: Group, _n: &str, _f: &str) -> Result<(), StoreError> {
            Ok(())
        }
        fn sweep(&self) -> usize {
            0
        }
        fn present(&self) -> bool {
            self.files()
                .contains_key(&at(Group::None, "", crate::store::STORE_FILE))
        }
        fn local_path(&self, g: Group, name: &str, file: &str) -> std::path::PathBuf {
            std::path::PathBuf::from(self.describe(g, name, file))
        }
    }

    impl Locker for Memory {
        fn lock_store(&self, _wait: std::time::Duration) -> Result<Guard, StoreError> {
            Ok(Guard::new(()))
        }
        fn lock_md(&self, _name: &str) -> Result<Option<Guard>, StoreError> {
            Ok(Some(Guard::new(())))
        }
    }

    fn mem_store() -> (Arc<Memory>, Store) {
        let m = Arc::new(Memory::default());
        let s = Store::with(m.clone(), m.clone(), None, &mut Vec::new()).unwrap();
        (m, s)
    }

    #[test]
    fn a_store_in_memory_keeps_its_key_files_and_keys() {
        let (m, s) = mem_store();
        assert!(s.present());
        // the key is made once and read back by the next opening
        let again = Store::with(m.clone(), m.clone(), None, &mut Vec::new()).unwrap();
        assert_eq!(again.key(), s.key());
        s.save_json(
            Group::Staging,
            "a.org",
            "md.json",
            &serde_json::json!({"a": 1}),
        )
        .unwrap();
        assert_eq!(
            again
                .load_json(Group::Staging, "a.org", "md.json")
                .unwrap()
                .unwrap()["a"],
            1
        );
        let k = crate::base::crypto::Key::generate_rsa(2048).unwrap();
        s.save_key(Group::Staging, "a.org", "privkey.pem", &k)
            .unwrap();
        let raw = m
            .read(Group::Staging, "a.org", "privkey.pem")
            .unwrap()
            .unwrap();
        assert!(raw.starts_with(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = again
            .load_key(Group::Staging, "a.org", "privkey.pem")
            .unwrap()
            .unwrap();
        assert!(back.pkey().public_eq(k.pkey()));
        // an installation's moves
        s.move_name(Group::Staging, "a.org", Group::Domains, "a.org")
            .unwrap();
        assert!(s.exists(Group::Domains, "a.org", "md.json"));
        assert!(!s.exists(Group::Staging, "a.org", ""));
        assert_eq!(s.names(Group::Domains), ["a.org"]);
        assert_eq!(
            s.names_in(Group::Domains, "a.org"),
            ["md.json", "privkey.pem"]
        );
        // a broken file is set aside, not lost
        m.write(Group::Domains, "a.org", "job.json", b"[1]", false, true)
            .unwrap();
        let mut notes = Vec::new();
        assert!(s
            .load_json_healing(Group::Domains, "a.org", "job.json", &mut notes)
            .unwrap()
            .is_none());
        assert!(s.exists(Group::Domains, "a.org", "job.json.broken"));
        assert!(notes[0]
            .msg
            .contains("mem:domains/a.org/job.json cannot be used"));
    }

    #[test]
    fn leases_work_on_any_storage() {
        let (_, s) = mem_store();
        let node = |n: &str| crate::config::Global {
            cluster_node: Some(n.into()),
            ..Default::default()
        };
        let a = crate::store::lease::Leases::of(&s, &node("a")).unwrap();
        let b = crate::store::lease::Leases::of(&s, &node("b")).unwrap();
        let now = crate::base::time::now();
        let crate::store::lease::Take::Taken(held) = a.try_take("x.org", now).unwrap() else {
            panic!("a free lease is taken");
        };
        assert!(matches!(
            b.try_take("x.org", now).unwrap(),
            crate::store::lease::Take::Busy(h) if h.node == "a"
        ));
        drop(held);
        assert!(matches!(
            b.try_take("x.org", now).unwrap(),
            crate::store::lease::Take::Taken(_)
        ));
    }
}
