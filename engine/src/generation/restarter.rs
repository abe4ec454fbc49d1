//! The parent's restart checker: a graceful restart when staged sets need
//! installing (`MDGracefulRestart`, hot activation), or another node of a
//! cluster installed some.

use super::*;
use crate::store::Store;

/// A thread in the parent (root) process that asks httpd for a graceful
/// restart, at most once per `MDCheckInterval`, which installs staged sets
/// (§3.6): with `MDGracefulRestart`, once renewed certificates are ready;
/// with hot activation alone (which serves them without a restart), only
/// once a set it serves is due for renewal itself, since the renewal job
/// renews what is installed.
///
/// mod_watchdog has no parent-process watchdogs under forked MPMs, and a
/// child (running as `User`) may not signal the root parent, hence a
/// thread. It is fork-safe: it takes no lock that children use (it owns
/// its runtime snapshot). It belongs to one configuration generation:
/// dropping it stops and joins the thread, which the glue does when the
/// generation's pool is cleared, before httpd unloads the module.
pub struct Restarter {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Only the process that started the thread joins it (children inherit
    /// the pool, not the thread).
    pid: u32,
}

impl Drop for Restarter {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            return;
        }
        let (flag, cv) = &*self.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Restarter {
    /// Starts the checker. `last` is when this parent last asked for a
    /// restart (µs; kept by the glue across generations).
    pub fn start(
        rt: Arc<Runtime>,
        last: &'static AtomicI64,
        interval: Micros,
        eager: bool,
        host: Arc<dyn Host>,
    ) -> std::io::Result<Restarter> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        // its own connections and caches: the children never touch them
        let store = rt.store.detached();
        let thread = std::thread::Builder::new()
            .name("md-restart".into())
            .spawn(move || {
                let (flag, cv) = &*stop2;
                let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    // a stop that came before this thread took the lock is
                    // seen here, not after a wait
                    let wait = std::time::Duration::from_secs(2);
                    stopped = cv
                        .wait_timeout_while(stopped, wait, |stop| !*stop)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if *stopped {
                        return;
                    }
                    let report = |msg: &str| host.log(Level::Crit, msg);
                    crate::base::boundary::guard("md restart check", (), report, || {
                        restart_if_ready(&rt, &store, last, interval, eager, &*host)
                    });
                }
            })?;
        Ok(Restarter {
            stop,
            thread: Some(thread),
            pid: std::process::id(),
        })
    }
}

/// A cluster node notices that another node installed renewed sets into
/// the shared store: its children serve them hot from `staging/` (which
/// the installation emptied), and children started from now on could not
/// read them (`domains/` is root's): it fires `installed` here, as root,
/// and restarts gracefully, so that its new children load them from
/// `domains/` (no connection is dropped). True when it asked for one.
fn installed_elsewhere(rt: &Runtime, store: &Store, last: &AtomicI64, host: &dyn Host) -> bool {
    let prev = last.load(Ordering::SeqCst);
    if prev != 0 && time::now() - prev < 30 * time::USEC_PER_SEC {
        return false; // a restart was asked for just now
    }
    // not while another node is in the middle of its installation: the
    // restart would start from a half-installed set of MDs and miss the
    // rest (its `installed` events with them)
    if let Some(leases) = crate::store::lease::Leases::of(store, &rt.global) {
        if leases
            .holder("install")
            .is_some_and(|h| h.expires_micros() + crate::store::lease::SKEW > time::now())
        {
            return false;
        }
    }
    let mds = rt.installed_elsewhere(store);
    if mds.is_empty() {
        return false;
    }
    let mut notes = Vec::new();
    for md in &mds {
        host.log(
            Level::Notice,
            &format!(
                "{}: another node of the cluster installed renewed certificates in the shared store; \
                 restarting gracefully so that this node's new processes load them",
                md.name
            ),
        );
        crate::generation::startup::fire_installed(store, md, &rt.global, false, &mut notes);
    }
    for n in notes.iter().filter(|n| !n.emitted) {
        host.log(n.level, &n.msg);
    }
    last.store(time::now(), Ordering::SeqCst);
    host.graceful_restart();
    true
}

/// Asks httpd for a graceful restart when a staged set wants installing
/// and the last request is `interval` ago.
fn restart_if_ready(
    rt: &Runtime,
    store: &Store,
    last: &AtomicI64,
    interval: Micros,
    eager: bool,
    host: &dyn Host,
) {
    let now = time::now();
    store.refresh();
    let clustered = rt.global.cluster_node.is_some() || store.grants_leases();
    if clustered && installed_elsewhere(rt, store, last, host) {
        return;
    }
    let prev = last.load(Ordering::SeqCst);
    if prev != 0 && now - prev < interval {
        return;
    }
    let Some(md) = rt.restart_wanted(store, now, eager) else {
        return;
    };
    last.store(now, Ordering::SeqCst);
    host.log(Level::Notice, &if eager {
        format!(
            "{}: renewed certificates are ready, restarting the server gracefully (MDGracefulRestart on)",
            md.name
        )
    } else {
        format!(
            "{}: the certificates that hot activation serves are due for renewal; restarting the server gracefully to install them, so that they can be renewed",
            md.name
        )
    });
    host.graceful_restart();
}
