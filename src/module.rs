//! The exported `md_module` and its command table.

use crate::challenge;
use crate::cmds;
use crate::conf;
use crate::ffi;
use crate::hooks;
use crate::https;
use crate::status;
use md_engine::config::Directive;
use std::os::raw::{c_char, c_int, c_ulong, c_void};
use std::ptr::{null, null_mut};

/// A static table of C data (pointers to static strings and functions only).
#[repr(transparent)]
pub struct Table<T, const N: usize>(pub [T; N]);
// SAFETY: the tables hold pointers to immutable static data and functions;
// httpd only reads them.
unsafe impl<T, const N: usize> Sync for Table<T, N> {}

const RSRC: c_int = ffi::RSRC_CONF as c_int;
const RSRC_AUTH: c_int = (ffi::RSRC_CONF | ffi::OR_AUTHCFG) as c_int;

macro_rules! cmd {
    ($how:ident, $d:ident, $ovr:expr, $help:literal) => {{
        let d = Directive::$d;
        let idx = directive_index(d);
        let func = cmd!(@func $how);
        ffi::command_rec {
            name: cmd!(@name $d),
            func,
            cmd_data: std::ptr::without_provenance_mut::<c_void>(idx),
            req_override: $ovr,
            args_how: cmd!(@how $how),
            errmsg: $help.as_ptr(),
        }
    }};
    (@func TAKE1) => { ffi::cmd_func { take1: Some(cmds::take1) } };
    (@func TAKE2) => { ffi::cmd_func { take2: Some(cmds::take2) } };
    (@func TAKE12) => { ffi::cmd_func { take2: Some(cmds::take2) } };
    (@func ARGV) => { ffi::cmd_func { take_argv: Some(cmds::argv) } };
    (@func RAW) => { ffi::cmd_func { raw_args: Some(cmds::raw) } };
    (@how TAKE1) => { ffi::cmd_how_TAKE1 };
    (@how TAKE2) => { ffi::cmd_how_TAKE2 };
    (@how TAKE12) => { ffi::cmd_how_TAKE12 };
    (@how ARGV) => { ffi::cmd_how_TAKE_ARGV };
    (@how RAW) => { ffi::cmd_how_RAW_ARGS };
    (@name CertificateAuthority) => { c"MDCertificateAuthority".as_ptr() };
    (@name CertificateAgreement) => { c"MDCertificateAgreement".as_ptr() };
    (@name CaChallenges) => { c"MDCAChallenges".as_ptr() };
    (@name CertificateProtocol) => { c"MDCertificateProtocol".as_ptr() };
    (@name ContactEmail) => { c"MDContactEmail".as_ptr() };
    (@name DriveMode) => { c"MDDriveMode".as_ptr() };
    (@name RenewMode) => { c"MDRenewMode".as_ptr() };
    (@name MDomain) => { c"MDomain".as_ptr() };
    (@name SectionSet) => { c"<MDomainSet".as_ptr() };
    (@name Section) => { c"<MDomain".as_ptr() };
    (@name Member) => { c"MDMember".as_ptr() };
    (@name Members) => { c"MDMembers".as_ptr() };
    (@name MustStaple) => { c"MDMustStaple".as_ptr() };
    (@name PortMap) => { c"MDPortMap".as_ptr() };
    (@name PrivateKeys) => { c"MDPrivateKeys".as_ptr() };
    (@name HttpProxy) => { c"MDHttpProxy".as_ptr() };
    (@name StoreDir) => { c"MDStoreDir".as_ptr() };
    (@name RenewWindow) => { c"MDRenewWindow".as_ptr() };
    (@name RequireHttps) => { c"MDRequireHttps".as_ptr() };
    (@name NotifyCmd) => { c"MDNotifyCmd".as_ptr() };
    (@name BaseServer) => { c"MDBaseServer".as_ptr() };
    (@name ChallengeDns01) => { c"MDChallengeDns01".as_ptr() };
    (@name ChallengeDns01Version) => { c"MDChallengeDns01Version".as_ptr() };
    (@name CertificateFile) => { c"MDCertificateFile".as_ptr() };
    (@name CertificateKeyFile) => { c"MDCertificateKeyFile".as_ptr() };
    (@name ServerStatus) => { c"MDServerStatus".as_ptr() };
    (@name CertificateStatus) => { c"MDCertificateStatus".as_ptr() };
    (@name WarnWindow) => { c"MDWarnWindow".as_ptr() };
    (@name MessageCmd) => { c"MDMessageCmd".as_ptr() };
    (@name Stapling) => { c"MDStapling".as_ptr() };
    (@name StapleOthers) => { c"MDStapleOthers".as_ptr() };
    (@name StaplingKeepResponse) => { c"MDStaplingKeepResponse".as_ptr() };
    (@name StaplingRenewWindow) => { c"MDStaplingRenewWindow".as_ptr() };
    (@name CertificateCheck) => { c"MDCertificateCheck".as_ptr() };
    (@name ActivationDelay) => { c"MDActivationDelay".as_ptr() };
    (@name CaCertificateFile) => { c"MDCACertificateFile".as_ptr() };
    (@name HttpProxyCaCertificateFile) => { c"MDHttpProxyCACertificateFile".as_ptr() };
    (@name ExternalAccountBinding) => { c"MDExternalAccountBinding".as_ptr() };
    (@name RetryDelay) => { c"MDRetryDelay".as_ptr() };
    (@name RetryFailover) => { c"MDRetryFailover".as_ptr() };
    (@name StoreLocks) => { c"MDStoreLocks".as_ptr() };
    (@name MatchNames) => { c"MDMatchNames".as_ptr() };
    (@name InitialDelay) => { c"MDInitialDelay".as_ptr() };
    (@name CheckInterval) => { c"MDCheckInterval".as_ptr() };
    (@name Profile) => { c"MDProfile".as_ptr() };
    (@name ProfileMandatory) => { c"MDProfileMandatory".as_ptr() };
    (@name RenewViaAri) => { c"MDRenewViaARI".as_ptr() };
    (@name CertificateMonitor) => { c"MDCertificateMonitor".as_ptr() };
    (@name ParallelRenewals) => { c"MDParallelRenewals".as_ptr() };
    (@name HotActivation) => { c"MDHotActivation".as_ptr() };
    (@name GracefulRestart) => { c"MDGracefulRestart".as_ptr() };
}

