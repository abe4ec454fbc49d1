//! Start-up planning, the first half of post_config (spec §2.2, "before
//! SSL"): the store is opened, the MDs are completed from the server
//! settings and checked, renamed MDs keep their store entries, staged sets
//! are installed (as root, firing `installed`), and MDs are matched to the
//! virtual hosts, which may lend them a contact. The glue gathers httpd's
//! side (settings, vhosts, the run user) and keeps the result for the
//! generation. Log lines are notes (live through the caller's sink).

use crate::config::Md;
use crate::config::{self, Fatal, ModConfig, Settings, NO_SERVER_ADMIN};
use crate::job::{self, CommandNotify, Job};
use crate::log::{Level, Note};
use crate::reg;
use crate::store::{Group, Store};
use crate::time;
use crate::vhost::{self, VHost};
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

/// What start-up decided, before mod_ssl runs.
pub struct Plan {
    pub store: Store,
    pub mds: Vec<Md>,
    pub servers: Vec<Server>,
    /// Per server, indices into `mds`.
    pub assigned: Vec<Vec<usize>>,
}

/// Why the server must not start.
#[derive(Debug)]
pub enum StartError {
    /// AH10046: the store cannot be used.
    Store(String),
    /// A configuration error only visible with all MDs (AH10038, AH10170, ...).
    Fatal(Fatal),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Store(e) => f.write_str(e),
            StartError::Fatal(e) => write!(f, "{e}"),
        }
    }
}

/// Plans the start: see the module comment. `user` is the uid the store's
/// child-written groups are handed to (only when running as root).
pub fn before_ssl(
    conf: &ModConfig,
    main: &Settings,
    server_admin: Option<&str>,
    store_dir: &str,
    user: Option<u32>,
    servers: Vec<Server>,
    notes: &mut Vec<Note>,
) -> Result<Plan, StartError> {
    let global = &conf.global;
    let store = Store::open(Path::new(store_dir), user, notes)
        .map_err(|e| StartError::Store(format!("AH10046: setup store for {store_dir}: {e}")))?;
    let mut mds: Vec<Md> = conf
        .mds
        .iter()
        .map(|def| Md::from_def(def, main, server_admin))
        .collect();
    config::check_mds(&mds, global.match_mode).map_err(StartError::Fatal)?;
    install(&store, &mds, conf, notes);
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
        store,
        mds,
        servers,
        assigned,
    })
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
    // A renamed MD keeps its store entry (§2.2 step 8).
    reg::sync_renames(store, mds, notes);
    for md in mds {
        match reg::install_staged(store, md, notes) {
            Ok(true) => {
                notes.push(Note::new(
                    Level::Info,
                    format!("AH10068: {}: staged set activated", md.name),
                ));
                // `installed` runs as root, here in the parent (§7.1).
                let mut j = Job::load(store, Group::Domains, &md.name)
                    .unwrap_or_else(|_| Job::new(&md.name));
                j.name = md.name.clone();
                let mut notify = CommandNotify {
                    message_cmd: conf.global.message_cmd.clone(),
                    notify_cmd: None,
                    notes: Vec::new(),
                };
                let _ = job::fire(&mut j, &mut notify, "installed", time::now(), notes);
                let _ = j.save(store, Group::Domains);
                notes.append(&mut notify.notes);
            }
            Ok(false) => {}
            Err(e) => {
                notes.push(Note::new(
                    Level::Error,
                    format!(
                        "AH10069: {}: error loading staged set, purging it: {e}",
                        md.name
                    ),
                ));
                reg::purge_staging(store, md);
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
            &mut notes,
        )
        .unwrap();
        assert_eq!(plan.assigned, vec![vec![0], vec![0], vec![]]);
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
        match before_ssl(
            &c,
            &Settings::default(),
            None,
            &d,
            None,
            Vec::new(),
            &mut Vec::new(),
        ) {
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
        match before_ssl(
            &c,
            &Settings::default(),
            None,
            &d,
            None,
            Vec::new(),
            &mut Vec::new(),
        ) {
            Err(StartError::Store(e)) => assert!(e.starts_with("AH10046: setup store for"), "{e}"),
            other => panic!("{:?}", other.err()),
        }
        let _ = std::fs::remove_file(d);
    }

    #[test]
    fn a_renamed_md_keeps_its_store_entry() {
        let d = dir("rename");
        let c = conf(&[&["r.org", "www.r.org"]]);
        before_ssl(
            &c,
            &Settings::default(),
            None,
            &d,
            None,
            Vec::new(),
            &mut Vec::new(),
        )
        .unwrap();
        let plan0 = before_ssl(
            &c,
            &Settings::default(),
            None,
            &d,
            None,
            Vec::new(),
            &mut Vec::new(),
        )
        .unwrap();
        reg::sync_md_json(&plan0.store, &plan0.mds[0]).unwrap();
        // same domains, another name: the entry moves along
        let c2 = conf(&[&["www.r.org", "r.org"]]);
        let plan = before_ssl(
            &c2,
            &Settings::default(),
            None,
            &d,
            None,
            Vec::new(),
            &mut Vec::new(),
        )
        .unwrap();
        assert!(plan
            .store
            .path(Group::Domains, "www.r.org", "md.json")
            .exists());
        assert!(!plan.store.path(Group::Domains, "r.org", "md.json").exists());
        let _ = std::fs::remove_dir_all(d);
    }
}
