//! Start-up planning (spec §2.2). Before mod_ssl: the store is opened, the
//! MDs are completed from the server settings and checked, renamed MDs keep
//! their store entries, staged sets are installed (as root, firing
//! `installed`), and MDs are matched to the virtual hosts, which may lend
//! them a contact. After mod_ssl (real run): what needs the SSL vhosts,
//! then each MD's state, renewal time, challenge types and whether it is
//! watched. The glue gathers httpd's side (settings, vhosts, listeners,
//! protocols, the run user) and keeps the `Runtime` for the generation.
//! Log lines are notes (live through the caller's sink).

use crate::base::log::{Level, Note, Notes};
use crate::base::time::{self, Micros};
use crate::config::vhost::{self, VHost};
use crate::config::{
    self, Global, Md, ModConfig, RenewMode, RequireHttps, Settings, State, NO_SERVER_ADMIN,
};
use crate::generation::problems::problem_note;
use crate::generation::problems::problems_begin;
use crate::generation::problems::store_problems;
use crate::generation::runtime::users;
use crate::generation::runtime::ManagedDomain;
use crate::generation::runtime::MdRuntime;
use crate::generation::runtime::Plan;
use crate::generation::runtime::Vhost;
use crate::generation::Runtime;
use crate::generation::Server;
use crate::generation::SslFacts;
use crate::generation::StartError;
use crate::lifecycle::events;
use crate::lifecycle::events::CommandNotify;
use crate::lifecycle::jobfile::Job;
use crate::lifecycle::{install, state};
use crate::store::{Group, Store};
use std::path::Path;

#[allow(clippy::too_many_arguments)]
pub fn before_ssl(
    conf: &ModConfig,
    main: &Settings,
    server_admin: Option<&str>,
    store_dir: &str,
    user: Option<u32>,
    servers: Vec<Server>,
    dry_run: bool,
    notes: &mut dyn Notes,
) -> Result<Plan, StartError> {
    let global = &conf.global;
    let store = Store::open_configured(global, Path::new(store_dir), user, notes)
        .map_err(|e| StartError::Failed(format!("AH10046: setup store for {store_dir}: {e}")))?;
    let mut mds: Vec<Md> = conf
        .mds
        .iter()
        .map(|def| Md::from_def(def, main, server_admin))
        .collect();
    config::check_mds(&mds, global.match_mode).map_err(StartError::Fatal)?;
    let removed = store.sweep();
    if removed > 0 {
        notes.push(Note::new(
            Level::Info,
            format!(
                "removed {removed} temporary file(s) that interrupted writers left in the store"
            ),
        ));
    }
    if let Some(leases) = crate::store::lease::Leases::of(&store, global) {
        if let Err(e) = leases.prepare() {
            notes.push(Note::new(
                Level::Error,
                format!(
                    "cannot set up the cluster lease directory {}: {e}; renewals of this node \
                     will fail until it can be written by httpd's User",
                    leases.location()
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
    notes: &mut dyn Notes,
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
                    crate::acme::challenge::challenge_dir_name(
                        &crate::base::challenge::ChallengeType::TlsAlpn01,
                        d,
                    ),
                ]
            }))
        })
        .collect();
    let names: Vec<&str> = kept.iter().map(String::as_str).collect();
    let leases = crate::store::lease::Leases::of(&rt.store, global);
    let age = leases
        .as_ref()
        .map(|_| std::time::Duration::from_secs(3600));
    notes.extend_from(
        rt.store
            .purge_group_except_older(Group::Challenges, &names, age),
    );
    for (mi, md) in rt.mds().enumerate() {
        let used = rt.used(mi);
        let ssl_used = rt.vhosts_with(mi).any(ssl);
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
    // the request-time lookups, made here where the domains are final
    // (children share them)
    rt.lookup();
    // `crl/` only when a served certificate names a CRL (a store the C
    // module also uses looks as it would otherwise); the renewal job's
    // user writes it
    let crl_targets = rt
        .domains
        .iter()
        .any(|d| crate::serving::crl::any_names_crl(&d.rt.certs));
    if global.crl_check && crl_targets {
        if let Err(e) = crate::serving::crl::ensure_dir(&rt.store) {
            notes.push(Note::new(
                Level::Warn,
                format!(
                    "cannot set up the CRL directory {}: {e}; revocations listed in CRLs \
                     are not seen until httpd's User can write it",
                    rt.store.describe(crate::store::Group::Crl, "", "")
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
    notes: &mut dyn Notes,
) -> Vec<String> {
    let md = &rt.domains[mi].md;
    let mut out = Vec::new();
    for d in &md.domains {
        let https: Vec<&Vhost> = rt
            .vhosts_with(mi)
            .filter(|v| {
                facts.ssl.contains(&v.id)
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
    notes: &mut dyn Notes,
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
    let state::Found {
        state,
        descr,
        certs,
    } = state::compute_state(store, md);
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
pub(crate) fn fire_installed(
    store: &Store,
    md: &Md,
    global: &Global,
    shared: bool,
    notes: &mut dyn Notes,
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
    notes.extend_from(std::mem::take(&mut notify.notes));
}

/// Renames and installations of staged sets, under the store lock when
/// `MDStoreLocks` asks for it (§5.6); in the dry run too (§3.6).
fn install(store: &Store, mds: &[Md], conf: &ModConfig, notes: &mut dyn Notes) {
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
    notes: &mut dyn Notes,
) {
    let users = users(mds.len(), assigned.iter().map(Vec::as_slice));
    for (mi, md) in mds.iter_mut().enumerate() {
        if !md.contacts.is_empty() {
            continue;
        }
        let found = users[mi].iter().map(|&si| &servers[si]).find_map(|s| {
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
    use crate::generation::HashSet;

    use crate::testutil::server;

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

    /// A path for a store in a directory removed when the test ends.
    fn dir(tag: &str) -> (crate::testutil::TempDir, String) {
        let t = crate::testutil::TempDir::new(&format!("startup-{tag}"));
        let d = t.join("md").to_string_lossy().into_owned();
        (t, d)
    }

    #[test]
    fn mds_are_matched_and_borrow_a_contact() {
        let (_t, d) = dir("match");
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
        let (_t, d) = dir("overlap");
        let c = conf(&[&["a.org", "x.org"], &["b.org", "x.org"]]);
        match plan(&c, &d, Vec::new()) {
            Err(StartError::Fatal(f)) => assert_eq!(f.code, "AH10038"),
            other => panic!("{:?}", other.err()),
        }
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn an_unusable_store_stops_the_start() {
        let (_t, d) = dir("nostore");
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
        let (_t, d) = dir("rename");
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

    fn runtime(
        tag: &str,
        mds: &[&[&str]],
        servers: Vec<Server>,
    ) -> (crate::testutil::TempDir, Runtime) {
        let (t, d) = dir(tag);
        let c = conf(mds);
        let plan = plan(&c, &d, servers).unwrap();
        (t, Runtime::from_plan(plan))
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
            .contains(&crate::base::challenge::ChallengeType::Http01));
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
