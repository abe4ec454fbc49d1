//! The registry side of the store: the state of an MD computed from its
//! live certificates (spec §3.2), renewal/warning times (§3.4), the
//! installation of staged sets (§3.6) and fallback certificates (§2.4).

use crate::acme::account::{self, Account};
use crate::base::crypto;
use crate::base::keyspec::KeySpec;
use crate::base::log::{Level, Note};
use crate::base::time::Micros;
use crate::config::{Md, State};
use crate::store::{Group, Store};
use openssl::x509::X509;
use serde::Deserialize;
use serde_json::Value;
use std::fs;

/// Facts about one live certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// `rsa`, the curve name, or "0", "1"… for static files.
    pub key_name: String,
    pub not_before: Micros,
    pub not_after: Micros,
    pub names: Vec<String>,
    pub must_staple: bool,
    /// PEM of the whole chain as stored.
    pub chain_pem: Vec<u8>,
    /// The leaf, parsed once (status pages ask for it on every request).
    leaf: X509,
    /// SHA-256 fingerprint of the leaf, lower-case hex.
    pub sha256_hex: String,
    /// The OCSP responder the certificate names, if any.
    pub ocsp_url: Option<String>,
}

fn has_must_staple(c: &X509) -> bool {
    // TLS Feature extension, DER OID 1.3.6.1.5.5.7.1.24
    const OID: [u8; 10] = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x18];
    c.to_der()
        .map(|d| d.windows(OID.len()).any(|w| w == OID))
        .unwrap_or(false)
}

impl CertInfo {
    pub fn from_pem(key_name: &str, pem: &[u8]) -> Option<CertInfo> {
        let chain = crypto::chain_from_pem(pem).ok()?;
        Self::from_leaf(key_name, pem, chain.first()?)
    }

    /// From a chain's PEM and its parsed leaf.
    pub fn from_leaf(key_name: &str, pem: &[u8], leaf: &X509) -> Option<CertInfo> {
        Some(CertInfo {
            key_name: key_name.to_string(),
            not_before: crypto::asn1_micros(leaf.not_before()),
            not_after: crypto::asn1_micros(leaf.not_after()),
            names: crypto::cert_names(leaf),
            must_staple: has_must_staple(leaf),
            chain_pem: pem.to_vec(),
            sha256_hex: crate::base::util::hex(
                &leaf.digest(openssl::hash::MessageDigest::sha256()).ok()?,
            ),
            ocsp_url: leaf
                .ocsp_responders()
                .ok()
                .and_then(|r| r.iter().next().map(|u| u.to_string())),
            leaf: leaf.clone(),
        })
    }

    /// The leaf certificate (a reference-counted handle, no parsing).
    pub fn leaf(&self) -> Option<X509> {
        Some(self.leaf.clone())
    }

    /// Whether the certificate covers `name` (exactly or by a wildcard).
    pub fn covers(&self, name: &str) -> bool {
        self.names
            .iter()
            .any(|n| crate::config::vhost::domain_matches(n, name) || n.eq_ignore_ascii_case(name))
    }
}

/// The (key, chain) files mod_ssl gets for an MD's SSL vhost (§2.4): the
/// static files as configured, else the live pairs that exist.
/// Files start-up found broken ([`crate::store::sets::check`]) are never among
/// them: a static set with one goes entirely (its vhosts get the fallback).
pub fn servable_files(store: &Store, md: &Md) -> Vec<(String, String)> {
    if !md.cert_files.is_empty() && !md.found.broken.is_empty() {
        return Vec::new();
    }
    crate::store::sets::live_files(store, md)
        .into_iter()
        .filter(|(_, key, cert)| {
            !md.cert_files.is_empty()
                || (std::path::Path::new(key).exists()
                    && std::path::Path::new(cert).exists()
                    && !md.found.broken.contains(cert))
        })
        .map(|(_, key, cert)| (key, cert))
        .collect()
}

