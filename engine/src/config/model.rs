//! The configuration model: server-level settings, an MD section, the
//! module-wide settings, and an MD's merged configuration (spec §1.3) with
//! what the store and start-up found; md.json as written and read.

use crate::base::challenge::ChallengeType;
use crate::base::keyspec::{self, KeySpec};
use crate::base::time::{self, Micros, TimeSlice};
use crate::config::Ctx;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const LETSENCRYPT_URL: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const KNOWN_CAS: &[(&str, &str)] = &[
    ("LetsEncrypt", LETSENCRYPT_URL),
    (
        "LetsEncrypt-Test",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ),
    ("Buypass", "https://api.buypass.com/acme/directory"),
    (
        "Buypass-Test",
        "https://api.test4.buypass.no/acme/directory",
    ),
];
pub const TAILSCALE_DEFAULT_URL: &str = "file://localhost/var/run/tailscale/tailscaled.sock";

/// The daemon's socket path from `file://localhost/<path>`.
pub(crate) fn tailscale_socket_path(url: &str) -> Result<String, String> {
    match url.strip_prefix("file://localhost/") {
        Some(p) if !p.is_empty() => Ok(format!("/{p}")),
        _ => Err(format!(
            "MDCertificateAuthority for MDCertificateProtocol tailscale must be \
             file://localhost/<path of tailscaled's socket> (default {TAILSCALE_DEFAULT_URL}), not '{url}'"
        )),
    }
}

/// Checks the CA URLs of a tailscale MD (config time).
pub(crate) fn check_tailscale_urls(urls: &[String]) -> Result<(), String> {
    urls.iter()
        .try_for_each(|u| tailscale_socket_path(u).map(|_| ()))
}

/// Norm for certificate-lifetime percentages (100 days).
pub const LIFE_NORM: Micros = 100 * time::SECS_PER_DAY * time::USEC_PER_SEC;
/// Norm for the OCSP keep window (7 days).
pub const KEEP_NORM: Micros = 7 * time::SECS_PER_DAY * time::USEC_PER_SEC;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewMode {
    Manual = 0,
    Auto = 1,
    Always = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequireHttps {
    Off,
    Temporary,
    Permanent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    All,
    ServerNames,
}

/// External account binding: `kid` `none` means "explicitly no EAB".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eab {
    pub kid: String,
    pub hmac: Option<String>,
}

/// `MDCertificateProtocol`: how an MD gets its certificates, as configured
/// (md.json keeps the spelling). `ACME` (the default) and `tailscale` (any
/// case, §9) are spoken here; anything else stops the start (AH10172).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaProtocol(String);

impl Default for CaProtocol {
    fn default() -> Self {
        CaProtocol("ACME".into())
    }
}

