//! Start-up planning (spec §2.2). Before mod_ssl: the store is opened, the
//! MDs are completed from the server settings and checked, renamed MDs keep
//! their store entries, staged sets are installed (as root, firing
//! `installed`), and MDs are matched to the virtual hosts, which may lend
//! them a contact. After mod_ssl (real run): what needs the SSL vhosts,
//! then each MD's state, renewal time, challenge types and whether it is
//! watched. The glue gathers httpd's side (settings, vhosts, listeners,
//! protocols, the run user) and keeps the `Runtime` for the generation.
//! Log lines are notes (live through the caller's sink).

use crate::base::log::{Level, Note};
use crate::base::time::{self, Micros};
use crate::config::vhost::{self, VHost};
use crate::config::{
    self, Fatal, Global, Md, ModConfig, RenewMode, RequireHttps, Settings, State, NO_SERVER_ADMIN,
};
use crate::lifecycle::events;
use crate::lifecycle::events::CommandNotify;
use crate::lifecycle::jobfile::Job;
use crate::lifecycle::scheduler;
use crate::lifecycle::state::CertInfo;
use crate::lifecycle::{install, state};
use crate::store::{Group, Store};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One server (main or virtual host) as start-up sees it.
#[derive(Debug, Clone)]
pub struct Server {
    /// How the glue finds it again (its `server_rec` address).
    pub id: usize,
    pub vhost: VHost,
    /// Its `MDContactEmail`.
    pub contact: Option<String>,
    /// Its `ServerAdmin`.
    pub admin: Option<String>,
}

/// A server as the rest of the generation knows it: which MDs it has.
#[derive(Debug, Clone)]
pub struct Vhost {
    /// How the glue finds it again (its `server_rec` address).
    pub id: usize,
    pub host: VHost,
    /// Its MDs, as indices into the MDs of the plan or runtime (more than
    /// one only for a vhost without SSL).
    pub mds: Vec<usize>,
    /// mod_ssl got the MD's fallback certificate for it through the
    /// ordinary certificate hook (hot activation): a connection handed the
    /// fallback answers 503, one handed the MD's certificate is served.
    pub fallback: bool,
}

/// What start-up decided, before mod_ssl runs.
pub struct Plan {
    /// The module-wide settings of the generation.
    pub global: Global,
    pub store: Store,
    pub mds: Vec<Md>,
    pub vhosts: Vec<Vhost>,
}

/// Why the server must not start.
#[derive(Debug)]
pub enum StartError {
    /// The store cannot be used (AH10046), or an SSL vhost has several MDs
    /// (AH10042), or md.json cannot be written (AH10172): the message says.
    Failed(String),
    /// A configuration error only visible with all MDs (AH10038, AH10170, ...).
    Fatal(Fatal),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Failed(e) => f.write_str(e),
            StartError::Fatal(e) => write!(f, "{e}"),
        }
    }
}

/// Plans the start: see the module comment. `user` is the uid the store's
/// child-written groups are handed to (only when running as root).
/// Problems a start met in the store, per MD (issue 25): each said once
/// per start, though httpd's dry run and real run (in the same parent
/// process) both meet it, and kept for md-status (`store.problems`).
struct StartProblems {
    /// The last start-up phase was a dry run: the real run that follows
    /// belongs to the same start.
    after_dry_run: bool,
    by_md: Option<HashMap<String, Vec<String>>>,
}

static PROBLEMS: std::sync::Mutex<StartProblems> = std::sync::Mutex::new(StartProblems {
    after_dry_run: false,
    by_md: None,
});

fn problems() -> std::sync::MutexGuard<'static, StartProblems> {
    PROBLEMS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A start-up phase begins: a dry run, or a real run that no dry run
/// came before (a graceful restart), begins a new start.
fn problems_begin(dry_run: bool) {
    let mut p = problems();
    if dry_run || !p.after_dry_run {
        p.by_md = None;
    }
    p.after_dry_run = dry_run;
}

/// Records a store problem of `md`; true when this start had not met it
/// yet (the caller says it).
pub fn store_problem(md: &str, msg: &str) -> bool {
    let mut p = problems();
    let v = p
        .by_md
        .get_or_insert_with(HashMap::new)
        .entry(md.to_string())
        .or_default();
    if v.iter().any(|m| m == msg) {
        return false;
    }
    v.push(msg.to_string());
    true
}

/// The store problems this start met for `md`.
pub fn store_problems(md: &str) -> Vec<String> {
    problems()
        .by_md
        .as_ref()
        .and_then(|m| m.get(md).cloned())
        .unwrap_or_default()
}