/// The state of an MD from its live certificates (§3.2).
pub fn compute_state(store: &Store, md: &Md) -> (State, Option<String>, Vec<Option<CertInfo>>) {
    let mut certs = Vec::new();
    let mut state = State::Complete;
    let mut descr = None;
    for (name, _key, chain) in crate::store::sets::live_files(store, md) {
        // a broken live pair that could not be set aside counts as missing
        let unusable = md.cert_files.is_empty() && md.found.broken.contains(&chain);
        let read = if unusable {
            Err(None)
        } else {
            crate::store::sets::read_chain(std::path::Path::new(&chain))
                .map_err(|b| (std::path::Path::new(&chain).exists()).then_some(b))
        };
        let info = match read {
            Err(None) => {
                if state == State::Complete {
                    state = State::Incomplete;
                    descr = Some(format!("certificate({name}) is missing"));
                }
                certs.push(None);
                continue;
            }
            Err(Some(_)) => {
                state = State::Error;
                descr = Some("error initializing".into());
                certs.push(None);
                continue;
            }
            Ok(c) => match CertInfo::from_leaf(&name, &c.pem, &c.leaf) {
                None => {
                    state = State::Error;
                    descr = Some("error initializing".into());
                    certs.push(None);
                    continue;
                }
                Some(i) => i,
            },
        };
        if state == State::Complete {
            if !md.domains.iter().all(|d| info.covers(d)) {
                state = State::Incomplete;
                descr = Some(format!("certificate({name}) does not cover all domains."));
            } else if md.cert_files.is_empty()
                && info.must_staple != md.must_staple
                // a CA that runs no OCSP responder issues no must-staple
                // certificates: another order would get the same (a
                // renewal loop); the start-up warns about it instead
                && !(md.must_staple && info.ocsp_url.is_none())
            {
                state = State::Incomplete;
                descr = Some(format!(
                    "'must-staple' is{} requested, but certificate({name}) has it{} enabled.",
                    if md.must_staple { "" } else { " not" },
                    if info.must_staple { "" } else { " not" },
                ));
            }
        }
        certs.push(Some(info));
    }
    if !md.cert_files.is_empty() && !md.found.broken.is_empty() {
        state = State::Error;
        descr = Some("the static certificate files cannot be used (see the error log)".into());
    }
    (state, descr, certs)
}

/// Certificates that live less than this renew at half their lifetime at
/// the latest, whatever the renew window says (6-day certificates).
pub const SHORT_LIVED: Micros =
    10 * crate::base::time::SECS_PER_DAY * crate::base::time::USEC_PER_SEC;

/// The start of a certificate's renew window: `MDRenewWindow` applied to
/// its real lifetime; a short-lived one ([`SHORT_LIVED`]) renews at half
/// its lifetime at the latest.
pub fn cert_renew_at(md: &Md, c: &CertInfo) -> Micros {
    let life = c.not_after - c.not_before;
    let at = c.not_after - md.renew_window.length_within(life);
    if life < SHORT_LIVED {
        at.min(c.not_before + life / 2)
    } else {
        at
    }
}

/// When to renew (§3.4): the earliest start of a renew window; `now` for
/// incomplete MDs or missing certificates.
pub fn renew_at(md: &Md, state: State, certs: &[Option<CertInfo>], now: Micros) -> Micros {
    if state != State::Complete || certs.iter().any(Option::is_none) {
        return now;
    }
    certs
        .iter()
        .flatten()
        .map(|c| cert_renew_at(md, c))
        .min()
        .unwrap_or(now)
}

/// When the warn window starts.
pub fn warn_at(md: &Md, certs: &[Option<CertInfo>]) -> Option<Micros> {
    certs
        .iter()
        .flatten()
        .map(|c| c.not_after - md.warn_window.length_within(c.not_after - c.not_before))
        .min()
}

/// Keeps what the store knows and the config does not say (§2.2 after-SSL
/// step 2): contacts, CA URL and account of the stored md.json.
pub fn merge_stored(md: &mut Md, stored: Option<&Value>) {
    let Some(j) = stored else { return };
    let Ok(st) = crate::config::StoredMd::deserialize(j) else {
        return;
    };
    if md.contacts.is_empty() && !st.contacts.is_empty() {
        md.contacts = st.contacts;
    }
    if md.found.ca_url.is_none() {
        md.found.ca_url = st.ca.url;
    }
    if md.found.ca_account.is_none() {
        md.found.ca_account = st.ca.account;
    }
}

