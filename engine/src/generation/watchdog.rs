//! The work of the watchdog callbacks in a child (spec §3.1, §8.3): the
//! renewal runs, OCSP refreshes and CRL passes, and the child's exit.

use super::*;

/// How often the renewal watchdog looks for operator requests between its
/// runs.
const REQUESTS_LOOK: Micros = 2 * time::USEC_PER_SEC;

/// Which of the module's mod_watchdog callbacks runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Watchdog {
    Renew,
    Ocsp,
}

impl Watchdog {
    /// Its mod_watchdog instance's name.
    pub fn name(self) -> &'static std::ffi::CStr {
        match self {
            Watchdog::Renew => c"_md_renew_",
            Watchdog::Ocsp => c"_md_ocsp_",
        }
    }

    /// `<what> md renew watchdog(_md_renew_)`, as the C module logs it.
    pub fn message(self, what: &str) -> String {
        let (kind, name) = match self {
            Watchdog::Renew => ("renew", "_md_renew_"),
            Watchdog::Ocsp => ("ocsp", "_md_ocsp_"),
        };
        format!("{what} md {kind} watchdog({name})")
    }

    /// The code of its registration line.
    pub fn register_code(self) -> &'static str {
        match self {
            Watchdog::Renew => "AH10067: register",
            Watchdog::Ocsp => "AH10203: register",
        }
    }

    /// Why it cannot register without mod_watchdog.
    pub fn missing(self) -> &'static str {
        match self {
            Watchdog::Renew => "AH10061: mod_watchdog is required",
            Watchdog::Ocsp => "AH10201: mod_watchdog is required for OCSP stapling",
        }
    }

    /// When its first run comes (µs after start): OCSP at once; renewal
    /// after `MDInitialDelay`, or with none 10 ms after start.
    pub fn first_run(self, initial_delay: Micros) -> Micros {
        match self {
            Watchdog::Ocsp => 0,
            Watchdog::Renew if initial_delay > 0 => initial_delay,
            Watchdog::Renew => 10_000,
        }
    }
}

/// The state mod_watchdog calls a callback in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WatchdogState {
    Starting,
    Running,
    Stopping,
}

/// What a watchdog callback works with, set up at registration.
pub struct WatchdogEnv {
    pub kind: Watchdog,
    /// The main server's log.
    pub host: Arc<dyn Host>,
    /// httpd's server description (`Apache/2.4.x (Debian) ...`).
    pub server_desc: String,
    /// httpd's `User`, for the event commands.
    pub run_user: String,
    /// `MDInitialDelay` is 0: the first renewal run starts with the watchdog.
    pub run_at_start: bool,
}

impl WatchdogEnv {
    /// The product part of the server description, `Apache/2.4.x`.
    fn product(&self) -> String {
        let first = self.server_desc.split_whitespace().next();
        first.unwrap_or("Apache/2.4").to_string()
    }
}

