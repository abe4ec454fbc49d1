//! The renewal watchdog (spec §3.1): a mod_watchdog callback that runs in
//! one child process, as httpd's `User`, and processes the jobs of the
//! watched MDs with the engine.

use crate::apr;
use crate::conf::ModState;
use crate::ffi;
use crate::guard::guard;
use crate::log::{self, Lvl};
use md_engine::job::{self, CommandNotify, JobCtx};
use md_engine::reg;
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

/// Looks up one of mod_watchdog's optional functions.
///
/// # Safety
/// `T` must be the `Option<fn>` type of the named function.
unsafe fn optional_fn<T>(name: &std::ffi::CStr) -> Option<T> {
    // SAFETY: apr_dynamic_fn_retrieve returns the registered function or
    // NULL; an Option of a function pointer has the size of a pointer, so
    // reinterpreting it as the caller's (matching) type is sound.
    unsafe {
        let f = ffi::apr_dynamic_fn_retrieve(name.as_ptr());
        f.map(|f| std::mem::transmute_copy::<unsafe extern "C" fn(), T>(&f))
    }
}

/// A child-process singleton watchdog instance of mod_watchdog, and its
/// `set_callback_interval` function. None (logged) when mod_watchdog is
/// missing or refuses.
///
/// # Safety
/// `pconf` and `s` are the live configuration pool and main server.
pub unsafe fn watchdog_instance(
    pconf: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
    name: &std::ffi::CStr,
) -> Option<(
    *mut ffi::ap_watchdog_t,
    ffi::apr_OFN_ap_watchdog_set_callback_interval_t,
)> {
    type GetInstance = ffi::apr_OFN_ap_watchdog_get_instance_t;
    type SetInterval = ffi::apr_OFN_ap_watchdog_set_callback_interval_t;
    // SAFETY: names and types match mod_watchdog.h.
    let (get, set) = unsafe {
        (
            optional_fn::<GetInstance>(c"ap_watchdog_get_instance").flatten(),
            optional_fn::<SetInterval>(c"ap_watchdog_set_callback_interval"),
        )
    };
    let (Some(get), Some(set)) = (get, set) else {
        log::log(s, Lvl::Crit, "AH10061: mod_watchdog is required");
        return None;
    };
    let mut wd: *mut ffi::ap_watchdog_t = std::ptr::null_mut();
    // SAFETY: a child-process (parent = 0) singleton instance from pconf.
    let rv = unsafe { get(&mut wd, name.as_ptr(), 0, 1, pconf) };
    if rv != 0 || wd.is_null() {
        log::log_status(
            s,
            Lvl::Crit,
            rv,
            &format!(
                "AH10066: create md {} watchdog({})",
                kind(&name.to_string_lossy()),
                name.to_string_lossy()
            ),
        );
        return None;
    }
    Some((wd, set))
}

fn kind(name: &str) -> &'static str {
    if name.contains("ocsp") {
        "ocsp"
    } else {
        "renew"
    }
}

/// Registers a callback with pool-owned `data` on a watchdog instance.
///
/// # Safety
/// `wd` comes from `watchdog_instance`; `data` lives as long as the pool.
pub unsafe fn watchdog_register(
    s: *mut ffi::server_rec,
    wd: *mut ffi::ap_watchdog_t,
    interval: i64,
    data: *const c_void,
    cb: ffi::ap_watchdog_callback_fn_t,
    name: &str,
) -> bool {
    type Register = ffi::apr_OFN_ap_watchdog_register_callback_t;
    // SAFETY: name and type match mod_watchdog.h.
    let Some(reg) =
        (unsafe { optional_fn::<Register>(c"ap_watchdog_register_callback") }).flatten()
    else {
        let msg = match kind(name) {
            "ocsp" => "AH10201: mod_watchdog is required for OCSP stapling",
            _ => "AH10061: mod_watchdog is required",
        };
        log::log(s, Lvl::Crit, msg);
        return false;
    };
    // SAFETY: forwarded contract.
    let rv = unsafe { reg(wd, interval, data, cb) };
    let code = match kind(name) {
        "ocsp" => "AH10203",
        _ => "AH10067",
    };
    let msg = format!("{code}: register md {} watchdog({name})", kind(name));
    if rv != 0 {
        log::log_status(s, Lvl::Crit, rv, &msg);
        return false;
    }
    log::log(s, Lvl::Debug, &msg);
    true
}

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
        let Some(_running) = InCallback::enter() else {
            return 0; // the child is exiting
        };
        let s = wd.main_server;
        match state as u32 {
            ffi::AP_WATCHDOG_STATE_STARTING => {
                log::log(s, Lvl::Debug, "AH10054: md watchdog start, auto drive");
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
                    Lvl::Debug,
                    &format!("AH10107: next run in {}", time::print_duration(next, false)),
                );
                if let Some(set) = wd.set_interval {
                    // SAFETY: re-arming our own callback on our instance.
                    unsafe { set(wd.wd, next, data, Some(callback)) };
                }
            }
            ffi::AP_WATCHDOG_STATE_STOPPING => {
                log::log(s, Lvl::Debug, "AH10058: md watchdog stopping")
            }
            _ => {}
        }
        0
    })
}

