//! Hot activation (issue 5): which staged set each SSL vhost serves now,
//! without a restart.
//!
//! One slot per SSL vhost of an MD. A handshake asks its slot for the set
//! to serve; the slot looks at the MD's staging job whenever its
//! `job.json` changed (one `stat` per handshake: a rename makes a new
//! inode) or when a finished set's activation time comes: once a renewal
//! has finished and its activation time has come, the staged key and chain
//! are loaded (by the caller's loader, which makes the TLS library's
//! objects) and kept until a newer set appears. Every child process looks
//! on every handshake, so once one child serves a set, the handshakes
//! that follow get it in every child (no fallback after the first CA
//! certificate). The move into `domains/` still happens at the next
//! restart, so the store stays as the C module expects it; a set that went
//! live stays live when its staged files go (installed by another node of
//! a cluster).

use crate::base::log::Level;
use crate::base::time::Micros;
use crate::config::Md;
use crate::lifecycle::install::HotSet;
use crate::lifecycle::jobfile::Job;
use crate::store::{Group, Store};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::X509;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// When a finished set that could not be loaded is looked at again.
pub const RETRY_UNUSABLE: Micros = 5 * crate::base::time::USEC_PER_SEC;

struct SlotState<L> {
    /// The `job.json` last looked at (None: none, or not looked at yet).
    seen: Option<crate::store::Stamp>,
    /// Whether the slot has looked at all.
    looked: bool,
    /// A finished set whose activation time has not come: look again then.
    pending: Option<Micros>,
    /// `valid-from` of the loaded set (identifies it).
    stamp: Micros,
    loaded: Option<Arc<L>>,
}

/// The MD of one SSL vhost.
struct Slot<L> {
    md: Md,
    state: Mutex<SlotState<L>>,
}

/// The slots of one generation, keyed by the vhost's id (its server_rec
/// address in httpd). `L` is the loaded set as the TLS library needs it.
pub struct HotSlots<L> {
    store: RwLock<Option<Store>>,
    slots: RwLock<HashMap<usize, Arc<Slot<L>>>>,
    /// MD name → the vhost ids of its slots (md-status asks per MD).
    by_md: RwLock<HashMap<String, Vec<usize>>>,
}

impl<L> Default for HotSlots<L> {
    fn default() -> Self {
        HotSlots {
            store: RwLock::new(None),
            slots: RwLock::new(HashMap::new()),
            by_md: RwLock::new(HashMap::new()),
        }
    }
}

/// A staged set as OpenSSL objects, parsed once per set in each process
/// and shared by the handshakes that serve it (OpenSSL's reference counts
/// are atomic; the objects are never modified).
pub struct TlsSet {
    /// Per key type: the key, the leaf, the rest of the chain.
    pub pairs: Vec<(PKey<Private>, X509, Stack<X509>)>,
}

impl TlsSet {
    /// Parses a staged set (None: a key or certificate does not parse).
    pub fn load(set: &HotSet) -> Option<TlsSet> {
        let mut pairs = Vec::new();
        for (key_der, chain_der) in &set.pairs {
            let key = PKey::private_key_from_der(key_der).ok()?;
            let (leaf, rest) = chain_der.split_first()?;
            let leaf = X509::from_der(leaf).ok()?;
            let mut chain = Stack::new().ok()?;
            for der in rest {
                chain.push(X509::from_der(der).ok()?).ok()?;
            }
            pairs.push((key, leaf, chain));
        }
        Some(TlsSet { pairs })
    }
}

/// Makes the TLS library's objects of a staged set (None: unusable).
pub type Loader<'a, L> = &'a dyn Fn(&HotSet) -> Option<L>;

impl<L> HotSlots<L> {
    /// Sets up the slots of this generation: one per (vhost id, MD) of an
    /// SSL vhost whose MD is renewed here (not static files).
    pub(crate) fn prepare(&self, store: &Store, vhosts: Vec<(usize, Md)>) {
        let mut by_md: HashMap<String, Vec<usize>> = HashMap::new();
        for (id, md) in vhosts.iter().filter(|(_, md)| md.cert_files.is_empty()) {
            by_md.entry(md.name.clone()).or_default().push(*id);
        }
        let map = vhosts
            .into_iter()
            .filter(|(_, md)| md.cert_files.is_empty())
            .map(|(id, md)| {
                let state = Mutex::new(SlotState {
                    seen: None,
                    looked: false,
                    pending: None,
                    stamp: 0,
                    loaded: None,
                });
                (id, Arc::new(Slot { md, state }))
            })
            .collect();
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = Some(store.clone());
        *self.slots.write().unwrap_or_else(|e| e.into_inner()) = map;
        *self.by_md.write().unwrap_or_else(|e| e.into_inner()) = by_md;
    }