fn problem_note(md: &str, level: Level, msg: String, notes: &mut Vec<Note>) {
    if store_problem(md, &msg) {
        notes.push(Note::new(level, msg));
    }
}

#[allow(clippy::too_many_arguments)]
pub fn before_ssl(
    conf: &ModConfig,
    main: &Settings,
    server_admin: Option<&str>,
    store_dir: &str,
    user: Option<u32>,
    servers: Vec<Server>,
    dry_run: bool,
    notes: &mut Vec<Note>,
) -> Result<Plan, StartError> {
    let global = &conf.global;
    let store = Store::open(Path::new(store_dir), user, notes)
        .map_err(|e| StartError::Failed(format!("AH10046: setup store for {store_dir}: {e}")))?;
    let mut mds: Vec<Md> = conf
        .mds
        .iter()
        .map(|def| Md::from_def(def, main, server_admin))
        .collect();
    config::check_mds(&mds, global.match_mode).map_err(StartError::Fatal)?;
    let removed = store.remove_stale_tmp();
    if removed > 0 {
        notes.push(Note::new(
            Level::Info,
            format!(
                "removed {removed} temporary file(s) that interrupted writers left in the store"
            ),
        ));
    }
    if let Some(leases) = crate::store::lease::Leases::of(&store, global) {
        if let Err(e) = leases.prepare(user) {
            notes.push(Note::new(
                Level::Error,
                format!(
                    "cannot set up the cluster lease directory {}/{}: {e}; renewals of this node \
                     will fail until it can be written by httpd's User",
                    store_dir,
                    crate::store::lease::DIR
                ),
            ));
        }
    }
    problems_begin(dry_run);
    install(&store, &mds, conf, notes);
    // Nothing mod_ssl cannot load reaches it (issue 25).
    for md in &mut mds {
        let staged = |md: &Md| {
            global.hot_activation
                && install::hot_set(&store, md, crate::base::time::now()).is_some()
        };
        for p in crate::store::sets::check(&store, md, &staged) {
            problem_note(&md.name, Level::Error, p, notes);
        }
    }
    for md in &mds {
        notes.push(Note::new(
            Level::Debug,
            format!(
                "AH10039: Completed MD[{}, CA={}, Proto={}, Agreement={}, renew-mode={} renew_window={}, warn_window={}",
                md.name,
                if md.ca_urls.is_empty() { "(null)".to_string() } else { md.ca_urls.join(" ") },
                md.ca_proto,
                md.ca_agreement.as_deref().unwrap_or("(null)"),
                md.renew_mode as i32,
                md.renew_window.format(),
                md.warn_window.format()
            ),
        ));
    }
    let vhosts: Vec<VHost> = servers.iter().map(|s| s.vhost.clone()).collect();
    let assigned = vhost::assign(&mds, &vhosts, global.match_mode, global.base_server, notes);
    lend_contacts(&mut mds, &servers, &assigned, notes);
    let vhosts = servers
        .into_iter()
        .zip(assigned)
        .map(|(s, mds)| Vhost {
            id: s.id,
            host: s.vhost,
            mds,
            fallback: false,
        })
        .collect();
    for md in &mds {
        notes.push(Note::new(
            Level::Trace1,
            format!(
                "md[{}]: effective configuration {}",
                md.name,
                md.to_json_redacted()
            ),
        ));
    }
    Ok(Plan {
        global: global.clone(),
        store,
        mds,
        vhosts,
    })
}

/// What post_config computed about one MD (frozen for the generation: the
/// children inherit it, as the C module's registry).
pub struct MdRuntime {
    pub certs: Vec<Option<CertInfo>>,
    pub renew_at: Micros,
    /// Usable challenge types, or why there are none.
    pub challenges: Result<Vec<String>, String>,
    /// Whether the renewal job watches this MD.
    pub watched: bool,
    /// md-status `cert` object of the live certificates (frozen).
    pub cert_json: Value,
    /// When the last successful renewal finished (from the live job.json,
    /// which only root can read).
    pub last_success: Micros,
    /// What `domains/<md>/` held when the generation started
    /// ([`install::live_stamp`]): another node of a cluster installing a
    /// renewed set changes it.
    pub live_stamp: String,
}

impl Default for MdRuntime {
    fn default() -> Self {
        MdRuntime {
            certs: Vec::new(),
            renew_at: 0,
            challenges: Ok(Vec::new()),
            watched: false,
            cert_json: Value::Null,
            last_success: 0,
            live_stamp: String::new(),
        }
    }
}

/// An MD of the generation: its configuration and what start-up found.
pub struct ManagedDomain {
    pub md: Md,
    pub rt: MdRuntime,
}

