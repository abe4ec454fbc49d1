//! The store on etcd (issue 27): [`Storage`] and [`Locker`] over an etcd
//! cluster, for httpd servers without a shared file system.
//!
//! Every file lives under the prefix as `<prefix><group>/<name>/<file>`
//! (`<prefix><file>` at the root), wrapped by [`super::sealed`]: private
//! keys sealed with the node's key. Each process keeps a mirror of the
//! prefix: filled by one range read when the store is opened (the parent,
//! at each start), kept current by the process's own writes and, in httpd's
//! children, by a watch thread started on first use after the fork. Reads
//! come from the mirror (a handshake never waits for the network); what
//! must be decided by the cluster (creating a file only if absent, moving a
//! set, locks) is a transaction in etcd.
//!
//! mod_ssl reads files: [`Storage::local_path`] writes what it names into
//! a local cache directory (the `MDStoreDir`, root-only as the file store's
//! `domains/`) and returns that file.

use super::etcd::{prefix_end, Cmp, Etcd, EtcdError, Event, Kv, Op};
use super::etcd_mirror::{catch_up, create_if_absent, watch_loop, Mirror};
use super::files::FileStorage;
use super::sealed::{self, SealKey, Unwrapped};
use super::storage::{Stamp, Stat, Storage};
use super::{err, Group, StoreError};
use crate::base::time;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The store on etcd.
#[derive(Debug)]
pub struct EtcdStorage {
    pub(crate) etcd: Arc<Etcd>,
    pub(crate) prefix: Vec<u8>,
    seal: Option<SealKey>,
    /// The local cache of what mod_ssl reads.
    cache: FileStorage,
    pub(crate) mirror: Arc<Mutex<Mirror>>,
    /// The process whose watch thread keeps the mirror current (0: none).
    watcher: Mutex<u32>,
    /// What `local_path` wrote into the cache, by key: its revision.
    cached: Mutex<HashMap<Vec<u8>, i64>>,
}

/// The etcd key of a place in the store under `prefix`:
/// `<prefix><group>/<name>/<file>` (`<prefix><file>` at the root).
pub(crate) fn key_of(prefix: &[u8], g: Group, name: &str, file: &str) -> Vec<u8> {
    let mut k = prefix.to_vec();
    if g != Group::None {
        k.extend_from_slice(g.dir_name().as_bytes());
        k.push(b'/');
    }
    if !name.is_empty() {
        k.extend_from_slice(name.as_bytes());
        k.push(b'/');
    }
    k.extend_from_slice(file.as_bytes());
    k
}

pub(crate) fn etcd_err(what: &str, e: EtcdError) -> StoreError {
    err(format!("{what}: {e}"))
}

impl EtcdStorage {
    /// Opens the store under `prefix` at `etcd`, with its local cache at
    /// `cache_root` (created as the file store would be). Reads the whole
    /// prefix once.
    pub fn open(
        etcd: Etcd,
        prefix: &str,
        seal: Option<SealKey>,
        cache_root: &std::path::Path,
        notes: &mut dyn crate::base::log::Notes,
    ) -> Result<EtcdStorage, StoreError> {
        let cache = FileStorage::open(cache_root, None, notes)?;
        let mut prefix = prefix.as_bytes().to_vec();
        if !prefix.ends_with(b"/") {
            prefix.push(b'/');
        }
        let s = EtcdStorage {
            etcd: Arc::new(etcd),
            prefix,
            seal,
            cache,
            mirror: Arc::default(),
            // the opener (httpd's parent, before it forks) reads the store
            // when it opens it again; its children keep a mirror current
            watcher: Mutex::new(std::process::id()),
            cached: Mutex::default(),
        };
        if let Err(e) = s.reload() {
            // etcd is away: the server starts with what this node's cache
            // holds (the sets mod_ssl loaded last time); renewals wait
            // until etcd answers, the children's watch catches up then
            if !s.load_cache() {
                return Err(e);
            }
            notes.push(crate::base::log::Note::new(
                crate::base::log::Level::Error,
                format!(
                    "{e}; the server starts with the certificates in its local cache {} and \
                     renews nothing until etcd answers again",
                    cache_root.display()
                ),
            ));
        }
        Ok(s)
    }

