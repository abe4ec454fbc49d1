//! ACME accounts (spec §4.3): `accounts/<id>/account.{json,pem}` and the
//! staged `staging/<md>/account.{json,pem}`, selection, validation and
//! registration.

use super::{json_body, AResult, Acme, AcmeError, Kind};
use crate::base::crypto::{self, Key};
use crate::base::keyspec::KeySpec;
use crate::base::log::{Level, Note, Notes};
use crate::config::Md;
use crate::store::{Group, Store, ACCOUNT_KEY};
use serde_json::{json, Map, Value};

/// Account key size (RSA).
pub const ACCOUNT_KEY_BITS: u32 = 3072;

/// An account as `account.json` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub status: Option<String>,
    pub url: String,
    pub ca_url: String,
    pub contact: Vec<String>,
    pub registration: Value,
    pub agreement: Option<String>,
    pub orders: Option<String>,
    pub eab: Option<(String, String)>,
}

impl Account {
    pub(crate) fn to_json(&self) -> Value {
        let mut o = Map::new();
        if let Some(s) = &self.status {
            o.insert("status".into(), json!(s));
        }
        o.insert("url".into(), json!(self.url));
        o.insert("ca-url".into(), json!(self.ca_url));
        o.insert("contact".into(), json!(self.contact));
        o.insert("registration".into(), self.registration.clone());
        if let Some(a) = &self.agreement {
            o.insert("agreement".into(), json!(a));
        }
        if let Some(a) = &self.orders {
            o.insert("orders".into(), json!(a));
        }
        if let Some((k, h)) = &self.eab {
            o.insert("eab".into(), json!({"kid": k, "hmac": h}));
        }
        Value::Object(o)
    }

    /// Reads `account.json`; `url` and `ca-url` are mandatory. Legacy
    /// `registration.contact` and `terms-of-service` are understood.
    pub fn from_json(j: &Value) -> Option<Account> {
        let s = |k: &str| j.get(k).and_then(Value::as_str).map(str::to_string);
        let strs = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut contact = strs(j.get("contact"));
        if contact.is_empty() {
            contact = strs(j.pointer("/registration/contact"));
        }
        Some(Account {
            status: s("status"),
            url: s("url")?,
            ca_url: s("ca-url")?,
            contact,
            registration: j.get("registration").cloned().unwrap_or(Value::Null),
            agreement: s("agreement").or_else(|| s("terms-of-service")),
            orders: s("orders"),
            eab: match (
                j.pointer("/eab/kid").and_then(Value::as_str),
                j.pointer("/eab/hmac").and_then(Value::as_str),
            ) {
                (Some(k), Some(h)) => Some((k.to_string(), h.to_string())),
                _ => None,
            },
        })
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.status.as_deref() == Some("valid")
    }
}

/// `ACME-<host>-`: the CA host's last 16 characters (§4.3).
pub(crate) fn id_prefix(ca_url: &str) -> String {
    let host = crate::base::uri::host_of(ca_url).unwrap_or("unknown");
    let start = host.len().saturating_sub(16);
    let host = host.get(start..).unwrap_or(host);
    format!("ACME-{host}-")
}

/// The first free account id for a CA.
pub(crate) fn next_id(store: &Store, ca_url: &str) -> String {
    let prefix = id_prefix(ca_url);
    let taken = store.names(Group::Accounts);
    (0..10000)
        .map(|n| format!("{prefix}{n:04}"))
        .find(|id| !taken.contains(id))
        .unwrap_or_else(|| format!("{prefix}9999"))
}

/// The EAB an MD asks for: None = no EAB (also `kid none`).
pub(crate) fn md_eab(md: &Md) -> Option<(String, String)> {
    md.eab
        .as_ref()
        .filter(|e| e.kid != "none")
        .and_then(|e| e.hmac.clone().map(|h| (e.kid.clone(), h)))
}

fn eab_matches(md: &Md, acct: &Account) -> bool {
    md_eab(md) == acct.eab
}

/// Where an account was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `accounts/<id>`.
    Stored(String),
    /// `staging/<name>/account.json` (new, not yet installed).
    Staged(String),
}