/// The result of start-up, used by everything that runs after it.
pub struct Runtime {
    /// The module-wide settings of the generation (frozen).
    pub global: Global,
    pub store: Store,
    pub domains: Vec<ManagedDomain>,
    pub vhosts: Vec<Vhost>,
    pub http_ok: bool,
    pub https_ok: bool,
    /// Server id → index into `vhosts` (request-time lookups).
    by_id: HashMap<usize, usize>,
    /// The staging jobs as status pages read them.
    pub jobs: crate::lifecycle::jobfile::JobCache,
}

impl Runtime {
    /// The runtime of a plan, before mod_ssl has said which vhosts use SSL.
    pub fn from_plan(plan: Plan) -> Runtime {
        Runtime {
            global: plan.global,
            store: plan.store,
            domains: plan
                .mds
                .into_iter()
                .map(|md| ManagedDomain {
                    md,
                    rt: MdRuntime::default(),
                })
                .collect(),
            http_ok: false,
            https_ok: false,
            jobs: Default::default(),
            by_id: plan
                .vhosts
                .iter()
                .enumerate()
                .map(|(i, v)| (v.id, i))
                .collect(),
            vhosts: plan.vhosts,
        }
    }

    /// Server `id`, if it was known at start-up.
    pub fn vhost(&self, id: usize) -> Option<&Vhost> {
        self.by_id.get(&id).map(|&i| &self.vhosts[i])
    }

    /// The MDs of a vhost.
    pub fn mds_of<'a>(&'a self, v: &'a Vhost) -> impl Iterator<Item = &'a ManagedDomain> + 'a {
        v.mds.iter().map(|&i| &self.domains[i])
    }

    /// The one MD of server `id` (none when it has none or several).
    pub fn md_of(&self, id: usize) -> Option<&ManagedDomain> {
        match self.vhost(id)?.mds.as_slice() {
            [mi] => Some(&self.domains[*mi]),
            _ => None,
        }
    }

    /// Whether some vhost has MD `mi`.
    fn used(&self, mi: usize) -> bool {
        self.vhosts.iter().any(|v| v.mds.contains(&mi))
    }

    pub fn mds(&self) -> impl Iterator<Item = &Md> {
        self.domains.iter().map(|d| &d.md)
    }

    /// The MDs the renewal job watches, as the scheduler takes them.
    pub fn watched_items(&self) -> Vec<scheduler::Item> {
        self.domains
            .iter()
            .filter(|d| d.rt.watched)
            .map(|ManagedDomain { md, rt }| scheduler::Item {
                md: md.clone(),
                renew_at: rt.renew_at,
                warn_at: state::warn_at(md, &rt.certs),
                complete: md.found.state == State::Complete,
                challenges: rt.challenges.clone(),
                certs: rt
                    .certs
                    .iter()
                    .flatten()
                    .filter_map(|c| Some((c.key_name.clone(), c.leaf()?)))
                    .collect(),
                requested: crate::store::request::pending(&self.store, &md.name),
            })
            .collect()
    }

    /// The hot-activation slots of the generation: each SSL vhost (of
    /// `ssl`) with exactly one MD.
    pub fn hot_vhosts(&self, ssl: &HashSet<usize>) -> Vec<(usize, Md)> {
        self.vhosts
            .iter()
            .filter_map(|v| match v.mds.as_slice() {
                [mi] if ssl.contains(&v.id) => Some((v.id, self.domains[*mi].md.clone())),
                _ => None,
            })
            .collect()
    }

    /// An MD whose staged set a graceful restart should install now: any
    /// ready set with `MDGracefulRestart` (`eager`); else one that hot
    /// activation serves and that is due for renewal itself
    /// ([`install::staged_due_at`]), which the renewal job can only renew once
    /// it is installed.
    /// MDs whose live set in `domains/` changed since this generation
    /// started: another node of a cluster installed a renewed set (only
    /// root can read `domains/`: the parent asks).
    pub fn installed_elsewhere(&self) -> Vec<&Md> {
        self.domains
            .iter()
            .filter(|d| {
                d.md.cert_files.is_empty() && !crate::lifecycle::tailscale::is_tailscale(&d.md)
            })
            .filter(|d| {
                let now = install::live_stamp(&self.store, &d.md);
                !now.is_empty() && now != d.rt.live_stamp
            })
            .map(|d| &d.md)
            .collect()
    }

    pub fn restart_wanted(&self, now: Micros, eager: bool) -> Option<&Md> {
        let staged = self.store.names(Group::Staging);
        self.mds().filter(|m| staged.contains(&m.name)).find(|m| {
            if eager {
                install::staged_ready(&self.store, m, now)
            } else {
                install::staged_due_at(&self.store, m, now).is_some_and(|t| t <= now)
            }
        })
    }
}