    /// Opens the store `settings` name (`MDStoreBackend etcd` and its
    /// options), with its local cache at `cache_root`.
    pub fn configured(
        settings: &crate::config::EtcdSettings,
        cache_root: &std::path::Path,
        notes: &mut dyn crate::base::log::Notes,
    ) -> Result<EtcdStorage, StoreError> {
        let e = settings;
        let seal_file = e.seal_key.as_deref().ok_or_else(|| {
            err(
                "MDStoreBackend etcd needs MDStoreEtcdSealKey: a file with a 32-byte key, the \
                 same on every node and never in etcd (openssl rand -out /etc/apache2/md-seal.key \
                 32; chmod 600 /etc/apache2/md-seal.key)",
            )
        })?;
        let seal = SealKey::load(std::path::Path::new(seal_file))
            .map_err(|m| err(format!("MDStoreEtcdSealKey: {m}")))?;
        let read = |f: &str| {
            std::fs::read(f)
                .map_err(|x| err(format!("MDStoreEtcdClientCert: cannot read {f}: {x}")))
        };
        let client_cert = match &e.client_cert {
            Some((c, k)) => Some((read(c)?, read(k)?)),
            None => None,
        };
        let client = Etcd::new(super::etcd::EtcdConfig {
            endpoints: e.endpoints.clone(),
            ca_file: e.ca_file.clone(),
            client_cert,
            user: e.user.clone(),
        });
        EtcdStorage::open(client, &e.prefix, Some(seal), cache_root, notes)
    }

    /// Fills the mirror from the local cache (what the last start wrote
    /// there for mod_ssl); false when it holds no store.
    fn load_cache(&self) -> bool {
        let Ok(Some(meta)) = self.cache.read(Group::None, "", super::STORE_FILE) else {
            return false;
        };
        let mut found = vec![(
            Group::None,
            String::new(),
            super::STORE_FILE.to_string(),
            meta,
        )];
        for name in self.cache.list(Group::Domains, "") {
            for file in self.cache.list(Group::Domains, &name) {
                if crate::base::util::is_tmp_name(&file) {
                    continue;
                }
                if let Ok(Some(d)) = self.cache.read(Group::Domains, &name, &file) {
                    found.push((Group::Domains, name.clone(), file, d));
                }
            }
        }
        let mut m = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        for (g, name, file, data) in found {
            let key = self.key(g, &name, &file);
            let secret = file.contains("privkey");
            let seal = if secret { self.seal.as_ref() } else { None };
            let Ok(value) = sealed::wrap(&data, 0, seal) else {
                continue;
            };
            // revision 0: the cache's file is this entry (never rewritten
            // from it); anything etcd says later replaces it
            cached.insert(key.clone(), 0);
            m.kvs.insert(
                key.clone(),
                Kv {
                    key,
                    value,
                    create_revision: 0,
                    mod_revision: 0,
                    lease: 0,
                },
            );
        }
        true
    }

    /// A copy with its own connection, mirror and cache bookkeeping,
    /// starting from what this one knows.
    fn twin(&self) -> EtcdStorage {
        let m = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        EtcdStorage {
            etcd: Arc::new(Etcd::new(self.etcd.config().clone())),
            prefix: self.prefix.clone(),
            seal: self.seal.clone(),
            cache: self.cache.clone(),
            mirror: Arc::new(Mutex::new(Mirror {
                kvs: m.kvs.clone(),
                revision: m.revision,
            })),
            watcher: Mutex::new(std::process::id()),
            cached: Mutex::default(),
        }
    }

    /// Catches the mirror up with etcd (see [`catch_up`]).
    fn catch_up(&self) -> Result<(), StoreError> {
        catch_up(&self.etcd, &self.mirror, &self.prefix)
            .map_err(|e| etcd_err(&format!("reading the store at {}", self.where_()), e))
    }

    /// Reads the whole prefix into the mirror.
    fn reload(&self) -> Result<(), StoreError> {
        let (kvs, rev) = self
            .etcd
            .range(&self.prefix, Some(&prefix_end(&self.prefix)), false)
            .map_err(|e| etcd_err(&format!("reading the store at {}", self.where_()), e))?;
        let mut m = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        m.kvs = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        m.revision = rev;
        Ok(())
    }

    pub(crate) fn where_(&self) -> String {
        format!(
            "etcd {} {}",
            self.etcd.endpoints(),
            String::from_utf8_lossy(&self.prefix)
        )
    }

