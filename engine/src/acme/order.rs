//! Orders, authorizations and challenges (spec §4.4–§4.7), and the staging
//! run that obtains the certificates of one MD.

use super::resource::{
    self, Authorization, AuthzStatus, ChallengeStatus, OrderResource, OrderStatus,
};
use super::{account, json_body, poll, retry_after, AResult, Acme, AcmeError, Kind};
use crate::base::crypto::{self, Key};
use crate::base::keyspec::KeySpec;
use crate::base::log::{Level, Note};
use crate::base::util::b64url_encode;
use crate::config::Md;
use crate::store::{Group, Store};
use openssl::hash::{hash, MessageDigest};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Polling limits (§4.2).
pub const AUTHZ_TIMEOUT: Duration = Duration::from_secs(300);
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// `staging/<md>/order.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Order {
    pub url: String,
    #[serde(default)]
    pub status: OrderStatus,
    #[serde(default)]
    pub authorizations: Vec<String>,
    #[serde(default)]
    pub challenge_setups: Vec<String>,
    /// The challenges the CA took to validate (ours; the C module does not
    /// write it and ignores it): a run that resumes the order after a
    /// restart waits for the CA's verdict instead of asking again (a CA
    /// may validate twice and judge on the second, when the first run's
    /// data is gone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub challenges_asked: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finalize: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

impl Order {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// None when the file does not hold an order (it is then discarded and
    /// a new order made).
    pub fn from_json(j: &Value) -> Option<Order> {
        let mut o = Order::deserialize(j).ok()?;
        if o.status == OrderStatus::Unknown {
            o.status = OrderStatus::Pending;
        }
        Some(o)
    }

    /// Takes over what the CA says about the order.
    fn update(&mut self, r: OrderResource) {
        if let Some(s) = r.status {
            self.status = s;
        }
        if let Some(a) = r.authorizations {
            self.authorizations = a;
        }
        if r.finalize.is_some() {
            self.finalize = r.finalize;
        }
        if r.certificate.is_some() {
            self.certificate = r.certificate;
        }
    }

    /// Takes over the CA's answer about the order, if it sent one.
    fn update_from(&mut self, r: &crate::base::http::Response) -> AResult<()> {
        if let Some(j) = json_body(r) {
            self.update(resource::parse("order", &self.url, &j)?);
        }
        Ok(())
    }
}

