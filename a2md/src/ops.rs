//! The commands an admin runs on a store: renew and revoke now, account
//! key rollover, account export and import, moving a store to etcd and
//! back.

use crate::cli::EtcdArgs;
use crate::{fail, open_for_httpd, uid_of, usage};
use md_engine::acme::Acme;
use md_engine::base::http::Client;
use md_engine::base::time;
use md_engine::store::{Group, Store};
use serde_json::json;
use std::path::Path;

/// RFC 5280 CRLReason codes by name (7 is unused).
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

fn known_md(store: &Store, md: &str) {
    let known = [Group::Domains, Group::Staging]
        .iter()
        .any(|g| store.exists(*g, md, "md.json"));
    if !known {
        fail(format!(
            "no managed domain {md} in {} (the name is the MD's first domain, as in md-status and a2md list)",
            store.location()
        ));
    }
}

/// `renew MD [--reason TEXT] [--wait [SECS]]`: a request for the running
/// httpd, which picks it up within seconds.
pub fn renew(store: &Store, md: &str, reason: Option<String>, wait: Option<u64>) -> ! {
    known_md(store, md);
    let req = md_engine::store::request::Request::renew(time::now(), reason);
    if let Err(e) = md_engine::store::request::save(store, md, &req) {
        fail(format!("cannot write the request: {e}"));
    }
    if let Some(secs) = wait {
        wait_renewed(store, md, secs);
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
    use md_engine::lifecycle::jobfile::{Job, RequestOutcome};
    let since = time::now();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        // (a store kept elsewhere: what the cluster wrote since)
        store.refresh();
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

/// `revoke MD [REASON]`: revokes the MD's live certificates at its CA with
/// its account, then leaves a renewal request.
pub fn revoke(store: &Store, http: Client, md: &str, reason: Option<&str>) -> ! {
    let reason = reason.map(|r| {
        let code = REASONS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(r))
            .map(|(_, c)| *c)
            .or_else(|| r.parse::<u8>().ok().filter(|c| *c <= 10 && *c != 7))
            .unwrap_or_else(|| {
                let names: Vec<&str> = REASONS.iter().map(|(n, _)| *n).collect();
                usage(&format!("unknown reason {r}; one of {}", names.join(", ")))
            });
        (r.to_string(), code)
    });
    let md_json = store
        .load_json(Group::Domains, md, "md.json")
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            fail(format!(
                "no installed managed domain {md} in {}",
                store.location()
            ))
        });
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
        store,
        &md_engine::acme::account::Source::Stored(id.clone()),
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| fail(format!("{md}: account {id} cannot be read")));
    let mut certs = Vec::new();
    for f in store.names_in(Group::Domains, md) {
        if f.starts_with("pubcert") && f.ends_with(".pem") {
            let pem = store
                .load_bytes(Group::Domains, md, &f)
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
    let req = md_engine::store::request::Request::renew(time::now(), Some(why));
    if let Err(e) = md_engine::store::request::save(store, md, &req) {
        fail(format!(
            "revoked, but cannot write the renewal request: {e}"
        ));
    }
    println!(
        "{}",
        json!({"status": 0, "md": md, "revoked": revoked, "request": req, "detail": "revoked at the CA; httpd renews it within seconds"})
    );
    std::process::exit(0)
}

/// `account-rollover ID`.
pub fn rollover(store: &Store, id: &str, http: Client) -> ! {
    match md_engine::acme::account::rollover(store, id, http) {
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

/// `account-import KEYFILE [--url URL] [--user USER]`: an existing account
/// into the store.
pub fn account_import(
    dir: &Store,
    ca: &str,
    http: Client,
    file: &Path,
    url: Option<&str>,
    user: Option<&str>,
) -> ! {
    let pem = std::fs::read(file)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", file.display())));
    let key = md_engine::base::crypto::Key::from_pem(&pem, None).unwrap_or_else(|e| {
        fail(format!(
            "{} is not an unencrypted PEM private key: {}",
            file.display(),
            e.0
        ))
    });
    let store = match user {
        Some(_) => open_for_httpd(Path::new(&dir.location()), user),
        None => dir.clone(),
    };
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
pub fn account_export(store: &Store, id: &str, file: &Path) -> ! {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (acct, key) = md_engine::acme::account::load(
        store,
        &md_engine::acme::account::Source::Stored(id.to_string()),
    )
    .unwrap_or_else(|e| fail(e.to_string()))
    .unwrap_or_else(|| fail(format!("no account {id} in {}/accounts", store.location())));
    let pem = key.to_pem(None).unwrap_or_else(|e| fail(e.0));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| f.write_all(&pem).and_then(|_| f.sync_all()));
    if let Err(e) = written {
        fail(format!("cannot write {}: {e}", file.display()));
    }
    println!(
        "{}",
        json!({"status": 0, "account": id, "ca-url": acct.ca_url, "url": acct.url, "key-file": file,
               "detail": "keep the file secret; a2md account-import takes it on another server"})
    );
    std::process::exit(0)
}

/// `store-export ENDPOINTS --seal-key FILE [options]`: the file store at
/// `-d` copied into etcd; `store-import …`: the store in etcd copied into
/// the (new) directory `-d`, laid out as the C module's file store.
pub fn store_move(dir: &Path, export: bool, a: &EtcdArgs) -> ! {
    let pair = |v: &[String]| match v {
        [x, y] => Some((x.clone(), y.clone())),
        _ => None,
    };
    let e = md_engine::config::EtcdSettings {
        endpoints: a.endpoints.split(',').map(str::to_string).collect(),
        prefix: a.prefix.clone(),
        seal_key: Some(a.seal_key.display().to_string()),
        ca_file: a.etcd_ca.clone(),
        client_cert: pair(&a.etcd_cert),
        user: pair(&a.etcd_user),
    };
    // written as root: what httpd's User works on is handed to it
    let user = uid_of(&std::env::var("APACHE_RUN_USER").unwrap_or_else(|_| "www-data".into()));
    let n = md_engine::store::copy::between(dir, &e, export, user).unwrap_or_else(|x| fail(x.msg));
    let etcd = format!("etcd {} {}", e.endpoints.join(","), e.prefix);
    let here = dir.display().to_string();
    let (from, to) = if export { (here, etcd) } else { (etcd, here) };
    println!(
        "{}",
        json!({"status": 0, "files": n, "detail": format!("copied {n} files from {from} to {to}")})
    );
    std::process::exit(0)
}