    fn slot(&self, id: usize) -> Option<Arc<Slot<L>>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.get(&id).cloned()
    }

    /// The staged set vhost `id` serves now, if any; `log` hears when a
    /// new set goes live.
    pub fn current(
        &self,
        id: usize,
        now: Micros,
        load: Loader<'_, L>,
        log: &dyn Fn(Level, &str),
    ) -> Option<Arc<L>> {
        let slot = self.slot(id)?;
        // the one system call of most handshakes, outside the slot's lock
        let seen = self
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|s| s.stat(Group::Staging, &slot.md.name, "job.json"))
            .map(|s| s.stamp);
        let mut st = slot.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = st.pending.is_some_and(|t| t <= now);
        if st.looked && seen == st.seen && !due {
            return st.loaded.clone();
        }
        st.looked = true;
        st.seen = seen;
        st.pending = None;
        let store = self
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        // No finished set (a new renewal runs), or none any more, or a
        // broken one: the set that went live stays live. Its files may be
        // gone because another node of a cluster installed them into
        // `domains/`, which this process cannot read (this node's own
        // restart would have started a new generation).
        let job = Job::load(&store, Group::Staging, &slot.md.name).ok();
        let Some(j) = job.filter(|j| j.finished && j.valid_from > 0) else {
            return st.loaded.clone();
        };
        if j.valid_from > now {
            st.pending = Some(j.valid_from);
            return st.loaded.clone();
        }
        if j.valid_from != st.stamp || st.loaded.is_none() {
            match crate::lifecycle::install::hot_set(&store, &slot.md, now)
                .as_ref()
                .and_then(load)
            {
                Some(l) => {
                    st.loaded = Some(Arc::new(l));
                    st.stamp = j.valid_from;
                    log(
                        Level::Notice,
                        &format!(
                            "{}: renewed certificate is live for new connections (hot activation, no restart needed)",
                            slot.md.name
                        ),
                    );
                }
                // unusable for now (unreadable, or not a set for this MD):
                // looked at again in a while, not on every handshake
                None => st.pending = Some(now + RETRY_UNUSABLE),
            }
        }
        st.loaded.clone()
    }

    /// The staged set some vhost of `md` serves now, if any.
    pub fn served(
        &self,
        md: &str,
        now: Micros,
        load: Loader<'_, L>,
        log: &dyn Fn(Level, &str),
    ) -> Option<Arc<L>> {
        let ids: Vec<usize> = {
            let by_md = self.by_md.read().unwrap_or_else(|e| e.into_inner());
            by_md.get(md).cloned().unwrap_or_default()
        };
        ids.into_iter()
            .find_map(|id| self.current(id, now, load, log))
    }

    /// Whether some vhost of `md` serves a staged set now (md-status
    /// `live`).
    pub(crate) fn serving_staged(
        &self,
        md: &str,
        now: Micros,
        load: Loader<'_, L>,
        log: &dyn Fn(Level, &str),
    ) -> bool {
        self.served(md, now, load, log).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::time;
    use crate::config::{MdDef, Settings};

    fn md(name: &str) -> Md {
        Md::from_def(&MdDef::new(vec![name.into()]), &Settings::default(), None)
    }

    fn store(tag: &str) -> (crate::testutil::TempDir, Store) {
        crate::testutil::tmpstore(&format!("hot-{tag}"))
    }

    #[test]
    fn nothing_staged_nothing_served() {
        let (d, st) = store("none");
        let hot: HotSlots<u32> = HotSlots::default();
        hot.prepare(&st, vec![(1, md("a.org"))]);
        let calls = std::cell::Cell::new(0);
        let load = |_: &HotSet| {
            calls.set(calls.get() + 1);
            Some(7)
        };
        let now = time::now();
        assert!(hot.current(1, now, &load, &|_, _| {}).is_none());
        assert!(hot.current(2, now, &load, &|_, _| {}).is_none());
        assert!(!hot.serving_staged("a.org", now, &load, &|_, _| {}));
        assert_eq!(calls.get(), 0);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_finished_job_whose_time_has_come_goes_live_once() {
        let (d, st) = store("live");
        let m = md("b.org");
        let hot: HotSlots<u32> = HotSlots::default();
        hot.prepare(&st, vec![(1, m.clone())]);
        let now = time::now();
        // a finished job, valid from a second ago, with its staged set
        let mut j = Job::new("b.org");
        j.finished = true;
        j.valid_from = now - time::USEC_PER_SEC;
        j.save(&st, Group::Staging).unwrap();
        let key =
            crate::base::crypto::Key::generate(&crate::base::keyspec::KeySpec::Ec("P-256".into()))
                .unwrap();
        let cert = crate::base::crypto::fallback_cert(&key, &m.domains).unwrap();
        st.save_key(Group::Staging, "b.org", "privkey.pem", &key)
            .unwrap();
        st.save_bytes(
            Group::Staging,
            "b.org",
            "pubcert.pem",
            &cert.to_pem().unwrap(),
            false,
        )
        .unwrap();
        let calls = std::cell::Cell::new(0);
        let load = |_: &HotSet| {
            calls.set(calls.get() + 1);
            Some(42)
        };
        let lines = std::cell::RefCell::new(Vec::new());
        let log = |_: Level, m: &str| lines.borrow_mut().push(m.to_string());
        assert!(crate::lifecycle::install::hot_set(&st, &m, now).is_some());
        assert_eq!(hot.current(1, now, &load, &log).as_deref(), Some(&42));
        assert!(lines.borrow()[0].contains("hot activation"));
        // cached: not loaded again while job.json is unchanged
        assert_eq!(hot.current(1, now + 1, &load, &log).as_deref(), Some(&42));
        assert!(hot.serving_staged("b.org", now + 2, &load, &log));
        assert_eq!(calls.get(), 1);
        // job.json rewritten with the same set: read again, not loaded again
        j.notified = true;
        j.save(&st, Group::Staging).unwrap();
        assert_eq!(hot.current(1, now + 3, &load, &log).as_deref(), Some(&42));
        assert_eq!(calls.get(), 1);
        // the staged set is gone (another node of a cluster installed it):
        // what went live stays live
        std::fs::remove_file(st.path(Group::Staging, "b.org", "job.json")).unwrap();
        assert_eq!(hot.current(1, now + 4, &load, &log).as_deref(), Some(&42));
        assert_eq!(calls.get(), 1);
        let _ = std::fs::remove_dir_all(d);
    }

    fn stage(st: &Store, m: &Md, finished: bool, valid_from: Micros) {
        let mut j = Job::new(&m.name);
        j.finished = finished;
        j.valid_from = valid_from;
        j.save(st, Group::Staging).unwrap();
        if !finished {
            return;
        }
        let key =
            crate::base::crypto::Key::generate(&crate::base::keyspec::KeySpec::Ec("P-256".into()))
                .unwrap();
        let cert = crate::base::crypto::fallback_cert(&key, &m.domains).unwrap();
        st.save_key(Group::Staging, &m.name, "privkey.pem", &key)
            .unwrap();
        st.save_bytes(
            Group::Staging,
            &m.name,
            "pubcert.pem",
            &cert.to_pem().unwrap(),
            false,
        )
        .unwrap();
    }

    /// Issue 24.7: a set staged a moment ago is served by the very next
    /// handshake, with no clock of its own between (children looked every
    /// 5 s each, and new connections flapped between the certificate and
    /// the fallback).
    #[test]
    fn a_set_staged_now_is_served_by_the_next_handshake() {
        let (d, st) = store("next");
        let m = md("n.org");
        let hot: HotSlots<u32> = HotSlots::default();
        hot.prepare(&st, vec![(1, m.clone())]);
        let load = |_: &HotSet| Some(9);
        let now = time::now();
        stage(&st, &m, false, 0);
        assert!(hot.current(1, now, &load, &|_, _| {}).is_none());
        stage(&st, &m, true, now - 1);
        // same instant: no interval to wait for
        assert_eq!(hot.current(1, now, &load, &|_, _| {}).as_deref(), Some(&9));
        let _ = std::fs::remove_dir_all(d);
    }

    /// A finished set whose activation time (`MDActivationDelay`) has not
    /// come goes live when it comes, though job.json does not change.
    #[test]
    fn a_set_goes_live_at_its_activation_time() {
        let (d, st) = store("delay");
        let m = md("p.org");
        let hot: HotSlots<u32> = HotSlots::default();
        hot.prepare(&st, vec![(1, m.clone())]);
        let load = |_: &HotSet| Some(5);
        let now = time::now();
        stage(&st, &m, true, now + 10 * time::USEC_PER_SEC);
        assert!(hot.current(1, now, &load, &|_, _| {}).is_none());
        assert!(hot
            .current(1, now + 9 * time::USEC_PER_SEC, &load, &|_, _| {})
            .is_none());
        assert_eq!(
            hot.current(1, now + 10 * time::USEC_PER_SEC, &load, &|_, _| {})
                .as_deref(),
            Some(&5)
        );
        let _ = std::fs::remove_dir_all(d);
    }

    /// A set the loader cannot use is tried again after a while, not on
    /// every handshake.
    #[test]
    fn an_unusable_set_is_tried_again_later() {
        let (d, st) = store("unusable");
        let m = md("u.org");
        let hot: HotSlots<u32> = HotSlots::default();
        hot.prepare(&st, vec![(1, m.clone())]);
        let calls = std::cell::Cell::new(0);
        let fails = std::cell::Cell::new(true);
        let load = |_: &HotSet| {
            calls.set(calls.get() + 1);
            (!fails.get()).then_some(3)
        };
        let now = time::now();
        stage(&st, &m, true, now - 1);
        assert!(hot.current(1, now, &load, &|_, _| {}).is_none());
        assert!(hot.current(1, now + 1, &load, &|_, _| {}).is_none());
        assert_eq!(calls.get(), 1);
        fails.set(false);
        assert_eq!(
            hot.current(1, now + RETRY_UNUSABLE, &load, &|_, _| {})
                .as_deref(),
            Some(&3)
        );
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn static_files_get_no_slot() {
        let (d, st) = store("static");
        let mut m = md("c.org");
        m.cert_files = vec!["/x.pem".into()];
        let hot: HotSlots<u32> = HotSlots::default();
        hot.prepare(&st, vec![(1, m)]);
        assert!(hot.slot(1).is_none());
        let _ = std::fs::remove_dir_all(d);
    }
}