/// What httpd knows after mod_ssl's post_config.
pub struct SslFacts<'a> {
    /// Servers mod_ssl asked for certificates (SSL vhosts).
    pub ssl: &'a HashSet<usize>,
    /// SSL vhosts that got their MD's fallback through the ordinary
    /// certificate hook ([`Vhost::fallback`]).
    pub fallback: &'a HashSet<usize>,
    /// Whether a server allows the `acme-tls/1` protocol.
    pub acme_tls: &'a dyn Fn(usize) -> bool,
    /// Whether the CA can reach us on http: and https: (listeners and
    /// `MDPortMap`).
    pub http_ok: bool,
    pub https_ok: bool,
}

/// The second half of start-up (§2.2 "after SSL", real run): checks that
/// need to know the SSL vhosts, names of SSL vhosts joining their MD, each
/// MD's acme-tls/1 domains, state, renewal time, challenge types and
/// whether it is watched; md.json synced; stale challenge data purged; a
/// job that failed before the restart starts over.
pub fn after_ssl(
    rt: &mut Runtime,
    global: &Global,
    facts: &SslFacts<'_>,
    now: Micros,
    notes: &mut Vec<Note>,
) -> Result<(), StartError> {
    let ssl = |v: &Vhost| facts.ssl.contains(&v.id);
    for v in &rt.vhosts {
        if v.mds.len() > 1 && ssl(v) {
            return Err(StartError::Failed(format!(
                "AH10042: conflict: {} MDs match to SSL VirtualHost {}, there can at most be one.",
                v.mds.len(),
                v.host.name
            )));
        }
    }
    for md in rt.mds() {
        config::check_protocol(md).map_err(StartError::Fatal)?;
    }
    // Names of SSL vhosts join their MD (member mode auto), else a warning (§2.3).
    for v in &rt.vhosts {
        let ([mi], true) = (v.mds.as_slice(), ssl(v)) else {
            continue;
        };
        let vh = &v.host;
        let md = &mut rt.domains[*mi].md;
        for name in vhost::uncovered_names(md, vh) {
            if md.transitive {
                md.domains.push(name.to_string());
            } else {
                notes.push(Note::new(
                    Level::Warn,
                    format!(
                        "AH10040: Virtual Host {}:{} matches Managed Domain '{}', but the name/alias {name} itself is not managed. A requested MD certificate will not match ServerName.",
                        vh.name, vh.port, md.name
                    ),
                ));
            }
        }
    }
    rt.http_ok = facts.http_ok;
    rt.https_ok = facts.https_ok;
    for v in &mut rt.vhosts {
        v.fallback = facts.fallback.contains(&v.id);
    }
    notes.push(Note::new(
        Level::Debug,
        format!(
            "AH10037: server seems{} reachable via http: and{} reachable via https:",
            if facts.http_ok { "" } else { " not" },
            if facts.https_ok { "" } else { " not" }
        ),
    ));
    for mi in 0..rt.domains.len() {
        let tls = acme_tls_domains(rt, mi, facts, notes);
        let used = rt.used(mi);
        let d = &mut rt.domains[mi];
        d.md.found.acme_tls_1_domains = tls;
        d.rt = md_runtime(&rt.store, &mut d.md, used, global, facts, now, notes)?;
        d.md.found.store_problems = store_problems(&d.md.name);
        let md = &d.md;
        notes.push(Note::new(
            Level::Trace1,
            format!(
                "md[{}]: effective configuration {}",
                md.name,
                md.to_json_redacted()
            ),
        ));
    }
    // Challenge data of MDs that are no longer configured is stale. The
    // C module removes every directory not named after an MD, the data of
    // an MD's other names too: a validation in flight at a restart then
    // fails at the CA (issue 25). Ours keeps the data of every configured
    // name; a run tears it down with its order. With a cluster, only old
    // ones: another node may be answering a CA for a domain of its MD.
    let kept: Vec<String> = rt
        .mds()
        .flat_map(|m| {
            std::iter::once(m.name.clone()).chain(m.domains.iter().flat_map(|d| {
                [
                    d.clone(),
                    crate::acme::challenge::challenge_dir_name("tls-alpn-01", d),
                ]
            }))
        })
        .collect();
    let names: Vec<&str> = kept.iter().map(String::as_str).collect();
    let leases = crate::store::lease::Leases::of(&rt.store, global);
    let age = leases
        .as_ref()
        .map(|_| std::time::Duration::from_secs(3600));
    notes.extend(
        rt.store
            .purge_group_except_older(Group::Challenges, &names, age),
    );
    for (mi, md) in rt.mds().enumerate() {
        let used = rt.used(mi);
        let ssl_used = rt.vhosts.iter().any(|v| v.mds.contains(&mi) && ssl(v));
        if md.require_https != RequireHttps::Off && !ssl_used {
            notes.push(Note::new(
                Level::Warn,
                format!(
                    "AH10105: MD {} does not match any VirtualHost with 'SSLEngine on', but is configured to require https. This cannot work.",
                    md.name
                ),
            ));
        }
        if !used && md.renew_mode != RenewMode::Always {
            notes.push(Note::new(
                Level::Warn,
                format!("AH10045: No VirtualHost matches Managed Domain {}", md.name),
            ));
        }
    }
    // A job that failed before the restart starts over (§3.1).
    for ManagedDomain { md, rt: mrt } in &rt.domains {
        if !mrt.watched {
            continue;
        }
        if let Ok(j) = Job::load(&rt.store, Group::Staging, &md.name) {
            // in a cluster, not while another node works on it
            let _lease = match &leases {
                Some(l) if j.errors > 0 => {
                    match l.try_take(&crate::lifecycle::renew::lease_name(&md.name), now) {
                        Ok(crate::store::lease::Take::Taken(lease)) => Some(lease),
                        _ => continue,
                    }
                }
                _ => None,
            };
            if j.errors > 0 {
                notes.push(Note::new(
                    Level::Notice,
                    format!("AH10064: md({}): previous drive job showed {} errors, purging STAGING area to reset.", md.name, j.errors),
                ));
                install::purge_staging(&rt.store, md);
            }
        }
    }
    // `crl/` only when a served certificate names a CRL (a store the C
    // module also uses looks as it would otherwise); the renewal job's
    // user writes it
    let crl_targets = rt
        .domains
        .iter()
        .any(|d| crate::serving::crl::any_names_crl(&d.rt.certs));
    if global.crl_check && crl_targets {
        if let Err(e) = crate::serving::crl::ensure_dir(&rt.store, rt.store.user()) {
            notes.push(Note::new(
                Level::Warn,
                format!(
                    "cannot set up the CRL directory {}/{}: {e}; revocations listed in CRLs \
                     are not seen until httpd's User can write it",
                    rt.store.root().display(),
                    crate::serving::crl::DIR
                ),
            ));
        }
    }
    Ok(())
}