/// Writes `domains/<md>/md.json` when it differs from what is there.
pub fn sync_md_json(store: &Store, md: &Md) -> Result<bool, String> {
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
    let dir = store
        .ensure_name_dir(Group::Domains, &md.name)
        .map_err(|e| e.msg)?;
    crate::base::util::write_atomic_nosync(
        &dir.join("md.json"),
        crate::base::util::json_pretty(&new).as_bytes(),
        crate::store::file_mode(Group::Domains, false),
    )
    .map_err(|e| format!("cannot write {}/md.json: {e}", dir.display()))?;
    Ok(true)
}

/// The fallback key/certificate pairs of an MD, created when missing
/// (§2.4; existing ones are reused even when expired) with keys from
/// `keys`. Returns (key path, cert path) per key spec.
pub fn ensure_fallbacks(
    store: &Store,
    md: &Md,
    keys: &crypto::KeyCache,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for spec in md.effective_specs() {
        let sfx = spec.file_suffix();
        let kf = format!("fallback-privkey{sfx}.pem");
        let cf = format!("fallback-pubcert{sfx}.pem");
        let kp = store.path(Group::Domains, &md.name, &kf);
        let cp = store.path(Group::Domains, &md.name, &cf);
        // existing ones are reused (even expired), unless mod_ssl could not
        // load them: then they are made again
        let usable =
            kp.exists() && cp.exists() && crate::store::sets::check_pair(&kp, &cp, false).is_ok();
        // (a damaged key is replaced below, a certificate is made for the
        // key on disk: nothing another node just made is removed)
        if !usable {
            let kspec = match &spec {
                KeySpec::Ec(c) if c.eq_ignore_ascii_case("x25519") => KeySpec::Ec("P-256".into()),
                s => s.clone(),
            };
            let fail = |e: String| {
                format!(
                    "{}: make fallback {} certificate: {e}",
                    md.name,
                    spec.name()
                )
            };
            // The key is created only where there is none, atomically, and
            // the certificate is made for the key on disk: nodes of a
            // cluster starting together over one store never leave a key
            // with another one's certificate (which mod_ssl refuses).
            let on_disk = store.load_key(Group::Domains, &md.name, &kf);
            let key = match on_disk {
                Ok(Some(k)) => k,
                _ => {
                    let k = keys.get(&kspec).map_err(|e| fail(e.to_string()))?;
                    if on_disk.is_err() {
                        // damaged: replaced (a missing one is never removed:
                        // another node may have created it just now)
                        store.remove(Group::Domains, &md.name, &kf);
                    }
                    if store
                        .save_key_new(Group::Domains, &md.name, &kf, &k)
                        .map_err(|e| e.msg)?
                    {
                        k
                    } else {
                        store
                            .load_key(Group::Domains, &md.name, &kf)
                            .map_err(|e| e.msg)?
                            .ok_or_else(|| fail(format!("{} vanished", kp.display())))?
                    }
                }
            };
            let cert = crypto::fallback_cert(&key, &md.domains).map_err(|e| e.0)?;
            store
                .save_bytes(
                    Group::Domains,
                    &md.name,
                    &cf,
                    &cert.to_pem().map_err(|e| e.to_string())?,
                    false,
                )
                .map_err(|e| e.msg)?;
        }
        out.push((kp.display().to_string(), cp.display().to_string()));
    }
    Ok(out)
}

