//! One configuration generation of the module and everything it owns: the
//! parsed configuration, the start-up runtime, the renewal scheduler, the
//! stapling registry and the hot-activation slots. httpd's glue keeps one
//! per configuration pool and turns each hook into one call here; what
//! only httpd can do (log lines, the restart signal) goes through
//! [`Host`].

pub mod report;
pub mod startup;

use crate::base::host::{self, Host};
use crate::base::log::{Level, Note};
use crate::base::time::{self, Micros};
use crate::config::{ModConfig, Settings};
use crate::generation::startup::{Runtime, Server, SslFacts, StartError};
use crate::lifecycle::scheduler::{self, Scheduler};
use crate::serving::hot::{HotSlots, TlsSet};
use crate::serving::ocsp;
use crate::serving::stapling::Stapling;
use crate::store::sets;
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// What start-up collects while httpd reads the configuration and mod_ssl
/// asks for certificates; locked, and only during start-up.
#[derive(Default)]
pub struct Setup {
    pub config: ModConfig,
    /// Built by post_config; published (read without the lock) once
    /// start-up is complete.
    pub runtime: Option<Arc<Runtime>>,
    /// Servers that mod_ssl asked for certificates (SSL vhosts).
    pub ssl_servers: HashSet<usize>,
    /// SSL vhosts handed their MD's fallback by the certificate hook.
    pub fallback_servers: HashSet<usize>,
    /// This generation is httpd's configuration dry run.
    pub dry_run: bool,
    /// httpd's runtime directory (`DefaultRuntimeDir`): fallbacks that the
    /// store cannot take are made there.
    pub runtime_dir: Option<std::path::PathBuf>,
}

/// The module state of one configuration generation.
pub struct Generation {
    setup: Mutex<Setup>,
    /// The renewal workers (in the child that runs the watchdog); the
    /// watchdog callbacks register with it, and the child's exit stops it.
    pub scheduler: Arc<Scheduler>,
    /// The stapled certificates (primed in the parent; every child staples
    /// from them; one child refreshes them).
    pub stapling: Arc<Stapling>,
    /// What the last CRL pass found (in the child that runs the watchdog).
    pub crl: Arc<crate::serving::crl::Registry>,
    /// Hot activation: the staged set each SSL vhost serves.
    pub hot: HotSlots<TlsSet>,
    /// The keys of the fallback certificates made in this generation.
    fallback_keys: crate::base::crypto::KeyCache,
    /// The runtime once start-up is complete (set in the parent before the
    /// children fork): request handlers read it without a lock.
    published: OnceLock<Arc<Runtime>>,
}

impl Default for Generation {
    fn default() -> Self {
        Generation {
            setup: Mutex::default(),
            scheduler: Arc::default(),
            stapling: Arc::default(),
            crl: Arc::default(),
            hot: HotSlots::default(),
            fallback_keys: Default::default(),
            published: OnceLock::new(),
        }
    }
}

/// What the first half of start-up reads from httpd.
pub struct StartInput {
    /// httpd's configuration dry run (the first post_config of a process).
    pub dry_run: bool,
    /// The main server's settings and `ServerAdmin`.
    pub main: Settings,
    pub server_admin: Option<String>,
    pub server_root: String,
    /// The uid the store's child-written groups are handed to (root parent).
    pub run_user: Option<u32>,
    pub servers: Vec<Server>,
    /// httpd's runtime directory (`DefaultRuntimeDir`).
    pub runtime_dir: Option<std::path::PathBuf>,
}

/// What the second half of start-up asks of httpd.
pub struct SslInput<'a> {
    /// Whether listeners serve the local ports of the public 80 and 443.
    pub reach: &'a dyn Fn(Option<u16>, Option<u16>) -> (bool, bool),
    /// The addresses of httpd's http/https listeners (for the challenge
    /// pre-flight).
    pub listeners: Vec<std::net::SocketAddr>,
    /// Whether a server allows the `acme-tls/1` protocol.
    pub acme_tls: &'a dyn Fn(usize) -> bool,
}

