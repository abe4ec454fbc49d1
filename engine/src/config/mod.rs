//! The configuration model: every directive of spec §1, where its value lands
//! (server-level settings, an MD section, or module-global settings), and the
//! per-MD merge of §1.3.
//!
//! The httpd glue calls [`ModConfig::apply`] for each directive with the raw
//! arguments and whether it sits inside an `<MDomain>` section; everything
//! else (parsing, validation, error texts) happens here.

pub mod vhost;

use crate::base::keyspec::{self, KeySpec};
use crate::base::time::{self, Micros, TimeSlice};
use crate::base::uri;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a directive may be written (spec §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Server level, `<VirtualHost>` and MD sections.
    All,
    /// Not inside an MD section.
    NotMd,
    /// Only inside an MD section.
    MdOnly,
    /// `MDMember(s)`: inside a section, or one `auto|manual` outside.
    Members,
}

/// How httpd hands over the arguments (httpd's `cmd_how`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgForm {
    Raw,
    Take1,
    Take2,
    Take12,
    Argv,
}

/// Who may use a directive (httpd's `req_override`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    /// Server config and virtual hosts (`RSRC_CONF`).
    Rsrc,
    /// Also `.htaccess` with `AllowOverride AuthConfig` (`RSRC_CONF|OR_AUTHCFG`).
    RsrcAuth,
}

/// One row of the directive table, as httpd's `command_rec` needs it.
#[derive(Debug, Clone, Copy)]
pub struct DirectiveInfo {
    pub directive: Directive,
    pub name: &'static std::ffi::CStr,
    pub form: ArgForm,
    pub overrides: Override,
    /// The help text (`apache2 -L`), the C module's.
    pub help: &'static std::ffi::CStr,
}

const fn cstr(bytes: &'static [u8]) -> &'static std::ffi::CStr {
    match std::ffi::CStr::from_bytes_with_nul(bytes) {
        Ok(c) => c,
        Err(_) => panic!("a directive text with a NUL inside"),
    }
}

/// The one directive table: the parser reads it, and the glue builds
/// httpd's `command_rec` array from it at compile time.
macro_rules! directives {
    ($( $v:ident => $name:literal, $form:ident, $class:ident, $ovr:ident, $help:literal; )*) => {
        /// Every directive the module registers, in the C module's table order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Directive { $( $v, )* }

        /// Name, argument form, contexts and help text of every directive,
        /// in `Directive::ALL` order.
        pub const DIRECTIVE_TABLE: &[DirectiveInfo] = &[ $( DirectiveInfo {
            directive: Directive::$v,
            name: cstr(concat!($name, "\0").as_bytes()),
            form: ArgForm::$form,
            overrides: Override::$ovr,
            help: cstr(concat!($help, "\0").as_bytes()),
        }, )* ];

        impl Directive {
            pub const ALL: &'static [Directive] = &[ $( Directive::$v, )* ];

            /// The name as in the command table (e.g. `<MDomain`).
            pub fn name(self) -> &'static str {
                match self { $( Directive::$v => $name, )* }
            }
            pub fn form(self) -> ArgForm {
                match self { $( Directive::$v => ArgForm::$form, )* }
            }
            pub fn class(self) -> Class {
                match self { $( Directive::$v => Class::$class, )* }
            }
            /// The help text httpd prints for it.
            pub fn help(self) -> &'static str {
                match self { $( Directive::$v => $help, )* }
            }
        }
    };
}

