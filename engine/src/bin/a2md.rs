//! a2md: drive the ACME engine on a store from the command line (a subset
//! of upstream mod_md's tool of the same name). Used by the end-to-end
//! tests and handy for admins:
//!
//!   a2md -d STORE -a CA_URL [-C CAFILE] [-p PROXY [-P PROXY_CAFILE]] drive [options] name...
//!   a2md -d STORE renew MD [--reason TEXT]
//!   a2md -d STORE [-C CAFILE] [-p PROXY [-P PROXY_CAFILE]] revoke MD [REASON]
//!   a2md -d STORE [-C CAFILE] [-p PROXY [-P PROXY_CAFILE]] account-rollover ID
//!   a2md -d STORE -a CA_URL [-C CAFILE] [-p PROXY [-P PROXY_CAFILE]] account-import KEYFILE [--url URL] [--user USER]
//!
//!   a2md -d STORE account-export ID KEYFILE
//!
//! `account-export` writes the key of the stored account ID to KEYFILE
//! (unencrypted PEM, mode 0600, never over an existing file) and prints its
//! CA and URL: what `account-import` on another server takes.
//!
//! `account-import` stores an existing account (its key as an unencrypted
//! PEM file, e.g. from another server's store or a key compromise's
//! replacement) under a new id in `accounts/`: the CA confirms that the key
//! belongs to URL, or, without one, names the key's account (RFC 8555
//! §7.3.1 onlyReturnExisting; nothing is registered). MDs at that CA that
//! have no account yet use it. The key goes to httpd's User (USER; else
//! the owner of `staging/`, `$APACHE_RUN_USER` or www-data), whose renewal
//! job reads it.
//!
//! `account-rollover` gives the stored account ID (as in `accounts/`) a new
//! key at its CA (RFC 8555 §7.3.5) and in the store; renewals use it from
//! then on.
//!
//! `revoke` revokes the MD's current certificates at its CA (RFC 8555
//! §7.6, signed with the MD's account key; REASON an RFC 5280 name such as
//! keyCompromise, or its number) and then asks for a renewal as `renew`
//! does.
//!
//! `renew` leaves a request in the store: the running httpd (or the next
//! one to start) renews the MD at its next check, whatever its renewal
//! window says, and serves the new certificate without a restart.
//!
//! drive options: --challenges T[,T..]  --dns01 CMD  --dns01-version N
//!   --contact ADDR  --agreement accepted|URL  --keys "SPEC..."  --eab KID HMAC
//!   --must-staple  --profile NAME  --profile-mandatory  --account ID
//!
//! Prints a JSON result; exit code 0 on success, 1 on an ACME error, 2 on
//! bad usage.

use md_engine::acme::challenge::{ChallengeEnv, Events, RunEnv};
use md_engine::acme::drive;
use md_engine::acme::{status, Acme};
use md_engine::base::http::Client;
use md_engine::base::keyspec;
use md_engine::config::{schemify_contact, Eab, Md, MdDef, Settings};
use md_engine::store::{Group, Store};
use serde_json::json;
use std::path::PathBuf;

