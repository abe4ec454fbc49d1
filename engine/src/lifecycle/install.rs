//! Staged sets (spec §3.6): their installation into `domains/` by the
//! parent, the sync of md.json and of renamed MDs at start-up, and the
//! staged set as hot activation and the restarter see it.

use crate::acme::account::{self, Account};
use crate::base::crypto;
use crate::base::log::{Level, Note, Notes};
use crate::base::time::Micros;
use crate::config::{Md, State};
use crate::lifecycle::state::cert_renew_at;
use crate::lifecycle::state::CertInfo;
use crate::store::{Group, Store, StoreError};
use serde_json::Value;

/// Writes `domains/<md>/md.json` when it differs from what is there.
pub(crate) fn sync_md_json(store: &Store, md: &Md) -> Result<bool, StoreError> {
    let new = md.to_json();
    let old = store
        .load_json(Group::Domains, &md.name, "md.json")
        .ok()
        .flatten();
    if old.as_ref() == Some(&new) {
        return Ok(false);
    }
    // Derived from the configuration at every start: atomic, but no fsync
    // (a crash leaves the old or the new file; the next start rewrites it).
    store.save_derived(
        Group::Domains,
        &md.name,
        "md.json",
        crate::base::util::json_pretty(&new).as_bytes(),
    )?;
    Ok(true)
}

/// Moves `domains/<md>` out of the way into `archive/<md>.<n>`; the name
/// it got there (None: there was none).
fn archive(store: &Store, md: &str) -> Result<Option<String>, StoreError> {
    if !store.exists(Group::Domains, md, "") {
        return Ok(None);
    }
    store.prepare_group(Group::Archive)?;
    for n in 1..1000 {
        let dest = format!("{md}.{n}");
        if !store.exists(Group::Archive, &dest, "") {
            return store
                .move_name(Group::Domains, md, Group::Archive, &dest)
                .map(|()| Some(dest))
                .map_err(|e| crate::store::err(format!("archiving: {e}")));
        }
    }
    Err(crate::store::err(format!("no free archive slot for {md}")))
}

/// Why a staged set was not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallError {
    /// The staged set cannot be used: it is purged (AH10069).
    Bad(String),
    /// The store could not be written (full, read-only, permissions): the
    /// staged set stays, and is installed at the next restart.
    Store(String),
}

impl From<&str> for InstallError {
    fn from(s: &str) -> Self {
        InstallError::Bad(s.to_string())
    }
}

impl From<String> for InstallError {
    fn from(s: String) -> Self {
        InstallError::Bad(s)
    }
}

/// Installs the staged set of `md` (§3.6). Returns Ok(false) when nothing
/// is staged. On [`InstallError::Bad`] the caller logs AH10069 and calls
/// [`purge_staging`]; on [`InstallError::Store`] nothing half-written is
/// left (`tmp/<md>` goes, a live set moved to the archive comes back) and
/// the staged set stays. Runs as root in the parent.
pub(crate) fn install_staged(
    store: &Store,
    md: &Md,
    notes: &mut dyn Notes,
) -> Result<bool, InstallError> {
    let res = install_staged_in(store, md, notes);
    if let Err(InstallError::Store(_)) = &res {
        store.purge(Group::Tmp, &md.name);
    }
    res
}