    pub(crate) fn key(&self, g: Group, name: &str, file: &str) -> Vec<u8> {
        key_of(&self.prefix, g, name, file)
    }

    fn mirror(&self) -> std::sync::MutexGuard<'_, Mirror> {
        self.watch();
        self.mirror.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// In a process other than the one that opened the store (an httpd
    /// child), starts the thread that keeps the mirror current, once.
    fn watch(&self) {
        let pid = std::process::id();
        let mut w = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        if *w == pid {
            return;
        }
        *w = pid;
        self.spawn_watch();
    }

    /// Keeps this process's mirror current from now on (a process that
    /// opened the store and runs on, as a2md's watchers and tests do).
    pub(crate) fn keep_current(&self) {
        let mut w = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        *w = std::process::id();
        self.spawn_watch();
    }

    fn spawn_watch(&self) {
        let (etcd, mirror, prefix) = (self.etcd.clone(), self.mirror.clone(), self.prefix.clone());
        let _ = std::thread::Builder::new()
            .name("md-etcd-watch".into())
            .spawn(move || watch_loop(&etcd, &mirror, &prefix));
    }

    /// The entry of a key as this process knows it.
    fn entry(&self, key: &[u8]) -> Option<Kv> {
        self.mirror().kvs.get(key).cloned()
    }

    fn note_put(&self, key: Vec<u8>, value: Vec<u8>, rev: i64) {
        let mut m = self.mirror();
        let create = m.kvs.get(&key).map_or(rev, |o| o.create_revision);
        m.apply(Event::Put(Kv {
            key,
            value,
            create_revision: create,
            mod_revision: rev,
            lease: 0,
        }));
    }

    fn note_delete(&self, prefix: &[u8], whole: bool) {
        let mut m = self.mirror();
        if whole {
            let keys: Vec<Vec<u8>> = m.under(prefix).map(|(k, _)| k.clone()).collect();
            for k in keys {
                m.kvs.remove(&k);
            }
        } else {
            m.kvs.remove(prefix);
        }
    }

    fn wrap(&self, data: &[u8], secret: bool) -> Result<Vec<u8>, StoreError> {
        // (the store's own key, md_store.json, comes as a secret too)
        let key = match (secret, &self.seal) {
            (false, _) => None,
            (true, Some(k)) => Some(k),
            (true, None) => {
                return Err(err(
                    "a private key cannot be stored in etcd without MDStoreEtcdSealKey",
                ))
            }
        };
        sealed::wrap(data, time::now(), key).map_err(|e| err(format!("sealing a key: {e}")))
    }

    fn open_value(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        match sealed::unwrap(value, self.seal.as_ref()) {
            Unwrapped::Plain(d, _) => Ok(d),
            Unwrapped::Sealed(_) => Err(err(format!(
                "{} is sealed with another key than MDStoreEtcdSealKey's: every node needs \
                 the same key file",
                String::from_utf8_lossy(key)
            ))),
        }
    }

    /// The keys of a name (or of a whole group with name `""`).
    fn dir_prefix(&self, g: Group, name: &str) -> Vec<u8> {
        let mut p = self.key(g, name, "");
        if name.is_empty() && g == Group::None {
            p.truncate(self.prefix.len());
        }
        p
    }
}

impl Storage for EtcdStorage {
    fn describe(&self, g: Group, name: &str, file: &str) -> String {
        let k = self.key(g, name, file);
        format!("etcd:{}", String::from_utf8_lossy(&k))
    }

    fn read(&self, g: Group, name: &str, file: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(g, name, file);
        match self.entry(&key) {
            None => Ok(None),
            Some(kv) => self.open_value(&key, &kv.value).map(Some),
        }
    }

    fn write(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
        secret: bool,
        _durable: bool,
    ) -> Result<(), StoreError> {
        let key = self.key(g, name, file);
        let value = self.wrap(data, secret)?;
        let rev = self
            .etcd
            .put(&key, &value, 0)
            .map_err(|e| etcd_err(&format!("writing {}", self.describe(g, name, file)), e))?;
        self.note_put(key, value, rev);
        Ok(())
    }

