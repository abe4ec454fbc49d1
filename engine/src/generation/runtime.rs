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
use std::sync::Arc;

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

/// Per MD (`mds` of them), the indices of the vhosts whose MD lists name
/// it, ascending: the reverse of the vhosts' `mds`, so that a question
/// about one MD does not look at every vhost.
pub(crate) fn users<'a>(mds: usize, lists: impl Iterator<Item = &'a [usize]>) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); mds];
    for (vi, list) in lists.enumerate() {
        for &mi in list {
            if let Some(users) = out.get_mut(mi) {
                users.push(vi);
            }
        }
    }
    out
}

impl scheduler::Source for Runtime {
    fn md(&self, i: usize) -> &Md {
        &self.domains[i].md
    }

    fn challenges(&self, i: usize) -> crate::lifecycle::state::Challenges {
        self.domains[i].rt.challenges.clone()
    }

    fn certs(&self, i: usize) -> Vec<(String, openssl::x509::X509)> {
        self.domains[i]
            .rt
            .certs
            .iter()
            .flatten()
            .filter_map(|c| Some((c.key_name.clone(), c.leaf()?)))
            .collect()
    }
}

/// MDs by name and by the host names they cover, as indices.
#[derive(Default)]
pub(crate) struct Lookup {
    by_name: HashMap<String, usize>,
    /// Lower-cased domain → the first MD with it.
    exact: HashMap<String, usize>,
    /// Lower-cased `<base>` of a `*.<base>` domain → the first MD with it.
    wild: HashMap<String, usize>,
}

impl Lookup {
    fn of<'a>(mds: impl Iterator<Item = &'a Md>) -> Lookup {
        let mut l = Lookup::default();
        for (i, md) in mds.enumerate() {
            l.by_name.entry(md.name.clone()).or_insert(i);
            for d in &md.domains {
                let d = d.to_ascii_lowercase();
                if let Some(base) = d.strip_prefix("*.") {
                    l.wild.entry(base.to_string()).or_insert(i);
                }
                l.exact.entry(d).or_insert(i);
            }
        }
        l
    }

    fn named(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The first MD that covers `host` ([`crate::config::vhost::domain_matches`]).
    fn covering(&self, host: &str) -> Option<usize> {
        let host = host.to_ascii_lowercase();
        let exact = self.exact.get(&host).copied();
        let wild = host
            .find('.')
            .filter(|&dot| dot > 0)
            .and_then(|dot| self.wild.get(&host[dot + 1..]).copied());
        exact.into_iter().chain(wild).min()
    }
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
    /// MD index → indices into `vhosts` of the vhosts it has, ascending.
    by_md: Vec<Vec<usize>>,
    /// The MDs by name and by the names they cover (made once the MDs'
    /// domains are final, see [`Runtime::lookup`]).
    lookup: std::sync::OnceLock<Lookup>,
    /// The staging jobs as status pages read them.
    pub jobs: crate::lifecycle::jobfile::JobCache,
}

impl Runtime {
    /// The runtime of a plan, before mod_ssl has said which vhosts use SSL.
    pub(crate) fn from_plan(plan: Plan) -> Runtime {
        let by_md = users(plan.mds.len(), plan.vhosts.iter().map(|v| v.mds.as_slice()));
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
            by_md,
            lookup: Default::default(),
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
        !self.by_md[mi].is_empty()
    }

    /// The MD named `name`.
    pub(crate) fn md_named(&self, name: &str) -> Option<&ManagedDomain> {
        self.lookup().named(name).map(|i| &self.domains[i])
    }

    /// The first MD (in configuration order) one of whose domains covers
    /// `host`: exactly, or as `*.<rest of host>`.
    pub(crate) fn md_covering(&self, host: &str) -> Option<&ManagedDomain> {
        self.lookup().covering(host).map(|i| &self.domains[i])
    }

    /// The lookup tables of request-time questions (by name, by host): a
    /// server with 10,000 MDs answers them without looking at each. Made
    /// on first use; start-up makes it once the domains are final (names
    /// of SSL vhosts join their MDs in `after_ssl`), so that the children
    /// share the parent's.
    pub(crate) fn lookup(&self) -> &Lookup {
        self.lookup.get_or_init(|| Lookup::of(self.mds()))
    }

    /// The vhosts that have MD `mi`.
    pub(crate) fn vhosts_with(&self, mi: usize) -> impl Iterator<Item = &Vhost> + '_ {
        self.by_md[mi].iter().map(|&vi| &self.vhosts[vi])
    }

    pub(crate) fn mds(&self) -> impl Iterator<Item = &Md> {
        self.domains.iter().map(|d| &d.md)
    }

    /// The MDs the renewal job watches, as the scheduler takes them: by
    /// index into this runtime, nothing copied per MD; the pending
    /// requests (`a2md renew`) from one listing.
    pub(crate) fn watched_items(rt: &Arc<Runtime>) -> Vec<scheduler::Item> {
        let src: Arc<dyn scheduler::Source> = rt.clone();
        let requested = crate::store::request::pending_files(&rt.store);
        rt.domains
            .iter()
            .enumerate()
            .filter(|(_, d)| d.rt.watched)
            .map(|(i, ManagedDomain { md, rt: mrt })| {
                let mut item = scheduler::Item::new(src.clone(), i, mrt.renew_at);
                item.warn_at = state::warn_at(md, &mrt.certs);
                item.complete = md.found.state == State::Complete;
                item.requested = crate::store::request::is_pending(&requested, &md.name);
                item
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vhost::domain_matches;
    use crate::testutil::md;

    /// The lookup tables answer what looking at every MD in order answers.
    #[test]
    fn lookups_answer_what_a_scan_answers() {
        let mds = [
            md(&["a.org", "www.a.org"]),
            md(&["*.a.org", "b.org"]),
            md(&["WWW.B.org"]),
            md(&["*.b.org", "c.org"]),
            md(&["x.a.org"]),
        ];
        let l = Lookup::of(mds.iter());
        for host in [
            "a.org",
            "A.ORG",
            "www.a.org",
            "x.a.org",
            "y.a.org",
            "a.b.a.org",
            "b.org",
            "www.b.org",
            "z.b.org",
            "c.org",
            ".a.org",
            "*.a.org",
            "org",
            "",
            "d.org",
        ] {
            let scan = mds
                .iter()
                .position(|m| m.domains.iter().any(|d| domain_matches(d, host)));
            assert_eq!(l.covering(host), scan, "{host}");
        }
        assert_eq!(l.named("www.b.org"), None);
        assert_eq!(l.named(&mds[2].name), Some(2));
        let users = users(3, [&[0, 2][..], &[], &[2]].into_iter());
        assert_eq!(users, vec![vec![0], vec![], vec![0, 2]]);
    }
}
