//! Locks and leases of the store on etcd (issue 27): keys attached to
//! leases the cluster grants and expires. A holder keeps its lease alive on
//! a thread of its own while it works; when it dies or is cut off, etcd
//! expires the lease and the key goes: no clock of any node decides.

use super::etcd::{Etcd, Event, Kv};
use super::etcd_mirror::{create_if_absent, Mirror};
use super::etcd_store::{etcd_err, EtcdStorage};
use super::sealed;
use super::storage::{Granted, Guard, Locker};
use super::{err, Group, StoreError};
use crate::base::time;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seconds an etcd lease of a lock lives without keep-alive.
const LOCK_TTL: i64 = 10;

/// A lock held in etcd: a key attached to a lease this process keeps alive.
struct Held {
    etcd: Arc<Etcd>,
    lease: i64,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        let _ = self.etcd.revoke(self.lease);
    }
}

impl EtcdStorage {
    /// Takes the lock `name` if no one holds it: a key created only if it
    /// does not exist, attached to a new lease kept alive until the guard
    /// goes. A holder that dies loses it when etcd expires its lease.
    fn take(&self, name: &str) -> Result<Option<Guard>, StoreError> {
        let what = || format!("taking the lock {name} in {}", self.where_());
        let lease = self
            .etcd
            .grant(LOCK_TTL)
            .map_err(|e| etcd_err(&what(), e))?;
        let key = self.key(Group::None, "locks", name);
        let holder = serde_json::json!({
            "pid": std::process::id(),
            "host": std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim(),
        })
        .to_string();
        let created = create_if_absent(&self.etcd, None, &key, holder.as_bytes(), lease)
            .map_err(|e| etcd_err(&what(), e));
        if !matches!(created, Ok(Some(_))) {
            let _ = self.etcd.revoke(lease);
            return created.map(|_| None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (etcd, flag) = (self.etcd.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("md-etcd-lease".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_secs((LOCK_TTL / 3) as u64));
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(false) = etcd.keep_alive(lease) {
                        break;
                    }
                }
            })
            .ok();
        Ok(Some(Guard::new(Held {
            etcd: self.etcd.clone(),
            lease,
            stop,
            thread,
        })))
    }
}

impl Locker for EtcdStorage {
    fn lock_store(&self, wait: Duration) -> Result<Guard, StoreError> {
        let end = std::time::Instant::now() + wait;
        loop {
            if let Some(g) = self.take("store")? {
                return Ok(g);
            }
            if std::time::Instant::now() >= end {
                return Err(err(format!(
                    "the store lock in {} is held by another server",
                    self.where_()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn lock_md(&self, name: &str) -> Result<Option<Guard>, StoreError> {
        self.take(&format!("md-{name}"))
    }

    fn grants_leases(&self) -> bool {
        true
    }

    fn grant(&self, ttl: Duration) -> Result<Option<Box<dyn Granted>>, StoreError> {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(2);
        let id = self
            .etcd
            .grant(secs)
            .map_err(|e| etcd_err(&format!("a lease from {}", self.where_()), e))?;
        Ok(Some(Box::new(EtcdLease {
            store: EtcdStorageRef {
                etcd: self.etcd.clone(),
                prefix: self.prefix.clone(),
                mirror: self.mirror.clone(),
            },
            id,
            keys: Mutex::default(),
        })))
    }
}

/// What a granted lease needs of its store.
struct EtcdStorageRef {
    etcd: Arc<Etcd>,
    prefix: Vec<u8>,
    mirror: Arc<Mutex<Mirror>>,
}

/// A lease etcd granted: files attached to it vanish when it ends.
struct EtcdLease {
    store: EtcdStorageRef,
    id: i64,
    /// The keys attached to it (gone from the mirror when it ends).
    keys: Mutex<Vec<Vec<u8>>>,
}

impl EtcdLease {
    fn key(&self, g: Group, name: &str, file: &str) -> Vec<u8> {
        super::etcd_store::key_of(&self.store.prefix, g, name, file)
    }

    fn noted(&self, key: Vec<u8>, value: Vec<u8>, rev: i64) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        drop(keys);
        let mut m = self.store.mirror.lock().unwrap_or_else(|e| e.into_inner());
        m.apply(Event::Put(Kv {
            key,
            value,
            create_revision: rev,
            mod_revision: rev,
            lease: self.id,
        }));
    }
}

impl Granted for EtcdLease {
    fn create(&self, g: Group, name: &str, file: &str, data: &[u8]) -> Result<bool, StoreError> {
        let key = self.key(g, name, file);
        let value = sealed::wrap(data, time::now(), None).map_err(err)?;
        let store = &self.store;
        let created = create_if_absent(&store.etcd, Some(&store.mirror), &key, &value, self.id)
            .map_err(|e| etcd_err("taking a lease", e))?;
        if let Some(revision) = created {
            self.noted(key, value, revision);
        }
        Ok(created.is_some())
    }

    fn write(&self, g: Group, name: &str, file: &str, data: &[u8]) -> Result<(), StoreError> {
        let key = self.key(g, name, file);
        let value = sealed::wrap(data, time::now(), None).map_err(err)?;
        let rev = self
            .store
            .etcd
            .put(&key, &value, self.id)
            .map_err(|e| etcd_err("refreshing a lease", e))?;
        self.noted(key, value, rev);
        Ok(())
    }

    fn keep_alive(&self) -> Result<bool, StoreError> {
        self.store
            .etcd
            .keep_alive(self.id)
            .map_err(|e| etcd_err("keeping a lease alive", e))
    }
}

impl Drop for EtcdLease {
    fn drop(&mut self) {
        let _ = self.store.etcd.revoke(self.id);
        let keys = std::mem::take(&mut *self.keys.lock().unwrap_or_else(|e| e.into_inner()));
        let mut m = self.store.mirror.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if m.kvs.get(&k).is_some_and(|kv| kv.lease == self.id) {
                m.kvs.remove(&k);
            }
        }
    }
}
