//! Each process's copy of the store's prefix in etcd (issue 27): what
//! reads come from, kept current by the process's own writes, by a watch
//! (httpd's children) or by catching up before a look (the parent's
//! restart checker, a lease just taken).

use super::etcd::{prefix_end, Cmp, Etcd, EtcdError, Event, Kv, Op, WatchNews};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// What a process knows of the prefix.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    pub(crate) kvs: BTreeMap<Vec<u8>, Kv>,
    /// The store's revision the mirror has seen up to.
    pub(crate) revision: i64,
}

impl Mirror {
    pub(crate) fn apply(&mut self, ev: Event) {
        match ev {
            Event::Put(kv) => {
                if self
                    .kvs
                    .get(&kv.key)
                    .is_none_or(|old| old.mod_revision <= kv.mod_revision)
                {
                    self.kvs.insert(kv.key.clone(), kv);
                }
            }
            Event::Delete { key, mod_revision } => {
                if self
                    .kvs
                    .get(&key)
                    .is_some_and(|old| old.mod_revision < mod_revision)
                {
                    self.kvs.remove(&key);
                }
            }
        }
    }

    pub(crate) fn under(&self, prefix: &[u8]) -> impl Iterator<Item = (&Vec<u8>, &Kv)> {
        let end = prefix_end(prefix);
        self.kvs.range(prefix.to_vec()..end)
    }
}

/// etcd: `value` at `key` only where there is no such key yet (attached
/// to `lease`, 0 for none), in one transaction. `Some(revision)` when it
/// was created; otherwise the key as etcd has it goes into `mirror` (when
/// given), so that this process reads what the first writer wrote.
pub(crate) fn create_if_absent(
    etcd: &Etcd,
    mirror: Option<&Mutex<Mirror>>,
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<Option<i64>, EtcdError> {
    let read = [Op::Range { key: key.to_vec() }];
    let t = etcd.txn(
        &[Cmp::Created(key.to_vec(), None, 0)],
        &[Op::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
        }],
        if mirror.is_some() { &read } else { &[] },
    )?;
    if t.succeeded {
        return Ok(Some(t.revision));
    }
    if let Some(mirror) = mirror {
        let mut m = mirror.lock().unwrap_or_else(|e| e.into_inner());
        for kv in t.read {
            m.apply(Event::Put(kv));
        }
    }
    Ok(None)
}

/// Catches `mirror` up with etcd: the keys as they are now (names and
/// revisions), the values of those changed since the mirror's revision;
/// what is gone goes. Nothing waits for a change to come.
pub(crate) fn catch_up(
    etcd: &Etcd,
    mirror: &Mutex<Mirror>,
    prefix: &[u8],
) -> Result<(), EtcdError> {
    let end = prefix_end(prefix);
    let (keys, now) = etcd.range(prefix, Some(&end), true)?;
    let from = mirror.lock().unwrap_or_else(|e| e.into_inner()).revision;
    if now == from {
        return Ok(());
    }
    let changed = {
        let m = mirror.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter().any(|k| {
            m.kvs
                .get(&k.key)
                .is_none_or(|o| o.mod_revision != k.mod_revision)
        })
    };
    let fresh = if changed {
        etcd.range_since(prefix, &end, from + 1)?.0
    } else {
        Vec::new()
    };
    let mut m = mirror.lock().unwrap_or_else(|e| e.into_inner());
    let there: std::collections::HashSet<&Vec<u8>> = keys.iter().map(|k| &k.key).collect();
    // (what the watch brought in after that listing stays)
    m.kvs
        .retain(|k, kv| there.contains(k) || kv.mod_revision > now);
    for kv in fresh {
        m.apply(Event::Put(kv));
    }
    m.revision = m.revision.max(now);
    Ok(())
}

/// Keeps `mirror` current until the process ends: watches from the
/// mirror's revision on, again after each error (after a pause), reading
/// everything again when etcd compacted what the watch needed.
pub(crate) fn watch_loop(etcd: &Etcd, mirror: &Mutex<Mirror>, prefix: &[u8]) {
    let mut pause = Duration::from_millis(200);
    while !crate::base::shutdown::requested() {
        let from = mirror.lock().unwrap_or_else(|e| e.into_inner()).revision + 1;
        let mut compacted = false;
        let res = etcd.watch(prefix, from, Duration::from_secs(300), &mut |news| {
            match news {
                WatchNews::Compacted(_) => {
                    compacted = true;
                    return false;
                }
                WatchNews::Events { revision, events } => {
                    let mut m = mirror.lock().unwrap_or_else(|e| e.into_inner());
                    for ev in events {
                        m.apply(ev);
                    }
                    m.revision = m.revision.max(revision);
                }
            }
            !crate::base::shutdown::requested()
        });
        if compacted {
            if let Ok((kvs, rev)) = etcd.range(prefix, Some(&prefix_end(prefix)), false) {
                let mut m = mirror.lock().unwrap_or_else(|e| e.into_inner());
                m.kvs = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
                m.revision = rev;
            }
        }
        match res {
            Ok(()) => pause = Duration::from_millis(200),
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}
