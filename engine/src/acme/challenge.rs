//! Challenges (spec §4.5, §4.6): what a staging run tells the world
//! (events), the setup and teardown of http-01, tls-alpn-01 and dns-01,
//! the pre-flight, and picking the challenge of a pending authorization.

use super::order::Order;
use super::resource::{self, Authorization, AuthzStatus, ChallengeStatus};
use super::{AResult, Acme, AcmeError, Kind};
use crate::base::challenge::ChallengeType;
use crate::base::command::CommandError;
use crate::base::crypto::{self, Key};
use crate::base::keyspec::KeySpec;
use crate::base::log::{Level, Note, Notes};
use crate::base::util::b64url_encode;
use crate::config::Md;
use crate::store::{Group, Store};
use openssl::hash::{hash, MessageDigest};
use openssl::x509::X509;
use serde_json::json;

/// Hooks into the run, for events and progress.
pub trait Events {
    /// `challenge-setup:<type>:<domain>`, after the challenge data is in
    /// place and before the CA is told. An error makes this type fail.
    fn challenge_setup(
        &mut self,
        _ctype: &ChallengeType,
        _domain: &str,
    ) -> Result<(), CommandError> {
        Ok(())
    }
    /// What the run is doing now (job log "progress").
    fn progress(&mut self, _activity: &str) {}
}

/// No events.
pub struct NoEvents;
impl Events for NoEvents {}

/// What the run may use to answer challenges.
#[derive(Debug, Clone, Default)]
pub struct ChallengeEnv {
    /// Usable challenge types, in order of preference (§4.6).
    pub types: Vec<ChallengeType>,
    /// `MDChallengeDns01` in effect for the MD.
    pub dns01_cmd: Option<String>,
    /// `MDChallengeDns01Version`.
    pub dns01_version: u8,
    /// The domains httpd can answer `tls-alpn-01` for (an SSL vhost that
    /// allows `acme-tls/1`); the others skip that type, as in the C module.
    /// None: no restriction (a2md).
    pub tls_alpn_domains: Option<Vec<String>>,
    /// Check http-01 and tls-alpn-01 answers through httpd's own listeners
    /// before the CA is asked (`MDChallengePreflight`); None: no check.
    pub preflight: Option<crate::acme::preflight::Env>,
}

/// What one run needs.
pub struct RunEnv<'a> {
    pub store: &'a Store,
    pub events: &'a mut dyn Events,
    pub challenges: ChallengeEnv,
    pub notes: Vec<Note>,
    /// ARI ids of certificates already named in `replaces` (RFC 9773 §5):
    /// never named again. The run adds the ones it names.
    pub replaced: Vec<String>,
    /// The MD's current certificates (leaves) by key name (`rsa`, a
    /// curve): what a new order replaces. The renewal job cannot read
    /// `domains/`; the parent read them at start-up.
    pub current: Vec<(String, X509)>,
    /// The store's leases when several httpd share it (`MDClusterNode`).
    pub leases: Option<crate::store::lease::Leases>,
}

/// The challenge directory of an identifier for a challenge type: IP
/// addresses are looked up by their reverse-DNS name for tls-alpn-01 (the
/// SNI the CA sends, RFC 8738).
pub(crate) fn challenge_dir_name(ctype: &ChallengeType, ident: &str) -> String {
    if *ctype == ChallengeType::TlsAlpn01 {
        if let Some(rev) = crypto::reverse_dns_name(ident) {
            return rev;
        }
    }
    ident.to_string()
}

pub(crate) fn identifier_value(ident: &str) -> &str {
    ident.strip_prefix("*.").unwrap_or(ident)
}

/// The key authorization of a challenge token (RFC 8555 §8.1).
pub(crate) fn key_authorization(
    token: &str,
    account_key: &Key,
) -> Result<String, crypto::CryptoError> {
    Ok(format!("{token}.{}", account_key.thumbprint()?))
}

pub(crate) fn dns_txt_value(key_authz: &str) -> String {
    b64url_encode(
        &hash(MessageDigest::sha256(), key_authz.as_bytes())
            .map(|d| d.to_vec())
            .unwrap_or_default(),
    )
}