/// How long a child's exit waits for its renewal workers to stop
/// (seconds, more when many run at once on a loaded machine).
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Generation {
    /// One call of a watchdog callback; `Some(next)`: re-arm it to run
    /// again in `next` µs.
    pub fn watchdog(&self, env: &WatchdogEnv, state: WatchdogState) -> Option<Micros> {
        let host = &*env.host;
        match (env.kind, state) {
            (Watchdog::Ocsp, WatchdogState::Starting) => {
                let n = self.stapling.count();
                let msg =
                    format!("AH10197: md ocsp watchdog start, ocsp stapling {n} certificates");
                host.log(Level::Debug, &msg);
                None
            }
            (Watchdog::Ocsp, WatchdogState::Stopping) => {
                host.log(Level::Debug, "AH10200: md ocsp watchdog stopping");
                None
            }
            (Watchdog::Ocsp, WatchdogState::Running) => {
                let _running = self.scheduler.enter_callback()?;
                let n = self.stapling.count();
                let msg = format!("AH10198: md ocsp watchdog run, ocsp stapling {n} certificates");
                host.log(Level::Debug, &msg);
                let next = host::live(&env.host, || self.refresh_ocsp(env));
                let wait = time::print_duration(next, false);
                let msg = format!("AH10199: md ocsp watchdog next run in {wait}");
                host.log(Level::Debug, &msg);
                Some(next)
            }
            (Watchdog::Renew, state) => {
                // the child is exiting: no new work
                let _running = self.scheduler.enter_callback()?;
                match state {
                    WatchdogState::Starting => {
                        host.log(Level::Debug, "AH10054: md watchdog start, auto drive");
                        // mod_watchdog's first RUNNING call comes one time
                        // slice (100 ms) later; without an initial delay the
                        // jobs start now, on their workers (this returns at
                        // once). The RUNNING call then finds them busy.
                        if env.run_at_start {
                            self.renew_run(env);
                        }
                        None
                    }
                    WatchdogState::Running => {
                        let (next, ran) = self.renew_run(env);
                        if ran {
                            let wait = time::print_duration(next, false);
                            host.log(Level::Debug, &format!("AH10107: next run in {wait}"));
                        }
                        Some(next)
                    }
                    WatchdogState::Stopping => {
                        host.log(Level::Debug, "AH10058: md watchdog stopping");
                        None
                    }
                }
            }
        }
    }

    /// One OCSP refresh: fetches what is due through the configured proxy;
    /// returns the next interval.
    fn refresh_ocsp(&self, env: &WatchdogEnv) -> Micros {
        let global = self.lock().config.global.clone();
        let (ua, proxy) = (env.product(), global.proxy_url.clone());
        let fetch = move |c: &ocsp::Cert| {
            let mut client = crate::base::http::Client::new(ua.clone());
            client.proxy = proxy.clone();
            client.body_limit = ocsp::BODY_LIMIT;
            client.timeout = std::time::Duration::from_secs(60);
            client.connect_timeout = std::time::Duration::from_secs(30);
            c.fetch(&client, time::now())
        };
        self.stapling.refresh(&*env.host, &global, &fetch)
    }

    /// One look of the renewal watchdog: a full run when one is due or an
    /// operator left a request; the interval until the next look, and
    /// whether it ran.
    fn renew_run(&self, env: &WatchdogEnv) -> (Micros, bool) {
        let Some(rt) = self.runtime() else {
            return (time::from_secs(3600), false);
        };
        // An operator's request (`a2md renew`) is picked up within
        // seconds, whatever MDCheckInterval says: between full runs the
        // watchdog looks at the requests' stamp only (one stat).
        let now = time::now();
        let stamp = rt
            .store
            .stat(crate::store::Group::Requests, "", "")
            .map(|s| s.stamp);
        {
            let mut tick = self.renew_tick.lock().unwrap_or_else(|e| e.into_inner());
            if now < tick.0 && stamp == tick.1 {
                return ((tick.0 - now).min(REQUESTS_LOOK), false);
            }
            tick.1 = stamp;
        }
        let next = self.renew_full_run(&rt, env);
        self.renew_tick.lock().unwrap_or_else(|e| e.into_inner()).0 = time::now() + next;
        (next.min(REQUESTS_LOOK), true)
    }

    /// A full renewal run: hands the watched MDs to the scheduler; the
    /// interval until the next one.
    fn renew_full_run(&self, rt: &Arc<Runtime>, env: &WatchdogEnv) -> Micros {
        let items = Runtime::watched_items(rt);
        let msg = format!("AH10055: md watchdog run, auto drive {} mds", items.len());
        env.host.log(Level::Debug, &msg);
        let ua = format!("{} mod_md/{}", env.product(), crate::MOD_MD_VERSION);
        let crl_ua = ua.clone();
        let (host, sched, stapling, crl) = (
            env.host.clone(),
            self.scheduler.clone(),
            self.stapling.clone(),
            self.crl.clone(),
        );
        let (g, run_user, store) = (rt.global.clone(), env.run_user.clone(), rt.store.clone());
        let process = move |item: &scheduler::Item, now: Micros| {
            // a panic in one job is logged and ends only that job
            let report = |msg: &str| host.log(Level::Crit, msg);
            crate::base::boundary::guard("renewal job", 0, report, || {
                crate::base::boundary::test_panic("renewal-job");
                let revoked = if item.md().stapling && stapling.md_revoked(&item.md().name) {
                    Some(crate::lifecycle::context::RevokedBy::Ocsp)
                } else if crl.revoked(&item.md().name, &item.certs()) {
                    Some(crate::lifecycle::context::RevokedBy::Crl)
                } else {
                    None
                };
                let h = &*host;
                scheduler::process_job(&sched, h, &store, &g, &ua, &run_user, revoked, item, now)
            })
        };
        let (stapling, crl) = (self.stapling.clone(), self.crl.clone());
        let ctx = Arc::new(scheduler::Ctx {
            global: rt.global.clone(),
            host: env.host.clone(),
            revoked: Arc::new(move |item: &scheduler::Item| {
                (item.md().stapling && stapling.md_revoked(&item.md().name))
                    || crl.revoked(&item.md().name, &item.certs())
            }),
            process: Arc::new(process),
        });
        let next = self.scheduler.run(items, ctx.clone(), time::now());
        if !rt.global.crl_check {
            return next;
        }
        if self.crl_pass(rt, env, &crl_ua) {
            // a revoked certificate renews now, not at the next run
            self.scheduler
                .run(Runtime::watched_items(rt), ctx, time::now());
        }
        let until = (self.crl.next_due() - time::now()).max(time::USEC_PER_SEC);
        next.min(until)
    }

    /// A CRL pass when one is due (in the watchdog's thread: renewals were
    /// handed to the workers before). True when it found a revocation of a
    /// managed certificate.
    fn crl_pass(&self, rt: &Runtime, env: &WatchdogEnv, ua: &str) -> bool {
        let now = time::now();
        if !self.crl.due(now) {
            return false;
        }
        // what is served: a staged set served hot rather than the live set
        // start-up read. Only where the cache is: the parent makes it at
        // start when a live certificate names a CRL, and this child cannot
        // (a first certificate served hot is checked from the next start).
        let cache = crate::serving::crl::cache_ready(&rt.store);
        let log = |level, msg: &str| env.host.log(level, msg);
        let targets: Vec<crate::serving::crl::Target> = rt
            .domains
            .iter()
            .flat_map(|d| {
                let hot = (cache && d.md.cert_files.is_empty())
                    .then(|| self.hot.served(&d.md.name, now, &TlsSet::load, &log));
                match hot.flatten() {
                    Some(set) => crate::serving::crl::targets_of_set(&d.md, &set),
                    None => crate::serving::crl::targets(&d.md, &d.rt.certs),
                }
            })
            .collect();
        let mds: Vec<&str> = rt.domains.iter().map(|d| d.md.name.as_str()).collect();
        let mut client = crate::base::http::Client::new(ua.to_string());
        client.proxy = rt.global.proxy_url.clone();
        let pass = crate::serving::crl::pass(&rt.store, &client, &mds, &targets, now);
        emit(&*env.host, &pass.notes);
        let mut notify = crate::lifecycle::events::CommandNotify {
            message_cmd: rt.global.message_cmd.clone(),
            notify_cmd: None,
            notes: Vec::new(),
        };
        for (md, c, is_static) in &pass.newly_revoked {
            env.host.log(
                Level::Error,
                &crate::serving::crl::revoked_message(md, c, *is_static),
            );
            use crate::lifecycle::events::Notify;
            if let Err(e) = notify.message("revoked", md) {
                env.host.log(
                    Level::Warn,
                    &format!("md({md}): event-handler for 'revoked' returned {e}"),
                );
            }
        }
        emit(&*env.host, &notify.notes);
        self.crl.update(&pass);
        !pass.revoked.is_empty()
    }

    /// The child exits: its renewal workers stop at a safe point. False
    /// when they are still busy after a while; the child must then end
    /// without library teardown (the renewal resumes at the next run).
    pub fn child_exit(&self, host: &dyn Host) -> bool {
        let busy = self.scheduler.workers();
        if busy > 0 {
            let msg = format!("child exit: stopping {busy} renewal worker(s)");
            host.log(Level::Debug, &msg);
        }
        crate::base::shutdown::request();
        if self.scheduler.stop(EXIT_WAIT) {
            return true;
        }
        host.log(Level::Warn, &format!(
            "renewal workers still busy {} s after the child was asked to exit (key generation on a loaded machine); the child ends without running library teardown under them, the unfinished renewal resumes at the next run",
            EXIT_WAIT.as_secs()
        ));
        false
    }
}
