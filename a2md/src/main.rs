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
    let store_dir = cli.store.clone().unwrap_or_else(default_store);
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
        Command::List { json } => list::list(&readable(&store_dir), *json),
        Command::Status { md, json } => list::status(&readable(&store_dir), md, *json),
        Command::Renew { md, reason, wait } => {
            ops::renew(&writable(&store_dir), md, reason.clone(), *wait)
        }
        Command::Revoke { md, reason } => {
            ops::revoke(&writable(&store_dir), http(), md, reason.as_deref())
        }
        Command::Drive(args) => drive::drive(&plain(&store_dir), &need_ca("drive"), http(), args),
        Command::AccountRollover { id } => ops::rollover(&writable(&store_dir), id, http()),
        Command::AccountExport { id, keyfile } => {
            ops::account_export(&readable(&store_dir), id, keyfile)
        }
        Command::AccountImport { keyfile, url, user } => ops::account_import(
            &writable(&store_dir),
            &need_ca("account-import"),
            http(),
            keyfile,
            url.as_deref(),
            user.as_deref(),
        ),
        Command::StoreExport(a) => ops::store_move(&store_dir, true, a),
        Command::StoreImport(a) => ops::store_move(&store_dir, false, a),
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

/// The store when none is given: the `MDStoreDir` of the server's
/// configuration (Debian's layout under `$APACHE_CONFDIR`, default
/// /etc/apache2), else `md` there.
fn default_store() -> PathBuf {
    let conf = std::env::var("APACHE_CONFDIR").unwrap_or_else(|_| "/etc/apache2".into());
    configured_store(Path::new(&conf)).unwrap_or_else(|| Path::new(&conf).join("md"))
}

/// `MDStoreDir` in the configuration files under `conf` (apache2.conf and
/// the enabled conf, mods and sites), relative paths under `conf`.
fn configured_store(conf: &Path) -> Option<PathBuf> {
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
    files.iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()?.eq_ignore_ascii_case("MDStoreDir"))
                .then(|| w.next())
                .flatten()
                .map(|p| conf.join(p.trim_matches('"')))
        })
    })
}

/// The store, to read; one that cannot be read says what to do.
fn readable(dir: &Path) -> Store {
    check_access(dir, true);
    let mut notes = Vec::new();
    Store::open(dir, None, &mut notes).unwrap_or_else(|e| fail(e.msg))
}

/// The store as a2md itself writes it (drive: as the C module's a2md).
fn plain(dir: &Path) -> Store {
    check_access(dir, false);
    let mut notes = Vec::new();
    Store::open(dir, None, &mut notes).unwrap_or_else(|e| fail(e.msg))
}

/// The store, to write as httpd's parent writes it (what a2md leaves
/// there is handed to httpd's `User`).
fn writable(dir: &Path) -> Store {
    check_access(dir, false);
    open_for_httpd(dir, None)
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
        assert_eq!(configured_store(&d), None);
        std::fs::write(
            d.join("sites-enabled").join("000-md.conf"),
            "  MDStoreDir \"/srv/md\"\nMDomain a.org\n",
        )
        .unwrap();
        assert_eq!(configured_store(&d), Some(PathBuf::from("/srv/md")));
        std::fs::write(d.join("apache2.conf"), "mdstoredir state/md\n").unwrap();
        assert_eq!(configured_store(&d), Some(d.join("state/md")));
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