/// The fallback pairs of an MD made in `dir` (outside the store, when the
/// store cannot be written): made anew, key 0600, certificate 0644.
pub fn fallbacks_in(
    dir: &std::path::Path,
    md: &Md,
    keys: &crypto::KeyCache,
) -> Result<Vec<(String, String)>, String> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for spec in md.effective_specs() {
        let sfx = spec.file_suffix();
        let kspec = match &spec {
            KeySpec::Ec(c) if c.eq_ignore_ascii_case("x25519") => KeySpec::Ec("P-256".into()),
            s => s.clone(),
        };
        let key = keys.get(&kspec).map_err(|e| e.to_string())?;
        let cert = crypto::fallback_cert(&key, &md.domains).map_err(|e| e.0)?;
        let kp = dir.join(format!("fallback-privkey{sfx}.pem"));
        let cp = dir.join(format!("fallback-pubcert{sfx}.pem"));
        let kpem = key.to_pem(None).map_err(|e| e.0)?;
        let cpem = cert.to_pem().map_err(|e| e.to_string())?;
        crate::base::util::write_atomic(&kp, &kpem, 0o600)
            .and_then(|()| crate::base::util::write_atomic(&cp, &cpem, 0o644))
            .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
        out.push((kp.display().to_string(), cp.display().to_string()));
    }
    Ok(out)
}

/// Moves a directory `domains/<md>` out of the way into `archive/<md>.<n>`;
/// where it went (None: there was none).
fn archive(store: &Store, md: &str) -> Result<Option<std::path::PathBuf>, String> {
    let live = store.group_dir(Group::Domains).join(md);
    if !live.exists() {
        return Ok(None);
    }
    store.ensure_group(Group::Archive, None).map_err(|e| {
        format!(
            "cannot create {}: {e}",
            store.group_dir(Group::Archive).display()
        )
    })?;
    for n in 1..1000 {
        let dest = store.group_dir(Group::Archive).join(format!("{md}.{n}"));
        if !dest.exists() {
            return fs::rename(&live, &dest)
                .map(|()| Some(dest))
                .map_err(|e| format!("archiving {}: {e}", live.display()));
        }
    }
    Err(format!("no free archive slot for {md}"))
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
pub fn install_staged(store: &Store, md: &Md, notes: &mut Vec<Note>) -> Result<bool, InstallError> {
    let res = install_staged_in(store, md, notes);
    if let Err(InstallError::Store(_)) = &res {
        store.purge(Group::Tmp, &md.name);
    }
    res
}

fn install_staged_in(store: &Store, md: &Md, notes: &mut Vec<Note>) -> Result<bool, InstallError> {
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
        let env = crate::acme::order::ChallengeEnv::default();
        crate::acme::order::teardown(store, md, &env, &order.challenge_setups, notes);
    }
    // Write everything into tmp/<md>, then swap it in.
    store.purge(Group::Tmp, &md.name);
    store.ensure_group(Group::Tmp, None).map_err(|e| {
        InstallError::Store(format!(
            "cannot create {}: {e}",
            store.group_dir(Group::Tmp).display()
        ))
    })?;
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
    store.ensure_group(Group::Domains, None).map_err(|e| {
        InstallError::Store(format!(
            "cannot create {}: {e}",
            store.group_dir(Group::Domains).display()
        ))
    })?;
    let archived = archive(store, &md.name).map_err(InstallError::Store)?;
    // the groups the renewal job reads from are open to it from now on
    // (before the new set appears: whoever sees it sees them open)
    for g in [Group::Accounts, Group::Staging] {
        if let Err(e) = store.open_group(g) {
            notes.push(Note::new(Level::Warn, e.msg));
        }
    }
    let tmp = store.group_dir(Group::Tmp).join(&md.name);
    let live = store.group_dir(Group::Domains).join(&md.name);
    if let Err(e) = fs::rename(&tmp, &live) {
        // the live set comes back from the archive: nothing is lost
        if let Some(a) = archived {
            let _ = fs::rename(&a, &live);
        }
        return Err(InstallError::Store(format!(
            "activating {}: {e}",
            live.display()
        )));
    }
    purge_staging(store, md);
    Ok(true)
}