/// Why a stored account cannot be used, or an operator's account command
/// failed; the text names the file or the CA's answer and the reason.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountError {
    /// The store could not be read or written.
    Store(crate::store::StoreError),
    /// `account.json` lacks the account URL or the CA (the file).
    Incomplete(String),
    /// `account.json` without its key (the missing file).
    KeyMissing(String),
    /// No account of this id in the store.
    Unknown { id: String, store: String },
    /// A key could not be made.
    Key(crate::base::crypto::CryptoError),
    /// The CA refused or failed a request; `what` says which.
    Ca { what: String, error: AcmeError },
    /// The CA has the account, but it is not usable.
    NotValid { url: String, status: String },
    /// The account is in the store already.
    AlreadyStored { url: String, id: String },
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::Store(e) => write!(f, "{e}"),
            AccountError::Incomplete(file) => {
                write!(f, "{file} is incomplete (no account url or CA)")
            }
            AccountError::KeyMissing(file) => write!(f, "{file} is missing"),
            AccountError::Unknown { id, store } => write!(f, "no account {id} in {store}"),
            AccountError::Key(e) => f.write_str(&e.0),
            AccountError::Ca { what, error } if what.is_empty() => write!(f, "{error}"),
            AccountError::Ca { what, error } => write!(f, "{what}: {error}"),
            AccountError::NotValid { url, status } => {
                write!(f, "the account {url} is {status} at the CA")
            }
            AccountError::AlreadyStored { url, id } => {
                write!(f, "the account {url} is stored already, as {id}")
            }
        }
    }
}

impl From<crate::store::StoreError> for AccountError {
    fn from(e: crate::store::StoreError) -> Self {
        AccountError::Store(e)
    }
}

fn ca_err(what: impl Into<String>) -> impl FnOnce(AcmeError) -> AccountError {
    let what = what.into();
    move |error| AccountError::Ca { what, error }
}

/// Reads an account and its key. `Ok(None)`: there is none; `Err`: there is
/// one, but it cannot be used.
pub fn load(store: &Store, src: &Source) -> Result<Option<(Account, Key)>, AccountError> {
    let (g, name) = match src {
        Source::Stored(id) => (Group::Accounts, id.as_str()),
        Source::Staged(md) => (Group::Staging, md.as_str()),
    };
    let Some(j) = store.load_json(g, name, "account.json")? else {
        return Ok(None);
    };
    let acct = Account::from_json(&j)
        .ok_or_else(|| AccountError::Incomplete(store.describe(g, name, "account.json")))?;
    let key = store
        .load_key(g, name, ACCOUNT_KEY)?
        .ok_or_else(|| AccountError::KeyMissing(store.describe(g, name, ACCOUNT_KEY)))?;
    Ok(Some((acct, key)))
}

fn save(store: &Store, src: &Source, acct: &Account) {
    let (g, name) = match src {
        Source::Stored(id) => (Group::Accounts, id.as_str()),
        Source::Staged(md) => (Group::Staging, md.as_str()),
    };
    let _ = store.save_json(g, name, "account.json", &acct.to_json());
}

/// Accounts this process validated recently (URL → when): MDs renewing
/// together do not ask the CA about the same account again and again.
static VALIDATED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
> = std::sync::LazyLock::new(Default::default);
const VALIDATED_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// Asks the CA whether the account still works (§4.3): POST-as-GET to its
/// URL, with a ToS agreement retry when the CA wants one. An account this
/// process validated within the last minutes counts as valid.
fn validate(acme: &mut Acme, acct: &mut Account) -> AResult<()> {
    let recent = VALIDATED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&acct.url)
        .is_some_and(|t| t.elapsed() < VALIDATED_FOR);
    if recent && acct.is_valid() {
        return Ok(());
    }
    validate_at_ca(acme, acct)?;
    VALIDATED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(acct.url.clone(), std::time::Instant::now());
    Ok(())
}