impl CaProtocol {
    pub fn new(configured: &str) -> CaProtocol {
        CaProtocol(configured.to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn is_acme(&self) -> bool {
        self.0 == "ACME"
    }
    pub(crate) fn is_tailscale(&self) -> bool {
        self.0.eq_ignore_ascii_case("tailscale")
    }
    /// One this module speaks.
    pub(crate) fn is_known(&self) -> bool {
        self.is_acme() || self.is_tailscale()
    }
}

impl std::fmt::Display for CaProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// The per-MD properties (spec §1.3), listed once: each row of `per_md!`
// declares what a scope sets (`Settings`, `None` = not set there), how
// scopes merge (the vhost's value wins over the main server's), and the
// MD's value after the merge with the built-in defaults (`Effective`, which
// `Md` derefs to). md.json (`MdFile`) stays written out by hand: its names,
// order and encodings are the C module's file format.

/// Declares `Settings`, its merge and `Effective` from one list of rows
/// `field: SetType => EffectiveType = |merged, definition| value;`, and
/// in `settings only { }` the fields a scope sets that the MD does not
/// carry as such (the contact becomes `Md::contacts`).
macro_rules! per_md {
    (
        settings only { $( $(#[$odoc:meta])* $of:ident : $ot:ty ; )* }
        $( $(#[$doc:meta])* $f:ident : $t:ty => $eff:ty = |$s:ident, $d:ident| $e:expr ; )*
    ) => {
        /// The per-MD properties that can be set at server level or in a
        /// section (§1.3). `None` = not set here.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Settings {
            $( $(#[$doc])* pub $f: Option<$t>, )*
            $( $(#[$odoc])* pub $of: Option<$ot>, )*
        }

        impl Settings {
            /// httpd's per-vhost merge: values of `add` (the vhost) win
            /// over `base`.
            pub fn merged(base: &Settings, add: &Settings) -> Settings {
                Settings {
                    $( $f: add.$f.clone().or_else(|| base.$f.clone()), )*
                    $( $of: add.$of.clone().or_else(|| base.$of.clone()), )*
                }
            }
        }

        /// An MD's per-MD properties after the merge of §1.3 with the
        /// defaults.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Effective {
            $( $(#[$doc])* pub $f: $eff, )*
        }

        impl Effective {
            /// `merged`: the main server's settings merged with the
            /// section's; `def`: the MD's definition.
            pub(crate) fn resolve(merged: &Settings, def: &MdDef) -> Effective {
                Effective {
                    $( $f: {
                        let ($s, $d) = (merged, def);
                        let _ = (&$s, &$d);
                        $e
                    }, )*
                }
            }
        }
    };
}

per_md! {
    settings only {
        /// `MDContactEmail` (else ServerAdmin): becomes `Md::contacts`.
        contact: String;
    }
    /// `MDMembers`; the definition's own `auto`/`manual` wins.
    transitive: bool => bool = |s, d| d.transitive.or(s.transitive).unwrap_or(true);
    /// `MDCertificateAuthority`.
    ca_urls: Vec<String> => Vec<String> = |s, _d| s.ca_urls.clone().unwrap_or_default();
    /// `MDCertificateProtocol`.
    ca_proto: CaProtocol => CaProtocol = |s, _d| s.ca_proto.clone().unwrap_or_default();
    /// `MDCertificateAgreement`.
    ca_agreement: String => Option<String> = |s, _d| s.ca_agreement.clone();
    /// `MDCAChallenges`.
    ca_challenges: Vec<ChallengeType> => Vec<ChallengeType> =
        |s, _d| s.ca_challenges.clone().unwrap_or_default();
    /// `MDRenewMode`.
    renew_mode: RenewMode => RenewMode = |s, _d| s.renew_mode.unwrap_or(RenewMode::Auto);
    /// `MDRenewWindow` (default 33 % of the lifetime).
    renew_window: TimeSlice => TimeSlice =
        |s, _d| s.renew_window.unwrap_or_else(|| TimeSlice::percent_of(LIFE_NORM, 33));
    /// `MDWarnWindow` (default 10 % of the lifetime).
    warn_window: TimeSlice => TimeSlice =
        |s, _d| s.warn_window.unwrap_or_else(|| TimeSlice::percent_of(LIFE_NORM, 10));
    /// `MDPrivateKeys`.
    pkey_specs: Vec<KeySpec> => Vec<KeySpec> = |s, _d| s.pkey_specs.clone().unwrap_or_default();
    /// `MDMustStaple`.
    must_staple: bool => bool = |s, _d| s.must_staple.unwrap_or(false);
    /// `MDRequireHttps`.
    require_https: RequireHttps => RequireHttps =
        |s, _d| s.require_https.unwrap_or(RequireHttps::Off);
    /// `MDStapling`.
    stapling: bool => bool = |s, _d| s.stapling.unwrap_or(false);
    /// `MDStaplingOthers`.
    staple_others: bool => bool = |s, _d| s.staple_others.unwrap_or(true);
    /// `MDExternalAccountBinding`.
    eab: Eab => Option<Eab> = |s, _d| s.eab.clone();
    /// `MDProfile`.
    profile: String => Option<String> = |s, _d| s.profile.clone();
    /// `MDProfileMandatory`.
    profile_mandatory: bool => bool = |s, _d| s.profile_mandatory.unwrap_or(false);
    /// `MDRenewViaARI`.
    ari: bool => bool = |s, _d| s.ari.unwrap_or(true);
    /// `MDChallengeDns01`: per-MD only inside a section; outside it is
    /// module-global (see `Global`).
    dns01_cmd: String => Option<String> = |_s, d| d.settings.dns01_cmd.clone();
    /// `MDHttpProxy`, per-MD only inside a section (as `dns01_cmd`).
    proxy_url: String => Option<String> = |_s, d| d.settings.proxy_url.clone();
    /// `MDCACertificateFile`, per-MD only inside a section.
    ca_certs: String => Option<String> = |_s, d| d.settings.ca_certs.clone();
    /// `MDHttpProxyCACertificateFile`, per-MD only inside a section.
    proxy_ca_certs: String => Option<String> = |_s, d| d.settings.proxy_ca_certs.clone();
}

/// Module-wide settings (NOT_MD directives and the "global effect" ones).
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// `MDStoreDir` as given (resolved against ServerRoot by [`Global::store_dir_in`]).
    pub store_dir: Option<String>,
    /// Local ports that the public ports 80/443 reach; `None` = unreachable.
    pub local_80: Option<u16>,
    pub local_443: Option<u16>,
    pub base_server: bool,
    pub server_status: bool,
    pub certificate_status: bool,
    pub cert_check_name: String,
    pub cert_check_url: String,
    pub notify_cmd: Option<String>,
    pub message_cmd: Option<String>,
    pub dns01_cmd: Option<String>,
    pub dns01_version: u8,
    pub activation_delay: Micros,
    pub retry_delay: Micros,
    pub retry_failover: i32,
    /// `MDStoreLocks`: wait time, `None` = off.
    pub store_locks: Option<Micros>,
    pub match_mode: MatchMode,
    pub initial_delay: Micros,
    pub check_interval: Micros,
    pub stapling_keep_response: TimeSlice,
    pub stapling_renew_window: TimeSlice,
    pub proxy_url: Option<String>,
    pub ca_certs: Option<String>,
    pub proxy_ca_certs: Option<String>,
    /// `MDParallelRenewals`: renewals in flight at once.
    pub parallel_renewals: usize,
    /// `MDHotActivation`: renewed certificates go live without a restart.
    pub hot_activation: bool,
    /// `MDGracefulRestart`: the module restarts httpd gracefully itself when
    /// renewed certificates are ready.
    pub graceful_restart: bool,
    /// `MDClusterNode`: this node's name when several httpd share the
    /// store; `None` = no cluster coordination (as the C module).
    pub cluster_node: Option<String>,
    /// `MDClusterLease`: how long a lease lasts without a refresh.
    pub cluster_lease: Micros,
    /// `MDChallengePreflight`: check http-01/tls-alpn-01 answers through
    /// httpd's own listeners before the CA is asked (default on).
    pub challenge_preflight: bool,
    /// `MDCRLCheck`: check served certificates against their issuers' CRLs
    /// (default on).
    pub crl_check: bool,
    /// The addresses httpd listens on for http/https (set at start-up from
    /// its `Listen` sockets; what the pre-flight connects to).
    pub listeners: Vec<std::net::SocketAddr>,
    /// `MDStoreBackend etcd` and its options (ours); `endpoints` empty:
    /// the file store.
    pub etcd: EtcdSettings,
}

/// Where an etcd store is and how to reach it (`MDStoreBackend etcd …`,
/// `MDStoreEtcd*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    /// `MDStoreEtcdPrefix`, default `/mod_md/`.
    pub prefix: String,
    /// `MDStoreEtcdSealKey`.
    pub seal_key: Option<String>,
    /// `MDStoreEtcdCA`.
    pub ca_file: Option<String>,
    /// `MDStoreEtcdClientCert`: certificate and key files.
    pub client_cert: Option<(String, String)>,
    /// `MDStoreEtcdUser`: user and password.
    pub user: Option<(String, String)>,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        EtcdSettings {
            endpoints: Vec::new(),
            prefix: "/mod_md/".into(),
            seal_key: None,
            ca_file: None,
            client_cert: None,
            user: None,
        }
    }
}

/// Default of `MDClusterLease`.
pub const DEFAULT_CLUSTER_LEASE: Micros = 120 * time::USEC_PER_SEC;

/// Default of `MDParallelRenewals`.
pub const DEFAULT_PARALLEL_RENEWALS: usize = 16;

impl Global {
    /// The store directory: `MDStoreDir`, or `md` under ServerRoot.
    pub(crate) fn store_dir_in(&self, server_root: &str) -> String {
        self.store_dir.clone().unwrap_or_else(|| {
            Ctx {
                server_root: server_root.to_string(),
                ..Default::default()
            }
            .root_relative("md")
        })
    }
}

impl Default for Global {
    fn default() -> Self {
        Global {
            store_dir: None,
            local_80: Some(80),
            local_443: Some(443),
            base_server: false,
            server_status: false,
            certificate_status: true,
            cert_check_name: "crt.sh".into(),
            cert_check_url: "https://crt.sh?q=".into(),
            notify_cmd: None,
            message_cmd: None,
            dns01_cmd: None,
            dns01_version: 1,
            activation_delay: 0,
            retry_delay: time::from_secs(30),
            retry_failover: 13,
            store_locks: None,
            match_mode: MatchMode::All,
            initial_delay: 0,
            check_interval: time::from_secs(12 * time::SECS_PER_HOUR),
            stapling_keep_response: TimeSlice {
                norm: 0,
                len: KEEP_NORM,
            },
            stapling_renew_window: TimeSlice::percent_of(LIFE_NORM, 33),
            proxy_url: None,
            ca_certs: None,
            proxy_ca_certs: None,
            parallel_renewals: DEFAULT_PARALLEL_RENEWALS,
            hot_activation: true,
            graceful_restart: false,
            cluster_node: None,
            cluster_lease: DEFAULT_CLUSTER_LEASE,
            challenge_preflight: true,
            crl_check: true,
            listeners: Vec::new(),
            etcd: EtcdSettings::default(),
        }
    }
}

pub const DEFAULT_STORE_LOCK_WAIT: Micros = 5 * time::USEC_PER_SEC;

/// One `MDomain` / `<MDomain>` definition as written in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct MdDef {
    pub domains: Vec<String>,
    /// Member mode from `auto`/`manual` keywords on the definition itself.
    pub transitive: Option<bool>,
    /// Section values (empty for a plain `MDomain` line).
    pub settings: Settings,
    pub cert_files: Vec<String>,
    pub key_files: Vec<String>,
    /// Config file and line of the definition.
    pub defn: Option<(String, u32)>,
}

impl MdDef {
    /// A definition with these names and nothing else set.
    pub fn new(domains: Vec<String>) -> MdDef {
        MdDef {
            domains,
            transitive: None,
            settings: Settings::default(),
            cert_files: Vec::new(),
            key_files: Vec::new(),
            defn: None,
        }
    }

    pub fn name(&self) -> &str {
        self.domains.first().map_or("", String::as_str)
    }
}

/// The state of an MD's certificates (the C module's `md_state_t`; md.json
/// and md-status carry the number).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum State {
    #[default]
    Unknown = 0,
    /// Not all certificates, or a changed name/key set: renewal needed.
    Incomplete = 1,
    Complete = 2,
    Expired = 3,
    /// Unusable (e.g. static files that cannot be read): not renewed.
    Error = 4,
    /// The C module's state for an MD that lacks data it needs.
    MissingInformation = 5,
}

impl State {
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// What the store and start-up found about an MD, beside its
/// configuration (md.json holds both).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MdState {
    pub state: State,
    /// Why the state is not complete, for md-status.
    pub descr: Option<String>,
    /// The CA the MD's certificates come from, and the account used there.
    pub ca_url: Option<String>,
    pub ca_account: Option<String>,
    /// The names an SSL vhost answers tls-alpn-01 for.
    pub acme_tls_1_domains: Vec<String>,
    /// Certificate and key files start-up found unusable and could not set
    /// aside ([`crate::store::sets`]): never handed to mod_ssl, counted as missing.
    pub broken: Vec<String>,
    /// What start-up could not do in the store for this MD, or found broken
    /// there (md-status `store`).
    pub store_problems: Vec<String>,
}

/// An MD: its effective configuration after the merge of §1.3
/// (directives only) and what was found about it (`found`).
#[derive(Debug, Clone, PartialEq)]
pub struct Md {
    pub name: String,
    pub domains: Vec<String>,
    pub contacts: Vec<String>,
    /// The per-MD properties after the merge (`md.renew_window` reads
    /// through to them).
    pub props: Effective,
    pub cert_files: Vec<String>,
    pub key_files: Vec<String>,
    pub defn: Option<(String, u32)>,
    pub found: MdState,
}

impl std::ops::Deref for Md {
    type Target = Effective;
    fn deref(&self) -> &Effective {
        &self.props
    }
}

impl std::ops::DerefMut for Md {
    fn deref_mut(&mut self) -> &mut Effective {
        &mut self.props
    }
}

/// `md.json` as the C module writes it (spec §5.3): field order, names,
/// numbers for booleans and modes where it uses them, members left out
/// when empty.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct MdFile<'a> {
    name: &'a str,
    domains: &'a [String],
    contacts: &'a [String],
    transitive: i64,
    ca: CaFile<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    privkey: Option<Value>,
    state: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_descr: Option<&'a str>,
    renew_mode: i64,
    renew_window: String,
    warn_window: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_https: Option<&'static str>,
    must_staple: bool,
    proto: ProtoFile<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cert_files: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pkey_files: &'a [String],
    stapling: bool,
    #[serde(rename = "cmd-dns-01", skip_serializing_if = "Option::is_none")]
    cmd_dns_01: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_certs: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy_ca_certs: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eab: Option<EabFile<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
    profile_mandatory: bool,
    ari_renewals: bool,
}

#[derive(Serialize)]
struct CaFile<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    proto: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    urls: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    challenges: &'a [ChallengeType],
}

#[derive(Serialize)]
struct ProtoFile<'a> {
    #[serde(rename = "acme-tls/1")]
    acme_tls_1: &'a [String],
}

#[derive(Serialize)]
struct EabFile<'a> {
    kid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hmac: Option<&'a str>,
}

impl<'a> MdFile<'a> {
    fn of(md: &'a Md) -> MdFile<'a> {
        MdFile {
            name: &md.name,
            domains: &md.domains,
            contacts: &md.contacts,
            transitive: i64::from(md.transitive),
            ca: CaFile {
                account: md.found.ca_account.as_deref(),
                proto: md.ca_proto.as_str(),
                url: md.found.ca_url.as_deref(),
                urls: &md.ca_urls,
                agreement: md.ca_agreement.as_deref(),
                challenges: &md.ca_challenges,
            },
            privkey: (!md.pkey_specs.is_empty()).then(|| keyspec::specs_to_json(&md.pkey_specs)),
            state: md.found.state.code(),
            state_descr: md.found.descr.as_deref(),
            renew_mode: md.renew_mode as i64,
            renew_window: md.renew_window.format(),
            warn_window: md.warn_window.format(),
            require_https: match md.require_https {
                RequireHttps::Temporary => Some("temporary"),
                RequireHttps::Permanent => Some("permanent"),
                RequireHttps::Off => None,
            },
            must_staple: md.must_staple,
            proto: ProtoFile {
                acme_tls_1: &md.found.acme_tls_1_domains,
            },
            cert_files: &md.cert_files,
            pkey_files: &md.key_files,
            stapling: md.stapling,
            cmd_dns_01: md.dns01_cmd.as_deref(),
            proxy_url: md.proxy_url.as_deref(),
            ca_certs: md.ca_certs.as_deref(),
            proxy_ca_certs: md.proxy_ca_certs.as_deref(),
            eab: md
                .eab
                .as_ref()
                .filter(|e| e.kid != "none")
                .map(|e| EabFile {
                    kid: &e.kid,
                    hmac: e.hmac.as_deref(),
                }),
            profile: md.profile.as_deref(),
            profile_mandatory: md.profile_mandatory,
            ari_renewals: md.ari,
        }
    }
}

/// What start-up takes over from a stored `md.json` (§2.2 after-SSL step
/// 2); members of the wrong type are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct StoredMd {
    #[serde(default, deserialize_with = "crate::base::util::lenient")]
    pub contacts: Vec<String>,
    #[serde(default, deserialize_with = "crate::base::util::lenient")]
    pub ca: StoredCa,
}

#[derive(Debug, Default, Deserialize)]
pub struct StoredCa {
    #[serde(default, deserialize_with = "crate::base::util::lenient")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "crate::base::util::lenient")]
    pub account: Option<String>,
}

/// Adds `mailto:` when the value has no `scheme:` prefix.
pub fn schemify_contact(c: &str) -> String {
    let has_scheme = c.find(':').is_some_and(|i| {
        i > 0
            && c[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    if has_scheme {
        c.to_string()
    } else {
        format!("mailto:{c}")
    }
}

/// httpd's default for an unset ServerAdmin.
pub const NO_SERVER_ADMIN: &str = "[no address given]";

impl Md {
    /// Merges an MD definition with the main server's settings and the
    /// built-in defaults (§1.3). `server_admin` is the main server's
    /// ServerAdmin.
    pub fn from_def(def: &MdDef, main: &Settings, server_admin: Option<&str>) -> Md {
        let s = Settings::merged(main, &def.settings);
        let mut contacts = Vec::new();
        if let Some(c) = &s.contact {
            contacts.push(schemify_contact(c));
        } else if let Some(a) = server_admin.filter(|a| !a.is_empty() && *a != NO_SERVER_ADMIN) {
            contacts.push(schemify_contact(a));
        }
        Md {
            name: def.name().to_string(),
            domains: def.domains.clone(),
            contacts,
            props: Effective::resolve(&s, def),
            cert_files: def.cert_files.clone(),
            key_files: def.key_files.clone(),
            defn: def.defn.clone(),
            found: MdState::default(),
        }
    }

    /// The key specs in effect (`Default` when none are configured).
    pub(crate) fn effective_specs(&self) -> Vec<KeySpec> {
        if self.pkey_specs.is_empty() {
            vec![KeySpec::Default]
        } else {
            self.pkey_specs.clone()
        }
    }

    pub(crate) fn contains(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The md.json representation (§5.5), keys in the C module's order.
    /// `md.json` (spec §5.3), as the C module writes it.
    pub(crate) fn to_json(&self) -> Value {
        serde_json::to_value(MdFile::of(self)).unwrap_or(Value::Null)
    }

    /// [`Md::to_json`] for logs and status pages: the EAB HMAC, a secret,
    /// shows as `***` (md.json keeps it, as the C module does).
    pub(crate) fn to_json_redacted(&self) -> Value {
        let mut j = self.to_json();
        if let Some(h) = j.pointer_mut("/eab/hmac") {
            *h = json!("***");
        }
        j
    }
}