/// Removes what a challenge setup left: challenge files, DNS records.
pub(crate) fn teardown(
    store: &Store,
    md: &Md,
    env_dns: &ChallengeEnv,
    setups: &[String],
    notes: &mut dyn Notes,
) {
    for token in setups {
        let Some((ctype, rest)) = token.split_once(':') else {
            continue;
        };
        let ctype = ChallengeType::from(ctype);
        match ctype {
            ChallengeType::Http01 | ChallengeType::TlsAlpn01 => {
                store.purge(Group::Challenges, &challenge_dir_name(&ctype, rest))
            }
            ChallengeType::Dns01 => {
                let (domain, value) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Some(cmd) = md.dns01_cmd.as_ref().or(env_dns.dns01_cmd.as_ref()) {
                    let mut argv = crate::base::util::tokenize_argv(cmd);
                    argv.push("teardown".into());
                    argv.push(domain.into());
                    if env_dns.dns01_version == 2 {
                        argv.push(value.into());
                    }
                    match crate::base::command::exit_code(&argv) {
                        Ok(0) => {}
                        Ok(code) => notes.push(Note::new(
                            Level::Warn,
                            format!("{}: dns-01 teardown command failed (exit code={code}) for {domain}", md.name),
                        )),
                        Err(e) => notes.push(Note::new(Level::Warn, format!("{}: dns-01 teardown command failed ({e}) for {domain}", md.name))),
                    }
                }
            }
            _ => {}
        }
    }
}

/// The key authorization of `token` with the account of `acme`.
pub(crate) fn acme_key_authz(acme: &Acme, token: &str) -> AResult<String> {
    let acct_key = &acme
        .account
        .as_ref()
        .ok_or_else(|| AcmeError::new(Kind::Invalid, "no account"))?
        .1;
    key_authorization(token, acct_key).map_err(|e| AcmeError::new(Kind::Invalid, e.0))
}

