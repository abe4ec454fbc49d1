//! The renewal scheduler and worker pool of one httpd child (spec §3.1).
//!
//! mod_watchdog calls the glue once per interval; the glue hands the watched
//! MDs to [`Scheduler::run`], which queues the due ones and starts workers
//! (at most `MDParallelRenewals`), then says when it wants to run again. A
//! slow or failing CA for one MD holds up neither the others nor the
//! watchdog; an MD is queued once, so its job.json has one writer at a time.
//! At child exit [`Scheduler::stop`] stops the jobs at a safe point and
//! joins the workers before the process tears down OpenSSL.

use crate::base::host::Host;
use crate::base::log::{Level, Note};
use crate::base::time::{self, Micros};
use crate::config::{Global, Md, RenewMode};
use crate::lifecycle::context::JobCtx;
use crate::lifecycle::events::CommandNotify;
use crate::lifecycle::{events, renew};
use crate::store::Store;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Where the scheduler reads the MDs of its items and what start-up found
/// about them: the generation's runtime, shared, so that a run over 10,000
/// MDs copies none of them (a copy per MD and run would also dirty the
/// pages a child shares with the parent).
pub trait Source: Send + Sync {
    fn md(&self, i: usize) -> &Md;
    /// The challenge types MD `i` may use, or why none.
    fn challenges(&self, i: usize) -> crate::lifecycle::state::Challenges;
    /// MD `i`'s current certificates (leaves) by key name, for ARI.
    fn certs(&self, i: usize) -> Vec<(String, openssl::x509::X509)>;
}

/// One watched MD as the scheduler sees it: which MD of its source, and
/// what the start-up planning found out about its certificates.
#[derive(Clone)]
pub struct Item {
    src: Arc<dyn Source>,
    idx: usize,
    /// When its certificates are due for renewal.
    pub renew_at: Micros,
    /// When the warn window (the `expiring` event) starts.
    pub warn_at: Option<Micros>,
    /// It has complete, valid certificates now.
    pub complete: bool,
    /// An operator asked for a new certificate (`a2md renew`).
    pub requested: bool,
}

impl Item {
    pub fn new(src: Arc<dyn Source>, idx: usize, renew_at: Micros) -> Item {
        Item {
            src,
            idx,
            renew_at,
            warn_at: None,
            complete: false,
            requested: false,
        }
    }

    pub fn md(&self) -> &Md {
        self.src.md(self.idx)
    }

    pub fn challenges(&self) -> crate::lifecycle::state::Challenges {
        self.src.challenges(self.idx)
    }

    pub fn certs(&self) -> Vec<(String, openssl::x509::X509)> {
        self.src.certs(self.idx)
    }
}

/// Runs one MD's job; returns its wanted next run (0 = none).
pub type Process = dyn Fn(&Item, Micros) -> Micros + Send + Sync;

/// What a run of the scheduler works with.
pub struct Ctx {
    pub global: Global,
    pub host: Arc<dyn Host>,
    /// Whether OCSP or a CRL reports a current certificate of an MD revoked.
    pub revoked: Arc<dyn Fn(&Item) -> bool + Send + Sync>,
    pub process: Arc<Process>,
}

#[derive(Default)]
struct Pool {
    queue: VecDeque<Item>,
    /// MDs queued or being processed.
    busy: HashSet<String>,
    workers: usize,
    /// Next run each MD's job asked for.
    next_runs: HashMap<String, Micros>,
    /// The child is exiting: no new work is taken.
    stopping: bool,
    /// Watchdog callbacks running now (renewal and OCSP).
    callbacks: usize,
    /// When each MD's job was last processed in this process.
    last_done: HashMap<String, Micros>,
    /// The worker threads, joined at exit: a thread that has left the queue
    /// still runs its thread-local destructors (OpenSSL's among them).
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Consecutive runs per MD that failed before the job could record
    /// anything (an unwritable store): their own back-off.
    failures: HashMap<String, i32>,
}

/// The renewal workers of one process.
#[derive(Default)]
pub struct Scheduler {
    pool: Mutex<Pool>,
    /// Signalled when a worker or a callback ends.
    ended: Condvar,
}

/// A watchdog callback in progress; [`Scheduler::stop`] waits for it.
pub struct InCallback<'a>(&'a Scheduler);

impl Drop for InCallback<'_> {
    fn drop(&mut self) {
        self.0.pool().callbacks -= 1;
        self.0.ended.notify_all();
    }
}

impl Scheduler {
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters a watchdog callback; None when the process is exiting (the
    /// callback must not start work: OpenSSL is about to be torn down).
    pub(crate) fn enter_callback(&self) -> Option<InCallback<'_>> {
        let mut p = self.pool();
        if p.stopping {
            return None;
        }
        p.callbacks += 1;
        Some(InCallback(self))
    }