    fn create(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
        secret: bool,
        _durable: bool,
    ) -> Result<bool, StoreError> {
        let key = self.key(g, name, file);
        let value = self.wrap(data, secret)?;
        self.watch();
        let created = create_if_absent(&self.etcd, Some(&self.mirror), &key, &value, 0)
            .map_err(|e| etcd_err(&format!("creating {}", self.describe(g, name, file)), e))?;
        if let Some(revision) = created {
            self.note_put(key, value, revision);
        }
        Ok(created.is_some())
    }

    fn stat(&self, g: Group, name: &str, file: &str) -> Result<Option<Stat>, StoreError> {
        let m = self.mirror();
        let kvs: Vec<&Kv> = if file.is_empty() {
            m.under(&self.dir_prefix(g, name))
                .map(|(_, kv)| kv)
                .collect()
        } else {
            m.kvs.get(&self.key(g, name, file)).into_iter().collect()
        };
        if kvs.is_empty() {
            return Ok(None);
        }
        let modified = kvs
            .iter()
            .map(|kv| match sealed::unwrap(&kv.value, None) {
                Unwrapped::Plain(_, t) | Unwrapped::Sealed(t) => t,
            })
            .max()
            .unwrap_or(0);
        let newest = kvs.iter().map(|kv| kv.mod_revision).max().unwrap_or(0);
        let created = kvs.iter().map(|kv| kv.create_revision).min().unwrap_or(0);
        Ok(Some(Stat {
            modified,
            stamp: Stamp([newest, created, kvs.len() as i64, modified, 0]),
            symlink: false,
            owner: None,
        }))
    }

    fn remove(&self, g: Group, name: &str, file: &str) -> Result<(), StoreError> {
        let key = self.key(g, name, file);
        self.etcd
            .delete(&key, None)
            .map_err(|e| etcd_err(&format!("removing {}", self.describe(g, name, file)), e))?;
        self.note_delete(&key, false);
        Ok(())
    }

    fn rename(&self, g: Group, name: &str, file: &str, to: &str) -> Result<(), StoreError> {
        let (from, dest) = (self.key(g, name, file), self.key(g, name, to));
        let what = || format!("renaming {} to {to}", self.describe(g, name, file));
        for _ in 0..5 {
            let (kvs, _) = self
                .etcd
                .range(&from, None, false)
                .map_err(|e| etcd_err(&what(), e))?;
            let Some(kv) = kvs.into_iter().next() else {
                return Err(err(format!("{}: it does not exist", what())));
            };
            let t = self
                .etcd
                .txn(
                    &[Cmp::Modified(from.clone(), kv.mod_revision)],
                    &[
                        Op::Put {
                            key: dest.clone(),
                            value: kv.value.clone(),
                            lease: 0,
                        },
                        Op::Delete {
                            key: from.clone(),
                            range_end: None,
                        },
                    ],
                    &[],
                )
                .map_err(|e| etcd_err(&what(), e))?;
            if t.succeeded {
                self.note_put(dest, kv.value, t.revision);
                self.note_delete(&from, false);
                return Ok(());
            }
        }
        Err(err(format!("{}: it kept changing", what())))
    }