type Item = (
    md_engine::config::Md,
    i64,
    Option<i64>,
    bool,
    Result<Vec<String>, String>,
    Vec<md_engine::X509>,
);

/// Processes the job of one MD; returns its wanted next run (0 = none).
fn process_one(
    s: *const ffi::server_rec,
    store: &md_engine::store::Store,
    global: &md_engine::config::Global,
    user_agent: &str,
    item: &Item,
    now: i64,
) -> i64 {
    let (md, renew_at, warn_at, complete, challenges, certs) = item;
    crate::guard::test_panic("renewal-job");
    // as the C module: only an MD that will renew is "driving" (a manual
    // or static one is only checked for expiry)
    if md.renew_mode != md_engine::config::RenewMode::Manual {
        log::log(
            s,
            Lvl::Debug,
            &format!("AH10052: md({}): state={}, driving", md.name, md.state),
        );
    }
    let ctx = JobCtx {
        store,
        md,
        global,
        renew_at: *renew_at,
        warn_at: *warn_at,
        complete: *complete,
        challenges: challenges.clone(),
        user_agent: user_agent.to_string(),
        // SAFETY: httpd's unixd configuration, set before the children start.
        run_user: unsafe { apr::str_or_empty(ffi::ap_unixd_config.user_name) },
        revoked: md.stapling && crate::ocsp::md_revoked(&md.name),
        certs: certs.clone(),
    };
    let mut notify = CommandNotify {
        message_cmd: global.message_cmd.clone(),
        notify_cmd: global.notify_cmd.clone(),
        notes: Vec::new(),
    };
    let mut notes = Vec::new();
    let next = match job::process(&ctx, &mut notify, now, &mut notes) {
        Ok((_, j)) => {
            pool().failures.remove(&md.name);
            j.next_run
        }
        Err(e) => {
            // The job cannot even be read or written (an unwritable store):
            // back off like any other error instead of retrying every second.
            let errors = {
                let mut p = pool();
                let n = p.failures.entry(md.name.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let next = now + job::backoff(errors, global.retry_delay, false, job::rand_byte());
            log::log(
                s,
                Lvl::Err,
                &format!(
                    "AH10056: processing {}: renewal job: {e}; encountered error for the {errors}. time, next run in {}",
                    md.name,
                    time::print_duration(next - now, false)
                ),
            );
            next
        }
    };
    log::notes(s, &notes);
    log::notes(s, &notify.notes);
    next
}

/// The renewal workers of this process.
#[derive(Default)]
struct Pool {
    queue: std::collections::VecDeque<Item>,
    /// MDs queued or being processed.
    busy: std::collections::HashSet<String>,
    workers: usize,
    /// Next run each MD's job asked for.
    next_runs: std::collections::HashMap<String, i64>,
    /// The child is exiting: no new work is taken.
    stopping: bool,
    /// Watchdog callbacks (renewal and OCSP) running now: mod_watchdog's
    /// thread may still be inside one when the child exits.
    callbacks: usize,
    /// Consecutive runs per MD that failed before the job could record
    /// anything (job.json unreadable and not to be set aside, …).
    failures: std::collections::HashMap<String, i32>,
    /// When each MD's job was last processed in this child.
    last_done: std::collections::HashMap<String, i64>,
    /// The worker threads, joined at child exit: a thread that has left the
    /// queue still runs its thread-local destructors (OpenSSL's among them).
    threads: Vec<std::thread::JoinHandle<()>>,
}

static POOL: std::sync::LazyLock<Mutex<Pool>> =
    std::sync::LazyLock::new(|| Mutex::new(Pool::default()));
/// Signalled when a worker ends.
static WORKER_ENDED: Condvar = Condvar::new();

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long an exiting child waits for its renewal workers: an HTTP transfer
/// aborts within a second of the request, a key generation runs to its end
/// (seconds, more when many run at once on a loaded machine).
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// A watchdog callback in progress; the child's exit waits for it.
pub struct InCallback;

impl InCallback {
    /// None when the child is exiting: the callback must not start work
    /// (the process is about to tear down OpenSSL).
    pub fn enter() -> Option<InCallback> {
        let mut p = pool();
        if p.stopping {
            return None;
        }
        p.callbacks += 1;
        Some(InCallback)
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        pool().callbacks -= 1;
        WORKER_ENDED.notify_all();
    }
}

/// Registers the child-exit stop of the renewal workers on `pchild`.
///
/// # Safety
/// `pchild` is the child's process pool (child_init).
pub unsafe fn on_child_exit(pchild: *mut ffi::apr_pool_t, s: *const ffi::server_rec) {
    unsafe extern "C" fn stop(data: *mut c_void) -> ffi::apr_status_t {
        guard("child exit", 0, || {
            let s = data as *const ffi::server_rec;
            let busy = pool().workers;
            if busy > 0 {
                log::log(
                    s,
                    Lvl::Debug,
                    &format!("child exit: stopping {busy} renewal worker(s)"),
                );
            }
            if !stop_workers(EXIT_WAIT) {
                log::log(
                    s,
                    Lvl::Warn,
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

/// Asks the running renewal jobs of this process to stop at a safe point
/// and waits up to `bound` for the workers to end. Workers must not outlive
/// the child: its exit tears down OpenSSL under them. True when none runs.
pub fn stop_workers(bound: std::time::Duration) -> bool {
    md_engine::shutdown::request();
    let end = std::time::Instant::now() + bound;
    let mut p = pool();
    p.stopping = true;
    for item in std::mem::take(&mut p.queue) {
        p.busy.remove(&item.0.name);
    }
    while p.workers > 0 || p.callbacks > 0 {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        p = WORKER_ENDED
            .wait_timeout(p, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    // Every worker has left its loop: joining takes no longer than their
    // thread teardown.
    let threads = std::mem::take(&mut p.threads);
    drop(p);
    for t in threads {
        let _ = t.join();
    }
    true
}

struct WorkerCtx {
    /// The main server_rec (lives as long as this child's configuration).
    server: usize,
    store: md_engine::store::Store,
    global: md_engine::config::Global,
    user_agent: String,
}

/// A worker: takes queued MDs until the queue is empty.
fn worker(ctx: Arc<WorkerCtx>) {
    let s = ctx.server as *const ffi::server_rec;
    loop {
        let item = {
            let mut pool = pool();
            match pool.queue.pop_front().filter(|_| !pool.stopping) {
                Some(i) => i,
                None => {
                    pool.workers -= 1;
                    WORKER_ENDED.notify_all();
                    return;
                }
            }
        };
        // A panic in one job must not take the others down. Its log lines
        // reach the error log as they happen.
        let next = crate::guard::guard("renewal job", 0, || {
            log::live(s, || {
                process_one(
                    s,
                    &ctx.store,
                    &ctx.global,
                    &ctx.user_agent,
                    &item,
                    time::now(),
                )
            })
        });
        let mut pool = pool();
        pool.busy.remove(&item.0.name);
        pool.next_runs.insert(item.0.name.clone(), next);
        pool.last_done.insert(item.0.name.clone(), time::now());
    }
}

/// Whether an MD's job is due at `now`: never processed in this child; the
/// run it asked for has come; or, when it asked for none, its renewal time
/// has come since, `MDCheckInterval` has passed, or OCSP reports it revoked.
/// (Queuing every MD at every watchdog run made each idle MD ask its CA
/// for the directory every second.)
fn job_due(pool: &Pool, item: &Item, check_interval: i64, now: i64) -> bool {
    let name = &item.0.name;
    let Some(&last) = pool.last_done.get(name) else {
        return true;
    };
    match pool.next_runs.get(name).copied().unwrap_or(0) {
        next if next > 0 => next <= now,
        _ => {
            let renew_at = item.1;
            now >= last.saturating_add(check_interval)
                || (renew_at > last && renew_at <= now)
                || (item.0.stapling && crate::ocsp::md_revoked(name))
        }
    }
}

/// One watchdog run: process every due job; returns the next interval.
fn run(wd: &Watchdog) -> i64 {
    // SAFETY: the state lives as long as the configuration pool.
    let Some(state) = (unsafe { wd.state.as_ref() }) else {
        return time::from_secs(3600);
    };
    // Take a snapshot and release the lock: a renewal may take minutes.
    let global = state.lock().config.global.clone();
    let (store, items) = {
        let Some(rt) = state.runtime() else {
            return time::from_secs(3600);
        };
        let items: Vec<Item> = rt
            .mds
            .iter()
            .zip(rt.md_rt.iter())
            .filter(|(_, r)| r.watched)
            .map(|(m, r)| {
                (
                    m.clone(),
                    r.renew_at,
                    reg::warn_at(m, &r.certs),
                    m.state == reg::STATE_COMPLETE,
                    r.challenges.clone(),
                    r.certs.iter().flatten().filter_map(|c| c.leaf()).collect(),
                )
            })
            .collect();
        (rt.store.clone(), items)
    };
    let s = wd.main_server;
    log::log(
        s,
        Lvl::Debug,
        &format!("AH10055: md watchdog run, auto drive {} mds", items.len()),
    );
    let now = time::now();
    // Jobs run on detached workers, at most MDParallelRenewals at once: a
    // slow or failing CA for one MD holds up neither the other MDs nor this
    // callback. An MD is queued once; its job.json has one writer at a time.
    let mut pool = pool();
    if pool.stopping {
        return time::from_secs(3600);
    }
    // the next time an idle MD wants processing: its renewal time
    let mut wake: Vec<i64> = Vec::new();
    for item in items {
        if !pool.busy.contains(&item.0.name) && job_due(&pool, &item, global.check_interval, now) {
            pool.busy.insert(item.0.name.clone());
            pool.queue.push_back(item);
        } else if item.1 > now {
            wake.push(item.1);
        }
    }
    let ctx = Arc::new(WorkerCtx {
        server: s as usize,
        store,
        global: global.clone(),
        user_agent: wd.user_agent.clone(),
    });
    pool.threads.retain(|t| !t.is_finished());
    while pool.workers < global.parallel_renewals.max(1) && !pool.queue.is_empty() {
        pool.workers += 1;
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("md-renew".into())
            .spawn(move || worker(ctx));
        if let Ok(t) = spawned {
            pool.threads.push(t);
        } else {
            pool.workers -= 1;
            log::log(
                s,
                Lvl::Err,
                "cannot start a renewal worker thread; retrying at the next run",
            );
            break;
        }
    }
    let busy = !pool.busy.is_empty();
    let next_runs: Vec<i64> = pool
        .next_runs
        .values()
        .copied()
        .chain(wake)
        .filter(|t| *t > now)
        .collect();
    drop(pool);
    if busy {
        // come back soon: a finished job may ask for its next run; MDs
        // that are not due are not queued again
        return time::from_secs(1);
    }
    job::next_interval(
        global.check_interval,
        &next_runs,
        time::now(),
        job::rand_byte(),
    )
}

/// `MDGracefulRestart`: a thread in the parent (root) process asks httpd
/// for a graceful restart once renewed certificates are ready, at most once
/// per `MDCheckInterval`; the restart installs them (§3.6).
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
) {
    // When this parent process last asked for a restart (µs), kept on the
    // process pool: this module's statics start over with every generation.
    // SAFETY: s->process->pool lives as long as the process.
    let last = unsafe { apr::process_i64(s, c"mod_md_rs_last_restart") };
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let stop2 = stop.clone();
    let spawned = std::thread::Builder::new().name("md-restart".into()).spawn(move || {
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
                use std::sync::atomic::Ordering;
                let now = time::now();
                let prev = last.load(Ordering::SeqCst);
                if prev != 0 && now - prev < interval {
                    return;
                }
                if let Some(md) = rt.mds.iter().find(|m| reg::staged_ready(&rt.store, m, now)) {
                    last.store(now, Ordering::SeqCst);
                    // NULL: the main error log. This thread outlives the
                    // configuration's server_rec by a little.
                    log::log(
                        std::ptr::null(),
                        Lvl::Notice,
                        &format!(
                            "{}: renewed certificates are ready, restarting the server gracefully (MDGracefulRestart on)",
                            md.name
                        ),
                    );
                    // SAFETY: signalling our own (parent) process: httpd's
                    // SIGUSR1 handler starts a graceful restart.
                    unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
                }
            })
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
            Lvl::Err,
            "MDGracefulRestart: cannot start the restart checker thread",
        ),
    }
}