/// Sets up one challenge; returns the setup token.
pub(crate) fn setup_challenge(
    acme: &Acme,
    md: &Md,
    env: &mut RunEnv<'_>,
    ctype: &ChallengeType,
    ident: &str,
    token: &str,
) -> AResult<String> {
    let key_authz = acme_key_authz(acme, token)?;
    let store = env.store;
    let store_err = |e: crate::store::StoreError| AcmeError::new(Kind::General, e.msg);
    let setup = match ctype {
        ChallengeType::Http01 => {
            let file = "acme-http-01.txt";
            if store
                .load_bytes(Group::Challenges, ident, file)
                .ok()
                .flatten()
                .as_deref()
                != Some(key_authz.as_bytes())
            {
                store
                    .save_bytes(Group::Challenges, ident, file, key_authz.as_bytes(), false)
                    .map_err(store_err)?;
            }
            format!("http-01:{ident}")
        }
        ChallengeType::TlsAlpn01 => {
            let dir = challenge_dir_name(ctype, ident);
            let digest = openssl::sha::sha256(key_authz.as_bytes());
            let changed = !md.effective_specs().iter().all(|spec| {
                store
                    .load_bytes(
                        Group::Challenges,
                        &dir,
                        &format!("acme-tls-alpn-01-pubcert{}.pem", spec.file_suffix()),
                    )
                    .ok()
                    .flatten()
                    .and_then(|pem| openssl::x509::X509::from_pem(&pem).ok())
                    .and_then(|c| c.to_der().ok())
                    .is_some_and(|der| der.windows(digest.len()).any(|w| w == digest))
            });
            for spec in md.effective_specs().into_iter().filter(|_| changed) {
                let sfx = spec.file_suffix();
                // X25519 keys cannot sign: use P-256 for the challenge then
                let kspec = match &spec {
                    KeySpec::Ec(c) if c.eq_ignore_ascii_case("x25519") => {
                        KeySpec::Ec("P-256".into())
                    }
                    other => other.clone(),
                };
                let key = Key::generate(&kspec).map_err(|e| AcmeError::new(Kind::General, e.0))?;
                let cert = crypto::tls_alpn01_cert(&key, ident, &key_authz)
                    .map_err(|e| AcmeError::new(Kind::General, e.0))?;
                let pem = cert
                    .to_pem()
                    .map_err(|e| AcmeError::new(Kind::General, e.to_string()))?;
                env.store
                    .save_key(
                        Group::Challenges,
                        &dir,
                        &format!("acme-tls-alpn-01-privkey{sfx}.pem"),
                        &key,
                    )
                    .map_err(store_err)?;
                env.store
                    .save_bytes(
                        Group::Challenges,
                        &dir,
                        &format!("acme-tls-alpn-01-pubcert{sfx}.pem"),
                        &pem,
                        false,
                    )
                    .map_err(store_err)?;
            }
            format!("tls-alpn-01:{ident}")
        }
        ChallengeType::Dns01 => {
            let cmd = md
                .dns01_cmd
                .as_ref()
                .or(env.challenges.dns01_cmd.as_ref())
                .ok_or_else(|| {
                    AcmeError::with_problem(
                        Kind::Invalid,
                        "challenge-mismatch",
                        "dns-01 needs MDChallengeDns01",
                    )
                })?;
            let value = dns_txt_value(&key_authz);
            let domain = identifier_value(ident);
            let mut argv = crate::base::util::tokenize_argv(cmd);
            argv.extend(["setup".to_string(), domain.to_string(), value.clone()]);
            match crate::base::command::exit_code(&argv) {
                Ok(0) => {}
                Ok(code) => {
                    env.notes.push(Note::new(
                        Level::Info,
                        format!(
                            "{}: dns-01 setup command returns {code} for {domain}",
                            md.name
                        ),
                    ));
                    return Err(AcmeError::new(
                        Kind::General,
                        format!("dns-01 setup command returns {code} for {domain}"),
                    ));
                }
                Err(e) => {
                    env.notes.push(Note::new(
                        Level::Warn,
                        format!(
                            "{}: dns-01 setup command failed to execute for {domain}",
                            md.name
                        ),
                    ));
                    return Err(AcmeError::new(Kind::General, e.to_string()));
                }
            }
            format!("dns-01:{domain} {value}")
        }
        other => {
            return Err(AcmeError::with_problem(
                Kind::Invalid,
                "challenge-mismatch",
                format!("unsupported challenge type {other}"),
            ))
        }
    };
    // Every time, as the C module does (an ACMEv2 authorization carries no
    // key authorization to compare): a cluster's MDMessageCmd copies the
    // challenge to the other nodes, and when that fails the CA must not be
    // asked to validate, in this run or a resumed one.
    env.events
        .challenge_setup(ctype, identifier_value(ident))
        .map_err(|e| {
            AcmeError::new(
                Kind::General,
                format!("challenge-setup:{ctype}:{ident} vetoed: {e}"),
            )
        })?;
    Ok(setup)
}

/// Pre-flight (issue 16, point 4): asks httpd the CA's question before the
/// CA does. An Err keeps the CA from being asked for this challenge type.
pub(crate) fn preflight(
    acme: &Acme,
    md: &Md,
    env: &mut RunEnv<'_>,
    ctype: &ChallengeType,
    ident: &str,
    token: &str,
) -> AResult<()> {
    let Some(pf) = env.challenges.preflight.clone() else {
        return Ok(());
    };
    if *ctype == ChallengeType::Dns01 {
        return Ok(());
    }
    let key_authz = acme_key_authz(acme, token)?;
    let name = identifier_value(ident);
    let checked = crate::acme::preflight::check(&pf, ctype, name, token, &key_authz);
    let dns = crate::acme::preflight::resolution(name);
    let dns = if dns.is_empty() {
        String::new()
    } else {
        format!("; {dns}")
    };
    match checked {
        Ok(what) => {
            env.notes.push(Note::new(
                Level::Debug,
                format!("{}: {ctype} pre-flight for {name}: {what}{dns}", md.name),
            ));
            Ok(())
        }
        Err(why) => {
            let msg = format!(
                "{ctype} pre-flight for {name} failed, the CA was not asked to validate it:                  {why}{dns} (MDChallengePreflight off skips this check)"
            );
            env.notes
                .push(Note::new(Level::Warn, format!("{}: {msg}", md.name)));
            Err(AcmeError::with_problem(
                Kind::General,
                "challenge-preflight-failure",
                msg,
            ))
        }
    }
}