fn install_staged_in(store: &Store, md: &Md, notes: &mut dyn Notes) -> Result<bool, InstallError> {
    let werr = |e: crate::store::StoreError| InstallError::Store(e.msg);
    let Some(staged_json) = store
        .load_json(Group::Staging, &md.name, "md.json")
        .map_err(|e| e.msg)?
    else {
        return Ok(false);
    };
    let ca_url = staged_json
        .pointer("/ca/url")
        .and_then(Value::as_str)
        .ok_or("staged md.json has no CA url")?
        .to_string();
    // An unfinished run (keys or chains missing) has staged nothing yet.
    let complete = staged_files_present(store, md);
    if !complete {
        return Ok(false);
    }
    let mut pairs = Vec::new();
    for spec in md.effective_specs() {
        let sfx = spec.file_suffix();
        let key = store
            .load_key(Group::Staging, &md.name, &format!("privkey{sfx}.pem"))
            .map_err(|e| e.msg)?
            .ok_or_else(|| format!("no staged private key for {}", spec.name()))?;
        let pem = store
            .load_bytes(Group::Staging, &md.name, &format!("pubcert{sfx}.pem"))
            .map_err(|e| e.msg)?
            .ok_or_else(|| format!("no staged certificate for {}", spec.name()))?;
        let chain = crypto::chain_from_pem(&pem).map_err(|e| e.0)?;
        if chain.is_empty() || !key.matches(&chain[0]) {
            return Err(InstallError::Bad(format!(
                "staged certificate and key for {} do not match",
                spec.name()
            )));
        }
        pairs.push((sfx, key, pem));
    }
    // The account: keep its id, else find the same account, else a new id.
    let mut account_id = staged_json
        .pointer("/ca/account")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(acct_json) = store
        .load_json(Group::Staging, &md.name, "account.json")
        .map_err(|e| e.msg)?
    {
        let acct = Account::from_json(&acct_json).ok_or("staged account.json is incomplete")?;
        let key = store
            .load_key(Group::Staging, &md.name, crate::store::ACCOUNT_KEY)
            .map_err(|e| e.msg)?
            .ok_or("staged account.json without account.pem")?;
        let existing = store.names(Group::Accounts).into_iter().find(|id| {
            store
                .load_json(Group::Accounts, id, "account.json")
                .ok()
                .flatten()
                .and_then(|j| Account::from_json(&j))
                .is_some_and(|a| a.ca_url == acct.ca_url && a.url == acct.url && a.eab == acct.eab)
        });
        let id = account_id
            .clone()
            .or(existing)
            .unwrap_or_else(|| account::next_id(store, &ca_url));
        store
            .save_json(Group::Accounts, &id, "account.json", &acct.to_json())
            .map_err(werr)?;
        store
            .save_key(Group::Accounts, &id, crate::store::ACCOUNT_KEY, &key)
            .map_err(werr)?;
        account_id = Some(id);
    }
    // Tear down a remaining order (dns-01 records).
    if let Some(order) = store
        .load_json(Group::Staging, &md.name, "order.json")
        .ok()
        .flatten()
        .and_then(|j| crate::acme::order::Order::from_json(&j))
    {
        let env = crate::acme::challenge::ChallengeEnv::default();
        crate::acme::challenge::teardown(store, md, &env, &order.challenge_setups, notes);
    }
    // Write everything into tmp/<md>, then swap it in.
    store.purge(Group::Tmp, &md.name);
    store.prepare_group(Group::Tmp).map_err(werr)?;
    let mut live_md = md.clone();
    live_md.found.ca_url = Some(ca_url);
    live_md.found.ca_account = account_id;
    live_md.found.state = State::Complete;
    live_md.found.descr = None;
    store
        .save_json(Group::Tmp, &md.name, "md.json", &live_md.to_json())
        .map_err(werr)?;
    for (sfx, key, pem) in &pairs {
        store
            .save_key(Group::Tmp, &md.name, &format!("privkey{sfx}.pem"), key)
            .map_err(werr)?;
        store
            .save_bytes(
                Group::Tmp,
                &md.name,
                &format!("pubcert{sfx}.pem"),
                pem,
                false,
            )
            .map_err(werr)?;
    }
    if let Ok(Some(job)) = store.load_json(Group::Staging, &md.name, "job.json") {
        store
            .save_json(Group::Tmp, &md.name, "job.json", &job)
            .map_err(werr)?;
    }
    store.prepare_group(Group::Domains).map_err(werr)?;
    let archived = archive(store, &md.name).map_err(werr)?;
    // the groups the renewal job reads from are open to it from now on
    // (before the new set appears: whoever sees it sees them open)
    for g in [Group::Accounts, Group::Staging] {
        if let Err(e) = store.open_group(g) {
            notes.push(Note::new(Level::Warn, e.msg));
        }
    }
    if let Err(e) = store.move_name(Group::Tmp, &md.name, Group::Domains, &md.name) {
        // the live set comes back from the archive: nothing is lost
        if let Some(a) = archived {
            let _ = store.move_name(Group::Archive, &a, Group::Domains, &md.name);
        }
        return Err(InstallError::Store(format!("activating: {e}")));
    }
    purge_staging(store, md);
    Ok(true)
}