directives! {
    CertificateAuthority => "MDCertificateAuthority", Argv, All, Rsrc,
        "URL(s) or known name(s) of CA issuing the certificates";
    CertificateAgreement => "MDCertificateAgreement", Take1, All, Rsrc,
        "either 'accepted' or the URL of CA Terms-of-Service agreement you accept";
    CaChallenges => "MDCAChallenges", Argv, All, Rsrc,
        "A list of challenge types to be used.";
    CertificateProtocol => "MDCertificateProtocol", Take1, All, Rsrc,
        "Protocol used to obtain/renew certificates";
    ContactEmail => "MDContactEmail", Take1, All, Rsrc,
        "Email address used for account registration";
    DriveMode => "MDDriveMode", Take1, All, Rsrc,
        "deprecated, older name for MDRenewMode";
    RenewMode => "MDRenewMode", Take1, All, Rsrc,
        "Controls how renewal of Managed Domain certificates shall be handled.";
    MDomain => "MDomain", Argv, NotMd, Rsrc,
        "A group of server names with one certificate";
    SectionSet => "<MDomainSet", Raw, NotMd, Rsrc,
        "Container for a managed domain with common settings and certificate.";
    Section => "<MDomain", Raw, NotMd, Rsrc,
        "Short form for <MDomainSet> container.";
    Member => "MDMember", Argv, Members, Rsrc,
        "Define domain name(s) part of the Managed Domain. Use 'auto' or 'manual' to enable/disable auto adding names from virtual hosts.";
    Members => "MDMembers", Argv, Members, Rsrc,
        "Define domain name(s) part of the Managed Domain. Use 'auto' or 'manual' to enable/disable auto adding names from virtual hosts.";
    MustStaple => "MDMustStaple", Take1, All, Rsrc,
        "Enable/Disable the Must-Staple flag for new certificates.";
    PortMap => "MDPortMap", Take12, NotMd, Rsrc,
        "Declare the mapped ports 80 and 443 on the local server. E.g. 80:8000 to indicate that the server port 8000 is reachable as port 80 from the internet. Use 80:- to indicate that port 80 is not reachable from the outside.";
    PrivateKeys => "MDPrivateKeys", Argv, All, Rsrc,
        "set the type and parameters for private key generation";
    HttpProxy => "MDHttpProxy", Take1, All, Rsrc,
        "URL of a HTTP(S) proxy to use for outgoing connections";
    StoreDir => "MDStoreDir", Take1, NotMd, Rsrc,
        "the directory for file system storage of managed domain data.";
    RenewWindow => "MDRenewWindow", Take1, All, Rsrc,
        "Time length for renewal before certificate expires (defaults to days).";
    RequireHttps => "MDRequireHttps", Take1, All, RsrcAuth,
        "Redirect non-secure requests to the https: equivalent.";
    NotifyCmd => "MDNotifyCmd", Raw, NotMd, Rsrc,
        "Set the command to run when signup/renew of domain is complete.";
    BaseServer => "MDBaseServer", Take1, NotMd, Rsrc,
        "Allow managing of base server outside virtual hosts.";
    ChallengeDns01 => "MDChallengeDns01", Raw, All, Rsrc,
        "Set the command for setup/teardown of dns-01 challenges";
    ChallengeDns01Version => "MDChallengeDns01Version", Take1, NotMd, Rsrc,
        "Set the type of arguments to call `MDChallengeDns01` with";
    CertificateFile => "MDCertificateFile", Take1, MdOnly, Rsrc,
        "set the static certificate (chain) file to use for this domain.";
    CertificateKeyFile => "MDCertificateKeyFile", Take1, MdOnly, Rsrc,
        "set the static private key file to use for this domain.";
    ServerStatus => "MDServerStatus", Take1, All, Rsrc,
        "On to see Managed Domains in server-status.";
    CertificateStatus => "MDCertificateStatus", Take1, All, Rsrc,
        "On to see Managed Domain expose /.httpd/certificate-status.";
    WarnWindow => "MDWarnWindow", Take1, All, Rsrc,
        "When less time remains for a certificate, send our/log a warning (defaults to days)";
    MessageCmd => "MDMessageCmd", Raw, NotMd, Rsrc,
        "Set the command run when a message about a domain is issued.";
    Stapling => "MDStapling", Take1, All, Rsrc,
        "Enable/Disable OCSP Stapling for this/all Managed Domain(s).";
    StapleOthers => "MDStapleOthers", Take1, All, Rsrc,
        "Enable/Disable OCSP Stapling for certificates not in Managed Domains.";
    StaplingKeepResponse => "MDStaplingKeepResponse", Take1, All, Rsrc,
        "The amount of time to keep an OCSP response in the store.";
    StaplingRenewWindow => "MDStaplingRenewWindow", Take1, All, Rsrc,
        "Time length for renewal before OCSP responses expire (defaults to days).";
    CertificateCheck => "MDCertificateCheck", Take2, All, Rsrc,
        "Set name and URL pattern for a certificate monitoring site.";
    ActivationDelay => "MDActivationDelay", Take1, NotMd, Rsrc,
        "How long to delay activation of new certificates";
    CaCertificateFile => "MDCACertificateFile", Take1, All, Rsrc,
        "Set the CA file to use for connections";
    HttpProxyCaCertificateFile => "MDHttpProxyCACertificateFile", Take1, All, Rsrc,
        "Set the CA file to use for connections to the HTTP(S) proxy";
    ExternalAccountBinding => "MDExternalAccountBinding", Take12, All, Rsrc,
        "Set the external account binding keyid and hmac values to use at CA";
    RetryDelay => "MDRetryDelay", Take1, NotMd, Rsrc,
        "Time length for first retry, doubled on every consecutive error.";
    RetryFailover => "MDRetryFailover", Take1, NotMd, Rsrc,
        "The number of errors before a failover to another CA is triggered.";
    StoreLocks => "MDStoreLocks", Take1, NotMd, Rsrc,
        "Configure locking of store for updates.";
    MatchNames => "MDMatchNames", Take1, NotMd, Rsrc,
        "Determines how DNS names are matched to vhosts.";
    InitialDelay => "MDInitialDelay", Take1, NotMd, Rsrc,
        "How long to delay the first certificate check.";
    CheckInterval => "MDCheckInterval", Take1, NotMd, Rsrc,
        "Time between certificate checks.";
    Profile => "MDProfile", Take1, All, Rsrc,
        "The name of an CA profile to order certificates for.";
    ProfileMandatory => "MDProfileMandatory", Take1, All, Rsrc,
        "Determines if a configured CA profile is mandatory.";
    RenewViaAri => "MDRenewViaARI", Take1, All, Rsrc,
        "Enable/Disable ACME ARI (RFC 9773) to trigger renewals.";
    CertificateMonitor => "MDCertificateMonitor", Take2, All, Rsrc,
        "Set name and URL pattern for a certificate monitoring site (same as MDCertificateCheck).";
    ParallelRenewals => "MDParallelRenewals", Take1, NotMd, Rsrc,
        "How many Managed Domains may renew at the same time (default 16).";
    HotActivation => "MDHotActivation", Take1, NotMd, Rsrc,
        "On to serve renewed certificates without a restart (default on).";
    GracefulRestart => "MDGracefulRestart", Take1, NotMd, Rsrc,
        "On to let the module restart the server gracefully when renewed certificates are ready (default off).";
    ClusterNode => "MDClusterNode", Take1, NotMd, Rsrc,
        "Name of this node among the httpd servers sharing the store (turns cluster coordination on).";
    ClusterLease => "MDClusterLease", Take1, NotMd, Rsrc,
        "How long a node's claim on a renewal lasts without being refreshed (default 2 minutes).";
    ChallengePreflight => "MDChallengePreflight", Take1, NotMd, Rsrc,
        "On to check that httpd answers an http-01/tls-alpn-01 challenge itself before the CA is asked to validate it (default on).";
    CrlCheck => "MDCRLCheck", Take1, NotMd, Rsrc,
        "On to check certificates against the CRLs their issuers name, and to renew revoked ones at once (default on).";
}

impl Directive {
    pub fn from_name(name: &str) -> Option<Directive> {
        Directive::ALL
            .iter()
            .copied()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }
}

/// The section name used in the C module's context error texts.
pub const SECTION_NAME: &str = "<MDomainSet";

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
pub fn tailscale_socket_path(url: &str) -> Result<String, String> {
    match url.strip_prefix("file://localhost/") {
        Some(p) if !p.is_empty() => Ok(format!("/{p}")),
        _ => Err(format!(
            "MDCertificateAuthority for MDCertificateProtocol tailscale must be \
             file://localhost/<path of tailscaled's socket> (default {TAILSCALE_DEFAULT_URL}), not '{url}'"
        )),
    }
}

