//! What start-up decided and found (spec §2.2), used by everything that
//! runs after it: the servers and their MDs, each MD's state, renewal
//! time and challenge types, frozen for the generation.

use crate::base::time::Micros;
use crate::config::vhost::VHost;
use crate::config::{Fatal, Global, Md, State};
use crate::lifecycle::scheduler;
use crate::lifecycle::state::CertInfo;
use crate::lifecycle::{install, state};
use crate::store::{Group, Store};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

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

/// What post_config computed about one MD (frozen for the generation: the
/// children inherit it, as the C module's registry).
pub struct MdRuntime {
    pub certs: Vec<Option<CertInfo>>,
    pub renew_at: Micros,
    /// Usable challenge types, or why there are none.
    pub challenges: crate::lifecycle::state::Challenges,
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
    pub(crate) fn from_plan(plan: Plan) -> Runtime {
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
    pub(crate) fn mds_of<'a>(
        &'a self,
        v: &'a Vhost,
    ) -> impl Iterator<Item = &'a ManagedDomain> + 'a {
        v.mds.iter().map(|&i| &self.domains[i])
    }

    /// The one MD of server `id` (none when it has none or several).
    pub(crate) fn md_of(&self, id: usize) -> Option<&ManagedDomain> {
        match self.vhost(id)?.mds.as_slice() {
            [mi] => Some(&self.domains[*mi]),
            _ => None,
        }
    }

    /// Whether some vhost has MD `mi`.
    pub(crate) fn used(&self, mi: usize) -> bool {
        self.vhosts.iter().any(|v| v.mds.contains(&mi))
    }

    pub(crate) fn mds(&self) -> impl Iterator<Item = &Md> {
        self.domains.iter().map(|d| &d.md)
    }

    /// The MDs the renewal job watches, as the scheduler takes them.
    pub(crate) fn watched_items(&self) -> Vec<scheduler::Item> {
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
    pub(crate) fn hot_vhosts(&self, ssl: &HashSet<usize>) -> Vec<(usize, Md)> {
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
    /// The MDs whose live set in `store` (the runtime's, or a detached
    /// copy of it) is not the one this generation started with.
    pub(crate) fn installed_elsewhere(&self, store: &Store) -> Vec<&Md> {
        self.domains
            .iter()
            .filter(|d| {
                d.md.cert_files.is_empty() && !crate::lifecycle::tailscale::is_tailscale(&d.md)
            })
            .filter(|d| {
                let now = install::live_stamp(store, &d.md);
                !now.is_empty() && now != d.rt.live_stamp
            })
            .map(|d| &d.md)
            .collect()
    }

    pub(crate) fn restart_wanted(&self, store: &Store, now: Micros, eager: bool) -> Option<&Md> {
        let staged = store.names(Group::Staging);
        self.mds().filter(|m| staged.contains(&m.name)).find(|m| {
            if eager {
                install::staged_ready(store, m, now)
            } else {
                install::staged_due_at(store, m, now).is_some_and(|t| t <= now)
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
