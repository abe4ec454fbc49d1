//! a2md: the command line of mod_md in Rust. `a2md --help` lists the
//! commands, `a2md <command> --help` their options; the man page and the
//! shell completions are made from the same definition (`cli.rs`).

#![forbid(unsafe_code)]

mod cli;
mod drive;
mod list;
mod ops;

use clap::{CommandFactory, Parser};
use cli::{Cli, Command, Generated};
use md_engine::acme::status;
use md_engine::base::http::Client;
use md_engine::store::{Group, Store};
use serde_json::json;
use std::path::{Path, PathBuf};

fn main() {
    md_engine::base::http::global_init();
    let cli = Cli::parse();
    // -d names a file store; without it, the server's configuration says
    let store_dir = match &cli.store {
        Some(d) => Where {
            dir: d.clone(),
            etcd: None,
        },
        None => default_store(),
    };
    let http = || {
        let mut http = Client::new(format!("apachemd/{}", md_engine::MOD_MD_VERSION));
        http.ca_file = cli.cafile.clone();
        http.proxy = cli.proxy.clone();
        http.proxy_ca_file = cli.proxy_cafile.clone();
        http
    };
    let need_ca = |what: &str| -> String {
        cli.ca.clone().unwrap_or_else(|| {
            usage(&format!(
                "{what} needs the CA: -a CA_URL (e.g. https://acme-v02.api.letsencrypt.org/directory)"
            ))
        })
    };
    match &cli.cmd {
        Command::List { json } => list::list(&open(&store_dir, Access::Read), *json),
        Command::Status { md, json } => list::status(&open(&store_dir, Access::Read), md, *json),
        Command::Renew { md, reason, wait } => ops::renew(
            &open(&store_dir, Access::ForHttpd),
            md,
            reason.clone(),
            *wait,
        ),
        Command::Revoke { md, reason } => ops::revoke(
            &open(&store_dir, Access::ForHttpd),
            http(),
            md,
            reason.as_deref(),
        ),
        Command::Drive(args) => drive::drive(
            &open(&store_dir, Access::Plain),
            &need_ca("drive"),
            http(),
            args,
        ),
        Command::AccountRollover { id } => {
            ops::rollover(&open(&store_dir, Access::ForHttpd), id, http())
        }
        Command::AccountExport { id, keyfile } => {
            ops::account_export(&open(&store_dir, Access::Read), id, keyfile)
        }
        Command::AccountImport { keyfile, url, user } => ops::account_import(
            &open(&store_dir, Access::ForHttpd),
            &need_ca("account-import"),
            http(),
            keyfile,
            url.as_deref(),
            user.as_deref(),
        ),
        Command::StoreExport(a) => ops::store_move(&store_dir.dir, true, a),
        Command::StoreImport(a) => ops::store_move(&store_dir.dir, false, a),
        Command::Generate { what } => generate(*what),
    }
}

/// Bad usage: what was expected, exit code 2 (as clap's own errors).
pub fn usage(msg: &str) -> ! {
    let mut cmd = Cli::command();
    cmd.error(clap::error::ErrorKind::InvalidValue, msg).exit()
}

/// A failure: one JSON object saying why, exit code 1.
pub fn fail(detail: String) -> ! {
    println!("{}", json!({"status": status::EGENERAL, "detail": detail}));
    std::process::exit(1)
}

/// Where the store is: a directory (the file store, or with `etcd` the
/// local cache of the store in etcd).
pub struct Where {
    pub dir: PathBuf,
    pub etcd: Option<md_engine::config::EtcdSettings>,
}

/// The store when none is given: what the server's configuration says
/// (Debian's layout under `$APACHE_CONFDIR`, default /etc/apache2):
/// `MDStoreDir`, else `md` there; with `MDStoreBackend etcd …` the store in
/// etcd (its options from the same configuration).
fn default_store() -> Where {
    let conf = std::env::var("APACHE_CONFDIR").unwrap_or_else(|_| "/etc/apache2".into());
    configured_store(Path::new(&conf))
}

/// The words of the lines of the configuration files under `conf`
/// (apache2.conf and the enabled conf, mods and sites) that configure the
/// store.
fn store_lines(conf: &Path) -> Vec<Vec<String>> {
    let mut files = vec![conf.join("apache2.conf")];
    for dir in ["conf-enabled", "mods-enabled", "sites-enabled"] {
        let mut more: Vec<PathBuf> = std::fs::read_dir(conf.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for l in text.lines() {
            let words: Vec<String> = l
                .split_whitespace()
                .map(|w| w.trim_matches('"').to_string())
                .collect();
            if words
                .first()
                .is_some_and(|w| w.to_ascii_lowercase().starts_with("mdstore"))
            {
                out.push(words);
            }
        }
    }
    out
}

/// The store the configuration under `conf` names; relative paths under
/// `conf` (ServerRoot).
fn configured_store(conf: &Path) -> Where {
    let mut dir = conf.join("md");
    let mut etcd = md_engine::config::EtcdSettings::default();
    let path = |p: &str| conf.join(p).display().to_string();
    for w in store_lines(conf) {
        let arg = |i: usize| w.get(i).cloned().unwrap_or_default();
        match w[0].to_ascii_lowercase().as_str() {
            "mdstoredir" => dir = conf.join(arg(1)),
            "mdstorebackend" if arg(1).eq_ignore_ascii_case("etcd") => {
                etcd.endpoints = arg(2).split(',').map(str::to_string).collect()
            }
            "mdstorebackend" => etcd.endpoints.clear(),
            "mdstoreetcdprefix" => etcd.prefix = arg(1),
            "mdstoreetcdsealkey" => etcd.seal_key = Some(path(&arg(1))),
            "mdstoreetcdca" => etcd.ca_file = Some(path(&arg(1))),
            "mdstoreetcdclientcert" => etcd.client_cert = Some((path(&arg(1)), path(&arg(2)))),
            "mdstoreetcduser" => etcd.user = Some((arg(1), arg(2))),
            _ => {}
        }
    }
    let etcd = (!etcd.endpoints.is_empty()).then_some(etcd);
    Where { dir, etcd }
}

/// The store in etcd, or `None` for a file store.
fn in_etcd(w: &Where) -> Option<Store> {
    let e = w.etcd.as_ref()?;
    let global = md_engine::config::Global {
        etcd: e.clone(),
        ..Default::default()
    };
    let mut notes = Vec::new();
    Some(Store::open_configured(&global, &w.dir, None, &mut notes).unwrap_or_else(|x| fail(x.msg)))
}

/// How a2md uses the store.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// Reads it (list, status, export): it must be there.
    Read,
    /// Writes it as a2md itself writes it (drive: as the C module's a2md).
    Plain,
    /// Writes it as httpd's parent does: what a2md leaves there is handed
    /// to httpd's `User` (renew, revoke, rollover, import).
    ForHttpd,
}