const fn directive_index(d: Directive) -> usize {
    let mut i = 0;
    while i < Directive::ALL.len() {
        if Directive::ALL[i] as usize == d as usize {
            return i;
        }
        i += 1;
    }
    usize::MAX
}

const NCMDS: usize = 52;

/// The command table: order, argument forms, override bits and help texts
/// as in the C module (read from its binary), plus `MDCertificateMonitor`.
pub static CMDS: Table<ffi::command_rec, NCMDS> = Table([
    cmd!(ARGV, CertificateAuthority, RSRC, c"URL(s) or known name(s) of CA issuing the certificates"),
    cmd!(TAKE1, CertificateAgreement, RSRC, c"either 'accepted' or the URL of CA Terms-of-Service agreement you accept"),
    cmd!(ARGV, CaChallenges, RSRC, c"A list of challenge types to be used."),
    cmd!(TAKE1, CertificateProtocol, RSRC, c"Protocol used to obtain/renew certificates"),
    cmd!(TAKE1, ContactEmail, RSRC, c"Email address used for account registration"),
    cmd!(TAKE1, DriveMode, RSRC, c"deprecated, older name for MDRenewMode"),
    cmd!(TAKE1, RenewMode, RSRC, c"Controls how renewal of Managed Domain certificates shall be handled."),
    cmd!(ARGV, MDomain, RSRC, c"A group of server names with one certificate"),
    cmd!(RAW, SectionSet, RSRC, c"Container for a managed domain with common settings and certificate."),
    cmd!(RAW, Section, RSRC, c"Short form for <MDomainSet> container."),
    cmd!(ARGV, Member, RSRC, c"Define domain name(s) part of the Managed Domain. Use 'auto' or 'manual' to enable/disable auto adding names from virtual hosts."),
    cmd!(ARGV, Members, RSRC, c"Define domain name(s) part of the Managed Domain. Use 'auto' or 'manual' to enable/disable auto adding names from virtual hosts."),
    cmd!(TAKE1, MustStaple, RSRC, c"Enable/Disable the Must-Staple flag for new certificates."),
    cmd!(TAKE12, PortMap, RSRC, c"Declare the mapped ports 80 and 443 on the local server. E.g. 80:8000 to indicate that the server port 8000 is reachable as port 80 from the internet. Use 80:- to indicate that port 80 is not reachable from the outside."),
    cmd!(ARGV, PrivateKeys, RSRC, c"set the type and parameters for private key generation"),
    cmd!(TAKE1, HttpProxy, RSRC, c"URL of a HTTP(S) proxy to use for outgoing connections"),
    cmd!(TAKE1, StoreDir, RSRC, c"the directory for file system storage of managed domain data."),
    cmd!(TAKE1, RenewWindow, RSRC, c"Time length for renewal before certificate expires (defaults to days)."),
    cmd!(TAKE1, RequireHttps, RSRC_AUTH, c"Redirect non-secure requests to the https: equivalent."),
    cmd!(RAW, NotifyCmd, RSRC, c"Set the command to run when signup/renew of domain is complete."),
    cmd!(TAKE1, BaseServer, RSRC, c"Allow managing of base server outside virtual hosts."),
    cmd!(RAW, ChallengeDns01, RSRC, c"Set the command for setup/teardown of dns-01 challenges"),
    cmd!(TAKE1, ChallengeDns01Version, RSRC, c"Set the type of arguments to call `MDChallengeDns01` with"),
    cmd!(TAKE1, CertificateFile, RSRC, c"set the static certificate (chain) file to use for this domain."),
    cmd!(TAKE1, CertificateKeyFile, RSRC, c"set the static private key file to use for this domain."),
    cmd!(TAKE1, ServerStatus, RSRC, c"On to see Managed Domains in server-status."),
    cmd!(TAKE1, CertificateStatus, RSRC, c"On to see Managed Domain expose /.httpd/certificate-status."),
    cmd!(TAKE1, WarnWindow, RSRC, c"When less time remains for a certificate, send our/log a warning (defaults to days)"),
    cmd!(RAW, MessageCmd, RSRC, c"Set the command run when a message about a domain is issued."),
    cmd!(TAKE1, Stapling, RSRC, c"Enable/Disable OCSP Stapling for this/all Managed Domain(s)."),
    cmd!(TAKE1, StapleOthers, RSRC, c"Enable/Disable OCSP Stapling for certificates not in Managed Domains."),
    cmd!(TAKE1, StaplingKeepResponse, RSRC, c"The amount of time to keep an OCSP response in the store."),
    cmd!(TAKE1, StaplingRenewWindow, RSRC, c"Time length for renewal before OCSP responses expire (defaults to days)."),
    cmd!(TAKE2, CertificateCheck, RSRC, c"Set name and URL pattern for a certificate monitoring site."),
    cmd!(TAKE1, ActivationDelay, RSRC, c"How long to delay activation of new certificates"),
    cmd!(TAKE1, CaCertificateFile, RSRC, c"Set the CA file to use for connections"),
    cmd!(TAKE1, HttpProxyCaCertificateFile, RSRC, c"Set the CA file to use for connections to the HTTP(S) proxy"),
    cmd!(TAKE12, ExternalAccountBinding, RSRC, c"Set the external account binding keyid and hmac values to use at CA"),
    cmd!(TAKE1, RetryDelay, RSRC, c"Time length for first retry, doubled on every consecutive error."),
    cmd!(TAKE1, RetryFailover, RSRC, c"The number of errors before a failover to another CA is triggered."),
    cmd!(TAKE1, StoreLocks, RSRC, c"Configure locking of store for updates."),
    cmd!(TAKE1, MatchNames, RSRC, c"Determines how DNS names are matched to vhosts."),
    cmd!(TAKE1, InitialDelay, RSRC, c"How long to delay the first certificate check."),
    cmd!(TAKE1, CheckInterval, RSRC, c"Time between certificate checks."),
    cmd!(TAKE1, Profile, RSRC, c"The name of an CA profile to order certificates for."),
    cmd!(TAKE1, ProfileMandatory, RSRC, c"Determines if a configured CA profile is mandatory."),
    cmd!(TAKE1, RenewViaAri, RSRC, c"Enable/Disable ACME ARI (RFC 9773) to trigger renewals."),
    cmd!(TAKE2, CertificateMonitor, RSRC, c"Set name and URL pattern for a certificate monitoring site (same as MDCertificateCheck)."),
    cmd!(TAKE1, ParallelRenewals, RSRC, c"How many Managed Domains may renew at the same time (default 8)."),
    cmd!(TAKE1, HotActivation, RSRC, c"On to serve renewed certificates without a restart (default on)."),
    cmd!(TAKE1, GracefulRestart, RSRC, c"On to let the module restart the server gracefully when renewed certificates are ready (default off)."),
    ffi::command_rec {
        name: null(),
        func: ffi::cmd_func { no_args: None },
        cmd_data: null_mut(),
        req_override: 0,
        args_how: 0,
        errmsg: null(),
    },
]);