/// Progress and events go to stderr.
struct Stderr;
impl Events for Stderr {
    fn challenge_setup(
        &mut self,
        ctype: &md_engine::base::challenge::ChallengeType,
        domain: &str,
    ) -> Result<(), md_engine::base::command::CommandError> {
        eprintln!("[event] challenge-setup:{ctype}:{domain}");
        Ok(())
    }
    fn progress(&mut self, activity: &str) {
        eprintln!("[progress] {activity}");
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("a2md: {msg}\nusage: a2md -d STORE -a CA_URL [-C CAFILE] [-p PROXY] drive [options] name...");
    std::process::exit(2)
}

fn main() {
    md_engine::base::http::global_init();
    let mut args = std::env::args().skip(1);
    let (mut store_dir, mut ca, mut cafile, mut proxy, mut proxy_cafile) =
        (None, None, None, None, None);
    let mut cmd = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-d" | "--dir" => store_dir = args.next(),
            "-a" | "--acme" => ca = args.next(),
            "-C" | "--cafile" => cafile = args.next(),
            "-p" | "--proxy" => proxy = args.next(),
            "-P" | "--proxy-cafile" => proxy_cafile = args.next(),
            "drive" | "renew" | "revoke" | "account-rollover" | "account-import"
            | "account-export" | "store-export" | "store-import" => {
                cmd = Some(a);
                break;
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    if cmd.is_none() {
        usage("missing command");
    }
    let store_dir = store_dir.unwrap_or_else(|| usage("missing -d STORE"));
    if cmd.as_deref() == Some("renew") {
        renew(&store_dir, args.collect());
    }
    if cmd.as_deref() == Some("account-export") {
        export(&store_dir, args.collect());
    }
    if let Some(c @ ("store-export" | "store-import")) = cmd.as_deref() {
        store_move(&store_dir, c == "store-export", args.collect());
    }
    if matches!(
        cmd.as_deref(),
        Some("revoke" | "account-rollover" | "account-import")
    ) {
        let mut http = Client::new(format!("apachemd/{}", md_engine::MOD_MD_VERSION));
        http.ca_file = cafile;
        http.proxy = proxy;
        http.proxy_ca_file = proxy_cafile;
        let rest: Vec<String> = args.collect();
        if cmd.as_deref() == Some("revoke") {
            revoke(&store_dir, http, rest);
        }
        if cmd.as_deref() == Some("account-import") {
            let ca = ca.unwrap_or_else(|| usage("account-import needs -a CA_URL"));
            import(&store_dir, &ca, http, rest);
        }
        let [id] = rest.as_slice() else {
            usage("account-rollover ID")
        };
        let store = open_for_httpd(&store_dir, None);
        match md_engine::acme::account::rollover(&store, id, http) {
            Ok(url) => {
                println!(
                    "{}",
                    json!({"status": 0, "account": id, "url": url, "detail": "the account has a new key at the CA and in the store"})
                );
                std::process::exit(0)
            }
            Err(e) => fail(e.to_string()),
        }
    }
    let ca = ca.unwrap_or_else(|| usage("missing -a CA_URL"));

    let mut settings = Settings::default();
    let mut challenges = ChallengeEnv {
        types: vec![md_engine::base::challenge::ChallengeType::Http01],
        dns01_cmd: None,
        dns01_version: 1,
        tls_alpn_domains: None,
        preflight: None,
    };
    let mut names = Vec::new();
    let mut account = None;
    let rest: Vec<String> = args.collect();
    let mut i = 0;
    let next = |i: &mut usize| -> String {
        *i += 1;
        rest.get(*i)
            .cloned()
            .unwrap_or_else(|| usage("missing option value"))
    };
    while i < rest.len() {
        match rest[i].as_str() {
            "--challenges" => challenges.types = next(&mut i).split(',').map(Into::into).collect(),
            "--dns01" => challenges.dns01_cmd = Some(next(&mut i)),
            "--dns01-version" => challenges.dns01_version = next(&mut i).parse().unwrap_or(1),
            "--contact" => settings.contact = Some(next(&mut i)),
            "--agreement" => settings.ca_agreement = Some(next(&mut i)),
            "--keys" => {
                let v = next(&mut i);
                let words: Vec<&str> = v.split_whitespace().collect();
                settings.pkey_specs =
                    Some(keyspec::parse_specs(&words).unwrap_or_else(|e| usage(&e)));
            }
            "--eab" => {
                let kid = next(&mut i);
                let hmac = next(&mut i);
                settings.eab = Some(Eab {
                    kid,
                    hmac: Some(hmac),
                });
            }
            "--must-staple" => settings.must_staple = Some(true),
            "--profile" => settings.profile = Some(next(&mut i)),
            "--profile-mandatory" => settings.profile_mandatory = Some(true),
            "--account" => account = Some(next(&mut i)),
            n if n.starts_with("--") => usage(&format!("unknown drive option {n}")),
            n => names.push(n.to_ascii_lowercase()),
        }
        i += 1;
    }
    if names.is_empty() {
        usage("no domain names");
    }
    let def = MdDef {
        domains: names,
        transitive: None,
        settings: settings.clone(),
        cert_files: vec![],
        key_files: vec![],
        defn: None,
    };
    let mut md = Md::from_def(&def, &Settings::default(), None);
    if let Some(c) = &settings.contact {
        md.contacts = vec![schemify_contact(c)];
    }
    md.ca_urls = vec![ca.clone()];
    md.found.ca_account = account;

    let mut notes = Vec::new();
    let store = match Store::open(&PathBuf::from(&store_dir), None, &mut notes) {
        Ok(s) => s,
        Err(e) => {
            println!("{}", json!({"status": status::EGENERAL, "detail": e.msg}));
            std::process::exit(1);
        }
    };
    let mut http = Client::new(format!("apachemd/{}", md_engine::MOD_MD_VERSION));
    http.ca_file = cafile;
    http.proxy = proxy;
    http.proxy_ca_file = proxy_cafile;
    let result = Acme::connect(http, &ca).and_then(|mut acme| {
        let mut events = Stderr;
        let mut env = RunEnv {
            store: &store,
            events: &mut events,
            challenges,
            notes: Vec::new(),
            replaced: Vec::new(),
            current: Vec::new(),
            leases: None,
        };
        let r = drive::stage(&mut acme, &md, &mut env);
        for n in &env.notes {
            eprintln!("[{:?}] {}", n.level, n.msg);
        }
        r
    });
    match result {
        Ok(staged) => {
            let out = json!({
                "status": 0,
                "name": md.name,
                "staged": staged.new_certs.iter().map(|s| s.name()).collect::<Vec<_>>(),
                "account": format!("{:?}", staged.account),
                "valid-from": md_engine::base::time::rfc822(staged.valid_from),
            });
            println!("{out}");
        }
        Err(e) => {
            let out = json!({
                "status": e.status(),
                "status-description": status::describe(e.status()),
                "problem": e.problem,
                "detail": e.detail,
                "subproblems": e.subproblems,
            });
            println!("{out}");
            std::process::exit(1);
        }
    }
}

/// RFC 5280 CRLReason codes by name (8 is unused).
const REASONS: &[(&str, u8)] = &[
    ("unspecified", 0),
    ("keyCompromise", 1),
    ("cACompromise", 2),
    ("affiliationChanged", 3),
    ("superseded", 4),
    ("cessationOfOperation", 5),
    ("certificateHold", 6),
    ("removeFromCRL", 8),
    ("privilegeWithdrawn", 9),
    ("aACompromise", 10),
];

fn fail(detail: String) -> ! {
    println!("{}", json!({"status": status::EGENERAL, "detail": detail}));
    std::process::exit(1)
}

/// `revoke MD [REASON]`: revokes the MD's live certificates at its CA with
/// its account, then leaves a renewal request.
fn revoke(store_dir: &str, http: Client, rest: Vec<String>) -> ! {
    let (md, reason) = match rest.as_slice() {
        [md] => (md.clone(), None),
        [md, r] => {
            let code = REASONS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(r))
                .map(|(_, c)| *c)
                .or_else(|| r.parse::<u8>().ok().filter(|c| *c <= 10 && *c != 7))
                .unwrap_or_else(|| {
                    let names: Vec<&str> = REASONS.iter().map(|(n, _)| *n).collect();
                    usage(&format!("unknown reason {r}; one of {}", names.join(", ")))
                });
            (md.clone(), Some((r.clone(), code)))
        }
        _ => usage("revoke MD [REASON]"),
    };
    let mut notes = Vec::new();
    let store =
        Store::open(&PathBuf::from(store_dir), None, &mut notes).unwrap_or_else(|e| fail(e.msg));
    let md_json = store
        .load_json(Group::Domains, &md, "md.json")
        .ok()
        .flatten()
        .unwrap_or_else(|| fail(format!("no installed managed domain {md} in {store_dir}")));
    let text = |ptr: &str| {
        md_json
            .pointer(ptr)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let (Some(ca), Some(id)) = (text("/ca/url"), text("/ca/account")) else {
        fail(format!("{md}: md.json names no CA or account"))
    };
    let (acct, key) = md_engine::acme::account::load(
        &store,
        &md_engine::acme::account::Source::Stored(id.clone()),
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| fail(format!("{md}: account {id} cannot be read")));
    let mut certs = Vec::new();
    for f in store.names_in(Group::Domains, &md) {
        if f.starts_with("pubcert") && f.ends_with(".pem") {
            let pem = store
                .load_bytes(Group::Domains, &md, &f)
                .ok()
                .flatten()
                .unwrap_or_default();
            match openssl::x509::X509::from_pem(&pem).and_then(|c| c.to_der()) {
                Ok(der) => certs.push((f, der)),
                Err(e) => fail(format!("{md}: {f}: {e}")),
            }
        }
    }
    if certs.is_empty() {
        fail(format!("{md} has no live certificate to revoke"));
    }
    let mut acme = Acme::connect(http, &ca).unwrap_or_else(|e| fail(e.to_string()));
    acme.account = Some((acct.url.clone(), key));
    let mut revoked = Vec::new();
    for (f, der) in &certs {
        if let Err(e) = acme.revoke(der, reason.as_ref().map(|(_, c)| *c)) {
            fail(format!("{md}: revoking {f} at {ca}: {e}"));
        }
        revoked.push(f.clone());
    }
    let why = format!(
        "revoked{}",
        reason
            .as_ref()
            .map(|(n, _)| format!(" ({n})"))
            .unwrap_or_default()
    );
    let req = md_engine::store::request::Request::renew(md_engine::base::time::now(), Some(why));
    if let Err(e) = md_engine::store::request::save(&store, &md, &req) {
        fail(format!(
            "revoked, but cannot write the renewal request: {e}"
        ));
    }
    println!(
        "{}",
        json!({"status": 0, "md": md, "revoked": revoked, "request": req, "detail": "revoked at the CA; httpd renews it at its next check"})
    );
    std::process::exit(0)
}

/// `renew MD [--reason TEXT]`: a request for the running httpd.
fn renew(store_dir: &str, rest: Vec<String>) -> ! {
    let mut md = None;
    let mut reason = None;
    let mut wait = None;
    let mut it = rest.into_iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reason" => reason = Some(it.next().unwrap_or_else(|| usage("missing reason"))),
            "--wait" => {
                // an optional number of seconds
                let secs = it.peek().and_then(|v| v.parse::<u64>().ok()).inspect(|_| {
                    it.next();
                });
                wait = Some(secs.unwrap_or(600));
            }
            n if n.starts_with("--") => usage(&format!("unknown renew option {n}")),
            n if md.is_none() => md = Some(n.to_string()),
            _ => usage("renew takes one MD"),
        }
    }
    let md = md.unwrap_or_else(|| usage("renew: which MD?"));
    let store = open_for_httpd(store_dir, None);
    let known = [Group::Domains, Group::Staging]
        .iter()
        .any(|g| store.exists(*g, &md, "md.json"));
    if !known {
        fail(format!(
            "no managed domain {md} in {store_dir} (the name is the MD's first domain, as in md-status)"
        ));
    }
    let req = md_engine::store::request::Request::renew(md_engine::base::time::now(), reason);
    if let Err(e) = md_engine::store::request::save(&store, &md, &req) {
        fail(format!("cannot write the request: {e}"));
    }
    if let Some(secs) = wait {
        wait_renewed(&store, &md, secs);
    }
    println!(
        "{}",
        json!({"status": 0, "md": md, "request": req, "detail": "httpd renews it within seconds and serves the new certificate without a restart"})
    );
    std::process::exit(0)
}

