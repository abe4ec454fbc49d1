//! The staging run of one MD (spec §3.3, §4.4–§4.7): the account, an
//! order per key type (resumed when the CA still has it), its
//! authorizations, finalization with a key made meanwhile, the chain.

use super::challenge::{start_authz, teardown, AuthzStart, RunEnv};
use super::resource::{self, Authorization, AuthzStatus, OrderStatus};
use super::{account, json_body, poll, retry_after, AResult, Acme, AcmeError, Kind};
use crate::acme::order::authz_failed;
use crate::acme::order::download_chain;
use crate::acme::order::new_order;
use crate::acme::order::order_identifiers;
use crate::acme::order::Order;
use crate::acme::order::AUTHZ_TIMEOUT;
use crate::acme::order::ORDER_TIMEOUT;
use crate::acme::resource::ChallengeStatus;
use crate::base::crypto::{self, Key};
use crate::base::keyspec::KeySpec;
use crate::base::log::{Level, Note};
use crate::base::util::b64url_encode;
use crate::config::Md;
use crate::store::{Group, Store};
use openssl::x509::X509;
use serde_json::{json, Value};
use std::time::Duration;

/// The ARI id of the live certificate that an order for `spec` replaces
/// (RFC 9773 §5): when the CA offers `renewalInfo`, ARI is on for the MD,
/// and the certificate was not named before.
pub(crate) fn replaces(acme: &Acme, md: &Md, env: &RunEnv<'_>, spec: &KeySpec) -> Option<String> {
    if !md.ari || acme.dir.renewal_info.is_none() {
        return None;
    }
    let name = spec.name();
    let (_, leaf) = env
        .current
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&name))?;
    crypto::ari_cert_id(leaf).filter(|id| !env.replaced.contains(id))
}

/// A new order, naming the certificate it replaces when there is one; a CA
/// that rejects `replaces` (already replaced, or a problem with it) gets the
/// order once more without it.
pub(crate) fn new_order_replacing(
    acme: &mut Acme,
    md: &Md,
    env: &mut RunEnv<'_>,
    spec: &KeySpec,
) -> AResult<Order> {
    let profile = profile(acme, md, env);
    let profile = profile.as_deref();
    let Some(id) = replaces(acme, md, env, spec) else {
        return new_order(acme, md, None, profile);
    };
    let r = new_order(acme, md, Some(&id), profile);
    // named once the CA has answered (accepted or rejected), not after a
    // transport failure, which the next run repeats with `replaces`
    if r.as_ref().map_or_else(|e| e.problem.is_some(), |_| true) {
        env.replaced.push(id.clone());
    }
    match r {
        Err(e) if e.problem.is_some() => {
            env.notes.push(Note::new(
                Level::Info,
                format!(
                    "{}: the CA rejected the order replacing certificate {id} ({e}); ordering without 'replaces'",
                    md.name
                ),
            ));
            new_order(acme, md, None, profile)
        }
        r => r,
    }
}

/// The profile to ask for: `MDProfile`; without it, for an MD with IP
/// addresses, a `shortlived` profile the CA offers (Let's Encrypt issues IP
/// certificates only under it).
pub(crate) fn profile(acme: &Acme, md: &Md, env: &mut RunEnv<'_>) -> Option<String> {
    if md.profile.is_some() {
        return md.profile.clone();
    }
    let ip = md.domains.iter().any(|d| crypto::ident_type(d) == "ip");
    let offered = acme
        .dir
        .profiles
        .iter()
        .find(|p| p.eq_ignore_ascii_case("shortlived"))
        .filter(|_| ip)?;
    env.notes.push(Note::new(
        Level::Info,
        format!(
            "{}: the MD has IP addresses and no MDProfile: asking the CA for its '{offered}' profile",
            md.name
        ),
    ));
    Some(offered.clone())
}

/// What a successful run staged.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Key specs that got a new certificate.
    pub new_certs: Vec<KeySpec>,
    /// Latest notBefore of the new certificates (µs since the epoch).
    pub valid_from: i64,
    /// Where the account lives.
    pub account: account::Source,
}

pub(crate) fn not_before(c: &X509) -> i64 {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).expect("epoch");
    epoch
        .diff(c.not_before())
        .map(|d| (i64::from(d.days) * 86_400 + i64::from(d.secs)) * 1_000_000)
        .unwrap_or(0)
}

