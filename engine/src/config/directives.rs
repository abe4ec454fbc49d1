//! The directive table (spec §1): names, argument forms, contexts, who may
//! use them and their help texts, as the C module has them; httpd's
//! `command_rec` array is built from it at compile time.

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
            pub(crate) fn class(self) -> Class {
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
    StoreBackend => "MDStoreBackend", Take12, NotMd, Rsrc,
        "Where the store lives: 'file' (MDStoreDir, the default) or 'etcd <endpoint>[,<endpoint>...]'.";
    StoreEtcdPrefix => "MDStoreEtcdPrefix", Take1, NotMd, Rsrc,
        "The key prefix of the store in etcd (default /mod_md/).";
    StoreEtcdSealKey => "MDStoreEtcdSealKey", Take1, NotMd, Rsrc,
        "File with the 32-byte key that seals private keys in etcd (the same on every node, never in etcd).";
    StoreEtcdCa => "MDStoreEtcdCA", Take1, NotMd, Rsrc,
        "CA file to verify the etcd members with.";
    StoreEtcdClientCert => "MDStoreEtcdClientCert", Take2, NotMd, Rsrc,
        "Client certificate and key files to present to etcd.";
    StoreEtcdUser => "MDStoreEtcdUser", Take2, NotMd, Rsrc,
        "User and password for etcd's authentication.";
}

impl Directive {
    #[cfg(test)]
    pub(crate) fn from_name(name: &str) -> Option<Directive> {
        Directive::ALL
            .iter()
            .copied()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }
}

/// The section name used in the C module's context error texts.
pub const SECTION_NAME: &str = "<MDomainSet";