/// Checks the CA URLs of a tailscale MD (config time).
pub fn check_tailscale_urls(urls: &[String]) -> Result<(), String> {
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

/// The per-MD properties that can be set at server level or in a section
/// (§1.3). `None` = not set here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub transitive: Option<bool>,
    pub ca_urls: Option<Vec<String>>,
    pub ca_proto: Option<String>,
    pub ca_agreement: Option<String>,
    pub contact: Option<String>,
    pub ca_challenges: Option<Vec<String>>,
    pub renew_mode: Option<RenewMode>,
    pub renew_window: Option<TimeSlice>,
    pub warn_window: Option<TimeSlice>,
    pub pkey_specs: Option<Vec<KeySpec>>,
    pub must_staple: Option<bool>,
    pub require_https: Option<RequireHttps>,
    pub stapling: Option<bool>,
    pub staple_others: Option<bool>,
    pub eab: Option<Eab>,
    pub profile: Option<String>,
    pub profile_mandatory: Option<bool>,
    pub ari: Option<bool>,
    /// The following four are per-MD only inside a section; outside they are
    /// module-global (see [`Global`]).
    pub dns01_cmd: Option<String>,
    pub proxy_url: Option<String>,
    pub ca_certs: Option<String>,
    pub proxy_ca_certs: Option<String>,
}

macro_rules! or_fields {
    ($add:expr, $base:expr, $($f:ident),*) => {
        Settings { $( $f: $add.$f.clone().or_else(|| $base.$f.clone()), )* }
    };
}

impl Settings {
    /// httpd's per-vhost merge: values of `add` (the vhost) win over `base`.
    pub fn merged(base: &Settings, add: &Settings) -> Settings {
        or_fields!(
            add,
            base,
            transitive,
            ca_urls,
            ca_proto,
            ca_agreement,
            contact,
            ca_challenges,
            renew_mode,
            renew_window,
            warn_window,
            pkey_specs,
            must_staple,
            require_https,
            stapling,
            staple_others,
            eab,
            profile,
            profile_mandatory,
            ari,
            dns01_cmd,
            proxy_url,
            ca_certs,
            proxy_ca_certs
        )
    }
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
}

/// Default of `MDClusterLease`.
pub const DEFAULT_CLUSTER_LEASE: Micros = 120 * time::USEC_PER_SEC;

/// Default of `MDParallelRenewals`.
pub const DEFAULT_PARALLEL_RENEWALS: usize = 16;

impl Global {
    /// The store directory: `MDStoreDir`, or `md` under ServerRoot.
    pub fn store_dir_in(&self, server_root: &str) -> String {
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

/// Context of one directive invocation, supplied by the glue.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// httpd's ServerRoot, for server-root relative paths.
    pub server_root: String,
    /// Running with `-DDUMP_CONFIG` (file checks skipped).
    pub dump_config: bool,
    /// Config file and line of the directive.
    pub file: Option<(String, u32)>,
}

impl Ctx {
    /// `ap_server_root_relative`.
    pub fn root_relative(&self, path: &str) -> String {
        if path.starts_with('/') || self.server_root.is_empty() {
            path.to_string()
        } else {
            format!("{}/{}", self.server_root.trim_end_matches('/'), path)
        }
    }
}

/// Everything the directives produce for one configuration generation.
#[derive(Debug, Clone, Default)]
pub struct ModConfig {
    pub global: Global,
    pub mds: Vec<MdDef>,
    /// The section being read (between `<MDomain ...>` and its end).
    pub current: Option<MdDef>,
}

fn on_off(v: &str) -> Result<bool, String> {
    if v.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(format!(
            "unknown '{v}', supported parameter values are 'on' and 'off'"
        ))
    }
}

/// `auto` / `manual` member-mode keyword.
fn transitive_kw(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("auto") {
        Some(true)
    } else if v.eq_ignore_ascii_case("manual") {
        Some(false)
    } else {
        None
    }
}

fn add_domain(domains: &mut Vec<String>, name: &str) {
    let lower = name.to_ascii_lowercase();
    if !domains.iter().any(|d| d.eq_ignore_ascii_case(&lower)) {
        domains.push(lower);
    }
}

fn duration(v: &str, def_unit: &str) -> Result<Micros, String> {
    time::parse_duration(v, def_unit).map_err(|_| "unrecognized duration format".to_string())
}

/// C `atoi`: leading whitespace, sign, digits; 0 when none.
fn atoi(v: &str) -> i64 {
    let t = v.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    // strtol saturates at the limits of a long
    let n: i64 = match digits.parse::<i64>() {
        Ok(n) => n,
        Err(_) if digits.is_empty() => 0,
        Err(_) => return if neg { i64::MIN } else { i64::MAX },
    };
    if neg {
        -n
    } else {
        n
    }
}

/// Resolves a `MDCertificateAuthority` value: known name or absolute URL.
pub fn resolve_ca(value: &str) -> Result<String, String> {
    if let Some((_, url)) = KNOWN_CAS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(value))
    {
        return Ok((*url).to_string());
    }
    uri::check_absolute(value).map_err(|reason| {
        let names: Vec<&str> = KNOWN_CAS.iter().map(|(n, _)| *n).collect();
        format!(
            "The CA name '{value}' is not known and it is not a URL either ({reason}). \
             Known CA names are: {}.",
            names.join(" ")
        )
    })?;
    Ok(value.to_string())
}

/// Parses one `MDPortMap` argument into (public port, local port or None).
fn port_map_arg(v: &str) -> Result<(u16, Option<u16>), String> {
    let (net, rest) = if let Some(r) = v.strip_prefix("http:") {
        (80i64, Some(r))
    } else if let Some(r) = v.strip_prefix("https:") {
        (443, Some(r))
    } else {
        let digits_end = v
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))))
            .map_or(v.len(), |(i, _)| i);
        let num = &v[..digits_end];
        let n = if num.is_empty() || num == "-" || num == "+" {
            0
        } else {
            num.parse::<i64>()
                .map_err(|_| "unable to parse first port number".to_string())?
        };
        (n, v[digits_end..].strip_prefix(':'))
    };
    let rest = rest.ok_or_else(|| "no ':' after first port number".to_string())?;
    let local = if rest.starts_with('-') {
        None
    } else {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let n: i64 = if digits.is_empty() {
            0
        } else {
            digits
                .parse()
                .map_err(|_| "unable to parse second port number".to_string())?
        };
        if n <= 0 || n > 65535 {
            return Err("invalid number for port map, must be in ]0,65535]".into());
        }
        Some(n as u16)
    };
    match net {
        80 => Ok((80, local)),
        443 => Ok((443, local)),
        _ => Err("mapped port number must be 80 or 443".into()),
    }
}

