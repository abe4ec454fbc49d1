//! The renewal watchdog (spec §3.1): a mod_watchdog callback that runs in
//! one child process, as httpd's `User`, and processes the jobs of the
//! watched MDs with the engine.

use crate::apr;
use crate::conf::ModState;
use crate::ffi;
use crate::guard::guard;
use crate::log;
use crate::watchdog::{watchdog_instance, watchdog_register};
use md_engine::host::Host;
use md_engine::log::Level;
use md_engine::scheduler::{self, Item};
use md_engine::time;
use std::os::raw::{c_int, c_void};
use std::sync::{Arc, Condvar, Mutex};

/// What the callback needs; owned by the configuration pool.
pub struct Watchdog {
    pub state: *const ModState,
    pub main_server: *const ffi::server_rec,
    pub wd: *mut ffi::ap_watchdog_t,
    pub set_interval: ffi::apr_OFN_ap_watchdog_set_callback_interval_t,
    pub user_agent: String,
    /// `MDInitialDelay` is 0: the first run starts with the watchdog.
    pub run_at_start: bool,
}

const WD_NAME: &std::ffi::CStr = c"_md_renew_";

/// Registers the renewal watchdog (after-SSL, real run, parent). Returns
/// false when mod_watchdog is missing.
///
/// # Safety
/// `pconf` and `s` are the live configuration pool and main server.
pub unsafe fn register(
    pconf: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
    state: *const ModState,
    initial_delay: i64,
) -> bool {
    // SAFETY: forwarded contract.
    let Some((wd, set)) = (unsafe { watchdog_instance(pconf, s, WD_NAME) }) else {
        return false;
    };
    // SAFETY: httpd's static server description string.
    let desc = unsafe { apr::str_or_empty(ffi::ap_get_server_description()) };
    let base = desc
        .split_whitespace()
        .next()
        .unwrap_or("Apache/2.4")
        .to_string();
    let ctx = Watchdog {
        state,
        main_server: s,
        wd,
        set_interval: set,
        user_agent: format!("{base} mod_md/{}", md_engine::MOD_MD_VERSION),
        run_at_start: initial_delay <= 0,
    };
    // SAFETY: the context lives as long as pconf, like the watchdog.
    let data = unsafe { apr::pool_own(pconf, ctx) } as *const c_void;
    // MDInitialDelay 0: the first run follows right away (10 ms).
    let interval = if initial_delay > 0 {
        initial_delay
    } else {
        10_000
    };
    // SAFETY: our callback with its pool-owned data on our instance.
    unsafe { watchdog_register(s, wd, interval, data, Some(callback), "_md_renew_") }
}

unsafe extern "C" fn callback(
    state: c_int,
    data: *mut c_void,
    _ptemp: *mut ffi::apr_pool_t,
) -> ffi::apr_status_t {
    guard("md renew watchdog", 0, || {
        // SAFETY: `data` is the pool-owned Watchdog registered above.
        let Some(wd) = (unsafe { (data as *const Watchdog).as_ref() }) else {
            return 0;
        };
        // SAFETY: the state lives as long as the configuration pool.
        let Some(st) = (unsafe { wd.state.as_ref() }) else {
            return 0;
        };
        let Some(_running) = st.scheduler.enter_callback() else {
            return 0; // the child is exiting
        };
        let s = wd.main_server;
        match state as u32 {
            ffi::AP_WATCHDOG_STATE_STARTING => {
                log::log(s, Level::Debug, "AH10054: md watchdog start, auto drive");
                // mod_watchdog's first RUNNING call comes one time slice
                // (100 ms) later; without an initial delay the jobs start
                // now, on their workers (this returns at once). The RUNNING
                // call then finds them busy and does not queue them twice.
                if wd.run_at_start {
                    run(wd);
                }
            }
            ffi::AP_WATCHDOG_STATE_RUNNING => {
                let next = run(wd);
                log::log(
                    s,
                    Level::Debug,
                    &format!("AH10107: next run in {}", time::print_duration(next, false)),
                );
                if let Some(set) = wd.set_interval {
                    // SAFETY: re-arming our own callback on our instance.
                    unsafe { set(wd.wd, next, data, Some(callback)) };
                }
            }
            ffi::AP_WATCHDOG_STATE_STOPPING => {
                log::log(s, Level::Debug, "AH10058: md watchdog stopping")
            }
            _ => {}
        }
        0
    })
}