fn validate_at_ca(acme: &mut Acme, acct: &mut Account) -> AResult<()> {
    let mut r = acme.post_as_get(&acct.url);
    if let Err(e) = &r {
        if e.kind == Kind::Invalid
            && (acct.agreement.is_some() || acme.dir.terms_of_service.is_none())
        {
            let url = acct.url.clone();
            r = acme.post(&url, Some(&json!({"termsOfServiceAgreed": true})), false);
        }
    }
    let r = r?;
    if let Some(j) = json_body(&r) {
        if let Some(s) = j.get("status").and_then(Value::as_str) {
            acct.status = Some(s.to_string());
        }
        acct.registration = j;
    }
    if !acct.is_valid() {
        return Err(AcmeError::new(
            Kind::Denied,
            format!(
                "account {} is {}",
                acct.url,
                acct.status.as_deref().unwrap_or("unknown")
            ),
        ));
    }
    Ok(())
}

/// Chooses (or registers) the account for `md` at the CA `acme` talks to,
/// and makes it the account of `acme`. Returns where it lives. A new
/// account is written to `staging/<md>/` and only moves to `accounts/` when
/// the staged set is installed.
pub(crate) fn select(
    acme: &mut Acme,
    store: &Store,
    md: &Md,
    notes: &mut dyn Notes,
) -> AResult<Source> {
    let ca_url = acme.dir.url.clone();
    if let Some(id) = &md.found.ca_account {
        if !store.exists(Group::Accounts, id, "") {
            notes.push(Note::new(
                Level::Warn,
                format!(
                    "{}: the ACME account {id} recorded for this MD is missing ({}); another \
                     stored account or a new registration takes its place",
                    md.name,
                    store.describe(Group::Accounts, id, "")
                ),
            ));
        }
    }
    // Listed again before a registration: a restart that installed a
    // staged account moved it from `staging/` to `accounts/` between the
    // two listings (seen with nodes of a cluster restarting).
    let mut tried: Option<Vec<Source>> = None;
    for _ in 0..3 {
        let candidates = candidates(store, md, &ca_url);
        if tried.as_ref() == Some(&candidates) {
            break;
        }
        if let Some(src) = use_first_usable(acme, store, md, &ca_url, &candidates, notes)? {
            return Ok(src);
        }
        tried = Some(candidates);
    }
    register(acme, store, md, notes)?;
    Ok(Source::Staged(md.name.clone()))
}

/// Where accounts for `md` at `ca_url` may be, most fitting first.
fn candidates(store: &Store, md: &Md, ca_url: &str) -> Vec<Source> {
    let mut candidates: Vec<Source> = vec![Source::Staged(md.name.clone())];
    if let Some(id) = &md.found.ca_account {
        candidates.push(Source::Stored(id.clone()));
    }
    let prefix = id_prefix(ca_url);
    for id in store.names(Group::Accounts) {
        if id.starts_with(&prefix) && md.found.ca_account.as_ref() != Some(&id) {
            candidates.push(Source::Stored(id));
        }
    }
    for name in store.names(Group::Staging) {
        if name != md.name {
            candidates.push(Source::Staged(name));
        }
    }
    candidates
}

/// The first of `candidates` that is a valid account at the CA, made the
/// account of `acme`; None when none is.
fn use_first_usable(
    acme: &mut Acme,
    store: &Store,
    md: &Md,
    ca_url: &str,
    candidates: &[Source],
    notes: &mut dyn Notes,
) -> AResult<Option<Source>> {
    for src in candidates.iter().cloned() {
        let (mut acct, key) = match load(store, &src) {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(e) => {
                // An account that exists but cannot be read is never
                // replaced silently: a new registration piles up accounts
                // at the CA and fails where EAB credentials are single-use.
                // Only a refused read is about owner and mode.
                let hint = if e.to_string().contains("ermission denied") {
                    ". Check the file's owner and mode (the renewal job runs as httpd's User)"
                } else {
                    ""
                };
                notes.push(Note::new(
                    Level::Warn,
                    format!("{}: cannot use the stored ACME account: {e}{hint}", md.name),
                ));
                continue;
            }
        };
        let own_staged = src == Source::Staged(md.name.clone());
        if acct.ca_url != ca_url || !eab_matches(md, &acct) || (!own_staged && !acct.is_valid()) {
            continue;
        }
        acme.account = Some((acct.url.clone(), key));
        match validate(acme, &mut acct) {
            Ok(()) => {
                save(store, &src, &acct);
                notes.push(Note::new(
                    Level::Debug,
                    format!("{}: using account {:?}", md.name, src),
                ));
                return Ok(Some(src));
            }
            Err(e) if [Kind::NotFound, Kind::Denied, Kind::Invalid].contains(&e.kind) => {
                notes.push(Note::new(
                    Level::Info,
                    format!(
                        "{}: account {} is no longer usable ({e}), trying another",
                        md.name, acct.url
                    ),
                ));
                if acct.status.as_deref() == Some("valid") {
                    acct.status = Some("invalid".into());
                }
                save(store, &src, &acct);
                acme.account = None;
            }
            Err(e) => {
                acme.account = None;
                return Err(e);
            }
        }
    }
    Ok(None)
}