fn read_eab_file(path: &str) -> Result<Eab, String> {
    let text = std::fs::read_to_string(path).map_err(|_| {
        if std::path::Path::new(path).exists() {
            format!("MDExternalAccountBinding: error reading JSON file {path}")
        } else {
            format!("MDExternalAccountBinding: file not found: {path}")
        }
    })?;
    let j: Value = serde_json::from_str(&text)
        .map_err(|_| format!("MDExternalAccountBinding: error reading JSON file {path}"))?;
    let get =
        |k: &str| {
            j.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
            format!("MDExternalAccountBinding: JSON does not contain '{k}' element in file {path}")
        })
        };
    Ok(Eab {
        kid: get("kid")?,
        hmac: Some(get("hmac")?),
    })
}

impl ModConfig {
    /// Settings to write to: the open section, else the server's own.
    fn target<'a>(&'a mut self, srv: &'a mut Settings) -> &'a mut Settings {
        match self.current.as_mut() {
            Some(md) => &mut md.settings,
            None => srv,
        }
    }

    /// Checks the MD-section class of a directive (§1.1).
    pub fn check_class(d: Directive, in_section: bool, nargs: usize) -> Result<(), String> {
        match d.class() {
            Class::NotMd if in_section => Err(format!(
                "{} is not allowed inside an '{SECTION_NAME}' context",
                d.name()
            )),
            Class::MdOnly if !in_section => Err(format!(
                "{} is only valid inside a '{SECTION_NAME}' context, not here",
                d.name()
            )),
            Class::Members if !in_section && nargs != 1 => Err(format!(
                "{} is only valid inside a '{SECTION_NAME}' context, not here",
                d.name()
            )),
            _ => Ok(()),
        }
    }