/// What became of a pending authorization.
pub(crate) enum AuthzStart {
    /// The CA validates (asked now).
    Started,
    /// An earlier run asked the CA to validate the challenge at this URL
    /// (or may have: it stopped while asking): its verdict is awaited.
    Awaiting(String),
    /// It can no longer become valid: a new order is needed.
    Failed(Authorization),
}

/// Records in `order.json` that the CA was (or may have been) asked to
/// validate the challenge at `url`, or that it was not.
pub(crate) fn set_asked(env: &RunEnv<'_>, md: &Md, order: &mut Order, url: &str, asked: bool) {
    order.challenges_asked.retain(|u| u != url);
    if asked {
        order.challenges_asked.push(url.to_string());
    }
    let _ = env
        .store
        .save_json(Group::Staging, &md.name, "order.json", &order.to_json());
}

/// Records a challenge setup in the order (its data is torn down with it).
pub(crate) fn record_setup(env: &RunEnv<'_>, md: &Md, order: &mut Order, setup: String) {
    if !order.challenge_setups.contains(&setup) {
        order.challenge_setups.push(setup);
    }
    let _ = env
        .store
        .save_json(Group::Staging, &md.name, "order.json", &order.to_json());
}

/// Handles one pending authorization: picks a challenge type and sets it up.
/// A challenge that an earlier run (of this process or another, stopped by
/// a restart) asked the CA to validate is not asked again: its data is set
/// up (so that it answers) and the CA's verdict awaited.
pub(crate) fn start_authz(
    acme: &mut Acme,
    md: &Md,
    env: &mut RunEnv<'_>,
    order: &mut Order,
    authz_url: &str,
    authz: &Authorization,
) -> AResult<AuthzStart> {
    let ident = authz.name();
    if authz
        .challenges
        .iter()
        .any(|c| c.status == Some(ChallengeStatus::Invalid))
    {
        return Ok(AuthzStart::Failed(authz.clone()));
    }
    if let Some(ch) = authz.challenges.iter().find(|c| {
        (c.status == Some(ChallengeStatus::Processing) || order.challenges_asked.contains(&c.url))
            && env.challenges.types.contains(&c.kind)
    }) {
        let ctype = ch.kind.clone();
        let setup = setup_challenge(acme, md, env, &ctype, &ident, &ch.token)?;
        record_setup(env, md, order, setup);
        env.events.progress(&format!(
            "Waiting for the CA to validate the {ctype} challenge for {ident}"
        ));
        return Ok(if ch.status == Some(ChallengeStatus::Processing) {
            AuthzStart::Started
        } else {
            AuthzStart::Awaiting(ch.url.clone())
        });
    }
    let offered_types: Vec<ChallengeType> =
        authz.challenges.iter().map(|c| c.kind.clone()).collect();
    let mut last_err = None;
    let mut any = false;
    for ctype in env.challenges.types.clone() {
        let Some(ch) = authz.challenges.iter().find(|c| c.kind == ctype) else {
            continue;
        };
        any = true;
        // tls-alpn-01 needs an https server with acme-tls/1 for some name
        // of the MD (§4.5); a name without a vhost of its own is answered
        // by the https server that gets its handshake.
        if ctype == ChallengeType::TlsAlpn01
            && env
                .challenges
                .tls_alpn_domains
                .as_ref()
                .is_some_and(Vec::is_empty)
        {
            let why = format!(
                "{ctype} for {ident}: protocol 'acme-tls/1' seems not enabled for this or any other associated domain"
            );
            env.notes
                .push(Note::new(Level::Info, format!("{}: {why}", md.name)));
            last_err = Some(AcmeError::new(Kind::General, why));
            continue;
        }
        match setup_challenge(acme, md, env, &ctype, &ident, &ch.token)
            .and_then(|setup| preflight(acme, md, env, &ctype, &ident, &ch.token).map(|_| setup))
        {
            Ok(setup) => {
                record_setup(env, md, order, setup);
                env.events
                    .progress(&format!("Responding to {ctype} challenge for {ident}"));
                // Recorded before it is sent: a run stopped while the CA
                // answers (a restart aborts the transfer) may have asked
                // it; the run that resumes the order then waits for the
                // verdict instead of asking again (a second validation may
                // judge after the answer is gone). One that the CA did not
                // get is asked again once its wait ends (see `drive`).
                set_asked(env, md, order, &ch.url, true);
                if let Err(e) = acme.post(&ch.url, Some(&json!({})), false) {
                    if e.kind == Kind::Canceled {
                        // stopped before it was sent
                        set_asked(env, md, order, &ch.url, false);
                        return Err(e);
                    }
                    // The CA refused: perhaps it decided meanwhile (another
                    // run asked first). Its verdict, not the refusal, counts.
                    let now = acme.get_json(authz_url).and_then(|j| {
                        resource::parse::<Authorization>("authorization", authz_url, &j)
                    });
                    return match now {
                        Ok(a) if a.status.is_failed() => Ok(AuthzStart::Failed(a)),
                        Ok(a)
                            if a.status == AuthzStatus::Valid
                                || a.challenges.iter().any(|c| {
                                    c.url == ch.url
                                        && matches!(
                                            c.status,
                                            Some(
                                                ChallengeStatus::Processing
                                                    | ChallengeStatus::Valid
                                            )
                                        )
                                }) =>
                        {
                            Ok(AuthzStart::Started)
                        }
                        // the CA answered and did not take it: not asked
                        Ok(_) if e.problem.is_some() => {
                            set_asked(env, md, order, &ch.url, false);
                            Err(e)
                        }
                        _ => Err(e),
                    };
                }
                return Ok(AuthzStart::Started);
            }
            Err(e) => {
                env.notes.push(Note::new(
                    Level::Debug,
                    format!("{}: {ctype} for {ident}: {e}", md.name),
                ));
                last_err = Some(e);
            }
        }
    }
    if !any {
        return Err(AcmeError::with_problem(
            Kind::Invalid,
            "challenge-mismatch",
            format!(
                "None of offered challenge types for domain {ident} are supported. The server offered '{}' and available are: '{}'.",
                crate::base::challenge::join(&offered_types),
                crate::base::challenge::join(&env.challenges.types)
            ),
        ));
    }
    // the pre-flight's reason as it is: md-status and the errored event
    // say what to correct
    if let Some(e) = last_err
        .as_ref()
        .filter(|e| e.problem.as_deref() == Some("challenge-preflight-failure"))
    {
        return Err(e.clone());
    }
    let detail = last_err.map(|e| e.detail).unwrap_or_default();
    Err(AcmeError::with_problem(
        Kind::General,
        "challenge-setup-failure",
        format!("all challenge types failed for {ident}: {detail}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::order::link_up;

    #[test]
    fn challenge_dirs_and_links() {
        assert_eq!(
            challenge_dir_name(&ChallengeType::Http01, "127.0.0.1"),
            "127.0.0.1"
        );
        assert_eq!(
            challenge_dir_name(&ChallengeType::TlsAlpn01, "127.0.0.1"),
            "1.0.0.127.in-addr.arpa"
        );
        assert_eq!(
            challenge_dir_name(&ChallengeType::TlsAlpn01, "a.org"),
            "a.org"
        );
        let r = crate::base::http::Response {
            status: 200,
            headers: vec![
                ("link".into(), "<https://ca/dir>;rel=\"index\"".into()),
                ("link".into(), "<https://ca/issuer/1>;rel=\"up\"".into()),
            ],
            body: vec![],
        };
        assert_eq!(link_up(&r).as_deref(), Some("https://ca/issuer/1"));
        assert_eq!(dns_txt_value("tok.thumb").len(), 43);
        // RFC 8555 §8.4: base64url(SHA-256(key authorization))
        assert_eq!(
            dns_txt_value("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn key_authorizations() {
        let k = Key::generate_rsa(2048).unwrap();
        let ka = key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", &k).unwrap();
        let (tok, thumb) = ka.split_once('.').unwrap();
        assert_eq!(tok, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA");
        assert_eq!(thumb, k.thumbprint().unwrap());
        assert_eq!(thumb.len(), 43);
    }
}