/// `renew --wait`: waits until the renewal the request asked for is
/// served (or failed), at most `secs` seconds, and says which.
fn wait_renewed(store: &Store, md: &str, secs: u64) -> ! {
    use md_engine::base::time;
    use md_engine::lifecycle::jobfile::{Job, RequestOutcome};
    let since = time::now();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let now = time::now();
        let took = (now - since) as f64 / 1e6;
        let outcome = Job::load(store, Group::Staging, md)
            .ok()
            .and_then(|j| j.request_outcome(since, now));
        match outcome {
            Some(RequestOutcome::Served { valid_from }) => {
                println!(
                    "{}",
                    json!({"status": 0, "md": md, "seconds": took,
                        "valid-from": time::rfc822(valid_from),
                        "detail": format!("renewed in {took:.1} s; httpd serves the new certificate (no restart)")})
                );
                std::process::exit(0)
            }
            Some(RequestOutcome::Failed { problem, next_run }) => {
                println!(
                    "{}",
                    json!({"status": 1, "md": md, "seconds": took,
                        "detail": format!("the renewal failed after {took:.1} s: {problem}; httpd tries again at {} (the request stays)", time::rfc822(next_run))})
                );
                std::process::exit(1)
            }
            None if std::time::Instant::now() >= end => {
                println!(
                    "{}",
                    json!({"status": 1, "md": md, "seconds": took,
                        "detail": format!("no new certificate after {took:.0} s: is httpd running with this store? The request stays; httpd renews at its next check")})
                );
                std::process::exit(1)
            }
            None => std::thread::sleep(std::time::Duration::from_millis(250)),
        }
    }
}