/// Start-up sync (§2.2 before-SSL step 8): a configured MD without a
/// `domains/<name>` entry takes over the store entry of an MD that is no
/// longer configured and has all of its domains (else the most names in
/// common), renaming `domains/` and `staging/`: a renamed MD keeps its
/// certificate, as with the C module.
pub(crate) fn sync_renames(store: &Store, mds: &[Md], notes: &mut dyn Notes) {
    let configured: Vec<&str> = mds.iter().map(|m| m.name.as_str()).collect();
    let mut orphans: Vec<(String, Vec<String>)> = store
        .names(Group::Domains)
        .into_iter()
        .filter(|n| !configured.contains(&n.as_str()))
        .filter_map(|n| {
            let j = store.load_json(Group::Domains, &n, "md.json").ok()??;
            let domains = j
                .get("domains")?
                .as_array()?
                .iter()
                .filter_map(|d| d.as_str().map(str::to_ascii_lowercase))
                .collect();
            Some((n, domains))
        })
        .collect();
    for md in mds {
        if orphans.is_empty() || store.exists(Group::Domains, &md.name, "") {
            continue;
        }
        let common = |ds: &[String]| {
            md.domains
                .iter()
                .filter(|d| ds.contains(&d.to_ascii_lowercase()))
                .count()
        };
        let best = orphans
            .iter()
            .enumerate()
            .map(|(i, (_, ds))| (common(ds), i))
            .filter(|(c, _)| *c > 0)
            .max_by_key(|(c, i)| (*c, std::cmp::Reverse(*i)));
        let Some((_, i)) = best else { continue };
        let (old, _) = orphans.remove(i);
        for g in [Group::Domains, Group::Staging] {
            if !store.exists(g, &old, "") {
                continue;
            }
            if let Err(e) = store.move_name(g, &old, g, &md.name) {
                notes.push(Note::new(
                    Level::Error,
                    format!("AH10073: syncing {} mds to registry: {e}", mds.len()),
                ));
            }
        }
        notes.push(Note::new(
            Level::Info,
            format!(
                "{}: takes over the store entry of the MD formerly named {old} (its domains are configured here now)",
                md.name
            ),
        ));
    }
}

/// Removes the staged set and challenge data of an MD.
pub(crate) fn purge_staging(store: &Store, md: &Md) {
    store.purge(Group::Staging, &md.name);
    store.purge(Group::Challenges, &md.name);
}

/// A staged certificate set that may go live without a restart (hot
/// activation): per key spec the private key (PKCS#8 DER) and the chain
/// (DER, leaf first).
#[derive(Debug, Clone)]
pub struct HotSet {
    pub pairs: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// When the set became ready (the job's `valid-from`).
    pub valid_from: Micros,
    /// SHA-256 fingerprints of the leaves (for status and logs).
    pub fingerprints: Vec<String>,
}

/// Identifies what `domains/<md>/` holds (inode, size and modification
/// time of each certificate file): empty when there is none. Installing a
/// set replaces the files, which changes it.
pub(crate) fn live_stamp(store: &Store, md: &Md) -> String {
    let mut out = String::new();
    for spec in md.effective_specs() {
        let file = format!("pubcert{}.pem", spec.file_suffix());
        if let Some(st) = store.stat(Group::Domains, &md.name, &file) {
            out.push_str(&format!("{};", st.stamp));
        }
    }
    out
}

/// The staged set of `md` if its renewal finished and its activation time
/// has come (`valid-from` ≤ now), with every key and chain present and
/// matching. Reads as the child user can: staging is its own.
pub fn hot_set(store: &Store, md: &Md, now: Micros) -> Option<HotSet> {
    let job = crate::lifecycle::jobfile::Job::load(store, Group::Staging, &md.name).ok()?;
    if !job.finished || job.valid_from > now {
        return None;
    }
    let mut pairs = Vec::new();
    let mut fingerprints = Vec::new();
    for spec in md.effective_specs() {
        let sfx = spec.file_suffix();
        let key = store
            .load_key(Group::Staging, &md.name, &format!("privkey{sfx}.pem"))
            .ok()??;
        let pem = store
            .load_bytes(Group::Staging, &md.name, &format!("pubcert{sfx}.pem"))
            .ok()??;
        let chain = crypto::chain_from_pem(&pem).ok()?;
        let leaf = chain.first()?;
        if !key.matches(leaf)
            || !md.domains.iter().all(|d| {
                crypto::cert_names(leaf).iter().any(|n| {
                    crate::config::vhost::domain_matches(n, d) || n.eq_ignore_ascii_case(d)
                })
            })
        {
            return None;
        }
        let fp = leaf.digest(openssl::hash::MessageDigest::sha256()).ok()?;
        fingerprints.push(fp.iter().map(|b| format!("{b:02x}")).collect());
        let key_der = key.pkey().private_key_to_pkcs8().ok()?;
        let chain_der = chain
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        pairs.push((key_der, chain_der));
    }
    Some(HotSet {
        pairs,
        valid_from: job.valid_from,
        fingerprints,
    })
}

