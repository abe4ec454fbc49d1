//! The state of an MD from its live certificates (spec §3.2), its renewal
//! and warning times (§3.4), what md.json keeps across starts, and the
//! challenge types it can use (§4.6).

use crate::base::challenge::ChallengeType;
use crate::base::crypto;
use crate::base::time::Micros;
use crate::config::{Md, State};
use crate::store::Store;
use openssl::x509::X509;
use serde::Deserialize;
use serde_json::Value;

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
    pub(crate) fn from_leaf(key_name: &str, pem: &[u8], leaf: &X509) -> Option<CertInfo> {
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
    pub(crate) fn covers(&self, name: &str) -> bool {
        self.names
            .iter()
            .any(|n| crate::config::vhost::domain_matches(n, name) || n.eq_ignore_ascii_case(name))
    }
}

/// The state of an MD from its live certificates (§3.2).
/// What [`compute_state`] found: the state, why it is not complete, and
/// the live certificate of each key spec (None: missing or unusable).
#[derive(Debug, Clone)]
pub struct Found {
    pub state: State,
    pub descr: Option<String>,
    pub certs: Vec<Option<CertInfo>>,
}

pub(crate) fn compute_state(store: &Store, md: &Md) -> Found {
    let mut certs = Vec::new();
    let mut state = State::Complete;
    let mut descr = None;
    for crate::store::sets::LivePair {
        key_name: name,
        cert: chain,
        ..
    } in crate::store::sets::live_files(store, md)
    {
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
    Found {
        state,
        descr,
        certs,
    }
}

/// Certificates that live less than this renew at half their lifetime at
/// the latest, whatever the renew window says (6-day certificates).
pub const SHORT_LIVED: Micros =
    10 * crate::base::time::SECS_PER_DAY * crate::base::time::USEC_PER_SEC;

/// The start of a certificate's renew window: `MDRenewWindow` applied to
/// its real lifetime; a short-lived one ([`SHORT_LIVED`]) renews at half
/// its lifetime at the latest.
pub(crate) fn cert_renew_at(md: &Md, c: &CertInfo) -> Micros {
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
pub(crate) fn renew_at(md: &Md, state: State, certs: &[Option<CertInfo>], now: Micros) -> Micros {
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
pub(crate) fn warn_at(md: &Md, certs: &[Option<CertInfo>]) -> Option<Micros> {
    certs
        .iter()
        .flatten()
        .map(|c| c.not_after - md.warn_window.length_within(c.not_after - c.not_before))
        .min()
}

/// Keeps what the store knows and the config does not say (§2.2 after-SSL
/// step 2): contacts, CA URL and account of the stored md.json.
pub(crate) fn merge_stored(md: &mut Md, stored: Option<&Value>) {
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

/// Why an MD can use no challenge type (§4.6): each type's reason, in the
/// C module's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoChallenge(pub Vec<&'static str>);

impl std::fmt::Display for NoChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "None of the ACME challenge methods configured for this domain are suitable. {}",
            self.0.join(" ")
        )
    }
}

/// The challenge types an MD can use in order of preference, or why none.
pub type Challenges = Result<Vec<ChallengeType>, NoChallenge>;

/// The challenge types an MD can use, in order of preference (§4.6).
pub(crate) fn challenge_types(
    md: &Md,
    http_ok: bool,
    https_ok: bool,
    dns01_cmd: bool,
) -> Challenges {
    if !md.ca_challenges.is_empty() {
        return Ok(md.ca_challenges.clone());
    }
    let mut out = Vec::new();
    let mut why = Vec::new();
    if https_ok && !md.found.acme_tls_1_domains.is_empty() {
        out.push(ChallengeType::TlsAlpn01);
    } else if !https_ok {
        why.push("The https: challenge 'tls-alpn-01' is disabled because the server seems not reachable on public port 443.");
    } else {
        why.push("The https: challenge 'tls-alpn-01' is disabled because the Protocols configuration does not allow 'acme-tls/1' for any of its domains.");
    }
    if http_ok {
        out.push(ChallengeType::Http01);
    } else {
        why.insert(0, "The http: challenge 'http-01' is disabled because the server seems not reachable on public port 80.");
    }
    if dns01_cmd || md.dns01_cmd.is_some() {
        out.push(ChallengeType::Dns01);
    } else {
        why.push("The DNS challenge 'dns-01' is disabled because the directive 'MDChallengeDns01' is not configured.");
    }
    if out.is_empty() {
        return Err(NoChallenge(why));
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
        assert_eq!(
            challenge_types(&m, true, true, false).unwrap(),
            [ChallengeType::Http01]
        );
        m.found.acme_tls_1_domains = vec!["a.org".into()];
        assert_eq!(
            challenge_types(&m, true, true, true).unwrap(),
            [
                ChallengeType::TlsAlpn01,
                ChallengeType::Http01,
                ChallengeType::Dns01
            ]
        );
        let e = challenge_types(&m, false, false, false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("None of the ACME challenge methods configured for this domain are suitable. The http: challenge 'http-01' is disabled because the server seems not reachable on public port 80. The https: challenge"), "{e}");
        m.ca_challenges = vec![ChallengeType::Dns01];
        assert_eq!(
            challenge_types(&m, false, false, false).unwrap(),
            [ChallengeType::Dns01]
        );
    }
}

/// Identifier limits of profiles as Let's Encrypt documents them (2026):
/// its `shortlived` and `tlsserver` profiles allow at most 25 identifiers
/// in a certificate.
const LETSENCRYPT_PROFILE_LIMITS: [(&str, usize); 2] = [("shortlived", 25), ("tlsserver", 25)];

/// An error for an MD with more names than its CA's profile allows, where
/// the CA states the limit (Let's Encrypt's profiles): said at start-up,
/// before an order is refused.
pub(crate) fn profile_limit_error(md: &Md) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sets::ensure_fallbacks;
    use crate::store::Group;
    use crate::testutil::md;
    use crate::testutil::tmpstore;
    use std::fs;

    use crate::base::time;

    use crate::base::keyspec::KeySpec;

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

    #[test]
    fn states_and_fallbacks() {
        let (dir, s) = tmpstore("state");
        let m = md(&["a.org", "www.a.org"]);
        let Found {
            state: st,
            descr,
            certs,
        } = compute_state(&s, &m);
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
        let Found {
            state: st, certs, ..
        } = compute_state(&s, &m);
        assert_eq!(st, State::Complete);
        let at = renew_at(&m, st, &certs, 0);
        let c = certs[0].as_ref().unwrap();
        assert_eq!(at, c.not_after - time::from_secs(14 * 86400 * 33 / 100));
        // a name not covered
        let m2 = md(&["a.org", "new.a.org"]);
        let Found {
            state: st, descr, ..
        } = compute_state(&s, &m2);
        assert_eq!(st, State::Incomplete);
        assert_eq!(
            descr.as_deref(),
            Some("certificate(rsa) does not cover all domains.")
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