/// The domains of MD `mi` that an SSL vhost of it serves with the
/// `acme-tls/1` protocol allowed (§4.6); the others are said at debug, as
/// the C module does.
fn acme_tls_domains(
    rt: &Runtime,
    mi: usize,
    facts: &SslFacts<'_>,
    notes: &mut Vec<Note>,
) -> Vec<String> {
    let md = &rt.domains[mi].md;
    let mut out = Vec::new();
    for d in &md.domains {
        let https: Vec<&Vhost> = rt
            .vhosts
            .iter()
            .filter(|v| {
                v.mds.contains(&mi)
                    && facts.ssl.contains(&v.id)
                    && (v.host.matches_host(d) || vhost::domain_matches(d, &v.host.name))
            })
            .collect();
        if https.iter().any(|v| (facts.acme_tls)(v.id)) {
            out.push(d.clone());
            continue;
        }
        let name = &md.name;
        notes.push(Note::new(
            Level::Debug,
            if https.is_empty() {
                format!("AH10168: {name}: no https server_rec found for {d}")
            } else {
                format!("AH10169: {name}: https server_rec for {d} does not have protocol acme-tls/1 enabled")
            },
        ));
    }
    out
}

/// One MD after mod_ssl: md.json merged and synced, state, renewal time,
/// challenge types, watched.
fn md_runtime(
    store: &Store,
    md: &mut Md,
    used: bool,
    global: &Global,
    facts: &SslFacts<'_>,
    now: Micros,
    notes: &mut Vec<Note>,
) -> Result<MdRuntime, StartError> {
    // A damaged md.json is set aside (warn) and rewritten from the
    // configuration below.
    let stored = store
        .load_json_healing(Group::Domains, &md.name, "md.json", notes)
        .unwrap_or_else(|e| {
            notes.push(Note::new(Level::Warn, e.msg));
            None
        });
    state::merge_stored(md, stored.as_ref());
    // "sync finish" fills in the default CA, as the C module does: md.json
    // and md-status name the CA that will be used.
    if md.ca_urls.is_empty() {
        md.ca_urls = vec![config::LETSENCRYPT_URL.to_string()];
    }
    let (state, descr, certs) = state::compute_state(store, md);
    md.found.state = state;
    md.found.descr = descr;
    if !md.cert_files.is_empty() && md.renew_mode == RenewMode::Auto {
        md.renew_mode = RenewMode::Manual;
    }
    // A store that cannot be written does not stop the server (issue 25):
    // md.json is written at the next start that can.
    if let Err(e) = install::sync_md_json(store, md) {
        let msg = format!(
            "AH10172: md[{}]: error syncing to store: {e}; the MD is served as before and its \
             md.json is written at the next (graceful) restart",
            md.name
        );
        problem_note(&md.name, Level::Error, msg, notes);
    }
    let challenges = if crate::lifecycle::tailscale::is_tailscale(md) {
        Ok(Vec::new()) // no ACME challenges: tailscaled has the certificate
    } else {
        state::challenge_types(
            md,
            facts.http_ok,
            facts.https_ok,
            global.dns01_cmd.is_some(),
        )
    };
    if let Some(e) = state::profile_limit_error(md) {
        notes.push(Note::new(Level::Error, e));
    }
    if md.must_staple
        && md.cert_files.is_empty()
        && certs.iter().flatten().any(|c| c.ocsp_url.is_none())
    {
        notes.push(Note::new(
            Level::Warn,
            format!(
                "md[{}]: MDMustStaple is on, but the MD's certificate names no OCSP responder (its CA runs none): clients that honour must-staple reject it without a stapled response; consider MDMustStaple off",
                md.name
            ),
        ));
    }
    let watched = state != State::Error && (used || md.renew_mode == RenewMode::Always);
    if watched && md.renew_mode != RenewMode::Manual {
        if let Err(e) = &challenges {
            notes.push(Note::new(
                Level::Error,
                format!("AH10173: md[{}]: {e}", md.name),
            ));
        }
    }
    Ok(MdRuntime {
        renew_at: state::renew_at(md, state, &certs, now),
        cert_json: crate::status::mdstatus::certs_json(&certs),
        last_success: Job::load(store, Group::Domains, &md.name)
            .map(|j| crate::status::server::last_finished(&j))
            .unwrap_or(0),
        live_stamp: install::live_stamp(store, md),
        certs,
        challenges,
        watched,
    })
}

