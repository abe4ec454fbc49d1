//! Leases for httpd servers that share one store (issue 15, `MDClusterNode`).
//!
//! A lease says which node works on something (an MD's renewal, the choice
//! or registration of an ACME account, the installation of staged sets)
//! until when. It is a small JSON file in the store's `leases` group, taken
//! by creating it only if it does not exist ([`Storage::create`]: `link(2)`
//! from a temp file in the file store, atomic on local file systems and NFS
//! alike; no `flock`/`fcntl`, which do not work across NFS clients),
//! refreshed by its holder through an atomic replace while the work runs,
//! and removed when the work ends. Leases are built on the storage seam
//! alone, so any [`Storage`] gives a cluster its leases. A lease whose holder stopped
//! refreshing it (a node that crashed or was killed) is taken over once its
//! time has run out, plus [`SKEW`] for clocks that differ between nodes.
//!
//! Of the nodes that find a lease stale, the one that creates the claim
//! file of that taking first (exclusively, as the lease itself) replaces it.

use crate::base::time::{self, Micros};
use crate::config::Global;
#[cfg(doc)]
use crate::store::Storage;
use crate::store::{Group, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Clock differences between nodes that a lease tolerates.
pub const SKEW: Micros = 5 * time::USEC_PER_SEC;

/// A lease expired this long ago is removed at start-up.
const STALE_LEASE: Micros = 3600 * time::USEC_PER_SEC;

/// Temp and claim files older than this are left by a dead writer.
const STALE_TMP: Micros = 600 * time::USEC_PER_SEC;

/// What a lease file says.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Holder {
    /// The node (`MDClusterNode`).
    pub node: String,
    /// The process on that node.
    pub pid: u32,
    /// Identifies one taking of the lease.
    pub token: String,
    /// When it was taken (seconds since the epoch).
    pub since: i64,
    /// When it runs out unless refreshed (seconds since the epoch).
    pub expires: i64,
}

impl Holder {
    pub(crate) fn since_micros(&self) -> Micros {
        time::from_secs(self.since)
    }

    pub(crate) fn expires_micros(&self) -> Micros {
        time::from_secs(self.expires)
    }
}

/// This node's view of the store's leases.
#[derive(Clone, Debug)]
pub struct Leases {
    store: Store,
    node: String,
    ttl: Micros,
}

/// The answer to [`Leases::try_take`].
pub enum Take {
    Taken(Lease),
    /// Another node or process holds it.
    Busy(Holder),
}