/// How long a child's exit waits for its renewal workers to stop
/// (seconds, more when many run at once on a loaded machine).
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Registers the child-exit stop of the renewal workers on `pchild`.
///
/// # Safety
/// `pchild` is the child's process pool (child_init); `s` is the main
/// server of this generation (in pconf, which outlives pchild).
pub unsafe fn on_child_exit(pchild: *mut ffi::apr_pool_t, s: *const ffi::server_rec) {
    unsafe extern "C" fn stop(data: *mut c_void) -> ffi::apr_status_t {
        guard("child exit", 0, || {
            let s = data as *const ffi::server_rec;
            // SAFETY: s is the generation's main server (see below).
            let Some(state) = (unsafe { crate::conf::state(s) }) else {
                return 0;
            };
            let busy = state.scheduler.workers();
            if busy > 0 {
                log::log(
                    s,
                    Level::Debug,
                    &format!("child exit: stopping {busy} renewal worker(s)"),
                );
            }
            md_engine::shutdown::request();
            if !state.scheduler.stop(EXIT_WAIT) {
                log::log(
                    s,
                    Level::Warn,
                    &format!(
                        "renewal workers still busy {} s after the child was asked to exit (key generation on a loaded machine); the child ends without running library teardown under them, the unfinished renewal resumes at the next run",
                        EXIT_WAIT.as_secs()
                    ),
                );
                // SAFETY: exit() would run OpenSSL's atexit cleanup while a
                // worker is inside libcrypto (a crash); _exit ends the
                // process without it. This child is exiting anyway: its
                // pools are being destroyed and the parent reaps it.
                unsafe { libc::_exit(0) };
            }
            0
        })
    }
    // SAFETY: a pre-cleanup runs when pchild is destroyed, before its
    // sub-pools (mod_watchdog's threads) and before the process exits, while
    // this module is still loaded; `s` (in pconf) outlives pchild.
    unsafe { ffi::apr_pool_pre_cleanup_register(pchild, s.cast(), Some(stop)) };
}

/// One watchdog run: hands the watched MDs to the scheduler; returns the
/// next interval.
fn run(wd: &Watchdog) -> i64 {
    // SAFETY: the state lives as long as the configuration pool.
    let Some(state) = (unsafe { wd.state.as_ref() }) else {
        return time::from_secs(3600);
    };
    let Some(rt) = state.runtime() else {
        return time::from_secs(3600);
    };
    let global = rt.global.clone();
    let items = rt.watched_items();
    let s = wd.main_server;
    log::log(
        s,
        Level::Debug,
        &format!("AH10055: md watchdog run, auto drive {} mds", items.len()),
    );
    let host: Arc<dyn Host> = Arc::new(log::ServerLog(s as usize));
    let sched = state.scheduler.clone();
    let (store, user_agent) = (rt.store.clone(), wd.user_agent.clone());
    // SAFETY: httpd's unixd configuration, set before the children start.
    let run_user = unsafe { apr::str_or_empty(ffi::ap_unixd_config.user_name) };
    let g = global.clone();
    let (h, sc) = (host.clone(), sched.clone());
    let stapling = state.stapling.clone();
    let process = move |item: &Item, now: i64| {
        // a panic in one job is logged as any at our boundary and ends only
        // that job (the engine's worker survives it too)
        guard("renewal job", 0, || {
            crate::guard::test_panic("renewal-job");
            let revoked = item.md.stapling && stapling.md_revoked(&item.md.name);
            scheduler::process_job(
                &sc,
                &*h,
                &store,
                &g,
                &user_agent,
                &run_user,
                revoked,
                item,
                now,
            )
        })
    };
    let ctx = Arc::new(scheduler::Ctx {
        global,
        host,
        revoked: {
            let stapling = state.stapling.clone();
            Arc::new(move |md: &str| stapling.md_revoked(md))
        },
        process: Arc::new(process),
    });
    sched.run(items, ctx, time::now())
}