    /// Applies one directive (not the section start, see
    /// [`ModConfig::begin_section`]). `srv` is the settings of the server the
    /// directive appears in; `in_section` whether it is inside an MD section.
    pub fn apply(
        &mut self,
        srv: &mut Settings,
        d: Directive,
        args: &[&str],
        in_section: bool,
        ctx: &Ctx,
    ) -> Result<(), String> {
        use Directive as D;
        Self::check_class(d, in_section, args.len())?;
        let arg = args.first().copied().unwrap_or("");
        let g = &mut self.global;
        match d {
            D::CertificateAuthority => {
                let urls = args
                    .iter()
                    .map(|a| resolve_ca(a))
                    .collect::<Result<Vec<_>, _>>()?;
                self.target(srv).ca_urls = Some(urls);
            }
            D::CertificateAgreement => self.target(srv).ca_agreement = Some(arg.into()),
            D::CaChallenges => {
                self.target(srv).ca_challenges = Some(args.iter().map(|s| s.to_string()).collect())
            }
            D::CertificateProtocol => self.target(srv).ca_proto = Some(arg.into()),
            D::ContactEmail => self.target(srv).contact = Some(arg.into()),
            D::DriveMode | D::RenewMode => {
                let m = match arg.to_ascii_lowercase().as_str() {
                    "auto" | "automatic" => RenewMode::Auto,
                    "always" => RenewMode::Always,
                    "manual" | "stick" => RenewMode::Manual,
                    _ => return Err(format!("unknown MDDriveMode {arg}")),
                };
                self.target(srv).renew_mode = Some(m);
            }
            D::MDomain => {
                let mut domains = Vec::new();
                let mut transitive = None;
                for a in args {
                    match transitive_kw(a) {
                        Some(t) => transitive = Some(t),
                        None => add_domain(&mut domains, a),
                    }
                }
                if domains.is_empty() {
                    return Err("needs at least one domain name".into());
                }
                self.mds.push(MdDef {
                    domains,
                    transitive,
                    settings: Settings::default(),
                    cert_files: Vec::new(),
                    key_files: Vec::new(),
                    defn: ctx.file.clone(),
                });
            }
            D::SectionSet | D::Section => {
                return Err(format!("{} must be applied with begin_section", d.name()));
            }
            D::Member | D::Members => match self.current.as_mut() {
                Some(md) => {
                    for a in args {
                        match transitive_kw(a) {
                            Some(t) => md.settings.transitive = Some(t),
                            None => add_domain(&mut md.domains, a),
                        }
                    }
                }
                None => {
                    let t = transitive_kw(arg)
                        .ok_or_else(|| "unknown value, use \"auto|manual\"".to_string())?;
                    srv.transitive = Some(t);
                }
            },
            D::MustStaple => self.target(srv).must_staple = Some(on_off(arg)?),
            D::PortMap => {
                for a in args {
                    match port_map_arg(a)? {
                        (80, local) => self.global.local_80 = local,
                        (_, local) => self.global.local_443 = local,
                    }
                }
            }
            D::PrivateKeys => self.target(srv).pkey_specs = Some(keyspec::parse_specs(args)?),
            D::HttpProxy => {
                uri::check_absolute_http(arg).map_err(str::to_string)?;
                if in_section {
                    self.target(srv).proxy_url = Some(arg.into());
                } else {
                    g.proxy_url = Some(arg.into());
                }
            }
            D::StoreDir => g.store_dir = Some(ctx.root_relative(arg)),
            D::RenewWindow | D::WarnWindow | D::StaplingRenewWindow => {
                let ts =
                    TimeSlice::parse(arg, LIFE_NORM).map_err(|e| format!("{} {e}", d.name()))?;
                if ts.len >= LIFE_NORM && ts.norm > 0 {
                    let with = if d == D::StaplingRenewWindow {
                        "with "
                    } else {
                        ""
                    };
                    return Err(format!(
                        "{} {with}a length of 100% or more is not allowed.",
                        d.name()
                    ));
                }
                match d {
                    D::RenewWindow => self.target(srv).renew_window = Some(ts),
                    D::WarnWindow => self.target(srv).warn_window = Some(ts),
                    _ => g.stapling_renew_window = ts,
                }
            }
            D::StaplingKeepResponse => {
                g.stapling_keep_response =
                    TimeSlice::parse(arg, KEEP_NORM).map_err(|e| format!("{} {e}", d.name()))?;
            }
            D::RequireHttps => {
                let v = if arg.eq_ignore_ascii_case("off") {
                    RequireHttps::Off
                } else if arg.eq_ignore_ascii_case("temporary") {
                    RequireHttps::Temporary
                } else if arg.eq_ignore_ascii_case("permanent") {
                    RequireHttps::Permanent
                } else {
                    return Err(format!(
                        "unknown '{arg}', supported parameter values are 'temporary' and 'permanent'"
                    ));
                };
                self.target(srv).require_https = Some(v);
            }
            D::NotifyCmd => g.notify_cmd = Some(arg.trim().into()),
            D::MessageCmd => g.message_cmd = Some(arg.trim().into()),
            D::BaseServer => g.base_server = on_off(arg)?,
            D::ChallengeDns01 => {
                let cmd = arg.trim().to_string();
                if in_section {
                    self.target(srv).dns01_cmd = Some(cmd);
                } else {
                    g.dns01_cmd = Some(cmd);
                }
            }
            D::ChallengeDns01Version => {
                g.dns01_version = match arg {
                    "1" => 1,
                    "2" => 2,
                    _ => return Err("Only versions `1` and `2` are supported".into()),
                }
            }
            D::CertificateFile | D::CertificateKeyFile => {
                let path = ctx.root_relative(arg);
                if let Some(md) = self.current.as_mut() {
                    if d == D::CertificateFile {
                        md.cert_files.push(path);
                    } else {
                        md.key_files.push(path);
                    }
                }
            }
            D::ServerStatus => g.server_status = on_off(arg)?,
            D::CertificateStatus => g.certificate_status = on_off(arg)?,
            D::Stapling => self.target(srv).stapling = Some(on_off(arg)?),
            D::StapleOthers => self.target(srv).staple_others = Some(on_off(arg)?),
            D::CertificateCheck | D::CertificateMonitor => {
                g.cert_check_name = arg.into();
                g.cert_check_url = args.get(1).copied().unwrap_or("").into();
            }
            D::ActivationDelay => g.activation_delay = duration(arg, "d")?,
            D::CaCertificateFile | D::HttpProxyCaCertificateFile => {
                let v = Some(ctx.root_relative(arg));
                let is_ca = d == D::CaCertificateFile;
                if in_section {
                    let t = self.target(srv);
                    if is_ca {
                        t.ca_certs = v;
                    } else {
                        t.proxy_ca_certs = v;
                    }
                } else {
                    let v = if arg.eq_ignore_ascii_case("none") {
                        None
                    } else {
                        v
                    };
                    if is_ca {
                        g.ca_certs = v;
                    } else {
                        g.proxy_ca_certs = v;
                    }
                }
            }
            D::ExternalAccountBinding => {
                let eab = if args.len() >= 2 {
                    Eab {
                        kid: arg.into(),
                        hmac: Some(args[1].into()),
                    }
                } else if arg.eq_ignore_ascii_case("none") {
                    Eab {
                        kid: "none".into(),
                        hmac: None,
                    }
                } else {
                    let path = ctx.root_relative(arg);
                    if ctx.dump_config {
                        Eab {
                            kid: "none".into(),
                            hmac: None,
                        }
                    } else {
                        read_eab_file(&path)?
                    }
                };
                self.target(srv).eab = Some(eab);
            }
            D::RetryDelay => {
                let v = duration(arg, "s")?;
                if v <= 0 {
                    return Err("minimum delay must be greater than 0".into());
                }
                g.retry_delay = v;
            }
            D::RetryFailover => {
                // C's atoi: strtol, then truncated to an int
                let n = atoi(arg) as i32;
                if n <= 0 {
                    return Err("invalid argument, must be a number > 0".into());
                }
                g.retry_failover = n;
            }
            D::StoreLocks => {
                g.store_locks = if arg.eq_ignore_ascii_case("on") {
                    Some(DEFAULT_STORE_LOCK_WAIT)
                } else if arg.eq_ignore_ascii_case("off") {
                    None
                } else {
                    match time::parse_duration(arg, "s") {
                        Ok(0) => None,
                        Ok(v) => Some(v),
                        Err(_) => return Err("neither 'on', 'off' or a duration specified".into()),
                    }
                };
            }
            D::MatchNames => {
                g.match_mode = if arg.eq_ignore_ascii_case("all") {
                    MatchMode::All
                } else if arg.eq_ignore_ascii_case("servernames") {
                    MatchMode::ServerNames
                } else {
                    return Err("invalid argument, must be a 'all' or 'servernames'".into());
                }
            }
            D::InitialDelay => {
                let v = duration(arg, "s")?;
                if v < 0 {
                    return Err("initial delay must not be negative".into());
                }
                g.initial_delay = v;
            }
            D::CheckInterval => {
                let v = duration(arg, "s")?;
                if v < time::USEC_PER_SEC {
                    return Err("check interval cannot be less than one second".into());
                }
                g.check_interval = v;
            }
            D::ParallelRenewals => {
                let n = atoi(arg);
                if n <= 0 || n > 1024 || !arg.trim().chars().all(|c| c.is_ascii_digit()) {
                    return Err("MDParallelRenewals needs a number between 1 and 1024".into());
                }
                g.parallel_renewals = n as usize;
            }
            D::HotActivation => g.hot_activation = on_off(arg)?,
            D::GracefulRestart => g.graceful_restart = on_off(arg)?,
            D::ChallengePreflight => g.challenge_preflight = on_off(arg)?,
            D::CrlCheck => g.crl_check = on_off(arg)?,
            D::ClusterNode => {
                let ok = !arg.is_empty()
                    && arg.len() <= 64
                    && arg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
                if !ok {
                    return Err(
                        "MDClusterNode needs a name of up to 64 letters, digits, '-', '_', '.' or ':'"
                            .into(),
                    );
                }
                g.cluster_node = Some(arg.to_string());
            }
            D::ClusterLease => {
                let v = duration(arg, "s")?;
                if v < 5 * time::USEC_PER_SEC {
                    return Err("MDClusterLease cannot be less than 5 seconds".into());
                }
                g.cluster_lease = v;
            }
            D::Profile => self.target(srv).profile = Some(arg.into()),
            D::ProfileMandatory => self.target(srv).profile_mandatory = Some(on_off(arg)?),
            D::RenewViaAri => self.target(srv).ari = Some(on_off(arg)?),
        }
        Ok(())
    }