    /// Workers running now.
    pub fn workers(&self) -> usize {
        self.pool().workers
    }

    /// One watchdog run: queues every due item, starts workers, and
    /// returns the interval until the next run.
    pub fn run(self: &Arc<Self>, items: Vec<Item>, ctx: Arc<Ctx>, now: Micros) -> Micros {
        let mut pool = self.pool();
        if pool.stopping {
            return time::from_secs(3600);
        }
        // the next time an idle MD wants processing: its renewal time
        let mut wake = Vec::new();
        for item in items {
            let due = job_due(&pool, &item, ctx.global.check_interval, now, &*ctx.revoked);
            if !pool.busy.contains(&item.md().name) && due {
                pool.busy.insert(item.md().name.clone());
                pool.queue.push_back(item);
            } else if item.renew_at > now {
                wake.push(item.renew_at);
            }
        }
        pool.threads.retain(|t| !t.is_finished());
        while pool.workers < ctx.global.parallel_renewals.max(1) && !pool.queue.is_empty() {
            pool.workers += 1;
            let (me, c) = (self.clone(), ctx.clone());
            let spawned = std::thread::Builder::new()
                .name("md-renew".into())
                .spawn(move || me.worker(&c));
            match spawned {
                Ok(t) => pool.threads.push(t),
                Err(_) => {
                    pool.workers -= 1;
                    ctx.host.log(
                        Level::Error,
                        "cannot start a renewal worker thread; retrying at the next run",
                    );
                    break;
                }
            }
        }
        let busy = !pool.busy.is_empty();
        let next_runs: Vec<Micros> = pool
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
        renew::next_interval(
            ctx.global.check_interval,
            &next_runs,
            now,
            events::rand_byte(),
        )
    }

    /// A worker: takes queued MDs until the queue is empty.
    fn worker(&self, ctx: &Ctx) {
        loop {
            let item = {
                let mut pool = self.pool();
                match pool.queue.pop_front().filter(|_| !pool.stopping) {
                    Some(i) => i,
                    None => {
                        pool.workers -= 1;
                        self.ended.notify_all();
                        if pool.workers == 0 && pool.busy.is_empty() {
                            let (requests, connections) = crate::base::http::traffic();
                            ctx.host.log(
                                Level::Debug,
                                &format!(
                                    "renewal jobs idle: this child made {requests} HTTP requests \
                                     over {connections} new connections so far"
                                ),
                            );
                            // the run's items and job state are freed now
                            ctx.host.release_memory();
                        }
                        return;
                    }
                }
            };
            // A panic in one job must not take the others down; its log
            // lines reach the host as they happen.
            let host = ctx.host.clone();
            let next = crate::base::boundary::guard(
                "renewal worker",
                0,
                |msg| host.log(Level::Crit, msg),
                || crate::base::host::live(&host, || (ctx.process)(&item, time::now())),
            );
            let mut pool = self.pool();
            pool.busy.remove(&item.md().name);
            pool.next_runs.insert(item.md().name.clone(), next);
            pool.last_done.insert(item.md().name.clone(), time::now());
        }
    }