    fn list(&self, g: Group, name: &str) -> Vec<String> {
        let p = self.dir_prefix(g, name);
        let m = self.mirror();
        let mut out: Vec<String> = m
            .under(&p)
            .filter_map(|(k, _)| {
                let rest = String::from_utf8_lossy(&k[p.len()..]).into_owned();
                let first = rest.split('/').next().unwrap_or("").to_string();
                (!first.is_empty()).then_some(first)
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn remove_name(&self, g: Group, name: &str) -> Result<(), StoreError> {
        let p = self.dir_prefix(g, name);
        self.etcd
            .delete(&p, Some(&prefix_end(&p)))
            .map_err(|e| etcd_err(&format!("removing {}", self.describe(g, name, "")), e))?;
        self.note_delete(&p, true);
        Ok(())
    }

    fn move_name(
        &self,
        from: Group,
        name: &str,
        to: Group,
        to_name: &str,
    ) -> Result<(), StoreError> {
        let (src, dst) = (self.dir_prefix(from, name), self.dir_prefix(to, to_name));
        let what = || {
            format!(
                "moving {} to {}",
                self.describe(from, name, ""),
                self.describe(to, to_name, "")
            )
        };
        for _ in 0..5 {
            let (kvs, _) = self
                .etcd
                .range(&src, Some(&prefix_end(&src)), false)
                .map_err(|e| etcd_err(&what(), e))?;
            if kvs.is_empty() {
                return Err(err(format!("{}: there is nothing to move", what())));
            }
            let mut cmp = vec![Cmp::Created(dst.clone(), Some(prefix_end(&dst)), 0)];
            let mut ops = Vec::new();
            for kv in &kvs {
                cmp.push(Cmp::Modified(kv.key.clone(), kv.mod_revision));
                let mut k = dst.clone();
                k.extend_from_slice(&kv.key[src.len()..]);
                ops.push(Op::Put {
                    key: k,
                    value: kv.value.clone(),
                    lease: 0,
                });
            }
            ops.push(Op::Delete {
                key: src.clone(),
                range_end: Some(prefix_end(&src)),
            });
            let t = self
                .etcd
                .txn(&cmp, &ops, &[])
                .map_err(|e| etcd_err(&what(), e))?;
            if t.succeeded {
                for kv in kvs {
                    let mut k = dst.clone();
                    k.extend_from_slice(&kv.key[src.len()..]);
                    self.note_put(k, kv.value, t.revision);
                }
                self.note_delete(&src, true);
                return Ok(());
            }
            let (there, _) = self
                .etcd
                .range(&dst, Some(&prefix_end(&dst)), true)
                .map_err(|e| etcd_err(&what(), e))?;
            if !there.is_empty() {
                return Err(err(format!("{}: the target exists", what())));
            }
        }
        Err(err(format!("{}: it kept changing", what())))
    }

    fn prepare_group(&self, _g: Group) -> Result<(), StoreError> {
        Ok(())
    }

    fn open_group(&self, _g: Group) -> Result<(), StoreError> {
        Ok(())
    }

    fn hand_to_user(&self, _g: Group, _name: &str, _file: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn sweep(&self) -> usize {
        0
    }

    fn present(&self) -> bool {
        true
    }

    fn detached(&self) -> Option<(Arc<dyn Storage>, Arc<dyn super::storage::Locker>)> {
        let twin = Arc::new(self.twin());
        Some((twin.clone(), twin))
    }

    fn refresh(&self) {
        let _ = self.catch_up();
    }

    fn problem(&self) -> Option<String> {
        let (since, why) = self.etcd.trouble()?;
        Some(format!(
            "etcd cannot be reached since {} ({why}): this node serves what it has and renews \
             nothing until etcd answers",
            time::rfc822(since)
        ))
    }

    fn child_started(&self) {
        let _ = self.catch_up();
        self.keep_current();
    }

    fn local_path(&self, g: Group, name: &str, file: &str) -> PathBuf {
        let path = self.cache.path(g, name, file);
        if file.is_empty() {
            return path;
        }
        let key = self.key(g, name, file);
        let Some(kv) = self.entry(&key) else {
            // gone from the store: gone from the cache
            if self
                .cached
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key)
                .is_some()
            {
                let _ = self.cache.remove(g, name, file);
            }
            return path;
        };
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.get(&key) == Some(&kv.mod_revision) {
            return path;
        }
        drop(cached);
        if g != Group::None {
            // the cache is a file store of its own (the C module can read
            // it): with the store's md_store.json
            self.local_path(Group::None, "", super::STORE_FILE);
        }
        let secret = sealed::is_sealed(&kv.value);
        let written = self
            .open_value(&key, &kv.value)
            .and_then(|data| self.cache.write(g, name, file, &data, secret, true));
        if written.is_ok() {
            self.cached
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, kv.mod_revision);
        }
        path
    }
}

#[cfg(test)]
mod tests {
    //! Against a real etcd: what the file store holds, it holds; keys are
    //! sealed in etcd; nodes see each other's writes; locks are the
    //! cluster's.
    use super::*;
    use crate::base::crypto::Key;
    use crate::base::keyspec::KeySpec;
    use crate::store::etcd::EtcdConfig;
    use crate::store::storage::Locker;
    use crate::store::Store;
    use crate::testutil::{EtcdServer, TempDir};
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    fn node(url: &str, tag: &str) -> (TempDir, Arc<EtcdStorage>, Store) {
        let dir = TempDir::new(tag);
        let etcd = Etcd::new(EtcdConfig {
            endpoints: vec![url.to_string()],
            ..Default::default()
        });
        let seal = SealKey::from_bytes(&[9u8; 32]);
        let mut notes = Vec::new();
        let s =
            Arc::new(EtcdStorage::open(etcd, "/t/", seal, &dir.join("cache"), &mut notes).unwrap());
        let store = Store::with(s.clone(), s.clone(), None, &mut notes).unwrap();
        (dir, s, store)
    }

    #[test]
    fn a_store_on_etcd_holds_what_the_file_store_holds() {
        let e = EtcdServer::start("holds");
        let (_d1, s1, a) = node(&e.url, "a");
        let (_d2, _s2, b) = node(&e.url, "b");
        // one store key for every node
        assert_eq!(a.key(), b.key());
        a.save_json(
            Group::Staging,
            "a.org",
            "md.json",
            &serde_json::json!({"name": "a.org"}),
        )
        .unwrap();
        let k = Key::generate(&KeySpec::Ec("P-256".into())).unwrap();
        a.save_key(Group::Staging, "a.org", "privkey.pem", &k)
            .unwrap();
        // never plain in etcd
        let raw = Etcd::new(EtcdConfig {
            endpoints: vec![e.url.clone()],
            ..Default::default()
        });
        let (kvs, _) = raw.range(b"/t/", Some(b"/t0"), false).unwrap();
        let keyval = kvs
            .iter()
            .find(|kv| kv.key == b"/t/staging/a.org/privkey.pem")
            .unwrap();
        assert!(sealed::is_sealed(&keyval.value));
        assert!(!keyval.value.windows(7).any(|w| w == b"PRIVATE"));
        assert!(a
            .load_key(Group::Staging, "a.org", "privkey.pem")
            .unwrap()
            .unwrap()
            .pkey()
            .public_eq(k.pkey()));
        // installation moves the set in one step; a second one fails
        a.move_name(Group::Staging, "a.org", Group::Domains, "a.org")
            .unwrap();
        assert_eq!(a.names(Group::Staging), Vec::<String>::new());
        assert_eq!(a.names(Group::Domains), ["a.org"]);
        a.save_json(Group::Staging, "a.org", "md.json", &serde_json::json!({}))
            .unwrap();
        assert!(a
            .move_name(Group::Staging, "a.org", Group::Domains, "a.org")
            .is_err());
        // mod_ssl's file: in the cache, root-only for a key
        let p = s1.local_path(Group::Domains, "a.org", "privkey.pem");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&p).unwrap().contains("PRIVATE KEY"));
        // created once across nodes
        assert!(a.create_bytes(Group::Leases, "", "x", b"1").unwrap());
        assert!(!b.create_bytes(Group::Leases, "", "x", b"2").unwrap());
        assert_eq!(
            b.load_bytes(Group::Leases, "", "x").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        a.purge(Group::Domains, "a.org");
        assert!(a.names(Group::Domains).is_empty());
    }

    #[test]
    fn a_watching_node_sees_the_others_writes() {
        let e = EtcdServer::start("watch");
        let (_d1, _s1, a) = node(&e.url, "wa");
        let (_d2, s2, b) = node(&e.url, "wb");
        s2.keep_current();
        a.save_json(
            Group::Staging,
            "w.org",
            "job.json",
            &serde_json::json!({"n": 1}),
        )
        .unwrap();
        let seen = crate::testutil::wait_until(2.0, || {
            b.load_json(Group::Staging, "w.org", "job.json")
                .ok()
                .flatten()
                == Some(serde_json::json!({"n": 1}))
        });
        assert!(seen, "node b did not see node a's write within 2 s");
        a.remove(Group::Staging, "w.org", "job.json");
        assert!(crate::testutil::wait_until(2.0, || b
            .load_json(Group::Staging, "w.org", "job.json")
            .ok()
            .flatten()
            .is_none()));
    }

    #[test]
    fn locks_are_the_clusters() {
        let e = EtcdServer::start("locks");
        let (_d1, s1, _a) = node(&e.url, "la");
        let (_d2, s2, _b) = node(&e.url, "lb");
        let held = s1.lock_md("a.org").unwrap().expect("free");
        assert!(s2.lock_md("a.org").unwrap().is_none());
        assert!(s2.lock_md("b.org").unwrap().is_some());
        drop(held);
        assert!(s2.lock_md("a.org").unwrap().is_some());
        // a holder that died: its lease runs out in etcd, then it is free
        let raw = Etcd::new(EtcdConfig {
            endpoints: vec![e.url.clone()],
            ..Default::default()
        });
        let lease = raw.grant(2).unwrap();
        raw.put(b"/t/locks/md-c.org", b"{}", lease).unwrap();
        assert!(s1.lock_md("c.org").unwrap().is_none());
        assert!(crate::testutil::wait_until(8.0, || s1
            .lock_md("c.org")
            .unwrap()
            .is_some()));
        let store = s1.lock_store(Duration::from_secs(1)).unwrap();
        assert!(s2.lock_store(Duration::from_millis(300)).is_err());
        drop(store);
        assert!(s2.lock_store(Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn cluster_leases_are_etcds() {
        use crate::store::lease::{Leases, Take};
        let e = EtcdServer::start("leases");
        let (_d1, _s1, a) = node(&e.url, "lea");
        let (_d2, _s2, b) = node(&e.url, "leb");
        let global = crate::config::Global {
            cluster_lease: 5 * time::USEC_PER_SEC,
            ..Default::default()
        };
        let (la, lb) = (
            Leases::of(&a, &global).expect("etcd makes every server a node"),
            Leases::of(&b, &global).unwrap(),
        );
        let Take::Taken(held) = la.try_take("a.org", time::now()).unwrap() else {
            panic!("free lease not taken")
        };
        let Take::Busy(h) = lb.try_take("a.org", time::now()).unwrap() else {
            panic!("taken twice")
        };
        assert_eq!(h.token, held.holder().token);
        drop(held);
        let Take::Taken(held) = lb.try_take("a.org", time::now()).unwrap() else {
            panic!("a released lease is free")
        };
        // the cluster ends the lease (as when its holder is cut off longer
        // than its time): the holder learns it at its next refresh, and the
        // lease is free for others at once
        let raw = Etcd::new(EtcdConfig {
            endpoints: vec![e.url.clone()],
            ..Default::default()
        });
        let (kvs, _) = raw.range(b"/t/leases/a.org.json", None, false).unwrap();
        raw.revoke(kvs[0].lease).unwrap();
        held.refresh();
        assert!(held.lost_flag().load(Ordering::SeqCst));
        assert!(matches!(
            la.try_take("a.org", time::now()).unwrap(),
            Take::Taken(_)
        ));
    }

    #[test]
    fn etcd_away_at_start_serves_from_the_cache() {
        let e = EtcdServer::start("away");
        let dir = TempDir::new("away-node");
        let open = |url: &str, notes: &mut Vec<crate::base::log::Note>| {
            let etcd = Etcd::new(EtcdConfig {
                endpoints: vec![url.to_string()],
                ..Default::default()
            });
            let s = Arc::new(EtcdStorage::open(
                etcd,
                "/t/",
                SealKey::from_bytes(&[9u8; 32]),
                &dir.join("cache"),
                notes,
            )?);
            Store::with(s.clone(), s.clone(), None, notes).map(|st| (s, st))
        };
        let (s, store) = open(&e.url, &mut Vec::new()).unwrap();
        let k = Key::generate(&KeySpec::Ec("P-256".into())).unwrap();
        store
            .save_key(Group::Domains, "a.org", "privkey.pem", &k)
            .unwrap();
        store
            .save_bytes(Group::Domains, "a.org", "pubcert.pem", b"CERT", false)
            .unwrap();
        let served = s.local_path(Group::Domains, "a.org", "privkey.pem");
        s.local_path(Group::Domains, "a.org", "pubcert.pem");
        let key = store.key().to_vec();
        drop((s, store));
        let url = e.url.clone();
        drop(e);
        // etcd is gone: the store opens from the cache, says so, serves
        // what the cache holds and writes nothing
        let mut notes = Vec::new();
        let (s, store) = open(&url, &mut notes).unwrap();
        assert!(
            notes
                .iter()
                .any(|n| n.msg.contains("etcd cannot be reached") && n.msg.contains("local cache")),
            "{notes:?}"
        );
        assert_eq!(store.key(), &key[..]);
        assert_eq!(
            store
                .load_bytes(Group::Domains, "a.org", "pubcert.pem")
                .unwrap()
                .as_deref(),
            Some(&b"CERT"[..])
        );
        assert!(store
            .load_key(Group::Domains, "a.org", "privkey.pem")
            .unwrap()
            .unwrap()
            .pkey()
            .public_eq(k.pkey()));
        assert_eq!(s.local_path(Group::Domains, "a.org", "privkey.pem"), served);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&served).unwrap().mode() & 0o777, 0o600);
        let t = std::time::Instant::now();
        assert!(store
            .save_bytes(Group::Staging, "a.org", "job.json", b"{}", false)
            .is_err());
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn etcd_with_authentication() {
        let e = EtcdServer::start("auth");
        let ctl = |args: &[&str]| {
            let out = std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", e.url))
                .args(args)
                .output()
                .expect("etcdctl (Debian's etcd-client)");
            assert!(out.status.success(), "{out:?}");
        };
        ctl(&["user", "add", "root:rootpw"]);
        ctl(&["user", "add", "md:mdpw"]);
        ctl(&["role", "add", "md"]);
        ctl(&[
            "role",
            "grant-permission",
            "md",
            "--prefix=true",
            "readwrite",
            "/t/",
        ]);
        ctl(&["user", "grant-role", "md", "md"]);
        ctl(&["auth", "enable"]);
        let open = |user: Option<(&str, &str)>| {
            let dir = TempDir::new("auth-node");
            let etcd = Etcd::new(EtcdConfig {
                endpoints: vec![e.url.clone()],
                user: user.map(|(u, p)| (u.to_string(), p.to_string())),
                ..Default::default()
            });
            let mut notes = Vec::new();
            let r = EtcdStorage::open(
                etcd,
                "/t/",
                SealKey::from_bytes(&[1u8; 32]),
                &dir,
                &mut notes,
            )
            .map(Arc::new)
            .and_then(|s| Store::with(s.clone(), s, None, &mut notes));
            (dir, r)
        };
        let (_d, store) = open(Some(("md", "mdpw")));
        let store = store.unwrap();
        store
            .save_json(
                Group::Staging,
                "a.org",
                "job.json",
                &serde_json::json!({"ok": 1}),
            )
            .unwrap();
        let (_d, again) = open(Some(("md", "mdpw")));
        assert_eq!(
            again
                .unwrap()
                .load_json(Group::Staging, "a.org", "job.json")
                .unwrap(),
            Some(serde_json::json!({"ok": 1}))
        );
        // no user, or a wrong password: refused, and said so
        let (_d, none) = open(None);
        assert!(none.is_err());
        let (_d, wrong) = open(Some(("md", "nope")));
        let e = wrong.unwrap_err();
        assert!(e.msg.contains("authentication failed"), "{e}");
    }

    #[test]
    fn etcd_over_tls_with_a_client_certificate() {
        let d = TempDir::new("etcd-tls");
        let sh = |script: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(&*d)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        };
        let req = "openssl req -newkey rsa:2048 -nodes -subj";
        let sign = "openssl x509 -req -CA ca.pem -CAkey ca.key -CAcreateserial -days 2";
        sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca -keyout ca.key -out ca.pem \
             && {req} /CN=localhost -keyout server.key -out server.csr \
             && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san \
             && {sign} -in server.csr -out server.pem -extfile san \
             && {req} /CN=md -keyout client.key -out client.csr \
             && {sign} -in client.csr -out client.pem"
        ));
        let e = EtcdServer::start_with("tls", Some(&d));
        let read = |f: &str| std::fs::read(d.join(f)).unwrap();
        let open = |cert: bool| {
            let etcd = Etcd::new(EtcdConfig {
                endpoints: vec![e.url.clone()],
                ca_file: Some(d.join("ca.pem").display().to_string()),
                client_cert: cert.then(|| (read("client.pem"), read("client.key"))),
                ..Default::default()
            });
            let cache = TempDir::new("tls-node");
            let r = EtcdStorage::open(etcd, "/t/", None, &cache, &mut Vec::new());
            (cache, r)
        };
        let (_c, s) = open(true);
        let s = s.unwrap();
        s.write(Group::Staging, "a.org", "x", b"1", false, true)
            .unwrap();
        let (_c, refused) = open(false);
        let e = refused.unwrap_err();
        assert!(e.msg.contains("etcd cannot be reached"), "{e}");
    }
}