    /// Starts an `<MDomain ...>` / `<MDomainSet ...>` section. `raw` is the
    /// rest of the opening line including the closing `>`.
    pub fn begin_section(
        &mut self,
        d: Directive,
        raw: &str,
        in_section: bool,
        ctx: &Ctx,
    ) -> Result<(), String> {
        Self::check_class(d, in_section, 1)?;
        let end = raw
            .rfind('>')
            .ok_or_else(|| format!("{SECTION_NAME}> directive missing closing '>'"))?;
        let inner = raw[..end].trim();
        if inner.is_empty() {
            return Err(format!(
                "{SECTION_NAME} > section must specify a unique domain name"
            ));
        }
        let words = split_conf(inner);
        let mut words = words.iter().map(String::as_str);
        let mut domains = Vec::new();
        let mut transitive = None;
        if let Some(first) = words.next() {
            add_domain(&mut domains, first);
        }
        for w in words {
            match transitive_kw(w) {
                Some(t) => transitive = Some(t),
                None => add_domain(&mut domains, w),
            }
        }
        self.current = Some(MdDef {
            domains,
            transitive,
            settings: Settings::default(),
            cert_files: Vec::new(),
            key_files: Vec::new(),
            defn: ctx.file.clone(),
        });
        Ok(())
    }

    /// Ends the open section; the MD is kept only when its body was fine.
    /// A tailscale MD must name the daemon's socket (§9).
    pub fn end_section(&mut self, ok: bool) -> Result<(), String> {
        if let Some(mut md) = self.current.take() {
            let tailscale = md
                .settings
                .ca_proto
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case("tailscale"));
            if ok && tailscale {
                if let Some(urls) = &md.settings.ca_urls {
                    check_tailscale_urls(urls)?;
                }
            }
            if ok {
                if let Some(t) = md.settings.transitive.take() {
                    md.transitive = Some(t);
                }
                self.mds.push(md);
            }
        }
        Ok(())
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
    pub transitive: bool,
    pub ca_proto: String,
    pub ca_urls: Vec<String>,
    pub ca_agreement: Option<String>,
    pub ca_challenges: Vec<String>,
    pub pkey_specs: Vec<KeySpec>,
    pub renew_mode: RenewMode,
    pub renew_window: TimeSlice,
    pub warn_window: TimeSlice,
    pub require_https: RequireHttps,
    pub must_staple: bool,
    pub cert_files: Vec<String>,
    pub key_files: Vec<String>,
    pub stapling: bool,
    pub dns01_cmd: Option<String>,
    pub proxy_url: Option<String>,
    pub ca_certs: Option<String>,
    pub proxy_ca_certs: Option<String>,
    pub eab: Option<Eab>,
    pub profile: Option<String>,
    pub profile_mandatory: bool,
    pub ari: bool,
    pub defn: Option<(String, u32)>,
    pub found: MdState,
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
    challenges: &'a [String],
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
                proto: &md.ca_proto,
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
            transitive: def.transitive.or(s.transitive).unwrap_or(true),
            ca_proto: s.ca_proto.clone().unwrap_or_else(|| "ACME".into()),
            ca_urls: s.ca_urls.clone().unwrap_or_default(),
            ca_agreement: s.ca_agreement.clone(),
            ca_challenges: s.ca_challenges.clone().unwrap_or_default(),
            pkey_specs: s.pkey_specs.clone().unwrap_or_default(),
            renew_mode: s.renew_mode.unwrap_or(RenewMode::Auto),
            renew_window: s
                .renew_window
                .unwrap_or_else(|| TimeSlice::percent_of(LIFE_NORM, 33)),
            warn_window: s
                .warn_window
                .unwrap_or_else(|| TimeSlice::percent_of(LIFE_NORM, 10)),
            require_https: s.require_https.unwrap_or(RequireHttps::Off),
            must_staple: s.must_staple.unwrap_or(false),
            cert_files: def.cert_files.clone(),
            key_files: def.key_files.clone(),
            stapling: s.stapling.unwrap_or(false),
            dns01_cmd: def.settings.dns01_cmd.clone(),
            proxy_url: def.settings.proxy_url.clone(),
            ca_certs: def.settings.ca_certs.clone(),
            proxy_ca_certs: def.settings.proxy_ca_certs.clone(),
            eab: s.eab.clone(),
            profile: s.profile.clone(),
            profile_mandatory: s.profile_mandatory.unwrap_or(false),
            ari: s.ari.unwrap_or(true),
            defn: def.defn.clone(),
            found: MdState::default(),
        }
    }

    /// The key specs in effect (`Default` when none are configured).
    pub fn effective_specs(&self) -> Vec<KeySpec> {
        if self.pkey_specs.is_empty() {
            vec![KeySpec::Default]
        } else {
            self.pkey_specs.clone()
        }
    }

    pub fn contains(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The md.json representation (§5.5), keys in the C module's order.
    /// `md.json` (spec §5.3), as the C module writes it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(MdFile::of(self)).unwrap_or(Value::Null)
    }

    /// [`Md::to_json`] for logs and status pages: the EAB HMAC, a secret,
    /// shows as `***` (md.json keeps it, as the C module does).
    pub fn to_json_redacted(&self) -> Value {
        let mut j = self.to_json();
        if let Some(h) = j.pointer_mut("/eab/hmac") {
            *h = json!("***");
        }
        j
    }
}

/// httpd's `ap_getword_conf`: the next word of a directive line, in
/// double or single quotes (backslash escapes the quote and itself) or up
/// to the next blank (a doubled backslash is one); and the rest of the line
/// after the blanks that follow.
pub fn getword_conf(line: &str) -> (String, &str) {
    let s = line.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let b = s.as_bytes();
    let quote = match b.first() {
        Some(&q) if q == b'"' || q == b'\'' => Some(q),
        _ => None,
    };
    let (body, mut end) = match quote {
        Some(q) => {
            let mut i = 1;
            while i < b.len() && b[i] != q {
                i += if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == q || b[i + 1] == b'\\') {
                    2
                } else {
                    1
                };
            }
            (&s[1..i.min(s.len())], if i < b.len() { i + 1 } else { i })
        }
        None => {
            let i = b
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(b.len());
            (&s[..i], i)
        }
    };
    let mut word = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        let escaped = chars
            .peek()
            .copied()
            .filter(|&n| c == '\\' && (n == '\\' || quote.is_some_and(|q| char::from(q) == n)));
        match escaped {
            Some(n) => {
                word.push(n);
                chars.next();
            }
            None => word.push(c),
        }
    }
    while end < b.len() && b[end].is_ascii_whitespace() {
        end += 1;
    }
    (word, &s[end..])
}