/// Start-up sync (§2.2 before-SSL step 8): a configured MD without a
/// `domains/<name>` entry takes over the store entry of an MD that is no
/// longer configured and has all of its domains (else the most names in
/// common), renaming `domains/` and `staging/`: a renamed MD keeps its
/// certificate, as with the C module.
pub fn sync_renames(store: &Store, mds: &[Md], notes: &mut Vec<Note>) {
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
        if orphans.is_empty() || store.group_dir(Group::Domains).join(&md.name).exists() {
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
            let from = store.group_dir(g).join(&old);
            if !from.exists() {
                continue;
            }
            let to = store.group_dir(g).join(&md.name);
            if let Err(e) = fs::rename(&from, &to) {
                notes.push(Note::new(
                    Level::Error,
                    format!(
                        "AH10073: syncing {} mds to registry: renaming {} to {}: {e}",
                        mds.len(),
                        from.display(),
                        to.display()
                    ),
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
pub fn purge_staging(store: &Store, md: &Md) {
    store.purge(Group::Staging, &md.name);
    store.purge(Group::Challenges, &md.name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::crypto::Key;
    use crate::base::time;
    use crate::config::{MdDef, Settings};

    fn md(domains: &[&str]) -> Md {
        let def = MdDef::new(domains.iter().map(|s| s.to_string()).collect());
        Md::from_def(&def, &Settings::default(), None)
    }

    #[test]
    fn short_lived_certificates_renew_at_half_their_lifetime_at_the_latest() {
        let day = time::from_secs(time::SECS_PER_DAY);
        let mut m = md(&["a.org"]);
        let key = crate::base::crypto::Key::generate(&KeySpec::Default).unwrap();
        let pem = crate::base::crypto::fallback_cert(&key, &["a.org".into()])
            .unwrap()
            .to_pem()
            .unwrap();
        let mut c = CertInfo::from_pem("rsa", &pem).unwrap();
        // 6 days: a window of 33 % is 2 days of the real lifetime, but a
        // certificate of under 10 days renews half-way at the latest
        c.not_before = 100 * day;
        c.not_after = 106 * day;
        m.renew_window = time::TimeSlice::percent_of(day, 33);
        assert_eq!(cert_renew_at(&m, &c), 103 * day);
        // 6 days with a window of 4 days: as configured (earlier)
        m.renew_window = time::TimeSlice::parse("4d", day).unwrap();
        assert_eq!(cert_renew_at(&m, &c), 102 * day);
        // 12 days, 33 %: 4 days before the end, the window of the real
        // lifetime (not of the 90-day norm)
        c.not_after = 112 * day;
        m.renew_window = time::TimeSlice::percent_of(day, 33);
        assert_eq!(
            cert_renew_at(&m, &c),
            c.not_after - time::from_secs(12 * time::SECS_PER_DAY * 33 / 100)
        );
        // 90 days, one day: as configured
        m.renew_window = time::TimeSlice::parse("1d", day).unwrap();
        c.not_after = 190 * day;
        assert_eq!(cert_renew_at(&m, &c), 189 * day);
    }

    fn tmpstore(tag: &str) -> (std::path::PathBuf, Store) {
        let d = std::env::temp_dir().join(format!("md-reg-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let s = Store::open(&d, None, &mut Vec::new()).unwrap();
        (d, s)
    }

    #[test]
    fn fallbacks_of_a_generation_share_one_key_per_type() {
        let (dir, s) = tmpstore("fbkeys");
        let keys = crypto::KeyCache::default();
        let (a, b) = (md(&["a.org"]), md(&["b.org"]));
        let fa = ensure_fallbacks(&s, &a, &keys).unwrap();
        let fb = ensure_fallbacks(&s, &b, &keys).unwrap();
        let pem = |p: &str| fs::read(p).unwrap();
        assert_eq!(pem(&fa[0].0), pem(&fb[0].0), "one key generation for both");
        assert_ne!(pem(&fa[0].1), pem(&fb[0].1), "each MD its own certificate");
        let info = CertInfo::from_pem("rsa", &pem(&fb[0].1)).unwrap();
        assert_eq!(info.names, ["b.org"]);
        // private keys stay the owner's alone
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&fb[0].0).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn nodes_making_fallbacks_together_leave_matching_pairs() {
        // nodes of a cluster starting at once over one store, each with
        // its own keys: whatever the interleaving, key and certificate match
        let (dir, s) = tmpstore("fbrace");
        let m = md(&["race.org"]);
        // each node's keys, made before the races
        let caches: Vec<_> = (0..8)
            .map(|_| {
                let keys = std::sync::Arc::new(crypto::KeyCache::default());
                for spec in m.effective_specs() {
                    keys.get(&spec).unwrap();
                }
                keys
            })
            .collect();
        for _round in 0..10 {
            let _ = fs::remove_dir_all(s.group_dir(Group::Domains).join("race.org"));
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let handles: Vec<_> = caches
                .iter()
                .map(|keys| {
                    let (s, m, b, keys) = (s.clone(), m.clone(), barrier.clone(), keys.clone());
                    std::thread::spawn(move || {
                        b.wait();
                        let fb = ensure_fallbacks(&s, &m, &keys).unwrap();
                        // what mod_ssl reads right after the hook returns
                        let key = s
                            .load_key(Group::Domains, "race.org", "fallback-privkey.pem")
                            .unwrap()
                            .unwrap();
                        let pem = fs::read(&fb[0].1).unwrap();
                        key.matches(&openssl::x509::X509::from_pem(&pem).unwrap())
                    })
                })
                .collect();
            for h in handles {
                assert!(h.join().unwrap(), "fallback key and certificate differ");
            }
        }
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn states_and_fallbacks() {
        let (dir, s) = tmpstore("state");
        let m = md(&["a.org", "www.a.org"]);
        let (st, descr, certs) = compute_state(&s, &m);
        assert_eq!(st, State::Incomplete);
        assert_eq!(descr.as_deref(), Some("certificate(rsa) is missing"));
        assert_eq!(renew_at(&m, st, &certs, 42), 42);
        let fb = ensure_fallbacks(&s, &m, &Default::default()).unwrap();
        assert_eq!(fb.len(), 1);
        assert!(fb[0].0.ends_with("domains/a.org/fallback-privkey.pem"));
        let before = fs::read(&fb[0].1).unwrap();
        ensure_fallbacks(&s, &m, &Default::default()).unwrap();
        assert_eq!(fs::read(&fb[0].1).unwrap(), before, "fallbacks are reused");
        let info = CertInfo::from_pem("rsa", &before).unwrap();
        assert_eq!(info.names, ["a.org", "www.a.org"]);
        assert_eq!(
            (info.not_after - info.not_before) / time::USEC_PER_SEC,
            14 * 86400
        );
        // a self-signed cert in place of the real one: complete, renew at 33%
        fs::copy(&fb[0].1, s.path(Group::Domains, "a.org", "pubcert.pem")).unwrap();
        let (st, _, certs) = compute_state(&s, &m);
        assert_eq!(st, State::Complete);
        let at = renew_at(&m, st, &certs, 0);
        let c = certs[0].as_ref().unwrap();
        assert_eq!(at, c.not_after - time::from_secs(14 * 86400 * 33 / 100));
        // a name not covered
        let m2 = md(&["a.org", "new.a.org"]);
        let (st, descr, _) = compute_state(&s, &m2);
        assert_eq!(st, State::Incomplete);
        assert_eq!(
            descr.as_deref(),
            Some("certificate(rsa) does not cover all domains.")
        );
        fs::remove_dir_all(dir).unwrap();
    }

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

/// The challenge types an MD can use, in order of preference (§4.6).
pub fn challenge_types(
    md: &Md,
    http_ok: bool,
    https_ok: bool,
    dns01_cmd: bool,
) -> Result<Vec<String>, String> {
    if !md.ca_challenges.is_empty() {
        return Ok(md.ca_challenges.clone());
    }
    let mut out = Vec::new();
    let mut why = Vec::new();
    if https_ok && !md.found.acme_tls_1_domains.is_empty() {
        out.push("tls-alpn-01".to_string());
    } else if !https_ok {
        why.push("The https: challenge 'tls-alpn-01' is disabled because the server seems not reachable on public port 443.");
    } else {
        why.push("The https: challenge 'tls-alpn-01' is disabled because the Protocols configuration does not allow 'acme-tls/1' for any of its domains.");
    }
    if http_ok {
        out.push("http-01".to_string());
    } else {
        why.insert(0, "The http: challenge 'http-01' is disabled because the server seems not reachable on public port 80.");
    }
    if dns01_cmd || md.dns01_cmd.is_some() {
        out.push("dns-01".to_string());
    } else {
        why.push("The DNS challenge 'dns-01' is disabled because the directive 'MDChallengeDns01' is not configured.");
    }
    if out.is_empty() {
        return Err(format!(
            "None of the ACME challenge methods configured for this domain are suitable. {}",
            why.join(" ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod challenge_tests {
    use super::*;
    use crate::config::{MdDef, Settings};

    #[test]
    fn selection() {
        let def = MdDef::new(vec!["a.org".into()]);
        let mut m = Md::from_def(&def, &Settings::default(), None);
        assert_eq!(challenge_types(&m, true, true, false).unwrap(), ["http-01"]);
        m.found.acme_tls_1_domains = vec!["a.org".into()];
        assert_eq!(
            challenge_types(&m, true, true, true).unwrap(),
            ["tls-alpn-01", "http-01", "dns-01"]
        );
        let e = challenge_types(&m, false, false, false).unwrap_err();
        assert!(e.starts_with("None of the ACME challenge methods configured for this domain are suitable. The http: challenge 'http-01' is disabled because the server seems not reachable on public port 80. The https: challenge"), "{e}");
        m.ca_challenges = vec!["dns-01".into()];
        assert_eq!(
            challenge_types(&m, false, false, false).unwrap(),
            ["dns-01"]
        );
    }
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
pub fn live_stamp(store: &Store, md: &Md) -> String {
    use std::os::unix::fs::MetadataExt;
    let mut out = String::new();
    for spec in md.effective_specs() {
        let p = store.path(
            Group::Domains,
            &md.name,
            &format!("pubcert{}.pem", spec.file_suffix()),
        );
        if let Ok(m) = std::fs::metadata(&p) {
            out.push_str(&format!(
                "{}:{}:{}.{};",
                m.ino(),
                m.len(),
                m.mtime(),
                m.mtime_nsec()
            ));
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
pub fn staged_files_present(store: &Store, md: &Md) -> bool {
    md.effective_specs().iter().all(|spec| {
        let sfx = spec.file_suffix();
        store
            .path(Group::Staging, &md.name, &format!("privkey{sfx}.pem"))
            .exists()
            && store
                .path(Group::Staging, &md.name, &format!("pubcert{sfx}.pem"))
                .exists()
    })
}

/// Identifier limits of profiles as Let's Encrypt documents them (2026):
/// its `shortlived` and `tlsserver` profiles allow at most 25 identifiers
/// in a certificate.
const LETSENCRYPT_PROFILE_LIMITS: [(&str, usize); 2] = [("shortlived", 25), ("tlsserver", 25)];

/// An error for an MD with more names than its CA's profile allows, where
/// the CA states the limit (Let's Encrypt's profiles): said at start-up,
/// before an order is refused.
pub fn profile_limit_error(md: &Md) -> Option<String> {
    let p = md.profile.as_deref()?;
    let ca = md.ca_urls.first()?;
    if !ca.contains("api.letsencrypt.org") {
        return None;
    }
    let (_, limit) = LETSENCRYPT_PROFILE_LIMITS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(p))?;
    let n = crate::acme::order::order_identifiers(&md.domains).len();
    (n > *limit).then(|| {
        format!(
            "md[{}]: {n} names, but the CA's '{p}' profile allows at most {limit} identifiers in a certificate: split the MD into several, or choose another profile (MDProfile)",
            md.name
        )
    })
}

/// When a staged set that hot activation serves must be installed, so that
/// it can be renewed in turn (the renewal job renews what `domains/` holds):
/// its certificates' renewal time, at the earliest half-way through their
/// lifetime. None when no complete set is staged.
pub fn staged_due_at(store: &Store, md: &Md, now: Micros) -> Option<Micros> {
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
pub fn staged_ready(store: &Store, md: &Md, now: Micros) -> bool {
    let Ok(job) = crate::lifecycle::jobfile::Job::load(store, Group::Staging, &md.name) else {
        return false;
    };
    job.finished
        && job.valid_from <= now
        && store.path(Group::Staging, &md.name, "md.json").exists()
        && staged_files_present(store, md)
}