/// The `installed` event of `md`: it runs as root, in the parent (§7.1).
/// `shared`: the installation happened here, and is recorded in the live
/// `job.json` (whose log rate-limits the event); a node of a cluster that
/// sees another node's installation fires its own, unrecorded.
pub fn fire_installed(
    store: &Store,
    md: &Md,
    global: &Global,
    shared: bool,
    notes: &mut Vec<Note>,
) {
    let mut j = if shared {
        Job::load(store, Group::Domains, &md.name).unwrap_or_else(|_| Job::new(&md.name))
    } else {
        Job::new(&md.name)
    };
    j.name = md.name.clone();
    let mut notify = CommandNotify {
        message_cmd: global.message_cmd.clone(),
        notify_cmd: None,
        notes: Vec::new(),
    };
    let _ = events::fire(
        &mut j,
        &mut notify,
        &events::Event::Installed,
        time::now(),
        notes,
    );
    if shared {
        let _ = j.save(store, Group::Domains);
    }
    notes.append(&mut notify.notes);
}

/// Renames and installations of staged sets, under the store lock when
/// `MDStoreLocks` asks for it (§5.6); in the dry run too (§3.6).
fn install(store: &Store, mds: &[Md], conf: &ModConfig, notes: &mut Vec<Note>) {
    let lock = match conf.global.store_locks {
        None => Ok(None),
        Some(wait) => store
            .lock(std::time::Duration::from_micros(
                u64::try_from(wait).unwrap_or(0),
            ))
            .map(Some),
    };
    if let Err(e) = &lock {
        notes.push(Note::new(
            Level::Error,
            format!("AH10398: unable to obtain global registry lock, renewed certificates may remain inactive on this httpd instance! ({e})"),
        ));
        return;
    }
    // Nodes of a cluster install one at a time (a lease, not a lock: safe
    // on NFS); a node that cannot take it leaves the installation to the
    // holder and serves staged sets hot meanwhile.
    let _cluster = match crate::store::lease::Leases::of(store, &conf.global) {
        None => None,
        Some(leases) => {
            let wait = conf
                .global
                .store_locks
                .unwrap_or(crate::config::DEFAULT_STORE_LOCK_WAIT);
            let wait = std::time::Duration::from_micros(u64::try_from(wait).unwrap_or(0));
            match leases.take_waiting("install", wait) {
                Ok(Some(l)) => Some(l),
                Ok(None) | Err(_) => {
                    let who = leases
                        .holder("install")
                        .map(|h| format!("node {} (pid {})", h.node, h.pid))
                        .unwrap_or_else(|| "another node".into());
                    notes.push(Note::new(
                        Level::Notice,
                        format!(
                            "{who} is installing renewed certificates in the shared store; this node \
                             leaves the installation to it (staged certificates are served hot)"
                        ),
                    ));
                    return;
                }
            }
        }
    };
    // A renamed MD keeps its store entry (§2.2 step 8).
    install::sync_renames(store, mds, notes);
    for md in mds {
        match install::install_staged(store, md, notes) {
            Ok(true) => {
                notes.push(Note::new(
                    Level::Info,
                    format!("AH10068: {}: staged set activated", md.name),
                ));
                fire_installed(store, md, &conf.global, true, notes);
            }
            Ok(false) => {}
            Err(install::InstallError::Bad(e)) => {
                notes.push(Note::new(
                    Level::Error,
                    format!(
                        "AH10069: {}: error loading staged set, purging it: {e}",
                        md.name
                    ),
                ));
                install::purge_staging(store, md);
            }
            Err(install::InstallError::Store(e)) => {
                let msg = format!(
                    "md[{}]: cannot install the staged certificates: {e}; they stay in staging/ \
                     ({}) and their installation is tried again at the next (graceful) restart",
                    md.name,
                    if conf.global.hot_activation {
                        "and are served from there meanwhile"
                    } else {
                        "not served before"
                    }
                );
                problem_note(&md.name, Level::Error, msg, notes);
            }
        }
    }
}