/// A directive's argument line split as httpd splits TAKE_ARGV arguments.
pub fn split_conf(mut line: &str) -> Vec<String> {
    let mut out = Vec::new();
    while !line
        .trim_start_matches(|c: char| c.is_ascii_whitespace())
        .is_empty()
    {
        let (w, rest) = getword_conf(line);
        out.push(w);
        line = rest;
    }
    out
}

/// A startup-fatal configuration problem, with its AH code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The checks of §2.2 step 5 that need only the MD list: domain overlap
/// (match mode `all`) and the static file counts; plus the protocol check.
pub fn check_mds(mds: &[Md], match_mode: MatchMode) -> Result<(), Fatal> {
    if match_mode == MatchMode::All {
        for (i, a) in mds.iter().enumerate() {
            for b in &mds[i + 1..] {
                if let Some(d) = a.domains.iter().find(|d| b.contains(d)) {
                    let loc = |m: &Md| match &m.defn {
                        Some((f, l)) => format!("{f}(line {l})"),
                        None => "unknown(line 0)".to_string(),
                    };
                    return Err(Fatal {
                        code: "AH10038",
                        message: format!(
                            "two Managed Domains have an overlap in domain '{d}', first definition in {}, second in {}",
                            loc(a),
                            loc(b)
                        ),
                    });
                }
            }
        }
    }
    for md in mds {
        if !md.cert_files.is_empty() && md.cert_files.len() != md.key_files.len() {
            return Err(Fatal {
                code: "AH10170",
                message: format!(
                    "The Managed Domain '{}' needs one MDCertificateKeyFile for each MDCertificateFile.",
                    md.name
                ),
            });
        }
        if md.cert_files.is_empty() && !md.key_files.is_empty() {
            return Err(Fatal {
                code: "AH10171",
                message: format!(
                    "The Managed Domain '{}' has MDCertificateKeyFile(s) but no MDCertificateFile.",
                    md.name
                ),
            });
        }
    }
    Ok(())
}