/// The module httpd loads with `LoadModule md_module ...`.
///
/// httpd writes `module_index`, `next` and `dynamic_load_handle` while
/// loading; everything else is constant.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut md_module: ffi::module = ffi::module {
    version: ffi::MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: ffi::MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    name: c"mod_md.c".as_ptr(),
    dynamic_load_handle: null_mut(),
    next: null_mut(),
    magic: ffi::MODULE_MAGIC_COOKIE as c_ulong,
    rewrite_args: None,
    create_dir_config: None,
    merge_dir_config: None,
    create_server_config: Some(conf::create_server_config),
    merge_server_config: Some(conf::merge_server_config),
    cmds: &CMDS.0 as *const ffi::command_rec,
    register_hooks: Some(register_hooks),
    flags: ffi::AP_MODULE_FLAG_ALWAYS_MERGE as c_int,
};

/// NULL-terminated module name lists for hook ordering.
pub static MOD_SSL: Table<*const c_char, 3> =
    Table([c"mod_ssl.c".as_ptr(), c"mod_tls.c".as_ptr(), null()]);
pub static MOD_WATCHDOG: Table<*const c_char, 2> = Table([c"mod_watchdog.c".as_ptr(), null()]);

type StatusHook = unsafe extern "C" fn(*mut ffi::request_rec, c_int) -> c_int;