/// Whether every key and chain of the MD's staged set is there.
pub(crate) fn staged_files_present(store: &Store, md: &Md) -> bool {
    md.effective_specs().iter().all(|spec| {
        let sfx = spec.file_suffix();
        store.exists(Group::Staging, &md.name, &format!("privkey{sfx}.pem"))
            && store.exists(Group::Staging, &md.name, &format!("pubcert{sfx}.pem"))
    })
}

/// When a staged set that hot activation serves must be installed, so that
/// it can be renewed in turn (the renewal job renews what `domains/` holds):
/// its certificates' renewal time, at the earliest half-way through their
/// lifetime. None when no complete set is staged.
pub(crate) fn staged_due_at(store: &Store, md: &Md, now: Micros) -> Option<Micros> {
    if !md.cert_files.is_empty() || !staged_ready(store, md, now) {
        return None;
    }
    md.effective_specs()
        .iter()
        .map(|spec| {
            let file = format!("pubcert{}.pem", spec.file_suffix());
            let pem = store.load_bytes(Group::Staging, &md.name, &file).ok()??;
            let c = CertInfo::from_pem(&spec.name(), &pem)?;
            Some(cert_renew_at(md, &c).max(c.not_before + (c.not_after - c.not_before) / 2))
        })
        .collect::<Option<Vec<Micros>>>()?
        .into_iter()
        .min()
}

/// Whether the staged set of `md` is complete and its activation time has
/// come (what a restart would install now).
pub(crate) fn staged_ready(store: &Store, md: &Md, now: Micros) -> bool {
    let Ok(job) = crate::lifecycle::jobfile::Job::load(store, Group::Staging, &md.name) else {
        return false;
    };
    job.finished
        && job.valid_from <= now
        && store.exists(Group::Staging, &md.name, "md.json")
        && staged_files_present(store, md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::crypto::Key;
    use crate::base::keyspec::KeySpec;
    use crate::testutil::{md, tmpstore};
    use std::fs;

    #[test]
    fn install_moves_staging_to_domains_and_archives() {
        let (dir, s) = tmpstore("install");
        let m = md(&["a.org"]);
        assert!(!install_staged(&s, &m, &mut vec![]).unwrap());
        let stage = |tag: &str| {
            let k = Key::generate(&KeySpec::Rsa(2048)).unwrap();
            let c = crypto::fallback_cert(&k, &["a.org".into()]).unwrap();
            s.save_key(Group::Staging, "a.org", "privkey.pem", &k)
                .unwrap();
            s.save_bytes(
                Group::Staging,
                "a.org",
                "pubcert.pem",
                &c.to_pem().unwrap(),
                false,
            )
            .unwrap();
            let mut sm = m.clone();
            sm.found.ca_url = Some(format!("https://ca.example/{tag}"));
            s.save_json(Group::Staging, "a.org", "md.json", &sm.to_json())
                .unwrap();
        };
        stage("one");
        assert!(install_staged(&s, &m, &mut vec![]).unwrap());
        let live_key = fs::read_to_string(s.path(Group::Domains, "a.org", "privkey.pem")).unwrap();
        assert!(live_key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!s.group_dir(Group::Staging).join("a.org").exists());
        let j = s
            .load_json(Group::Domains, "a.org", "md.json")
            .unwrap()
            .unwrap();
        assert_eq!(j["ca"]["url"], "https://ca.example/one");
        stage("two");
        assert!(install_staged(&s, &m, &mut vec![]).unwrap());
        assert!(s
            .group_dir(Group::Archive)
            .join("a.org.1")
            .join("pubcert.pem")
            .exists());
        // an unfinished run: nothing staged, nothing purged
        let mut sm = m.clone();
        sm.found.ca_url = Some("https://ca.example/x".into());
        s.save_json(Group::Staging, "a.org", "md.json", &sm.to_json())
            .unwrap();
        assert!(!install_staged(&s, &m, &mut vec![]).unwrap());
        assert!(s.path(Group::Staging, "a.org", "md.json").exists());
        // a key that does not match: error, the caller purges
        let k = Key::generate(&KeySpec::Rsa(2048)).unwrap();
        stage("three");
        s.save_key(Group::Staging, "a.org", "privkey.pem", &k)
            .unwrap();
        assert!(matches!(
            install_staged(&s, &m, &mut vec![]).unwrap_err(),
            InstallError::Bad(e) if e.contains("do not match")
        ));
        fs::remove_dir_all(dir).unwrap();
    }
}