/// `account-import KEYFILE [--url URL]`: an existing account into the store.
fn import(store_dir: &str, ca: &str, http: Client, rest: Vec<String>) -> ! {
    let (mut file, mut url, mut user) = (None, None, None);
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--url" => url = it.next().map(String::as_str),
            "--user" => user = it.next().cloned(),
            f if file.is_none() && !f.starts_with("--") => file = Some(f.to_string()),
            _ => usage("account-import KEYFILE [--url URL] [--user USER]"),
        }
    }
    let file = file.unwrap_or_else(|| usage("account-import KEYFILE [--url URL] [--user USER]"));
    let pem = std::fs::read(&file).unwrap_or_else(|e| fail(format!("cannot read {file}: {e}")));
    let key = md_engine::base::crypto::Key::from_pem(&pem, None).unwrap_or_else(|e| {
        fail(format!(
            "{file} is not an unencrypted PEM private key: {}",
            e.0
        ))
    });
    let store = open_for_httpd(store_dir, user.as_deref());
    match md_engine::acme::account::import(&store, ca, key, url, http) {
        Ok((id, url)) => {
            println!(
                "{}",
                json!({"status": 0, "account": id, "url": url, "detail": "stored; MDs at this CA without an account of their own use it"})
            );
            std::process::exit(0)
        }
        Err(e) => fail(e.to_string()),
    }
}