/// Rolls the stored account `id` over to a new key of the same kind at its
/// CA (RFC 8555 §7.3.5) and stores the new key in its place, encrypted
/// and owned as the old one was (the renewal job, as httpd's `User`, reads
/// it; the C module reads it too). `http` reaches the CA.
pub fn rollover(
    store: &Store,
    id: &str,
    http: crate::base::http::Client,
) -> Result<String, AccountError> {
    let (acct, old) =
        load(store, &Source::Stored(id.to_string()))?.ok_or_else(|| AccountError::Unknown {
            id: id.to_string(),
            store: store.describe(Group::Accounts, "", ""),
        })?;
    let spec = match old.pkey().bits() {
        b if old.pkey().rsa().is_ok() => KeySpec::Rsa(b.max(ACCOUNT_KEY_BITS)),
        _ => KeySpec::Rsa(ACCOUNT_KEY_BITS),
    };
    let new_key = Key::generate(&spec).map_err(AccountError::Key)?;
    let mut acme = Acme::connect(http, &acct.ca_url).map_err(ca_err(""))?;
    acme.account = Some((acct.url.clone(), old));
    acme.key_change(&new_key).map_err(ca_err(format!(
        "the CA refused the key change of {}",
        acct.url
    )))?;
    // handed to the store's user as every account key is
    store
        .save_key(Group::Accounts, id, ACCOUNT_KEY, &new_key)
        .map_err(|e| {
            AccountError::Store(crate::store::err(format!(
                "the CA has the new key, but storing it failed: {e}"
            )))
        })?;
    Ok(acct.url)
}