/// Adds `f` to mod_status's optional `status_hook`.
///
/// # Safety
/// Only during register_hooks.
unsafe fn add_status_hook(f: StatusHook, order: c_int) {
    // SAFETY: APR's optional hooks store functions type-erased as `void
    // (*)(void)`; mod_status calls them back with the status_hook signature,
    // which is `f`'s.
    unsafe {
        let erased = std::mem::transmute::<StatusHook, unsafe extern "C" fn()>(f);
        ffi::apr_optional_hook_add(c"status_hook".as_ptr(), Some(erased), null(), null(), order);
    }
}

unsafe extern "C" fn register_hooks(_pool: *mut ffi::apr_pool_t) {
    crate::guard::guard("register_hooks", (), || {
        // SAFETY: httpd assigned module_index in ap_add_module, just before
        // calling us; nothing writes it while we read it.
        crate::log::set_module_index(unsafe { (*std::ptr::addr_of!(md_module)).module_index });
        let first = ffi::APR_HOOK_FIRST as c_int;
        let middle = ffi::APR_HOOK_MIDDLE as c_int;
        let last = ffi::APR_HOOK_LAST as c_int;
        // SAFETY: registering our hook functions with static, NULL-terminated
        // predecessor/successor lists, as httpd's hook API expects.
        unsafe {
            ffi::ap_hook_post_config(
                Some(hooks::post_config_before_ssl),
                null(),
                MOD_SSL.0.as_ptr(),
                first,
            );
            ffi::ap_hook_post_config(
                Some(hooks::post_config_after_ssl),
                MOD_SSL.0.as_ptr(),
                MOD_WATCHDOG.0.as_ptr(),
                last,
            );
            ffi::ap_hook_child_init(Some(hooks::child_init), null(), MOD_SSL.0.as_ptr(), middle);
            ffi::ap_hook_ssl_add_cert_files(
                Some(hooks::ssl_add_cert_files),
                null(),
                null(),
                middle,
            );
            ffi::ap_hook_ssl_add_fallback_cert_files(
                Some(hooks::ssl_add_fallback_cert_files),
                null(),
                null(),
                middle,
            );
            ffi::ap_hook_post_read_request(
                Some(https::require_https),
                MOD_SSL.0.as_ptr(),
                null(),
                middle,
            );
            ffi::ap_hook_post_read_request(Some(challenge::http_challenge), null(), null(), middle);
            ffi::ap_hook_protocol_propose(
                Some(challenge::protocol_propose),
                null(),
                null(),
                middle,
            );
            ffi::ap_hook_protocol_switch(Some(challenge::protocol_switch), null(), null(), middle);
            ffi::ap_hook_protocol_get(Some(challenge::protocol_get), null(), null(), middle);
            ffi::ap_hook_handler(Some(status::handler), null(), null(), middle);
            ffi::ap_hook_post_read_request(
                Some(status::certificate_status),
                null(),
                MOD_SSL.0.as_ptr(),
                middle,
            );
            // mod_status's optional hook, by name (mod_status may be absent).
            add_status_hook(status::status_hook, middle);
            add_status_hook(status::stapling_status_hook, middle);
            // mod_ssl's optional init_server hook (hot activation).
            type InitServer = unsafe extern "C" fn(
                *mut ffi::server_rec,
                *mut ffi::apr_pool_t,
                c_int,
                *mut c_void,
            ) -> c_int;
            let f: InitServer = crate::hot::init_server;
            // SAFETY: type-erased like every APR optional hook; mod_ssl calls
            // it with the init_server signature.
            let erased = std::mem::transmute::<InitServer, unsafe extern "C" fn()>(f);
            ffi::apr_optional_hook_add(
                c"init_server".as_ptr(),
                Some(erased),
                null(),
                null(),
                middle,
            );
            ffi::ap_hook_ssl_ocsp_prime_hook(Some(crate::ocsp::prime), null(), null(), middle);
            ffi::ap_hook_ssl_ocsp_get_resp_hook(
                Some(crate::ocsp::get_resp),
                null(),
                null(),
                middle,
            );
            ffi::ap_hook_ssl_answer_challenge(
                Some(challenge::ssl_answer_challenge),
                null(),
                null(),
                middle,
            );
        }
    })
}