/// The background work a real start asks httpd for.
#[derive(Default)]
pub struct Background {
    /// Register the renewal watchdog, first run after this delay (µs).
    pub renew: Option<Micros>,
    /// Register the OCSP watchdog.
    pub ocsp: bool,
    /// Start the parent's restart checker: (interval, eager).
    pub restarter: Option<(Arc<Runtime>, Micros, bool)>,
}

/// What mod_ssl gets for a vhost: nothing, or (key, certificate) pairs.
pub enum Served {
    Declined,
    Files(Vec<(String, String)>),
}

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

/// Writes the notes a live sink has not written already.
fn emit(host: &dyn Host, notes: &[Note]) {
    for n in notes.iter().filter(|n| !n.emitted) {
        host.log(n.level, &n.msg);
    }
}

impl Generation {
    /// Locks the start-up data; a poisoned lock (a panic caught at the
    /// boundary while holding it) is recovered, the data stays usable.
    pub fn lock(&self) -> MutexGuard<'_, Setup> {
        self.setup.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The runtime snapshot, if post_config built one.
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        if let Some(rt) = self.published.get() {
            return Some(rt.clone());
        }
        self.lock().runtime.clone()
    }

    /// Start-up is complete: from now on the runtime is only read, and
    /// [`Generation::runtime`] hands it out without the lock.
    fn publish(&self) {
        if let Some(rt) = self.lock().runtime.clone() {
            let _ = self.published.set(rt);
        }
    }

    /// post_config before mod_ssl's (§2.2): store, MDs, vhost matching.
    /// Errors are logged; httpd must not start then.
    pub fn before_ssl(&self, host: &Arc<dyn Host>, input: StartInput) -> Result<(), StartError> {
        if input.dry_run {
            host.log(Level::Trace1, "AH10070: initializing post config dry run");
        } else {
            let v = crate::MOD_MD_VERSION;
            host.log(
                Level::Info,
                &format!("AH10071: mod_md (v{v}), initializing..."),
            );
        }
        // libcurl and OpenSSL are initialised here, in the single-threaded
        // parent, before any child or thread exists.
        crate::base::http::global_init();
        let mut st = self.lock();
        st.dry_run = input.dry_run;
        st.runtime_dir = input.runtime_dir.clone();
        let global = st.config.global.clone();
        let store_dir = global.store_dir_in(&input.server_root);
        let mut notes = Vec::new();
        let planned = host::live(host, || {
            let admin = input.server_admin.as_deref();
            startup::before_ssl(
                &st.config,
                &input.main,
                admin,
                &store_dir,
                input.run_user,
                input.servers,
                input.dry_run,
                &mut notes,
            )
        });
        emit(&**host, &notes);
        let plan = planned.inspect_err(|e| host.log(Level::Error, &e.to_string()))?;
        // mod_ssl primes the certificates it loads into a new OCSP registry
        // during its post_config, which runs next (§8.2).
        self.stapling
            .reset(plan.store.clone(), global.stapling_renew_window);
        st.runtime = Some(Arc::new(Runtime::from_plan(plan)));
        Ok(())
    }

    /// post_config after mod_ssl's (§2.2), real run only: the checks that
    /// need the SSL vhosts, hot-activation slots, then the runtime is
    /// published. Says which background work to start.
    pub fn after_ssl(
        &self,
        host: &Arc<dyn Host>,
        input: &SslInput<'_>,
    ) -> Result<Background, StartError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.dry_run {
            return Ok(Background::default());
        }
        // which md_module runs (Debian's or this one) is otherwise not to
        // be seen: both are `md_module (shared)` in `apache2ctl -M`
        host.log(
            Level::Notice,
            &format!(
                "{} (md_module, a drop-in for mod_md {}) is the mod_md of this server",
                crate::MODULE_NAME,
                crate::MOD_MD_VERSION
            ),
        );
        let global = st.config.global.clone();
        // The runtime is still only ours here: nothing else holds a clone yet.
        let Some(rt) = st.runtime.as_mut().and_then(Arc::get_mut) else {
            return Ok(Background::default());
        };
        let (http_ok, https_ok) = (input.reach)(global.local_80, global.local_443);
        rt.global.listeners = input.listeners.clone();
        let facts = SslFacts {
            ssl: &st.ssl_servers,
            fallback: &st.fallback_servers,
            acme_tls: input.acme_tls,
            http_ok,
            https_ok,
        };
        let mut notes = Vec::new();
        let now = time::now();
        let done = host::live(host, || {
            startup::after_ssl(rt, &global, &facts, now, &mut notes)
        });
        emit(&**host, &notes);
        done.inspect_err(|e| host.log(Level::Error, &e.to_string()))?;
        let slots = if global.hot_activation {
            rt.hot_vhosts(&st.ssl_servers)
        } else {
            Vec::new()
        };
        self.hot.prepare(&rt.store, slots);
        let watched = rt.domains.iter().filter(|d| d.rt.watched).count();
        let total = rt.domains.len();
        if self.stapling.count() > 0 {
            for p in ocsp::prune(&rt.store, &global.stapling_keep_response, now) {
                host.log(Level::Debug, &format!("removed old OCSP response {p}"));
            }
        }
        let rt = st.runtime.clone();
        drop(guard);
        self.publish();
        let mut bg = Background {
            ocsp: self.stapling.count() > 0,
            ..Background::default()
        };
        if watched > 0 {
            let msg = format!("AH10074: {watched} out of {total} mds need watching");
            host.log(Level::Debug, &msg);
            bg.renew = Some(global.initial_delay);
        } else {
            host.log(Level::Debug, "AH10075: no mds to supervise");
        }
        if global.graceful_restart
            || (global.hot_activation && watched > 0)
            || global.cluster_node.is_some()
        {
            let (interval, eager) = (global.check_interval, global.graceful_restart);
            bg.restarter = rt.map(|rt| (rt, interval, eager));
        }
        Ok(bg)
    }

    /// mod_ssl asks for the certificate files of server `id` (§2.4);
    /// `had` files are configured already. `host` logs for that server.
    pub fn cert_files(&self, host: &dyn Host, id: usize, had: usize) -> Served {
        let mut st = self.lock();
        st.ssl_servers.insert(id);
        let Some(rt) = st.runtime.clone() else {
            return Served::Declined;
        };
        let Some(vhost) = rt.vhost(id) else {
            return Served::Declined;
        };
        let vname = &vhost.host.name;
        log_get_certificates(host, vname);
        if vhost.mds.len() > 1 {
            host.log(Level::Error, &format!(
                "AH10238: conflict: {} MDs match Virtualhost {vname} which uses SSL, however there can be at most 1.",
                vhost.mds.len()
            ));
            return Served::Declined;
        }
        let Some(md) = rt.md_of(id).map(|d| &d.md) else {
            return Served::Declined;
        };
        let files = sets::servable_files(&rt.store, md);
        // The C module says it provides them before it finds none.
        host.log(
            Level::Debug,
            &format!(
                "AH10077: {}[state={}]: providing certificates for server {vname}",
                md.name,
                md.found.state.code()
            ),
        );
        if files.is_empty() {
            // A vhost with certificate files of its own (SSLCertificateFile,
            // say a bought certificate) keeps serving them until the MD has
            // its certificate, as with the C module, whose hook declines
            // here (mod_ssl asks for a fallback only when it has none);
            // hot activation takes over once the MD's set is staged.
            if had > 0 {
                host.log(Level::Info, &format!(
                    "{vname}: serves its own certificate files until Managed Domain {} has its certificate",
                    md.name
                ));
                return Served::Declined;
            }
            // With hot activation the fallback comes from here: mod_ssl
            // then does not mark the vhost unavailable for the whole
            // generation, and the MD's first certificate goes live without
            // a restart (the 503 is ours: `report::fallback_unavailable`).
            if !(rt.global.hot_activation && md.cert_files.is_empty()) {
                return Served::Declined;
            }
            let served = self.fallback(host, &rt.store, md, vname, st.runtime_dir.as_deref());
            if let Served::Files(_) = served {
                st.fallback_servers.insert(id);
                host.log(Level::Info, &format!(
                    "{vname}: answers 503 with the fallback certificate of {} until its certificate is obtained, which then goes live without a restart (MDHotActivation)",
                    md.name
                ));
            }
            return served;
        }
        if had > 0 {
            host.log(Level::Debug, &format!(
                "AH10084: host '{vname}' is covered by a Managed Domain, but certificate/key files are already configured for it (most likely via SSLCertificateFile).",
            ));
        }
        Served::Files(files)
    }

    /// mod_ssl has no certificate for SSL vhost `id`: its MD's self-signed
    /// fallback, so that the vhost answers 503 until the real one is there.
    pub fn fallback_files(&self, host: &dyn Host, id: usize) -> Served {
        let (rt, runtime_dir) = {
            let st = self.lock();
            (st.runtime.clone(), st.runtime_dir.clone())
        };
        let Some(rt) = rt else {
            return Served::Declined;
        };
        let Some(vhost) = rt.vhost(id) else {
            return Served::Declined;
        };
        log_get_certificates(host, &vhost.host.name);
        match rt.md_of(id) {
            Some(d) => self.fallback(
                host,
                &rt.store,
                &d.md,
                &vhost.host.name,
                runtime_dir.as_deref(),
            ),
            None => Served::Declined,
        }
    }

    /// `staple_here` (§8.1) for server `id` with `settings`: the MD to file
    /// a certificate under, or None when it is not stapled; `Some(None)`:
    /// stapled as `other`.
    pub fn staple_target(&self, id: usize, settings: &Settings) -> Option<Option<String>> {
        let rt = self.runtime()?;
        let md = rt.md_of(id).map(|d| &d.md);
        if let Some(md) = md.filter(|m| m.stapling) {
            return Some(Some(md.name.clone()));
        }
        if settings.stapling.unwrap_or(false) && settings.staple_others.unwrap_or(true) {
            return Some(md.map(|m| m.name.clone()));
        }
        None
    }

    /// The staged set SSL vhost `id` serves now (hot activation), if any;
    /// `host` hears when a new one goes live.
    pub fn hot_set(&self, host: &dyn Host, id: usize) -> Option<Arc<TlsSet>> {
        let log = |level, msg: &str| host.log(level, msg);
        self.hot.current(id, time::now(), &TlsSet::load, &log)
    }

    /// The `md-status` (JSON, §6.1) or `md-metrics` page: content type and
    /// text; None before start-up is complete.
    pub fn status_page(
        &self,
        host: &dyn Host,
        metrics: bool,
        path_info: Option<&str>,
    ) -> Option<(&'static str, String)> {
        let rt = self.runtime()?;
        let now = time::now();
        if metrics {
            let text = crate::status::server::metrics(&crate::generation::report::views(&rt), now);
            return Some(("text/plain; version=0.0.4; charset=utf-8", text));
        }
        let staplings = self.stapling.views(now);
        let log = |level, msg: &str| host.log(level, msg);
        let staged = |md: &str| self.hot.serving_staged(md, now, &TlsSet::load, &log);
        let body = crate::generation::report::md_status(&rt, &staplings, path_info, &staged, now);
        Some(("application/json", crate::base::util::json_pretty(&body)))
    }

    /// mod_ssl offers a certificate of server `id` (with `settings`) for
    /// stapling: leaf and issuer PEM under its `id`. True when stapled.
    pub fn prime(
        &self,
        host: &dyn Host,
        id: usize,
        settings: &Settings,
        cert_id: &[u8],
        pem: &[u8],
    ) -> bool {
        if !self.stapling.active() {
            return false;
        }
        let Some(md) = self.staple_target(id, settings) else {
            return false;
        };
        let mut notes = Vec::new();
        let stapled = self.stapling.prime(cert_id, pem, md.as_deref(), &mut notes);
        emit(host, &notes);
        stapled
    }

    /// The tls-alpn-01 certificate and key (PEM) for `name` (lowercase),
    /// or None (logged: no such challenge).
    pub fn tls_alpn01(&self, host: &dyn Host, name: &str) -> Option<(String, String)> {
        let rt = self.runtime()?;
        let Some((cert, key)) = crate::generation::report::tls_alpn01(&rt, name) else {
            host.log(
                Level::Info,
                &format!("AH10080: {name}: unknown tls-alpn-01 challenge host"),
            );
            return None;
        };
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        Some((text(cert), text(key)))
    }

    /// A mod_status section (with `MDServerStatus on`): the managed
    /// certificates, or the staplings; `short` is the `?auto` form.
    pub fn status_section(&self, staplings: bool, short: bool) -> Option<String> {
        let rt = self.runtime().filter(|rt| rt.global.server_status)?;
        let now = time::now();
        if staplings {
            let views = self.stapling.views(now);
            return Some(if short {
                crate::status::staplings::staplings_text(&views, now)
            } else {
                crate::status::staplings::staplings_html(&views, now)
            });
        }
        let v = crate::generation::report::views(&rt);
        let (name, url) = (&rt.global.cert_check_name, &rt.global.cert_check_url);
        Some(if short {
            crate::status::server::server_status_text(&v, name, url, now)
        } else {
            crate::status::server::server_status_html(&v, name, url, now)
        })
    }

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
                        let next = self.renew_run(env);
                        let wait = time::print_duration(next, false);
                        host.log(Level::Debug, &format!("AH10107: next run in {wait}"));
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

    /// One renewal run: hands the watched MDs to the scheduler; returns
    /// the next interval.
    fn renew_run(&self, env: &WatchdogEnv) -> Micros {
        let Some(rt) = self.runtime() else {
            return time::from_secs(3600);
        };
        let items = rt.watched_items();
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
                let revoked = if item.md.stapling && stapling.md_revoked(&item.md.name) {
                    Some(crate::lifecycle::context::RevokedBy::Ocsp)
                } else if crl.revoked(&item.md.name, &item.certs) {
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
                (item.md.stapling && stapling.md_revoked(&item.md.name))
                    || crl.revoked(&item.md.name, &item.certs)
            }),
            process: Arc::new(process),
        });
        let next = self.scheduler.run(items, ctx.clone(), time::now());
        if !rt.global.crl_check {
            return next;
        }
        if self.crl_pass(&rt, env, &crl_ua) {
            // a revoked certificate renews now, not at the next run
            self.scheduler.run(rt.watched_items(), ctx, time::now());
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

    /// The MD's self-signed fallback certificates (created when missing), or
    /// Declined when they cannot be made (AH10174).
    fn fallback(
        &self,
        host: &dyn Host,
        store: &crate::store::Store,
        md: &crate::config::Md,
        vname: &str,
        runtime_dir: Option<&std::path::Path>,
    ) -> Served {
        let made = sets::ensure_fallbacks(store, md, &self.fallback_keys).or_else(|e| {
            // A store that cannot be written (full, read-only) must not stop
            // the server (issue 25): the fallback is made in httpd's runtime
            // directory instead, each start anew.
            let Some(dir) = runtime_dir else {
                return Err(e);
            };
            let dir = dir.join("md-fallback").join(&md.name);
            match sets::fallbacks_in(&dir, md, &self.fallback_keys) {
                Ok(pairs) => {
                    let msg = format!(
                        "AH10174: {e}; the fallback certificate is made in {} instead until the \
                         store can be written",
                        dir.display()
                    );
                    if startup::store_problem(&md.name, &msg) {
                        host.log(Level::Error, &msg);
                    }
                    Ok(pairs)
                }
                Err(e2) => Err(format!("{e}; and in {}: {e2}", dir.display())),
            }
        });
        match made {
            Ok(pairs) => {
                for spec in md.effective_specs() {
                    host.log(
                        Level::Debug,
                        &format!(
                            "AH10116: {}: providing {} fallback certificate for server {vname}",
                            md.name,
                            spec.name(),
                        ),
                    );
                }
                Served::Files(pairs)
            }
            Err(e) => {
                host.log(Level::Error, &format!("AH10174: {e}"));
                Served::Declined
            }
        }
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

/// AH10113, as the C module logs it each time mod_ssl asks for a server's
/// certificates (both hooks).
fn log_get_certificates(host: &dyn Host, vhost: &str) {
    let msg = format!("AH10113: get_certificates called for vhost {vhost}.");
    host.log(Level::Debug, &msg);
}

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
                        restart_if_ready(&rt, last, interval, eager, &*host)
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
fn installed_elsewhere(rt: &Runtime, last: &AtomicI64, host: &dyn Host) -> bool {
    let prev = last.load(Ordering::SeqCst);
    if prev != 0 && time::now() - prev < 30 * time::USEC_PER_SEC {
        return false; // a restart was asked for just now
    }
    // not while another node is in the middle of its installation: the
    // restart would start from a half-installed set of MDs and miss the
    // rest (its `installed` events with them)
    if let Some(leases) = crate::store::lease::Leases::of(&rt.store, &rt.global) {
        if leases
            .holder("install")
            .is_some_and(|h| h.expires_micros() + crate::store::lease::SKEW > time::now())
        {
            return false;
        }
    }
    let mds = rt.installed_elsewhere();
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
        crate::generation::startup::fire_installed(&rt.store, md, &rt.global, false, &mut notes);
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
    last: &AtomicI64,
    interval: Micros,
    eager: bool,
    host: &dyn Host,
) {
    let now = time::now();
    if rt.global.cluster_node.is_some() && installed_elsewhere(rt, last, host) {
        return;
    }
    let prev = last.load(Ordering::SeqCst);
    if prev != 0 && now - prev < interval {
        return;
    }
    let Some(md) = rt.restart_wanted(now, eager) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vhost::VHost;
    use crate::config::MdDef;
    use std::sync::atomic::AtomicUsize;

    /// A host that keeps its log lines and counts restart requests.
    #[derive(Default)]
    struct Rec {
        lines: Mutex<Vec<String>>,
        restarts: AtomicUsize,
    }

    impl Host for Rec {
        fn log(&self, _level: Level, msg: &str) {
            self.lines.lock().unwrap().push(msg.to_string());
        }
        fn graceful_restart(&self) {
            self.restarts.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Rec {
        fn has(&self, code: &str) -> bool {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.starts_with(code))
        }
    }

    fn server(id: usize, name: &str) -> Server {
        Server {
            id,
            vhost: VHost {
                name: name.into(),
                port: 443,
                aliases: Vec::new(),
                wild_aliases: Vec::new(),
                addrs: vec![("127.0.0.1".into(), 443)],
                is_base: false,
            },
            contact: None,
            admin: Some("admin@a.org".into()),
        }
    }

    /// A generation with one MD `a.org` served by server 10 (and an
    /// unmanaged server 11), its store under a fresh server root.
    fn generation(tag: &str, dry_run: bool) -> (Generation, Arc<Rec>, Arc<dyn Host>) {
        let root = std::env::temp_dir().join(format!("md-gen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let gen = Generation::default();
        gen.lock().config.mds = vec![MdDef::new(vec!["a.org".into()])];
        let rec = Arc::new(Rec::default());
        let host: Arc<dyn Host> = rec.clone();
        let input = StartInput {
            dry_run,
            main: Settings::default(),
            server_admin: Some("admin@a.org".into()),
            server_root: root.to_string_lossy().into_owned(),
            run_user: None,
            servers: vec![server(10, "a.org"), server(11, "other.org")],
            runtime_dir: None,
        };
        gen.before_ssl(&host, input).expect("start-up plan");
        (gen, rec, host)
    }

    const REACH: &dyn Fn(Option<u16>, Option<u16>) -> (bool, bool) = &|_, _| (true, true);
    const NO_ACME_TLS: &dyn Fn(usize) -> bool = &|_| false;

    #[test]
    fn a_start_hands_mod_ssl_the_fallback_and_asks_for_the_renewal_work() {
        let (gen, rec, host) = generation("start", false);
        assert!(rec.has("AH10071: mod_md (v"));
        // mod_ssl asks for server 10: no certificate yet, so (hot
        // activation) the fallback comes through the ordinary hook
        let Served::Files(files) = gen.cert_files(&*rec, 10, 0) else {
            panic!("no fallback for a.org");
        };
        assert_eq!(files.len(), 1);
        assert!(std::path::Path::new(&files[0].1).exists());
        assert!(rec.has("AH10113: get_certificates called for vhost a.org."));
        assert!(rec.has("AH10116: a.org: providing"));
        // an unmanaged server gets nothing
        assert!(matches!(gen.cert_files(&*rec, 11, 0), Served::Declined));
        let input = SslInput {
            reach: REACH,
            listeners: Vec::new(),
            acme_tls: NO_ACME_TLS,
        };
        let bg = gen.after_ssl(&host, &input).expect("after ssl");
        assert_eq!(bg.renew, Some(0), "a.org needs watching, no initial delay");
        assert!(!bg.ocsp);
        let (_, interval, eager) = bg.restarter.expect("hot activation restarts for due sets");
        assert!(interval > 0 && !eager);
        assert!(rec.has("AH10074: 1 out of 1 mds need watching"));
        // published: the request path sees the vhost as handed the fallback
        let rt = gen.runtime().expect("published");
        assert!(rt.vhost(10).is_some_and(|v| v.fallback));
        assert!(!rt.vhost(11).is_some_and(|v| v.fallback));
        // the fallback hook (MDHotActivation off) hands the same files
        let Served::Files(again) = gen.fallback_files(&*rec, 10) else {
            panic!("no fallback");
        };
        assert_eq!(again, files);
    }

    #[test]
    fn a_dry_run_starts_nothing() {
        let (gen, rec, host) = generation("dry", true);
        assert!(rec.has("AH10070: initializing post config dry run"));
        let input = SslInput {
            reach: REACH,
            listeners: Vec::new(),
            acme_tls: NO_ACME_TLS,
        };
        let bg = gen.after_ssl(&host, &input).expect("after ssl");
        assert!(bg.renew.is_none() && !bg.ocsp && bg.restarter.is_none());
        assert!(!rec.has("AH10074") && !rec.has("AH10075"));
    }

    #[test]
    fn watchdog_callbacks_stop_once_the_child_exits() {
        let (gen, rec, _) = generation("exit", false);
        let env = WatchdogEnv {
            kind: Watchdog::Ocsp,
            host: rec.clone(),
            server_desc: "Apache/2.4.66 (Debian)".into(),
            run_user: "www-data".into(),
            run_at_start: false,
        };
        assert!(gen.watchdog(&env, WatchdogState::Running).is_some());
        assert!(rec.has("AH10198: md ocsp watchdog run, ocsp stapling 0 certificates"));
        // (child_exit also raises the process's stop flag, which would stop
        // the other tests' jobs: only its scheduler part here)
        assert!(gen.scheduler.stop(std::time::Duration::from_secs(1)));
        assert_eq!(gen.watchdog(&env, WatchdogState::Running), None);
    }

    #[test]
    fn the_restarter_stops_with_its_generation() {
        let (gen, rec, _) = generation("restarter", false);
        static LAST: AtomicI64 = AtomicI64::new(0);
        let rt = gen.runtime().expect("planned");
        let started = std::time::Instant::now();
        let r = Restarter::start(rt, &LAST, 1, true, rec.clone()).expect("thread");
        drop(r);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // nothing was staged: no restart was asked for
        assert_eq!(rec.restarts.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn watchdog_names_and_messages_are_the_c_modules() {
        assert_eq!(Watchdog::Renew.name(), c"_md_renew_");
        assert_eq!(
            Watchdog::Ocsp.message(Watchdog::Ocsp.register_code()),
            "AH10203: register md ocsp watchdog(_md_ocsp_)"
        );
        assert_eq!(Watchdog::Renew.first_run(0), 10_000);
        assert_eq!(Watchdog::Renew.first_run(5), 5);
        assert_eq!(Watchdog::Ocsp.first_run(5), 0);
    }
}