/// Hooks into the run, for events and progress.
pub trait Events {
    /// `challenge-setup:<type>:<domain>`, after the challenge data is in
    /// place and before the CA is told. An error makes this type fail.
    fn challenge_setup(&mut self, _ctype: &str, _domain: &str) -> Result<(), String> {
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
    pub types: Vec<String>,
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

/// The identifiers to order: MD names minus those a wildcard in the list
/// covers, in order of first appearance.
pub fn order_identifiers(domains: &[String]) -> Vec<String> {
    domains
        .iter()
        .filter(|d| {
            !domains.iter().any(|w| {
                w.strip_prefix("*.").is_some_and(|base| {
                    *d != w
                        && d.split_once('.')
                            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(base))
                })
            })
        })
        .cloned()
        .collect()
}

/// The challenge directory of an identifier for a challenge type: IP
/// addresses are looked up by their reverse-DNS name for tls-alpn-01 (the
/// SNI the CA sends, RFC 8738).
pub fn challenge_dir_name(ctype: &str, ident: &str) -> String {
    if ctype == "tls-alpn-01" {
        if let Some(rev) = crypto::reverse_dns_name(ident) {
            return rev;
        }
    }
    ident.to_string()
}

fn identifier_value(ident: &str) -> &str {
    ident.strip_prefix("*.").unwrap_or(ident)
}

fn run_cmd(argv: &[String]) -> Result<i32, String> {
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot execute {prog}: {e}"))?;
    Ok(out.status.code().unwrap_or(-1))
}

/// The key authorization of a challenge token (RFC 8555 §8.1).
pub fn key_authorization(token: &str, account_key: &Key) -> Result<String, crypto::CryptoError> {
    Ok(format!("{token}.{}", account_key.thumbprint()?))
}

fn dns_txt_value(key_authz: &str) -> String {
    b64url_encode(
        &hash(MessageDigest::sha256(), key_authz.as_bytes())
            .map(|d| d.to_vec())
            .unwrap_or_default(),
    )
}

/// Removes what a challenge setup left: challenge files, DNS records.
pub fn teardown(
    store: &Store,
    md: &Md,
    env_dns: &ChallengeEnv,
    setups: &[String],
    notes: &mut Vec<Note>,
) {
    for token in setups {
        let Some((ctype, rest)) = token.split_once(':') else {
            continue;
        };
        match ctype {
            "http-01" | "tls-alpn-01" => {
                store.purge(Group::Challenges, &challenge_dir_name(ctype, rest))
            }
            "dns-01" => {
                let (domain, value) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Some(cmd) = md.dns01_cmd.as_ref().or(env_dns.dns01_cmd.as_ref()) {
                    let mut argv = crate::base::util::tokenize_argv(cmd);
                    argv.push("teardown".into());
                    argv.push(domain.into());
                    if env_dns.dns01_version == 2 {
                        argv.push(value.into());
                    }
                    match run_cmd(&argv) {
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
fn acme_key_authz(acme: &Acme, token: &str) -> AResult<String> {
    let acct_key = &acme
        .account
        .as_ref()
        .ok_or_else(|| AcmeError::new(Kind::Invalid, "no account"))?
        .1;
    key_authorization(token, acct_key).map_err(|e| AcmeError::new(Kind::Invalid, e.0))
}

/// Sets up one challenge; returns the setup token.
fn setup_challenge(
    acme: &Acme,
    md: &Md,
    env: &mut RunEnv<'_>,
    ctype: &str,
    ident: &str,
    token: &str,
) -> AResult<String> {
    let key_authz = acme_key_authz(acme, token)?;
    let store = env.store;
    let store_err = |e: crate::store::StoreError| AcmeError::new(Kind::General, e.msg);
    let setup = match ctype {
        "http-01" => {
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
        "tls-alpn-01" => {
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
        "dns-01" => {
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
            match run_cmd(&argv) {
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
                    return Err(AcmeError::new(Kind::General, e));
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
fn preflight(
    acme: &Acme,
    md: &Md,
    env: &mut RunEnv<'_>,
    ctype: &str,
    ident: &str,
    token: &str,
) -> AResult<()> {
    let Some(pf) = env.challenges.preflight.clone() else {
        return Ok(());
    };
    if ctype == "dns-01" {
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

/// The error of an authorization that can no longer become valid.
fn authz_failed(authz: &Authorization) -> AcmeError {
    AcmeError::new(
        Kind::Invalid,
        format!(
            "domain authorization for {} failed, CA considers answer to challenge invalid, {}.",
            authz.identifier.value,
            authz.error_detail()
        ),
    )
}

/// What became of a pending authorization.
enum AuthzStart {
    /// The CA validates (now, or was asked to before).
    Started,
    /// It can no longer become valid: a new order is needed.
    Failed(Authorization),
}

/// Records a challenge setup in the order (its data is torn down with it).
fn record_setup(env: &RunEnv<'_>, md: &Md, order: &mut Order, setup: String) {
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
fn start_authz(
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
        return Ok(AuthzStart::Started);
    }
    let offered_types: Vec<&str> = authz.challenges.iter().map(|c| c.kind.as_str()).collect();
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
        if ctype == "tls-alpn-01"
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
                if let Err(e) = acme.post(&ch.url, Some(&json!({})), false) {
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
                        _ => Err(e),
                    };
                }
                order.challenges_asked.push(ch.url.clone());
                let _ =
                    env.store
                        .save_json(Group::Staging, &md.name, "order.json", &order.to_json());
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
                offered_types.join(" "),
                env.challenges.types.join(" ")
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

/// The ARI id of the live certificate that an order for `spec` replaces
/// (RFC 9773 §5): when the CA offers `renewalInfo`, ARI is on for the MD,
/// and the certificate was not named before.
fn replaces(acme: &Acme, md: &Md, env: &RunEnv<'_>, spec: &KeySpec) -> Option<String> {
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
fn new_order_replacing(
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
fn profile(acme: &Acme, md: &Md, env: &mut RunEnv<'_>) -> Option<String> {
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

fn new_order(
    acme: &mut Acme,
    md: &Md,
    replaces: Option<&str>,
    profile: Option<&str>,
) -> AResult<Order> {
    let idents: Vec<Value> = order_identifiers(&md.domains)
        .iter()
        .map(|d| json!({"type": crypto::ident_type(d), "value": d}))
        .collect();
    let mut payload = Map::new();
    payload.insert("identifiers".into(), Value::Array(idents));
    if let Some(id) = replaces {
        payload.insert("replaces".into(), json!(id));
    }
    if let Some(p) = profile {
        match acme.dir.profiles.iter().find(|x| x.eq_ignore_ascii_case(p)) {
            Some(offered) => {
                payload.insert("profile".into(), json!(offered));
            }
            None if md.profile_mandatory => {
                return Err(AcmeError::new(
                    Kind::Invalid,
                    format!("mandatory ACME profile '{p}' is not offered by CA"),
                ));
            }
            None => {}
        }
    }
    let url = acme.dir.new_order.clone();
    let r = acme.post(&url, Some(&Value::Object(payload)), false)?;
    let loc = r
        .header("location")
        .map(str::to_string)
        .ok_or_else(|| AcmeError::new(Kind::Invalid, "new order without Location header"))?;
    let mut o = Order {
        url: loc,
        ..Default::default()
    };
    o.update_from(&r)?;
    Ok(o)
}

fn link_up(r: &crate::base::http::Response) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "link")
        .flat_map(|(_, v)| v.split(','))
        .find(|l| l.contains("rel=\"up\"") || l.contains("rel=up"))
        .and_then(|l| Some(l[l.find('<')? + 1..l.find('>')?].to_string()))
}

fn parse_certs(r: &crate::base::http::Response) -> AResult<Vec<X509>> {
    let ct = r.content_type().unwrap_or_default();
    let res = if ct == "application/pkix-cert" {
        X509::from_der(&r.body).map(|c| vec![c])
    } else {
        X509::stack_from_pem(&r.body)
    };
    res.map_err(|e| {
        AcmeError::new(
            Kind::Invalid,
            format!("cannot parse certificate ({ct}): {e}"),
        )
    })
}

/// Downloads the chain at `url`, following `Link: rel="up"` (§4.7).
pub fn download_chain(acme: &mut Acme, url: &str) -> AResult<Vec<X509>> {
    let r = acme.post_as_get(url)?;
    let mut chain = parse_certs(&r)?;
    let mut next = link_up(&r);
    if chain.len() == 1 && next.is_none() {
        return Err(AcmeError::new(
            Kind::Invalid,
            "no link header 'up' for new certificate, unable to retrieve chain",
        ));
    }
    let mut seen = vec![url.to_string()];
    while chain.len() == 1 && chain.len() < 10 {
        let Some(u) = next.take().filter(|u| !seen.contains(u)) else {
            break;
        };
        seen.push(u.clone());
        let r = acme.post_as_get(&u)?;
        chain.extend(parse_certs(&r)?);
        next = link_up(&r);
    }
    if chain.is_empty() {
        return Err(AcmeError::new(
            Kind::Invalid,
            "no certificate in the CA's response",
        ));
    }
    Ok(chain)
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

fn not_before(c: &X509) -> i64 {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).expect("epoch");
    epoch
        .diff(c.not_before())
        .map(|d| (i64::from(d.days) * 86_400 + i64::from(d.secs)) * 1_000_000)
        .unwrap_or(0)
}

/// Whether staging already holds a key and chain for `spec` that fit the MD.
fn staged_complete(store: &Store, md: &Md, spec: &KeySpec) -> bool {
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
fn discard_order(store: &Store, md: &Md, env: &mut RunEnv<'_>, o: &Order) {
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
fn obtain(
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
        for url in o.authorizations.clone() {
            let authz: Authorization =
                resource::parse("authorization", &url, &acme.get_json(&url)?)?;
            match authz.status {
                AuthzStatus::Valid => {}
                AuthzStatus::Pending => {
                    if let AuthzStart::Failed(a) = start_authz(acme, md, env, &mut o, &url, &authz)?
                    {
                        bad = Some(a);
                        break;
                    }
                }
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
            poll(AUTHZ_TIMEOUT, "authorization", || {
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
                    _ => Ok((None, retry_after(&r))),
                }
            })?;
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

/// A key the thread made (or why it could not).
type MadeKey = (KeySpec, Result<Key, crypto::CryptoError>);

/// The domain keys a staging run lacks, made on a thread of their own
/// (key generation is the largest CPU cost of a run and needs no CA), in
/// turn with other key generations of the process, and
/// saved to staging once taken, or when the run ends. The thread is always
/// joined: none is left inside OpenSSL when the child exits.
struct PendingKeys {
    store: Store,
    md: String,
    thread: Option<std::thread::JoinHandle<Vec<MadeKey>>>,
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
            .filter(|s| {
                !store
                    .path(Group::Staging, &md.name, &Self::file(s))
                    .exists()
            })
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
            if !self.store.path(Group::Staging, &self.md, &file).exists() {
                self.store
                    .save_key(Group::Staging, &self.md, &file, &key)
                    .map_err(|e| AcmeError::new(Kind::General, e.msg))?;
            }
        }
        Ok(())
    }

    /// The staged key for `spec`: stored, made by the thread, or made now.
    fn key(&mut self, spec: &KeySpec) -> AResult<Key> {
        self.finish()?;
        let (store, file) = (&self.store, Self::file(spec));
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
static ACCOUNT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The cluster lease for choosing (or registering) an account at a CA,
/// waited for as long as a holder may keep it.
fn account_lease(
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

    #[test]
    fn identifiers_without_covered_names() {
        let d = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            order_identifiers(&d(&["a.org", "*.a.org", "www.a.org", "x.y.a.org"])),
            d(&["a.org", "*.a.org", "x.y.a.org"])
        );
        assert_eq!(
            order_identifiers(&d(&["a.org", "127.0.0.1"])),
            d(&["a.org", "127.0.0.1"])
        );
    }

    #[test]
    fn order_json() {
        let o = Order {
            url: "u".into(),
            status: OrderStatus::Pending,
            authorizations: vec!["a1".into()],
            challenge_setups: vec!["http-01:a.org".into()],
            challenges_asked: vec![],
            finalize: Some("f".into()),
            certificate: None,
        };
        let j = o.to_json();
        // as the C module writes it
        assert_eq!(
            j.to_string(),
            r#"{"url":"u","status":"pending","authorizations":["a1"],"challenge-setups":["http-01:a.org"],"finalize":"f"}"#
        );
        assert_eq!(Order::from_json(&j).unwrap(), o);
        // with the challenges the CA took (ours), read back
        let asked = Order {
            challenges_asked: vec!["c1".into()],
            ..o.clone()
        };
        let j = asked.to_json();
        assert_eq!(j["challenges-asked"], json!(["c1"]));
        assert_eq!(Order::from_json(&j).unwrap(), asked);
        let odd = Order::from_json(&json!({"url": "u", "status": "weird"})).unwrap();
        assert_eq!(odd.status, OrderStatus::Pending);
    }

    #[test]
    fn challenge_dirs_and_links() {
        assert_eq!(challenge_dir_name("http-01", "127.0.0.1"), "127.0.0.1");
        assert_eq!(
            challenge_dir_name("tls-alpn-01", "127.0.0.1"),
            "1.0.0.127.in-addr.arpa"
        );
        assert_eq!(challenge_dir_name("tls-alpn-01", "a.org"), "a.org");
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