/// The store where `w` says, opened for `access`: the one in etcd when the
/// server's configuration names it, else the directory.
fn open(w: &Where, access: Access) -> Store {
    if let Some(s) = in_etcd(w) {
        return s;
    }
    check_access(&w.dir, access == Access::Read);
    if access == Access::ForHttpd {
        return open_for_httpd(&w.dir, None);
    }
    let mut notes = Vec::new();
    Store::open(&w.dir, None, &mut notes).unwrap_or_else(|e| fail(e.msg))
}

/// A store this user cannot read (a2md run without root on a root-only
/// store) is said in one line, with what to do; so is a missing one when
/// it `must_exist`.
fn check_access(dir: &Path, must_exist: bool) {
    let file = dir.join(md_engine::store::STORE_FILE);
    match std::fs::File::open(&file) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => fail(format!(
            "cannot read the store at {}: {e}; run a2md as root (sudo a2md ...)",
            dir.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && must_exist && !dir.exists() => {
            fail(format!(
                "there is no store at {} (give the store with -d STORE)",
                dir.display()
            ))
        }
        _ => {}
    }
}

/// The uid of a local user (`/etc/passwd`).
fn uid_of(name: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// httpd's `User`, whose renewal job reads account keys and answers
/// requests: `user` if given, else the owner of `staging/` (httpd hands it
/// over), else `$APACHE_RUN_USER`, else www-data.
fn httpd_user(store: &Store, user: Option<&str>) -> Option<u32> {
    if let Some(u) = user {
        return Some(uid_of(u).unwrap_or_else(|| fail(format!("no user {u} in /etc/passwd"))));
    }
    if let Some(uid) = store
        .stat(Group::Staging, "", "")
        .and_then(|s| s.owner)
        .filter(|uid| *uid != 0)
    {
        return Some(uid);
    }
    let name = std::env::var("APACHE_RUN_USER").unwrap_or_else(|_| "www-data".into());
    uid_of(&name)
}

/// The store, opened as httpd's parent opens it: what a2md writes there
/// (account keys, requests) is handed to httpd's `User`.
fn open_for_httpd(dir: &Path, user: Option<&str>) -> Store {
    let mut notes = Vec::new();
    let store = Store::open(dir, None, &mut notes).unwrap_or_else(|e| fail(e.msg));
    let uid = httpd_user(&store, user);
    Store::open(dir, uid, &mut notes).unwrap_or_else(|e| fail(e.msg))
}

/// The man page or a completion script, on stdout (the package build
/// installs them).
fn generate(what: Generated) -> ! {
    let mut cmd = Cli::command();
    let out = &mut std::io::stdout();
    match what {
        Generated::Man => {
            if let Err(e) = clap_mangen::Man::new(cmd).section("8").render(out) {
                fail(e.to_string())
            }
        }
        Generated::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "a2md", out)
        }
        Generated::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "a2md", out),
    }
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_of_the_servers_configuration() {
        let d = std::env::temp_dir().join(format!("a2md-conf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sites-enabled")).unwrap();
        std::fs::write(d.join("apache2.conf"), "ServerRoot /etc/apache2\n").unwrap();
        assert_eq!(configured_store(&d).dir, d.join("md"));
        std::fs::write(
            d.join("sites-enabled").join("000-md.conf"),
            "  MDStoreDir \"/srv/md\"\nMDomain a.org\n",
        )
        .unwrap();
        assert_eq!(configured_store(&d).dir, PathBuf::from("/srv/md"));
        std::fs::write(
            d.join("apache2.conf"),
            "mdstoredir state/md\nMDStoreBackend etcd https://a:2379,https://b:2379\n\
             MDStoreEtcdSealKey seal.key\nMDStoreEtcdUser md pw\n",
        )
        .unwrap();
        let w = configured_store(&d);
        assert_eq!(w.dir, PathBuf::from("/srv/md"));
        let e = w.etcd.unwrap();
        assert_eq!(e.endpoints, ["https://a:2379", "https://b:2379"]);
        assert_eq!(e.seal_key, Some(d.join("seal.key").display().to_string()));
        assert_eq!(e.user, Some(("md".into(), "pw".into())));
        assert_eq!(e.prefix, "/mod_md/");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        assert!(cli::version().ends_with(&format!(
            "compatible with mod_md {})",
            md_engine::MOD_MD_VERSION
        )));
    }
}