/// Whether staging already holds a key and chain for `spec` that fit the MD.
pub(crate) fn staged_complete(store: &Store, md: &Md, spec: &KeySpec) -> bool {
    let sfx = spec.file_suffix();
    let key = store
        .load_key(Group::Staging, &md.name, &format!("privkey{sfx}.pem"))
        .ok()
        .flatten();
    let chain = store
        .load_bytes(Group::Staging, &md.name, &format!("pubcert{sfx}.pem"))
        .ok()
        .flatten()
        .and_then(|p| X509::stack_from_pem(&p).ok());
    match (key, chain) {
        (Some(k), Some(c)) if !c.is_empty() && k.matches(&c[0]) => {
            let names = crypto::cert_names(&c[0]);
            order_identifiers(&md.domains)
                .iter()
                .all(|d| names.iter().any(|n| n.eq_ignore_ascii_case(d)))
        }
        _ => false,
    }
}

/// Removes an order: its challenges are torn down and `order.json` goes.
pub(crate) fn discard_order(store: &Store, md: &Md, env: &mut RunEnv<'_>, o: &Order) {
    teardown(
        store,
        md,
        &env.challenges,
        &o.challenge_setups,
        &mut env.notes,
    );
    store.remove(Group::Staging, &md.name, "order.json");
}

