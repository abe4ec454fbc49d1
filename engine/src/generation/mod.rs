//! One configuration generation of the module and everything it owns: the
//! parsed configuration, the start-up runtime, the renewal scheduler, the
//! stapling registry and the hot-activation slots. httpd's glue keeps one
//! per configuration pool and turns each hook into one call here; what
//! only httpd can do (log lines, the restart signal) goes through
//! [`Host`].

mod certs;
mod pages;
pub mod problems;
pub mod report;
mod restarter;
pub mod runtime;
pub mod startup;
mod watchdog;

pub use restarter::*;
pub use watchdog::*;

use crate::base::host::{self, Host};
use crate::base::log::{Level, Note};
use crate::base::time::{self, Micros};
use crate::config::{ModConfig, Settings};
use crate::generation::runtime::{Runtime, Server, SslFacts, StartError};
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
    /// When the next full renewal run is due, and the stamp of the
    /// operator requests the last one saw (the watchdog child only).
    renew_tick: Mutex<(Micros, Option<crate::store::storage::Stamp>)>,
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
            renew_tick: Mutex::default(),
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

    /// A child process starts (child_init): a store kept elsewhere (etcd)
    /// brings this process's copy up to date and keeps it so, before the
    /// child serves its first request.
    pub fn child_started(&self) {
        if let Some(rt) = self.runtime() {
            rt.store.child_started();
        }
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
}

/// AH10113, as the C module logs it each time mod_ssl asks for a server's
/// certificates (both hooks).
fn log_get_certificates(host: &dyn Host, vhost: &str) {
    let msg = format!("AH10113: get_certificates called for vhost {vhost}.");
    host.log(Level::Debug, &msg);
}

#[cfg(test)]
mod tests {
    use super::*;
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
        crate::testutil::server(id, name, Some("admin@a.org"))
    }

    /// A generation with one MD `a.org` served by server 10 (and an
    /// unmanaged server 11), its store under a fresh server root.
    fn generation(
        tag: &str,
        dry_run: bool,
    ) -> (
        Generation,
        Arc<Rec>,
        Arc<dyn Host>,
        crate::testutil::TempDir,
    ) {
        let root = crate::testutil::TempDir::new(&format!("gen-{tag}"));
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
        (gen, rec, host, root)
    }

    const REACH: &dyn Fn(Option<u16>, Option<u16>) -> (bool, bool) = &|_, _| (true, true);
    const NO_ACME_TLS: &dyn Fn(usize) -> bool = &|_| false;

    #[test]
    fn a_start_hands_mod_ssl_the_fallback_and_asks_for_the_renewal_work() {
        let (gen, rec, host, _root) = generation("start", false);
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
        let (gen, rec, host, _root) = generation("dry", true);
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
        let (gen, rec, _, _root) = generation("exit", false);
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
        let (gen, rec, _, _root) = generation("restarter", false);
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