    /// Counts a run that failed before its job could record anything;
    /// returns how many in a row.
    pub(crate) fn failed(&self, md: &str) -> i32 {
        let mut p = self.pool();
        let n = p.failures.entry(md.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    /// A run recorded its result.
    pub(crate) fn succeeded(&self, md: &str) {
        self.pool().failures.remove(md);
    }

    /// Asks the running jobs to stop at a safe point and waits up to
    /// `bound` for the workers and callbacks to end. True when none runs.
    /// The caller raises [`crate::base::shutdown::request`] first, so that the
    /// jobs in progress end at their next safe point.
    pub fn stop(&self, bound: Duration) -> bool {
        let end = std::time::Instant::now() + bound;
        let mut p = self.pool();
        p.stopping = true;
        for item in std::mem::take(&mut p.queue) {
            p.busy.remove(&item.md().name);
        }
        while p.workers > 0 || p.callbacks > 0 {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            p = self
                .ended
                .wait_timeout(p, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let threads = std::mem::take(&mut p.threads);
        drop(p);
        for t in threads {
            let _ = t.join();
        }
        true
    }
}

/// Whether an item's job is due at `now`: never processed in this process;
/// the run it asked for has come; or, when it asked for none, its renewal
/// time has come since, `MDCheckInterval` has passed, or OCSP reports it
/// revoked. (Queuing every MD at every run made each idle MD ask its CA for
/// the directory every second.)
fn job_due(
    pool: &Pool,
    item: &Item,
    check_interval: Micros,
    now: Micros,
    revoked: &dyn Fn(&Item) -> bool,
) -> bool {
    let name = &item.md().name;
    let Some(&last) = pool.last_done.get(name) else {
        return true;
    };
    match pool.next_runs.get(name).copied().unwrap_or(0) {
        next if next > 0 => next <= now,
        _ => {
            now >= last.saturating_add(check_interval)
                || (item.renew_at > last && item.renew_at <= now)
                || revoked(item)
                || item.requested
        }
    }
}

/// The production job of one item: the engine's job processing with the
/// configured event commands; an unreadable or unwritable job backs off
/// like any other error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn process_job(
    sched: &Scheduler,
    host: &dyn Host,
    store: &Store,
    global: &Global,
    user_agent: &str,
    run_user: &str,
    revoked: Option<crate::lifecycle::context::RevokedBy>,
    item: &Item,
    now: Micros,
) -> Micros {
    let md = item.md();
    // as the C module: only an MD that will renew is "driving" (a manual
    // or static one is only checked for expiry)
    let mut notes = Vec::new();
    if md.renew_mode != RenewMode::Manual {
        notes.push(Note::new(
            Level::Debug,
            format!(
                "AH10052: md({}): state={}, driving",
                md.name,
                md.found.state.code()
            ),
        ));
    }
    let ctx = JobCtx {
        store,
        md,
        global,
        renew_at: item.renew_at,
        warn_at: item.warn_at,
        complete: item.complete,
        challenges: item.challenges(),
        user_agent: user_agent.to_string(),
        run_user: run_user.to_string(),
        revoked,
        certs: item.certs(),
        leases: crate::store::lease::Leases::of(store, global),
        requested: item
            .requested
            .then(|| crate::store::request::load(store, &md.name))
            .flatten(),
    };
    let mut notify = CommandNotify {
        message_cmd: global.message_cmd.clone(),
        notify_cmd: global.notify_cmd.clone(),
        notes: Vec::new(),
    };
    let next = match renew::process(&ctx, &mut notify, now, &mut notes) {
        Ok((_, j)) => {
            sched.succeeded(&md.name);
            j.next_run
        }
        Err(e) => {
            // the job cannot even be read or written (an unwritable store):
            // back off like any other error instead of retrying every second
            let errors = sched.failed(&md.name);
            let next =
                now + events::backoff(errors, global.retry_delay, false, events::rand_byte());
            notes.push(Note::new(
                Level::Error,
                format!(
                    "AH10056: processing {}: renewal job: {e}; encountered error for the {errors}. time, next run in {}",
                    md.name,
                    time::print_duration(next - now, false)
                ),
            ));
            next
        }
    };
    for n in notes.iter().chain(&notify.notes).filter(|n| !n.emitted) {
        host.log(n.level, &n.msg);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Quiet;
    impl Host for Quiet {
        fn log(&self, _: Level, _: &str) {}
    }

    /// One MD of its own, as items of tests have them.
    struct OneMd(Md);

    impl Source for OneMd {
        fn md(&self, _: usize) -> &Md {
            &self.0
        }
        fn challenges(&self, _: usize) -> crate::lifecycle::state::Challenges {
            Ok(vec![crate::base::challenge::ChallengeType::Http01])
        }
        fn certs(&self, _: usize) -> Vec<(String, openssl::x509::X509)> {
            Vec::new()
        }
    }

    fn item(name: &str, renew_at: Micros) -> Item {
        let def = crate::config::MdDef::new(vec![name.to_string()]);
        let md = Md::from_def(&def, &crate::config::Settings::default(), None);
        let mut it = Item::new(Arc::new(OneMd(md)), 0, renew_at);
        it.complete = true;
        it
    }

    fn ctx(parallel: usize, process: Arc<Process>) -> Arc<Ctx> {
        let global = Global {
            parallel_renewals: parallel,
            check_interval: time::from_secs(12 * 3600),
            ..Global::default()
        };
        Arc::new(Ctx {
            global,
            host: Arc::new(Quiet),
            revoked: Arc::new(|_| false),
            process,
        })
    }

    fn wait_idle(s: &Scheduler) {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let p = s.pool();
            if p.busy.is_empty() && p.workers == 0 {
                return;
            }
            drop(p);
            assert!(std::time::Instant::now() < end, "workers did not finish");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn due_jobs_run_once_and_idle_ones_wait() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r2 = runs.clone();
        let s = Arc::new(Scheduler::new());
        let c = ctx(
            2,
            Arc::new(move |_, _| {
                r2.fetch_add(1, Ordering::SeqCst);
                0
            }),
        );
        let now = time::now();
        let later = now + time::from_secs(86400);
        // first run: every MD is processed once
        assert_eq!(
            s.run(
                vec![item("a.org", later), item("b.org", later)],
                c.clone(),
                now
            ),
            time::from_secs(1)
        );
        wait_idle(&s);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // then nothing is due: not processed again, and the scheduler sleeps
        // until the earliest renewal time
        let next = s.run(
            vec![item("a.org", later), item("b.org", later)],
            c.clone(),
            now + 1,
        );
        wait_idle(&s);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(
            next <= later - now && next > time::from_secs(3600),
            "{next}"
        );
        // the renewal time comes: processed again
        s.run(
            vec![item("a.org", later), item("b.org", later)],
            c.clone(),
            later + 1,
        );
        wait_idle(&s);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        // MDCheckInterval passed without a renewal time: processed
        let far = now + time::from_secs(3 * 86400);
        s.run(vec![item("a.org", far + 86400 * 1_000_000)], c, far);
        wait_idle(&s);
        assert_eq!(runs.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_job_asking_for_a_run_gets_it() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r2 = runs.clone();
        let s = Arc::new(Scheduler::new());
        let now = time::now();
        let retry = now + time::from_secs(30);
        let c = ctx(
            1,
            Arc::new(move |_, _| {
                r2.fetch_add(1, Ordering::SeqCst);
                retry
            }),
        );
        let later = now + time::from_secs(86400);
        s.run(vec![item("a.org", later)], c.clone(), now);
        wait_idle(&s);
        // not before the retry time, and the interval says when
        let next = s.run(
            vec![item("a.org", later)],
            c.clone(),
            now + time::from_secs(10),
        );
        wait_idle(&s);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(next <= time::from_secs(20), "{next}");
        s.run(vec![item("a.org", later)], c, retry);
        wait_idle(&s);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn revoked_certificates_are_renewed_at_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r2 = runs.clone();
        let s = Arc::new(Scheduler::new());
        let mut c = ctx(
            1,
            Arc::new(move |_, _| {
                r2.fetch_add(1, Ordering::SeqCst);
                0
            }),
        );
        let now = time::now();
        let def = crate::config::MdDef::new(vec!["a.org".to_string()]);
        let mut md = Md::from_def(&def, &crate::config::Settings::default(), None);
        md.stapling = true;
        let it = Item::new(Arc::new(OneMd(md)), 0, now + time::from_secs(86400));
        s.run(vec![it.clone()], c.clone(), now);
        wait_idle(&s);
        Arc::get_mut(&mut c).expect("one owner").revoked = Arc::new(|i| i.md().name == "a.org");
        s.run(vec![it], c, now + 1);
        wait_idle(&s);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn parallel_limit_and_one_run_per_md() {
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (a2, p2) = (active.clone(), peak.clone());
        let s = Arc::new(Scheduler::new());
        let c = ctx(
            3,
            Arc::new(move |_, _| {
                let n = a2.fetch_add(1, Ordering::SeqCst) + 1;
                p2.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
                a2.fetch_sub(1, Ordering::SeqCst);
                0
            }),
        );
        let now = time::now();
        let items: Vec<Item> = (0..10).map(|i| item(&format!("m{i}.org"), now)).collect();
        s.run(items.clone(), c.clone(), now);
        // a second run while they work queues none of them twice
        s.run(items, c, now);
        assert!(s.workers() <= 3);
        wait_idle(&s);
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(s.pool().last_done.len(), 10);
    }

    #[test]
    fn stop_waits_for_workers_and_takes_no_new_work() {
        let s = Arc::new(Scheduler::new());
        let c = ctx(
            2,
            Arc::new(|_, _| {
                std::thread::sleep(Duration::from_millis(100));
                0
            }),
        );
        let now = time::now();
        let items: Vec<Item> = (0..6).map(|i| item(&format!("s{i}.org"), now)).collect();
        s.run(items.clone(), c.clone(), now);
        let cb = s.enter_callback().expect("not stopping yet");
        let s2 = s.clone();
        let stopper = std::thread::spawn(move || s2.stop(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        drop(cb);
        assert!(stopper.join().expect("no panic"));
        assert_eq!(s.workers(), 0);
        // the queued ones were dropped, not run; nothing new starts
        assert!(s.pool().last_done.len() <= 2);
        assert!(s.enter_callback().is_none());
        assert_eq!(s.run(items, c, now), time::from_secs(3600));
        assert_eq!(s.workers(), 0);
    }

    #[test]
    fn a_panicking_job_is_contained() {
        let s = Arc::new(Scheduler::new());
        let c = ctx(
            1,
            Arc::new(|it: &Item, _| {
                if it.md().name == "bad.org" {
                    panic!("boom");
                }
                0
            }),
        );
        let now = time::now();
        s.run(vec![item("bad.org", now), item("good.org", now)], c, now);
        wait_idle(&s);
        assert_eq!(s.pool().last_done.len(), 2);
    }
}