/// An MD without contacts takes the first matching server's
/// `MDContactEmail` or `ServerAdmin` (§1.3).
fn lend_contacts(
    mds: &mut [Md],
    servers: &[Server],
    assigned: &[Vec<usize>],
    notes: &mut Vec<Note>,
) {
    for (mi, md) in mds.iter_mut().enumerate() {
        if !md.contacts.is_empty() {
            continue;
        }
        let found = servers
            .iter()
            .zip(assigned)
            .filter(|(_, a)| a.contains(&mi))
            .find_map(|(s, _)| {
                s.contact.clone().or_else(|| {
                    s.admin
                        .clone()
                        .filter(|a| !a.is_empty() && a != NO_SERVER_ADMIN)
                })
            });
        if let Some(c) = found {
            let c = config::schemify_contact(&c);
            notes.push(Note::new(
                Level::Debug,
                format!("AH10044: {}: added contact {c}", md.name),
            ));
            md.contacts.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MdDef;

    fn server(id: usize, name: &str, admin: Option<&str>) -> Server {
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
            admin: admin.map(str::to_string),
        }
    }

    fn conf(mds: &[&[&str]]) -> ModConfig {
        ModConfig {
            mds: mds
                .iter()
                .map(|d| MdDef::new(d.iter().map(|s| s.to_string()).collect()))
                .collect(),
            ..ModConfig::default()
        }
    }

    /// Start-up with default settings and no run user.
    fn plan(c: &ModConfig, d: &str, servers: Vec<Server>) -> Result<Plan, StartError> {
        before_ssl(
            c,
            &Settings::default(),
            None,
            d,
            None,
            servers,
            false,
            &mut Vec::new(),
        )
    }

    fn dir(tag: &str) -> String {
        let d = std::env::temp_dir().join(format!("md-startup-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.to_string_lossy().into_owned()
    }

    #[test]
    fn mds_are_matched_and_borrow_a_contact() {
        let d = dir("match");
        let c = conf(&[&["a.org", "www.a.org"], &["b.org"]]);
        let servers = vec![
            server(10, "www.a.org", Some("[no address given]")),
            server(11, "a.org", Some("admin@a.org")),
            server(12, "c.org", Some("admin@c.org")),
        ];
        let mut notes = Vec::new();
        let plan = before_ssl(
            &c,
            &Settings::default(),
            None,
            &d,
            None,
            servers,
            false,
            &mut notes,
        )
        .unwrap();
        assert_eq!(
            plan.vhosts
                .iter()
                .map(|v| v.mds.clone())
                .collect::<Vec<_>>(),
            vec![vec![0], vec![0], vec![]]
        );
        assert_eq!(plan.mds[0].contacts, vec!["mailto:admin@a.org".to_string()]);
        assert!(plan.mds[1].contacts.is_empty());
        assert!(notes
            .iter()
            .any(|n| n.msg.starts_with("AH10044: a.org: added contact")));
        assert!(notes
            .iter()
            .any(|n| n.msg.starts_with("AH10039: Completed MD[b.org")));
        // the store exists with its groups
        assert!(Path::new(&d).join("md_store.json").exists());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn overlapping_mds_stop_the_start() {
        let d = dir("overlap");
        let c = conf(&[&["a.org", "x.org"], &["b.org", "x.org"]]);
        match plan(&c, &d, Vec::new()) {
            Err(StartError::Fatal(f)) => assert_eq!(f.code, "AH10038"),
            other => panic!("{:?}", other.err()),
        }
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn an_unusable_store_stops_the_start() {
        let d = dir("nostore");
        std::fs::write(&d, b"a file, not a directory").unwrap();
        let c = conf(&[&["a.org"]]);
        match plan(&c, &d, Vec::new()) {
            Err(StartError::Failed(e)) => assert!(e.starts_with("AH10046: setup store for"), "{e}"),
            other => panic!("{:?}", other.err()),
        }
        let _ = std::fs::remove_file(d);
    }

    #[test]
    fn a_renamed_md_keeps_its_store_entry() {
        let d = dir("rename");
        let c = conf(&[&["r.org", "www.r.org"]]);
        plan(&c, &d, Vec::new()).unwrap();
        let plan0 = plan(&c, &d, Vec::new()).unwrap();
        install::sync_md_json(&plan0.store, &plan0.mds[0]).unwrap();
        // same domains, another name: the entry moves along
        let c2 = conf(&[&["www.r.org", "r.org"]]);
        let plan = plan(&c2, &d, Vec::new()).unwrap();
        assert!(plan
            .store
            .path(Group::Domains, "www.r.org", "md.json")
            .exists());
        assert!(!plan.store.path(Group::Domains, "r.org", "md.json").exists());
        let _ = std::fs::remove_dir_all(d);
    }

    fn runtime(tag: &str, mds: &[&[&str]], servers: Vec<Server>) -> (String, Runtime) {
        let d = dir(tag);
        let c = conf(mds);
        let plan = plan(&c, &d, servers).unwrap();
        (d, Runtime::from_plan(plan))
    }

    #[test]
    fn after_ssl_completes_watched_mds() {
        let mut www = server(21, "www.e.org", None);
        www.vhost.aliases = vec!["e.org".into()];
        let (d, mut rt) = runtime(
            "after",
            &[&["e.org"], &["lonely.org"]],
            vec![www, server(22, "f.org", None)],
        );
        let ssl: HashSet<usize> = [21].into_iter().collect();
        let facts = SslFacts {
            ssl: &ssl,
            fallback: &HashSet::new(),
            acme_tls: &|_| false,
            http_ok: true,
            https_ok: true,
        };
        let mut notes = Vec::new();
        after_ssl(&mut rt, &Global::default(), &facts, time::now(), &mut notes).unwrap();
        // the SSL vhost's ServerName joins its MD (member mode auto)
        assert_eq!(
            rt.domains[0].md.domains,
            vec!["e.org".to_string(), "www.e.org".to_string()]
        );
        // no acme-tls/1 anywhere: said at debug per domain
        assert!(rt.domains[0].md.found.acme_tls_1_domains.is_empty());
        assert!(notes.iter().any(|n| n
            .msg
            .starts_with("AH10169: e.org: https server_rec for e.org")));
        // used → watched, with the default CA, http-01 usable; unused → not
        assert!(rt.domains[0].rt.watched);
        assert_eq!(
            rt.domains[0].md.ca_urls,
            vec![config::LETSENCRYPT_URL.to_string()]
        );
        assert!(rt.domains[0]
            .rt
            .challenges
            .as_ref()
            .unwrap()
            .contains(&"http-01".to_string()));
        assert!(!rt.domains[1].rt.watched);
        assert!(notes
            .iter()
            .any(|n| n.msg == "AH10045: No VirtualHost matches Managed Domain lonely.org"));
        // md.json written as synced
        assert!(rt.store.path(Group::Domains, "e.org", "md.json").exists());
        assert!(rt.domains[0].rt.renew_at > 0);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn two_mds_on_one_ssl_vhost_stop_the_start() {
        let mut v = server(31, "g.org", None);
        v.vhost.aliases = vec!["h.org".into()];
        let (d, mut rt) = runtime("conflict", &[&["g.org"], &["h.org"]], vec![v]);
        let ssl: HashSet<usize> = [31].into_iter().collect();
        let facts = SslFacts {
            ssl: &ssl,
            fallback: &HashSet::new(),
            acme_tls: &|_| true,
            http_ok: true,
            https_ok: true,
        };
        match after_ssl(
            &mut rt,
            &Global::default(),
            &facts,
            time::now(),
            &mut Vec::new(),
        ) {
            Err(StartError::Failed(e)) => assert!(e.starts_with("AH10042: conflict: 2 MDs"), "{e}"),
            other => panic!("{:?}", other.err()),
        }
        let _ = std::fs::remove_dir_all(d);
    }
}