/// Imports an existing account into `accounts/` (issue 16, point 2): the
/// account of `key` at the CA `ca_url`, found by its `url` (checked with a
/// POST-as-GET signed with the key) or, without one, by a newAccount
/// request with `onlyReturnExisting` (RFC 8555 §7.3.1), which creates
/// nothing. MDs at that CA without an account of their own use it from
/// then on (as they would a registered one). Returns the account's id and
/// URL; an account already stored under another id is reported, not
/// stored twice. The key is handed to the store's user (httpd's `User`, whose
/// renewal job reads it, in this module and in the C module).
pub fn import(
    store: &Store,
    ca_url: &str,
    key: Key,
    url: Option<&str>,
    http: crate::base::http::Client,
) -> Result<(String, String), AccountError> {
    let mut acme = Acme::connect(http, ca_url).map_err(ca_err(""))?;
    let (acct_url, reg) = match url {
        Some(u) => {
            acme.account = Some((u.to_string(), key.clone()));
            let r = acme.post_as_get(u).map_err(ca_err(format!(
                "the CA does not confirm that this key is the key of {u}"
            )))?;
            (u.to_string(), json_body(&r).unwrap_or(Value::Null))
        }
        None => {
            acme.account = Some((String::new(), key.clone()));
            let new_account = acme.dir.new_account.clone();
            let r = acme
                .post(
                    &new_account,
                    Some(&json!({"onlyReturnExisting": true})),
                    true,
                )
                .map_err(ca_err("the CA knows no account with this key"))?;
            let u = r.header("location").map(str::to_string).ok_or_else(|| {
                ca_err("the CA answered the account lookup")(AcmeError::new(
                    Kind::Invalid,
                    "no Location header",
                ))
            })?;
            (u, json_body(&r).unwrap_or(Value::Null))
        }
    };
    let status = reg.get("status").and_then(Value::as_str).unwrap_or("valid");
    if status != "valid" {
        return Err(AccountError::NotValid {
            url: acct_url,
            status: status.to_string(),
        });
    }
    for id in store.names(Group::Accounts) {
        if let Ok(Some((a, _))) = load(store, &Source::Stored(id.clone())) {
            if a.url == acct_url {
                return Err(AccountError::AlreadyStored { url: acct_url, id });
            }
        }
    }
    let strs = |k: &str| -> Vec<String> {
        reg.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let acct = Account {
        status: Some(status.to_string()),
        url: acct_url.clone(),
        ca_url: acme.dir.url.clone(),
        contact: strs("contact"),
        orders: reg
            .get("orders")
            .and_then(Value::as_str)
            .map(str::to_string),
        agreement: acme.dir.terms_of_service.clone(),
        registration: reg,
        eab: None,
    };
    let id = next_id(store, &acme.dir.url);
    // the key first: an account.json without its key would be reported
    // as unusable; a key without account.json is ignored
    store.save_key(Group::Accounts, &id, ACCOUNT_KEY, &key)?;
    store.save_json(Group::Accounts, &id, "account.json", &acct.to_json())?;
    // open to the renewal job, as an installed account is
    store.prepare_group(Group::Accounts)?;
    Ok((id, acct_url))
}

/// The key of a registration that did not finish (an account key in
/// `staging/` without its `account.json`): this MD's, else another's.
fn pending_key(store: &Store, md: &Md) -> Option<Key> {
    let mut names = vec![md.name.clone()];
    names.extend(
        store
            .names(Group::Staging)
            .into_iter()
            .filter(|n| *n != md.name),
    );
    names.into_iter().find_map(|n| {
        if store.exists(Group::Staging, &n, "account.json") {
            return None;
        }
        store
            .load_key(Group::Staging, &n, ACCOUNT_KEY)
            .ok()
            .flatten()
    })
}

/// Registers a new account for `md` (§4.3) and stages it.
fn register(acme: &mut Acme, store: &Store, md: &Md, notes: &mut dyn Notes) -> AResult<()> {
    if md.contacts.is_empty() {
        return Err(AcmeError::new(
            Kind::Invalid,
            format!(
                "No contact information is available for MD {}. Configure one using the \
                 MDContactEmail or ServerAdmin directive.",
                md.name
            ),
        ));
    }
    let tos = acme.dir.terms_of_service.clone();
    let Some(agreement) = md.ca_agreement.clone() else {
        return Err(AcmeError::with_problem(
            Kind::Invalid,
            "urn:ietf:params:acme:error:userActionRequired",
            format!(
                "the CA requires you to accept the terms-of-service as specified in <{}>. Please \
                 read the document that you find at that URL and, if you agree to the conditions, \
                 configure \"MDCertificateAgreement accepted\" in your Apache. Then (graceful) \
                 restart the server to activate.",
                tos.as_deref().unwrap_or("the CA's directory")
            ),
        ));
    };
    if acme.dir.eab_required && md_eab(md).is_none() {
        notes.push(Note::new(
            Level::Info,
            format!(
                "{}: the CA requires an External Account Binding, which is not configured \
                 (MDExternalAccountBinding); trying anyway",
                md.name
            ),
        ));
    }
    // A new account gets a new key, as in the C module. Reusing the key of
    // a stored account would make the CA hand back that account (RFC 8555
    // §7.3.1), bypassing the External Account Binding it should check.
    super::check_shutdown()?;
    // The key is stored before the CA is asked: a registration cut off
    // while the CA answered (a child stopped by a restart) may have created
    // the account, and the next attempt sends the same key, so that the CA
    // hands that account back (RFC 8555 §7.3.1) instead of making a second.
    let key = match pending_key(store, md) {
        Some(k) => {
            notes.push(Note::new(
                Level::Info,
                format!(
                    "{}: resuming an account registration that was cut off (same key)",
                    md.name
                ),
            ));
            k
        }
        None => Key::generate_in_turn(&KeySpec::Rsa(ACCOUNT_KEY_BITS), true)
            .map_err(|e| AcmeError::new(Kind::General, e.0))?,
    };
    store
        .save_key(Group::Staging, &md.name, ACCOUNT_KEY, &key)
        .map_err(|e| AcmeError::new(Kind::General, e.msg))?;
    let jwk = key.jwk().map_err(|e| AcmeError::new(Kind::Invalid, e.0))?;
    let mut payload = Map::new();
    payload.insert("contact".into(), json!(md.contacts));
    if tos.is_some() {
        payload.insert("termsOfServiceAgreed".into(), json!(true));
    }
    let eab = md_eab(md);
    if let Some((kid, hmac)) = &eab {
        let obj = crypto::eab_jws(kid, hmac, &acme.dir.new_account, &jwk).map_err(|e| {
            AcmeError::with_problem(
                Kind::Invalid,
                "apache:eab-hmac-invalid",
                format!("invalid EAB hmac for kid {kid}: {e}"),
            )
        })?;
        payload.insert("externalAccountBinding".into(), obj);
    }
    acme.account = Some((String::new(), key));
    let url = acme.dir.new_account.clone();
    let r = acme.post(&url, Some(&Value::Object(payload)), true)?;
    let acct_url = r
        .header("location")
        .map(str::to_string)
        .ok_or_else(|| AcmeError::new(Kind::Invalid, "new account without Location header"))?;
    let reg = json_body(&r).unwrap_or(Value::Null);
    let acct = Account {
        status: Some(
            reg.get("status")
                .and_then(Value::as_str)
                .unwrap_or("valid")
                .to_string(),
        ),
        url: acct_url.clone(),
        ca_url: acme.dir.url.clone(),
        contact: md.contacts.clone(),
        orders: reg
            .get("orders")
            .and_then(Value::as_str)
            .map(str::to_string),
        registration: reg,
        agreement: Some(if agreement.eq_ignore_ascii_case("accepted") {
            tos.unwrap_or(agreement)
        } else {
            agreement
        }),
        eab,
    };
    let key = acme.account.take().map(|(_, k)| k).expect("set above");
    store
        .save_json(Group::Staging, &md.name, "account.json", &acct.to_json())
        .map_err(|e| AcmeError::new(Kind::General, e.msg))?;
    acme.account = Some((acct_url.clone(), key));
    notes.push(Note::new(
        Level::Info,
        format!("registered new account {acct_url}"),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(
            id_prefix("https://acme-v02.api.letsencrypt.org/directory"),
            "ACME-.letsencrypt.org-"
        );
        assert_eq!(
            id_prefix("https://acme-staging-v02.api.letsencrypt.org/directory"),
            "ACME-.letsencrypt.org-"
        );
        assert_eq!(
            id_prefix("https://api.buypass.com/acme/directory"),
            "ACME-api.buypass.com-"
        );
        assert_eq!(id_prefix("https://localhost:14000/dir"), "ACME-localhost-");
    }

    #[test]
    fn json_roundtrip_and_legacy() {
        let a = Account {
            status: Some("valid".into()),
            url: "https://ca/acct/1".into(),
            ca_url: "https://ca/dir".into(),
            contact: vec!["mailto:a@b".into()],
            registration: json!({"status": "valid"}),
            agreement: Some("https://ca/tos".into()),
            orders: None,
            eab: Some(("kid".into(), "hmac".into())),
        };
        let j = a.to_json();
        let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "status",
                "url",
                "ca-url",
                "contact",
                "registration",
                "agreement",
                "eab"
            ]
        );
        assert_eq!(Account::from_json(&j).unwrap(), a);
        let legacy = json!({"url": "u", "ca-url": "c", "registration": {"contact": ["mailto:x@y"]},
                            "terms-of-service": "t"});
        let l = Account::from_json(&legacy).unwrap();
        assert_eq!(l.contact, ["mailto:x@y"]);
        assert_eq!(l.agreement.as_deref(), Some("t"));
        assert!(Account::from_json(&json!({"url": "u"})).is_none());
    }
}