/// Obtains one certificate for `spec`, with its key from `keys` (taken
/// only once the CA has validated: a new key is made meanwhile).
pub(crate) fn obtain(
    acme: &mut Acme,
    md: &Md,
    env: &mut RunEnv<'_>,
    spec: &KeySpec,
    keys: &mut PendingKeys,
) -> AResult<X509> {
    let store = env.store;
    let sfx = spec.file_suffix();
    let serr = |e: crate::store::StoreError| AcmeError::new(Kind::General, e.msg);
    // Resume a stored order if the CA still has it (§4.4 steps 1–2).
    let mut order = match store
        .load_json(Group::Staging, &md.name, "order.json")
        .ok()
        .flatten()
        .and_then(|j| Order::from_json(&j))
    {
        Some(mut o) => match acme
            .get_json(&o.url)
            .and_then(|j| resource::parse("order", &o.url, &j))
        {
            Ok(r) => {
                o.update(r);
                if o.status == OrderStatus::Invalid {
                    discard_order(store, md, env, &o);
                    None
                } else {
                    env.events.progress(&format!("Resuming order {}", o.url));
                    Some(o)
                }
            }
            Err(e) if [Kind::NotFound, Kind::Denied].contains(&e.kind) => {
                discard_order(store, md, env, &o);
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let mut retried = false;
    loop {
        let mut o = match order.take() {
            Some(o) => o,
            None => {
                env.events
                    .progress(&format!("Creating new order for {}", md.name));
                new_order_replacing(acme, md, env, spec)?
            }
        };
        store
            .save_json(Group::Staging, &md.name, "order.json", &o.to_json())
            .map_err(serr)?;
        // Authorizations (step 3).
        let mut bad = None;
        // challenges an earlier run asked for (authorization → challenge)
        let mut awaiting = std::collections::HashMap::new();
        for url in o.authorizations.clone() {
            let authz: Authorization =
                resource::parse("authorization", &url, &acme.get_json(&url)?)?;
            match authz.status {
                AuthzStatus::Valid => {}
                AuthzStatus::Pending => match start_authz(acme, md, env, &mut o, &url, &authz)? {
                    AuthzStart::Failed(a) => {
                        bad = Some(a);
                        break;
                    }
                    AuthzStart::Awaiting(chal) => {
                        awaiting.insert(url.clone(), chal);
                    }
                    AuthzStart::Started => {}
                },
                _ => {
                    bad = Some(authz);
                    break;
                }
            }
        }
        if let Some(authz) = bad {
            if !retried {
                // an old order with a failed authorization: once more, fresh
                retried = true;
                discard_order(store, md, env, &o);
                continue;
            }
            return Err(authz_failed(&authz));
        }
        // Wait for all authorizations (step 4).
        for url in o.authorizations.clone() {
            env.events.progress("Waiting for the CA to validate");
            let since = std::time::Instant::now();
            let mut reask = awaiting.get(&url).cloned();
            let waited = poll(AUTHZ_TIMEOUT, "authorization", || {
                let r = acme.post_as_get(&url)?;
                let j = json_body(&r).unwrap_or(Value::Null);
                let authz: Authorization = resource::parse("authorization", &url, &j)?;
                match authz.status {
                    AuthzStatus::Valid => Ok((Some(()), None)),
                    s if s.is_failed() => {
                        let mut e = authz_failed(&authz);
                        e.problem = authz.error().map(|p| p.kind.clone());
                        Err(e)
                    }
                    _ => {
                        // what an earlier run asked for, still untouched a
                        // while later, never reached the CA: asked again
                        let untouched = |c: &str| {
                            authz
                                .challenges
                                .iter()
                                .any(|x| x.url == c && x.status == Some(ChallengeStatus::Pending))
                        };
                        if since.elapsed() >= REASK_AFTER {
                            if let Some(c) = reask.take().filter(|c| untouched(c)) {
                                acme.post(&c, Some(&json!({})), false)?;
                            }
                        }
                        Ok((None, retry_after(&r)))
                    }
                }
            });
            if let Err(e) = waited {
                // A wait that ended without a verdict (not a stop: then the
                // CA may be validating right now) asks again next time: a
                // challenge recorded as asked may never have reached the CA.
                if e.kind != Kind::Canceled
                    && !crate::base::shutdown::requested()
                    && !crate::base::shutdown::abandoned()
                    && !o.challenges_asked.is_empty()
                {
                    o.challenges_asked.clear();
                    let _ = store.save_json(Group::Staging, &md.name, "order.json", &o.to_json());
                }
                return Err(e);
            }
        }
        // Order ready (step 5), finalize (6), valid (7).
        let order_url = o.url.clone();
        let refresh = |acme: &mut Acme, o: &mut Order| -> AResult<Option<Duration>> {
            let r = acme.post_as_get(&order_url)?;
            o.update_from(&r)?;
            Ok(retry_after(&r))
        };
        poll(ORDER_TIMEOUT, "order ready", || {
            let hint = refresh(acme, &mut o)?;
            Ok((o.status.is_ready().then_some(()), hint))
        })?;
        let key = keys.key(spec)?;
        if o.status == OrderStatus::Ready {
            env.events.progress("Finalizing order");
            let csr = crypto::csr_der(&key, &order_identifiers(&md.domains), md.must_staple)
                .map_err(|e| AcmeError::new(Kind::Invalid, e.0))?;
            let fin = o
                .finalize
                .clone()
                .ok_or_else(|| AcmeError::new(Kind::Invalid, "order without finalize URL"))?;
            let r = acme.post(&fin, Some(&json!({"csr": b64url_encode(&csr)})), false)?;
            o.update_from(&r)?;
        }
        // The finalize response often says `valid` already: no poll then.
        if !(o.status == OrderStatus::Valid && o.certificate.is_some()) {
            poll(ORDER_TIMEOUT, "order valid", || {
                let hint = refresh(acme, &mut o)?;
                if o.status == OrderStatus::Invalid {
                    return Err(AcmeError::new(Kind::Invalid, "order became invalid"));
                }
                Ok(((o.status == OrderStatus::Valid).then_some(()), hint))
            })?;
        }
        let cert_url = o.certificate.clone().ok_or_else(|| {
            AcmeError::new(
                Kind::Invalid,
                "Order valid, but certificate url is missing.",
            )
        })?;
        store
            .save_json(Group::Staging, &md.name, "order.json", &o.to_json())
            .map_err(serr)?;
        env.events.progress("Retrieving certificate chain");
        let chain = download_chain(acme, &cert_url)?;
        if !key.matches(&chain[0]) {
            discard_order(store, md, env, &o);
            return Err(AcmeError::new(
                Kind::Invalid,
                "certificate and private key do not match",
            ));
        }
        let pem = crypto::chain_to_pem(&chain).map_err(|e| AcmeError::new(Kind::General, e.0))?;
        store
            .save_bytes(
                Group::Staging,
                &md.name,
                &format!("pubcert{sfx}.pem"),
                &pem,
                false,
            )
            .map_err(serr)?;
        discard_order(store, md, env, &o);
        return Ok(chain.into_iter().next().expect("non-empty chain"));
    }
}

/// How long a run that resumed an order waits for the verdict on a
/// challenge an earlier run asked for (or may have: it stopped while
/// asking) before it asks again. A CA that shows no `processing` state
/// (pebble) validates again for a second request.
const REASK_AFTER: Duration = Duration::from_secs(20);

/// A key the thread made (or why it could not).
pub(crate) type MadeKey = (KeySpec, Result<Key, crypto::CryptoError>);

/// The domain keys a staging run lacks, made on a thread of their own
/// (key generation is the largest CPU cost of a run and needs no CA), in
/// turn with other key generations of the process, and
/// saved to staging once taken, or when the run ends. The thread is always
/// joined: none is left inside OpenSSL when the child exits.
pub(crate) struct PendingKeys {
    store: Store,
    md: String,
    thread: Option<std::thread::JoinHandle<Vec<MadeKey>>>,
    /// Keys the thread made and [`PendingKeys::finish`] saved, by file:
    /// used as they are, not read back from the store.
    saved: Vec<(String, Key)>,
}

impl PendingKeys {
    fn file(spec: &KeySpec) -> String {
        format!("privkey{}.pem", spec.file_suffix())
    }

    /// Starts making the keys of `md` that staging lacks.
    fn start(store: &Store, md: &Md) -> PendingKeys {
        let missing: Vec<KeySpec> = md
            .effective_specs()
            .into_iter()
            .filter(|s| !store.exists(Group::Staging, &md.name, &Self::file(s)))
            .collect();
        let thread = (!missing.is_empty()).then(|| {
            std::thread::spawn(move || {
                missing
                    .into_iter()
                    .take_while(|_| !crate::base::shutdown::requested())
                    .map(|s| {
                        let k = Key::generate_in_turn(&s, false);
                        (s, k)
                    })
                    .collect()
            })
        });
        PendingKeys {
            store: store.clone(),
            md: md.name.clone(),
            thread,
            saved: Vec::new(),
        }
    }

    /// Waits for the thread and saves what it made (where staging has no
    /// key yet).
    fn finish(&mut self) -> AResult<()> {
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        for (spec, key) in t.join().unwrap_or_default() {
            let key = key.map_err(|e| AcmeError::new(Kind::General, e.0))?;
            let file = Self::file(&spec);
            if !self.store.exists(Group::Staging, &self.md, &file) {
                self.store
                    .save_key(Group::Staging, &self.md, &file, &key)
                    .map_err(|e| AcmeError::new(Kind::General, e.msg))?;
                self.saved.push((file, key));
            }
        }
        Ok(())
    }

    /// The staged key for `spec`: stored, made by the thread, or made now.
    fn key(&mut self, spec: &KeySpec) -> AResult<Key> {
        self.finish()?;
        let (store, file) = (&self.store, Self::file(spec));
        if let Some((_, k)) = self.saved.iter().find(|(f, _)| *f == file) {
            return Ok(k.clone());
        }
        let serr = |e: crate::store::StoreError| AcmeError::new(Kind::General, e.msg);
        if let Some(k) = store
            .load_key(Group::Staging, &self.md, &file)
            .map_err(serr)?
        {
            return Ok(k);
        }
        let k = Key::generate(spec).map_err(|e| AcmeError::new(Kind::General, e.0))?;
        store
            .save_key(Group::Staging, &self.md, &file, &k)
            .map_err(serr)?;
        Ok(k)
    }
}

impl Drop for PendingKeys {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A staging run for `md` at the CA `acme` is connected to: selects the
/// account, obtains a certificate for every key spec that lacks one in
/// staging, and writes the staged `md.json`. Challenge data is removed at
/// the end, on success and on failure.
/// Account selection and registration happen one MD at a time, so that
/// MDs renewing in parallel for the first time share one new account.
pub(crate) static ACCOUNT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The cluster lease for choosing (or registering) an account at a CA,
/// waited for as long as a holder may keep it.
pub(crate) fn account_lease(
    leases: &crate::store::lease::Leases,
    ca_url: &str,
) -> AResult<crate::store::lease::Lease> {
    let name = format!(
        "account@{}",
        account::id_prefix(ca_url).trim_end_matches('-')
    );
    let wait = leases.ttl() + crate::store::lease::SKEW + crate::base::time::USEC_PER_SEC;
    let wait = std::time::Duration::from_micros(u64::try_from(wait).unwrap_or(0));
    match leases.take_waiting(&name, wait) {
        Ok(Some(l)) => Ok(l),
        Ok(None) => {
            super::check_shutdown()?;
            Err(AcmeError::new(
                Kind::General,
                format!(
                    "another cluster node kept the account lease {name} beyond its time ({})",
                    leases
                        .holder(&name)
                        .map(|h| format!("node {}, pid {}", h.node, h.pid))
                        .unwrap_or_default()
                ),
            ))
        }
        Err(e) => Err(AcmeError::new(
            Kind::General,
            format!("cannot take the cluster lease {name}: {e}"),
        )),
    }
}

pub fn stage(acme: &mut Acme, md: &Md, env: &mut RunEnv<'_>) -> AResult<Staged> {
    let store = env.store;
    // The new domain keys are made on another thread while the account is
    // selected, the order placed and the CA validates; an account key that
    // must be made goes before them (`Key::generate_in_turn`).
    let mut keys = PendingKeys::start(store, md);
    let selected = {
        let _one_at_a_time = ACCOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // and one node of a cluster at a time, so that a new account is
        // registered once and found by the others
        let _cluster = match &env.leases {
            Some(l) => Some(account_lease(l, &acme.dir.url)?),
            None => None,
        };
        super::check_shutdown().and_then(|()| account::select(acme, store, md, &mut env.notes))
    };
    let source = selected?;
    let mut staged_md = md.clone();
    staged_md.found.ca_url = Some(acme.dir.url.clone());
    match &source {
        account::Source::Stored(id) => staged_md.found.ca_account = Some(id.clone()),
        // Another MD's new account, not installed yet: staged here as well,
        // so that installing this MD finds it (by its URL) and records its
        // id in md.json.
        account::Source::Staged(other) if *other != md.name => {
            // the key first: an account.json is only ever seen with its key
            // (another MD's selection may list this staging area meanwhile)
            for (file, is_key) in [(crate::store::ACCOUNT_KEY, true), ("account.json", false)] {
                if let Ok(Some(data)) = store.load_bytes(Group::Staging, other, file) {
                    store
                        .save_bytes(Group::Staging, &md.name, file, &data, is_key)
                        .map_err(|e| AcmeError::new(Kind::General, e.msg))?;
                }
            }
        }
        account::Source::Staged(_) => {}
    }
    store
        .save_json(Group::Staging, &md.name, "md.json", &staged_md.to_json())
        .map_err(|e| AcmeError::new(Kind::General, e.msg))?;
    let mut new_certs = Vec::new();
    let mut valid_from = 0;
    for spec in md.effective_specs() {
        if staged_complete(store, md, &spec) {
            continue;
        }
        let res = obtain(acme, md, env, &spec, &mut keys);
        match res {
            Ok(leaf) => {
                valid_from = valid_from.max(not_before(&leaf));
                new_certs.push(spec);
            }
            // Stopped (a restart, the end of the child, or another node
            // took the renewal over): the CA may be validating right now.
            // The challenge data stays answerable and order.json stays:
            // the next run (in the new child, or on the other node)
            // resumes the order, and tears the data down with it.
            Err(e)
                if e.kind == Kind::Canceled
                    || crate::base::shutdown::requested()
                    || crate::base::shutdown::abandoned() =>
            {
                return Err(e);
            }
            Err(e) => {
                // leave nothing behind that answers challenges
                if let Some(o) = store
                    .load_json(Group::Staging, &md.name, "order.json")
                    .ok()
                    .flatten()
                    .and_then(|j| Order::from_json(&j))
                {
                    // order.json stays: the next run may resume the order
                    teardown(
                        store,
                        md,
                        &env.challenges,
                        &o.challenge_setups,
                        &mut env.notes,
                    );
                }
                return Err(e);
            }
        }
    }
    Ok(Staged {
        new_certs,
        valid_from,
        account: source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::keyspec::KeySpec;

    fn public_der(k: &Key) -> Vec<u8> {
        k.pkey().public_key_to_der().unwrap()
    }

    #[test]
    fn pending_keys_hand_out_what_they_saved_and_keep_a_stored_key() {
        let (_dir, store) = crate::testutil::tmpstore("pending-keys");
        let mut md = crate::testutil::md(&["pk.example.org"]);
        md.pkey_specs = vec![KeySpec::Ec("secp256r1".into())];
        let spec = &md.pkey_specs[0];
        // made by the thread, saved to staging, handed out as made
        let mut keys = PendingKeys::start(&store, &md);
        let made = keys.key(spec).unwrap();
        let file = PendingKeys::file(spec);
        let stored = store
            .load_key(Group::Staging, &md.name, &file)
            .unwrap()
            .unwrap();
        assert_eq!(public_der(&made), public_der(&stored));
        // a later run finds the staged key and uses it (nothing new made)
        let mut again = PendingKeys::start(&store, &md);
        assert!(again.thread.is_none());
        assert_eq!(public_der(&again.key(spec).unwrap()), public_der(&stored));
    }
}