impl Leases {
    /// The leases of `store` when `MDClusterNode` is configured, or when
    /// the store's cluster grants leases itself (etcd: every server on it
    /// is a node, named by `MDClusterNode` or its host name).
    pub fn of(store: &Store, global: &Global) -> Option<Leases> {
        let node = global.cluster_node.clone().or_else(|| {
            store.grants_leases().then(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "node".into())
            })
        })?;
        Some(Leases {
            store: store.clone(),
            node,
            ttl: global.cluster_lease,
        })
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    pub(crate) fn ttl(&self) -> Micros {
        self.ttl
    }

    /// Makes the `leases` group ready (the parent, at start-up): readable
    /// by all (md-status), written by the renewal job as the store's user.
    /// Removes what dead writers left there (temp files, claims, leases
    /// expired an hour ago); returns how many.
    pub(crate) fn prepare(&self) -> Result<usize, StoreError> {
        self.store.prepare_group(Group::Leases)?;
        // (an existing directory gets its mode back)
        self.store.open_group(Group::Leases)?;
        let now = time::now();
        let mut removed = 0;
        for f in self.store.names(Group::Leases) {
            let stale = if crate::base::util::is_tmp_name(&f) {
                self.store
                    .stat(Group::Leases, "", &f)
                    .is_some_and(|s| now - s.modified >= STALE_TMP)
            } else {
                // leases whose holders vanished long ago (an MD no longer
                // renewed)
                f.ends_with(".json")
                    && self
                        .read(&f)
                        .is_some_and(|h| h.expires_micros() + STALE_LEASE < now)
            };
            if stale && self.store.remove_file(Group::Leases, "", &f).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Where the admin finds the leases, for messages.
    pub(crate) fn location(&self) -> String {
        self.store.describe(Group::Leases, "", "")
    }

    #[cfg(test)]
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.store.local_path(Group::Leases, "", &file_of(name))
    }

    fn read(&self, file: &str) -> Option<Holder> {
        let data = self.store.load_bytes(Group::Leases, "", file).ok()??;
        serde_json::from_slice(&data).ok()
    }

    /// Who holds lease `name` now (an expired holder too), if anyone.
    pub(crate) fn holder(&self, name: &str) -> Option<Holder> {
        self.read(&file_of(name))
    }

    /// Whether `h` may be taken over at `now`: its time ran out, or it is a
    /// process of this node that no longer exists (a killed child).
    fn stale(&self, h: &Holder, now: Micros) -> bool {
        if now > h.expires_micros() + SKEW {
            return true;
        }
        h.node == self.node && h.pid != std::process::id() && !pid_alive(h.pid)
    }

    /// Takes lease `name` if nobody else holds it. A taken lease is
    /// refreshed on a thread of its own until it is dropped.
    pub(crate) fn try_take(&self, name: &str, now: Micros) -> Result<Take, StoreError> {
        let file = file_of(name);
        let token = token();
        let mine = Holder {
            node: self.node.clone(),
            pid: std::process::id(),
            token: token.clone(),
            since: now / time::USEC_PER_SEC,
            expires: (now + self.ttl) / time::USEC_PER_SEC,
        };
        let data =
            serde_json::to_vec_pretty(&mine).map_err(|e| crate::store::err(e.to_string()))?;
        // A store whose cluster grants leases (etcd): the lease file is
        // attached to such a lease and vanishes when its holder stops
        // keeping it alive; no clock of any node decides.
        let ttl = std::time::Duration::from_micros(u64::try_from(self.ttl).unwrap_or(0));
        if let Some(granted) = self.store.grant(ttl)? {
            if granted.create(Group::Leases, "", &file, &data)? {
                // what the previous holder wrote is read before the work
                // under the lease starts (this process's copy of the store
                // may not have it yet)
                self.store.refresh();
                return Ok(Take::Taken(Lease::start(self, file, mine, Some(granted))));
            }
            return Ok(Take::Busy(self.read(&file).unwrap_or(mine)));
        }
        for _ in 0..3 {
            if self.store.create_bytes(Group::Leases, "", &file, &data)? {
                return Ok(Take::Taken(Lease::start(self, file, mine, None)));
            }
            let Some(cur) = self
                .read(&file)
                .or_else(|| self.unreadable_holder(&file, now))
            else {
                continue; // removed meanwhile: try again
            };
            if !self.stale(&cur, now) {
                return Ok(Take::Busy(cur));
            }
            // take over: one claim per stale taking (its token), created
            // exclusively, so that of the nodes that found it stale one
            // replaces it; the claim stays until it is a stale temp file, so
            // that a slow taker cannot claim the same taking later
            let id = if cur.token.is_empty() {
                format!("unreadable-{}", cur.since)
            } else {
                cur.token.clone()
            };
            let claim = format!(".{}.{id}.tmp.claim", file_name(name));
            if self.store.create_bytes(Group::Leases, "", &claim, b"")? {
                self.store
                    .save_bytes(Group::Leases, "", &file, &data, false)?;
                return Ok(Take::Taken(Lease::start(self, file, mine, None)));
            }
            return Ok(Take::Busy(cur));
        }
        // three rounds of others taking and dropping it: busy enough
        Ok(Take::Busy(self.read(&file).unwrap_or(mine)))
    }

    /// Takes lease `name`, waiting up to `wait` for its holder to let go.
    /// `Ok(None)`: still held by someone else after `wait`.
    pub(crate) fn take_waiting(
        &self,
        name: &str,
        wait: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let end = std::time::Instant::now() + wait;
        loop {
            match self.try_take(name, time::now())? {
                Take::Taken(l) => return Ok(Some(l)),
                Take::Busy(_) if std::time::Instant::now() >= end => return Ok(None),
                Take::Busy(_) => {
                    if !crate::base::shutdown::sleep(std::time::Duration::from_millis(200)) {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// The file name of lease `name` (an MD name may hold `*`; no `/`).
fn file_name(name: &str) -> String {
    name.replace('/', "_")
}

/// The file of lease `name` in the `leases` group.
fn file_of(name: &str) -> String {
    format!("{}.json", file_name(name))
}

impl Leases {
    /// A lease file that does not parse (written by something else, or
    /// damaged): treated as held until its modification time is a lease
    /// time old.
    fn unreadable_holder(&self, file: &str, now: Micros) -> Option<Holder> {
        let st = self.store.stat(Group::Leases, "", file)?;
        let mtime = if st.modified > 0 {
            st.modified / time::USEC_PER_SEC
        } else {
            now / time::USEC_PER_SEC
        };
        Some(Holder {
            node: "(unreadable lease file)".into(),
            pid: 0,
            token: String::new(),
            since: mtime,
            expires: mtime + self.ttl / time::USEC_PER_SEC,
        })
    }
}

/// Whether process `pid` exists on this machine.
fn pid_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true; // cannot tell: wait for the lease's time
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

fn token() -> String {
    let mut b = [0u8; 12];
    if openssl::rand::rand_bytes(&mut b).is_err() {
        let t = time::now() as u128 ^ ((std::process::id() as u128) << 64);
        return format!("{t:x}");
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Shared {
    leases: Leases,
    file: String,
    holder: Mutex<Holder>,
    ttl: Micros,
    /// Another node has taken the lease over (we stalled beyond its time).
    lost: Arc<AtomicBool>,
    /// The cluster's lease the file is attached to (etcd), if any.
    granted: Mutex<Option<Box<dyn crate::store::storage::Granted>>>,
    stop: Mutex<bool>,
    cv: Condvar,
}

impl Shared {
    /// Writes a new expiry if the lease is still ours.
    fn refresh(&self) {
        let mut h = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = &*self.granted.lock().unwrap_or_else(|e| e.into_inner()) {
            match g.keep_alive() {
                Ok(true) => {
                    h.expires = (time::now() + self.ttl) / time::USEC_PER_SEC;
                    if let Ok(data) = serde_json::to_vec_pretty(&*h) {
                        let _ = g.write(Group::Leases, "", &self.file, &data);
                    }
                }
                // expired by the cluster: another node may hold it now
                Ok(false) => self.lost.store(true, Ordering::SeqCst),
                // not reachable now: tried again; when the cluster
                // expires it meanwhile, the next answer says so
                Err(_) => {}
            }
            return;
        }
        match self.leases.read(&self.file) {
            Some(cur) if cur.token == h.token => {
                h.expires = (time::now() + self.ttl) / time::USEC_PER_SEC;
                if let Ok(data) = serde_json::to_vec_pretty(&*h) {
                    let _ =
                        self.leases
                            .store
                            .save_bytes(Group::Leases, "", &self.file, &data, false);
                }
            }
            _ => self.lost.store(true, Ordering::SeqCst),
        }
    }
}

/// A taken lease: refreshed every third of its time until dropped, then
/// removed (if still ours).
pub struct Lease {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    fn start(
        leases: &Leases,
        file: String,
        holder: Holder,
        granted: Option<Box<dyn crate::store::storage::Granted>>,
    ) -> Lease {
        let ttl = leases.ttl;
        let shared = Arc::new(Shared {
            leases: leases.clone(),
            file,
            holder: Mutex::new(holder),
            ttl,
            lost: Arc::new(AtomicBool::new(false)),
            granted: Mutex::new(granted),
            stop: Mutex::new(false),
            cv: Condvar::new(),
        });
        let s2 = shared.clone();
        let every = std::time::Duration::from_micros(u64::try_from(ttl / 3).unwrap_or(1_000_000));
        let thread = std::thread::Builder::new()
            .name("md-lease".into())
            .spawn(move || {
                let mut stop = s2.stop.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    stop = s2
                        .cv
                        .wait_timeout_while(stop, every, |s| !*s)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if *stop {
                        return;
                    }
                    s2.refresh();
                }
            })
            .ok();
        Lease { shared, thread }
    }

    /// What the lease file says.
    pub(crate) fn holder(&self) -> Holder {
        self.shared
            .holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Raised when another node took the lease over; work under the lease
    /// should stop at its next safe point.
    pub(crate) fn lost_flag(&self) -> Arc<AtomicBool> {
        self.shared.lost.clone()
    }

    /// Refreshes now (tests, and work that knows it will be long).
    pub fn refresh(&self) {
        self.shared.refresh();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // a granted lease ends with its file
        if let Some(g) = self
            .shared
            .granted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            drop(g);
            return;
        }
        let token = self.holder().token;
        let (leases, file) = (&self.shared.leases, &self.shared.file);
        if leases.read(file).is_some_and(|cur| cur.token == token) {
            leases.store.remove(Group::Leases, "", file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Node `node`'s view of a fresh lease directory.
    fn leases(tag: &str, node: &str, ttl_s: i64) -> (crate::testutil::TempDir, Leases) {
        let (d, store) = crate::testutil::tmpstore(&format!("lease-{tag}"));
        let l = Leases {
            store,
            node: node.into(),
            ttl: time::from_secs(ttl_s),
        };
        l.prepare().unwrap();
        (d, l)
    }

    /// Another node's view of the same directory.
    fn other(l: &Leases, node: &str) -> Leases {
        Leases {
            node: node.into(),
            ..l.clone()
        }
    }

    /// A lease file as some holder left it.
    fn left(l: &Leases, name: &str, node: &str, pid: u32, since: i64, expires: i64) {
        let h = Holder {
            node: node.into(),
            pid,
            token: format!("{node}-{pid}-{since}"),
            since,
            expires,
        };
        fs::write(l.path(name), serde_json::to_vec(&h).unwrap()).unwrap();
    }

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let (_d, a) = leases("one", "a", 60);
        let b = other(&a, "b");
        let now = time::now();
        let Take::Taken(l) = a.try_take("x.org", now).unwrap() else {
            panic!("free lease not taken")
        };
        match b.try_take("x.org", now).unwrap() {
            Take::Busy(h) => {
                assert_eq!(h.node, "a");
                assert_eq!(h, l.holder());
            }
            Take::Taken(_) => panic!("two holders"),
        }
        // another lease name is independent
        assert!(matches!(b.try_take("y.org", now).unwrap(), Take::Taken(_)));
        drop(l);
        assert!(a.holder("x.org").is_none());
        assert!(matches!(b.try_take("x.org", now).unwrap(), Take::Taken(_)));
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_the_old_holder_learns_it() {
        let (_d, a) = leases("expire", "a", 10);
        let b = other(&a, "b");
        let now = time::now();
        let Take::Taken(la) = a.try_take("x.org", now).unwrap() else {
            panic!()
        };
        // not yet: within its time plus the skew (the file keeps seconds)
        let later = now + time::from_secs(9) + SKEW;
        assert!(matches!(b.try_take("x.org", later).unwrap(), Take::Busy(_)));
        let Take::Taken(lb) = b.try_take("x.org", later + time::from_secs(3)).unwrap() else {
            panic!("expired lease not taken over")
        };
        assert_eq!(b.holder("x.org").unwrap().node, "b");
        // a's refresh finds b's lease and does not overwrite it
        la.refresh();
        assert!(la.lost_flag().load(Ordering::SeqCst));
        assert_eq!(b.holder("x.org").unwrap().token, lb.holder().token);
        drop(la); // does not remove b's lease
        assert_eq!(b.holder("x.org").unwrap().node, "b");
        drop(lb);
        assert!(b.holder("x.org").is_none());
    }

    #[test]
    fn a_dead_process_of_this_node_is_taken_over_at_once() {
        let (_d, a) = leases("dead", "a", 60);
        let now = time::now();
        let secs = now / time::USEC_PER_SEC;
        left(&a, "x.org", "a", 0x7fff_fff0, secs, secs + 60);
        assert!(matches!(a.try_take("x.org", now).unwrap(), Take::Taken(_)));
        // the same on another node is waited for
        left(&a, "y.org", "z", 0x7fff_fff0, secs, secs + 60);
        assert!(matches!(a.try_take("y.org", now).unwrap(), Take::Busy(_)));
    }

    #[test]
    fn threads_racing_for_a_lease_get_one_holder() {
        let (_d, a) = leases("race", "a", 60);
        let now = time::now();
        // an expired lease that eight takers race to take over
        let secs = now / time::USEC_PER_SEC;
        left(&a, "x.org", "gone", 1, secs - 600, secs - 300);
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let l = Leases {
                    node: format!("n{i}"),
                    ..a.clone()
                };
                let b = barrier.clone();
                std::thread::spawn(move || {
                    b.wait();
                    match l.try_take("x.org", now).unwrap() {
                        Take::Taken(lease) => {
                            std::thread::sleep(std::time::Duration::from_millis(300));
                            Some(lease.holder())
                        }
                        Take::Busy(_) => None,
                    }
                })
            })
            .collect();
        let won: Vec<Holder> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(won.len(), 1, "{won:?}");
    }

    #[test]
    fn leases_of_vanished_holders_are_cleaned_up_at_start() {
        let (_d, a) = leases("clean", "a", 60);
        let now = time::now() / time::USEC_PER_SEC;
        left(&a, "old.org", "gone", 1, now - 7260, now - 7200);
        left(&a, "recent.org", "gone", 1, now - 120, now - 60);
        assert_eq!(a.prepare().unwrap(), 1);
        assert!(a.holder("old.org").is_none());
        assert!(a.holder("recent.org").is_some());
    }

    #[test]
    fn waiting_for_a_lease() {
        let (_d, a) = leases("wait", "a", 60);
        let b = other(&a, "b");
        let Take::Taken(l) = a.try_take("install", time::now()).unwrap() else {
            panic!()
        };
        let short = std::time::Duration::from_millis(300);
        assert!(b.take_waiting("install", short).unwrap().is_none());
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(l);
        });
        assert!(b
            .take_waiting("install", std::time::Duration::from_secs(5))
            .unwrap()
            .is_some());
        t.join().unwrap();
    }
}