/// A thread in the parent (root) process asks httpd for a graceful restart,
/// at most once per `MDCheckInterval`, which installs staged sets (§3.6):
/// with `MDGracefulRestart`, once renewed certificates are ready; with hot
/// activation alone (which serves them without a restart), only once a set
/// it serves is due for renewal itself, since the renewal job renews what
/// is installed.
///
/// mod_watchdog has no parent-process watchdogs under forked MPMs, and a
/// child (running as `User`) may not signal the root parent, hence a thread.
/// It is fork-safe: it takes no lock that children use (it owns its
/// snapshot of the registry). It belongs to one configuration generation:
/// the generation's pool stops and joins it when it is cleared, before
/// httpd unloads this module (a thread left running in an unloaded image
/// would crash the parent).
struct Restarter {
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

/// Asks httpd for a graceful restart when an MD's renewed certificates
/// are ready and the last request is `interval` ago.
fn restart_if_ready(
    rt: &crate::conf::Runtime,
    last: &std::sync::atomic::AtomicI64,
    interval: i64,
    eager: bool,
) {
    use std::sync::atomic::Ordering;
    let now = time::now();
    let prev = last.load(Ordering::SeqCst);
    if prev != 0 && now - prev < interval {
        return;
    }
    let Some(md) = rt.restart_wanted(now, eager) else {
        return;
    };
    last.store(now, Ordering::SeqCst);
    // NULL: the main error log. This thread outlives the configuration's
    // server_rec by a little.
    log::log(
        std::ptr::null(),
        Level::Notice,
        &if eager {
            format!(
                "{}: renewed certificates are ready, restarting the server gracefully (MDGracefulRestart on)",
                md.name
            )
        } else {
            format!(
                "{}: the certificates that hot activation serves are due for renewal; restarting the server gracefully to install them, so that they can be renewed",
                md.name
            )
        },
    );
    // SAFETY: signalling our own (parent) process: httpd's SIGUSR1 handler
    // starts a graceful restart.
    unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
}

/// Starts the restart checker of this configuration generation.
///
/// # Safety
/// `pconf` and `s` are the live configuration pool and main server (real
/// start, parent).
pub unsafe fn start_restarter(
    pconf: *mut ffi::apr_pool_t,
    s: *const ffi::server_rec,
    rt: Arc<crate::conf::Runtime>,
    interval: i64,
    eager: bool,
) {
    // When this parent process last asked for a restart (µs), kept on the
    // process pool: this module's statics start over with every generation.
    // SAFETY: s->process->pool lives as long as the process.
    let last = unsafe { apr::process_i64(s, c"mod_md_rs_last_restart") };
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let stop2 = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("md-restart".into())
        .spawn(move || {
            let (flag, cv) = &*stop2;
            let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                stopped = cv
                    .wait_timeout(stopped, std::time::Duration::from_secs(2))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                if *stopped {
                    return;
                }
                guard("md restart check", (), || {
                    restart_if_ready(&rt, last, interval, eager)
                });
            }
        });
    match spawned {
        Ok(t) => {
            let r = Restarter {
                stop,
                thread: Some(t),
                pid: std::process::id(),
            };
            // SAFETY: the pool owns the handle; its cleanup joins the thread.
            unsafe { apr::pool_own(pconf, r) };
        }
        Err(_) => log::log(
            s,
            Level::Error,
            "MDGracefulRestart: cannot start the restart checker thread",
        ),
    }
}