/// `MDCertificateProtocol` must name a protocol this module speaks (AH10172).
pub fn check_protocol(md: &Md) -> Result<(), Fatal> {
    if md.ca_proto == "ACME" || md.ca_proto.eq_ignore_ascii_case("tailscale") {
        return Ok(());
    }
    Err(Fatal {
        code: "AH10172",
        message: format!(
            "md[{}]: error syncing to store ([{}] uses unknown CA protocol '{}'; \
             supported are 'ACME' and 'tailscale')",
            md.name, md.name, md.ca_proto
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn getword_conf_as_httpd() {
        use super::split_conf;
        assert_eq!(
            split_conf(r#""a.org" 'b.org'  c.org"#),
            ["a.org", "b.org", "c.org"]
        );
        assert_eq!(
            split_conf(r#""w\"q.org" 'it\'s' x\\y"#),
            [r#"w"q.org"#, "it's", r"x\y"]
        );
        assert_eq!(
            split_conf(r#""a b" "unterminated"#),
            ["a b", "unterminated"]
        );
        assert_eq!(split_conf("  "), Vec::<String>::new());
        assert_eq!(split_conf(r#""" x"#), ["", "x"]);
        assert_eq!(split_conf("é.org \"\""), ["é.org", ""]);
    }

    use super::*;

    fn apply(
        mc: &mut ModConfig,
        srv: &mut Settings,
        line: &str,
        in_section: bool,
    ) -> Result<(), String> {
        let mut words = line.split_whitespace();
        let d = Directive::from_name(words.next().unwrap()).unwrap();
        let args: Vec<&str> = words.collect();
        mc.apply(
            srv,
            d,
            &args,
            in_section,
            &Ctx {
                server_root: "/srv".into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn table() {
        assert_eq!(Directive::ALL.len(), 55);
        assert_eq!(
            Directive::from_name("mdstoredir"),
            Some(Directive::StoreDir)
        );
        assert_eq!(
            Directive::from_name("<MDomainSet"),
            Some(Directive::SectionSet)
        );
        assert_eq!(Directive::RequireHttps.class(), Class::All);
        assert_eq!(Directive::CertificateFile.class(), Class::MdOnly);
        assert_eq!(Directive::PortMap.form(), ArgForm::Take12);
    }

    #[test]
    fn global_defaults() {
        let g = Global::default();
        assert_eq!(g.retry_delay, time::from_secs(30));
        assert_eq!(g.retry_failover, 13);
        assert_eq!(g.check_interval, time::from_secs(12 * 3600));
        assert_eq!(g.initial_delay, 0);
        assert_eq!((g.local_80, g.local_443), (Some(80), Some(443)));
        assert!(!g.server_status && g.certificate_status && !g.base_server);
        assert_eq!(g.store_locks, None);
        assert_eq!(g.dns01_version, 1);
        assert_eq!(g.stapling_keep_response.format(), "7d");
        assert_eq!(g.stapling_renew_window.format(), "33%");
        assert_eq!(
            (g.cert_check_name.as_str(), g.cert_check_url.as_str()),
            ("crt.sh", "https://crt.sh?q=")
        );
    }

    #[test]
    fn port_map() {
        assert_eq!(port_map_arg("http:8080"), Ok((80, Some(8080))));
        assert_eq!(port_map_arg("443:-"), Ok((443, None)));
        assert_eq!(port_map_arg("https:8443"), Ok((443, Some(8443))));
        assert_eq!(
            port_map_arg("HTTP:80").unwrap_err(),
            "no ':' after first port number"
        );
        assert_eq!(
            port_map_arg("81:80").unwrap_err(),
            "mapped port number must be 80 or 443"
        );
        assert_eq!(
            port_map_arg("http:0").unwrap_err(),
            "invalid number for port map, must be in ]0,65535]"
        );
        assert_eq!(
            port_map_arg("99999999999999999999:1").unwrap_err(),
            "unable to parse first port number"
        );
    }

    #[test]
    fn directives_land_where_the_spec_says() {
        let mut mc = ModConfig::default();
        let mut srv = Settings::default();
        for line in [
            "MDStoreDir store",
            "MDPortMap http:8080 https:-",
            "MDRetryDelay 5",
            "MDRetryFailover 3x",
            "MDStoreLocks on",
            "MDCheckInterval 1h",
            "MDActivationDelay 2",
            "MDHttpProxy http://proxy:3128",
            "MDCACertificateFile none",
            "MDChallengeDns01Version 2",
            "MDRenewWindow 20%",
            "MDMembers manual",
            "MDCertificateMonitor mon https://mon.example/?fp=",
        ] {
            apply(&mut mc, &mut srv, line, false).unwrap();
        }
        let g = &mc.global;
        assert_eq!(g.store_dir.as_deref(), Some("/srv/store"));
        assert_eq!((g.local_80, g.local_443), (Some(8080), None));
        assert_eq!(g.retry_delay, time::from_secs(5));
        assert_eq!(g.retry_failover, 3);
        assert_eq!(g.store_locks, Some(DEFAULT_STORE_LOCK_WAIT));
        assert_eq!(g.check_interval, time::from_secs(3600));
        assert_eq!(g.activation_delay, time::from_secs(2 * 86400));
        assert_eq!(g.proxy_url.as_deref(), Some("http://proxy:3128"));
        assert_eq!(g.ca_certs, None);
        assert_eq!(g.dns01_version, 2);
        assert_eq!(g.cert_check_name, "mon");
        assert_eq!(srv.renew_window.unwrap().format(), "20%");
        assert_eq!(srv.transitive, Some(false));
        assert!(
            srv.proxy_url.is_none(),
            "a proxy outside a section is global"
        );
    }

    #[test]
    fn sections_and_merge() {
        let mut mc = ModConfig::default();
        let mut main = Settings::default();
        let ctx = Ctx::default();
        apply(&mut mc, &mut main, "MDPrivateKeys secp384r1", false).unwrap();
        apply(&mut mc, &mut main, "MDRequireHttps temporary", false).unwrap();
        apply(
            &mut mc,
            &mut main,
            "MDomain A.org www.a.org a.org auto",
            false,
        )
        .unwrap();
        mc.begin_section(Directive::Section, "b.org manual>", false, &ctx)
            .unwrap();
        apply(&mut mc, &mut main, "MDMember www.b.org", true).unwrap();
        apply(&mut mc, &mut main, "MDRenewWindow 10d", true).unwrap();
        apply(&mut mc, &mut main, "MDHttpProxy http://p:1", true).unwrap();
        apply(&mut mc, &mut main, "MDCertificateFile b.pem", true).unwrap();
        assert_eq!(
            apply(&mut mc, &mut main, "MDStoreDir x", true).unwrap_err(),
            "MDStoreDir is not allowed inside an '<MDomainSet' context"
        );
        mc.end_section(true).unwrap();
        // a section whose body failed is dropped
        mc.begin_section(Directive::Section, "c.org>", false, &ctx)
            .unwrap();
        mc.end_section(false).unwrap();
        assert_eq!(mc.mds.len(), 2);
        let a = Md::from_def(&mc.mds[0], &main, Some(NO_SERVER_ADMIN));
        let b = Md::from_def(&mc.mds[1], &main, Some("webmaster@b.org"));
        assert_eq!(a.domains, ["a.org", "www.a.org"]);
        assert!(a.transitive);
        assert_eq!(a.pkey_specs, [KeySpec::Ec("secp384r1".into())]);
        assert_eq!(a.require_https, RequireHttps::Temporary);
        assert_eq!(a.renew_window.format(), "33%");
        assert!(
            a.contacts.is_empty(),
            "httpd's default ServerAdmin is no contact"
        );
        assert_eq!(b.domains, ["b.org", "www.b.org"]);
        assert!(!b.transitive);
        assert_eq!(b.renew_window.format(), "10d");
        assert_eq!(b.proxy_url.as_deref(), Some("http://p:1"));
        assert_eq!(b.cert_files, ["/srv/b.pem"]);
        assert_eq!(b.contacts, ["mailto:webmaster@b.org"]);
        assert_eq!(
            check_mds(&[a.clone(), b.clone()], MatchMode::All)
                .unwrap_err()
                .code,
            "AH10170"
        );
        let mut b2 = b.clone();
        b2.key_files.push("b.key".into());
        b2.domains.push("www.a.org".into());
        let e = check_mds(&[a.clone(), b2.clone()], MatchMode::All).unwrap_err();
        assert_eq!(e.code, "AH10038");
        assert!(e.message.contains("overlap in domain 'www.a.org'"));
        assert!(check_mds(&[a, b2], MatchMode::ServerNames).is_ok());
    }

    #[test]
    fn section_errors() {
        let mut mc = ModConfig::default();
        let ctx = Ctx::default();
        assert_eq!(
            mc.begin_section(Directive::Section, "a.org", false, &ctx)
                .unwrap_err(),
            "<MDomainSet> directive missing closing '>'"
        );
        assert_eq!(
            mc.begin_section(Directive::Section, " >", false, &ctx)
                .unwrap_err(),
            "<MDomainSet > section must specify a unique domain name"
        );
        assert_eq!(
            mc.begin_section(Directive::SectionSet, "a.org>", true, &ctx)
                .unwrap_err(),
            "<MDomainSet is not allowed inside an '<MDomainSet' context"
        );
    }

    #[test]
    fn contacts_and_cas() {
        assert_eq!(schemify_contact("a@b.org"), "mailto:a@b.org");
        assert_eq!(schemify_contact("mailto:a@b.org"), "mailto:a@b.org");
        assert_eq!(schemify_contact("tel:+123"), "tel:+123");
        assert_eq!(resolve_ca("letsencrypt-test").unwrap(), KNOWN_CAS[1].1);
        assert!(resolve_ca("nope")
            .unwrap_err()
            .contains("(missing uri scheme)"));
    }

    #[test]
    fn md_json_shape() {
        let def = MdDef::new(vec!["a.org".into()]);
        let md = Md::from_def(&def, &Settings::default(), None);
        let keys: Vec<String> = md.to_json().as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "name",
                "domains",
                "contacts",
                "transitive",
                "ca",
                "state",
                "renew-mode",
                "renew-window",
                "warn-window",
                "must-staple",
                "proto",
                "stapling",
                "profile-mandatory",
                "ari-renewals"
            ]
        );
    }
}