/// `account-export ID KEYFILE`: the account's key for another server.
fn export(store_dir: &str, rest: Vec<String>) -> ! {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let [id, file] = rest.as_slice() else {
        usage("account-export ID KEYFILE")
    };
    let mut notes = Vec::new();
    let store =
        Store::open(&PathBuf::from(store_dir), None, &mut notes).unwrap_or_else(|e| fail(e.msg));
    let (acct, key) = md_engine::acme::account::load(
        &store,
        &md_engine::acme::account::Source::Stored(id.clone()),
    )
    .unwrap_or_else(|e| fail(e.to_string()))
    .unwrap_or_else(|| fail(format!("no account {id} in {store_dir}/accounts")));
    let pem = key.to_pem(None).unwrap_or_else(|e| fail(e.0));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| f.write_all(&pem).and_then(|_| f.sync_all()));
    if let Err(e) = written {
        fail(format!("cannot write {file}: {e}"));
    }
    println!(
        "{}",
        json!({"status": 0, "account": id, "ca-url": acct.ca_url, "url": acct.url, "key-file": file,
               "detail": "keep the file secret; a2md account-import takes it on another server"})
    );
    std::process::exit(0)
}

/// The uid of a local user (`/etc/passwd`).
/// `store-export ENDPOINTS --seal-key FILE [options]`: the file store at
/// `-d` copied into etcd; `store-import …`: the store in etcd copied into
/// the (new) directory `-d`, laid out as the C module's file store.
fn store_move(store_dir: &str, export: bool, rest: Vec<String>) -> ! {
    use md_engine::store::copy;
    const USE: &str = "store-export|store-import ENDPOINT[,ENDPOINT...] --seal-key FILE \
                       [--prefix /mod_md/] [--etcd-ca FILE] [--etcd-cert CERT KEY] \
                       [--etcd-user USER PASSWORD]";
    let mut it = rest.into_iter();
    let endpoints = it.next().unwrap_or_else(|| usage(USE));
    let mut e = md_engine::config::EtcdSettings {
        endpoints: endpoints.split(',').map(str::to_string).collect(),
        ..Default::default()
    };
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(USE));
        match a.as_str() {
            "--seal-key" => e.seal_key = Some(value()),
            "--prefix" => e.prefix = value(),
            "--etcd-ca" => e.ca_file = Some(value()),
            "--etcd-cert" => e.client_cert = Some((value(), value())),
            "--etcd-user" => e.user = Some((value(), value())),
            _ => usage(USE),
        }
    }
    // written as root: what httpd's User works on is handed to it
    let user = uid_of(&std::env::var("APACHE_RUN_USER").unwrap_or_else(|_| "www-data".into()));
    let n =
        copy::between(&PathBuf::from(store_dir), &e, export, user).unwrap_or_else(|x| fail(x.msg));
    let (from, to) = if export {
        (
            store_dir.to_string(),
            format!("etcd {} {}", e.endpoints.join(","), e.prefix),
        )
    } else {
        (
            format!("etcd {} {}", e.endpoints.join(","), e.prefix),
            store_dir.to_string(),
        )
    };
    println!(
        "{}",
        json!({"status": 0, "files": n, "detail": format!("copied {n} files from {from} to {to}")})
    );
    std::process::exit(0)
}

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
/// over at start), else `$APACHE_RUN_USER` (Debian's envvars) or www-data.
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
fn open_for_httpd(store_dir: &str, user: Option<&str>) -> Store {
    let mut notes = Vec::new();
    let dir = PathBuf::from(store_dir);
    let store = Store::open(&dir, None, &mut notes).unwrap_or_else(|e| fail(e.msg));
    let uid = httpd_user(&store, user);
    Store::open(&dir, uid, &mut notes).unwrap_or_else(|e| fail(e.msg))
}
