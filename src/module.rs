//! The exported `md_module` and its command table.

use crate::challenge;
use crate::cmds;
use crate::conf;
use crate::ffi;
use crate::hooks;
use crate::https;
use crate::status;
use crate::{hot, ocsp};
use md_engine::config::{ArgForm, Override, DIRECTIVE_TABLE};
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

/// The end of the command table.
const END: ffi::command_rec = ffi::command_rec {
    name: null(),
    func: ffi::cmd_func { no_args: None },
    cmd_data: null_mut(),
    req_override: 0,
    args_how: 0,
    errmsg: null(),
};

/// httpd's `command_rec` of row `i` of the engine's directive table; its
/// `cmd_data` is the row, from which the handlers find the directive.
const fn command(i: usize) -> ffi::command_rec {
    let d = &DIRECTIVE_TABLE[i];
    let (func, how) = match d.form {
        ArgForm::Take1 => (
            ffi::cmd_func {
                take1: Some(cmds::take1),
            },
            ffi::cmd_how_TAKE1,
        ),
        ArgForm::Take2 => (
            ffi::cmd_func {
                take2: Some(cmds::take2),
            },
            ffi::cmd_how_TAKE2,
        ),
        ArgForm::Take12 => (
            ffi::cmd_func {
                take2: Some(cmds::take2),
            },
            ffi::cmd_how_TAKE12,
        ),
        ArgForm::Argv => (
            ffi::cmd_func {
                take_argv: Some(cmds::argv),
            },
            ffi::cmd_how_TAKE_ARGV,
        ),
        ArgForm::Raw => (
            ffi::cmd_func {
                raw_args: Some(cmds::take1),
            },
            ffi::cmd_how_RAW_ARGS,
        ),
    };
    ffi::command_rec {
        name: d.name.as_ptr(),
        func,
        cmd_data: std::ptr::without_provenance_mut::<c_void>(i),
        req_override: match d.overrides {
            Override::Rsrc => RSRC,
            Override::RsrcAuth => RSRC_AUTH,
        },
        args_how: how,
        errmsg: d.help.as_ptr(),
    }
}

const NCMDS: usize = DIRECTIVE_TABLE.len() + 1;

const fn commands() -> [ffi::command_rec; NCMDS] {
    let mut t = [END; NCMDS];
    let mut i = 0;
    while i < DIRECTIVE_TABLE.len() {
        t[i] = command(i);
        i += 1;
    }
    t
}

/// The command table: order, argument forms, override bits and help texts
/// as in the C module (read from its binary), plus our own directives;
/// generated from the engine's directive table.
pub static CMDS: Table<ffi::command_rec, NCMDS> = Table(commands());

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
type InitServer =
    unsafe extern "C" fn(*mut ffi::server_rec, *mut ffi::apr_pool_t, c_int, *mut c_void) -> c_int;

/// Adds `f` (type-erased) to the APR optional hook `name`.
///
/// # Safety
/// Only during register_hooks; `f` has the signature the hook's caller
/// uses (APR's optional hooks store functions as `void (*)(void)`).
unsafe fn add_optional_hook(name: &std::ffi::CStr, f: unsafe extern "C" fn()) {
    // SAFETY: forwarded contract.
    unsafe { ffi::apr_optional_hook_add(name.as_ptr(), Some(f), null(), null(), MIDDLE) };
}

const FIRST: c_int = ffi::APR_HOOK_FIRST as c_int;
const MIDDLE: c_int = ffi::APR_HOOK_MIDDLE as c_int;
const LAST: c_int = ffi::APR_HOOK_LAST as c_int;

/// post_config around mod_ssl's, child_init, the certificate hooks; the
/// request path (https redirects, http-01, certificate-status, protocol
/// negotiation, md-status, mod_status sections); mod_ssl's hooks
/// (init_server for hot activation, OCSP stapling, tls-alpn-01 answers).
unsafe extern "C" fn register_hooks(_pool: *mut ffi::apr_pool_t) {
    crate::guard::guard("register_hooks", (), || {
        // SAFETY: httpd assigned module_index in ap_add_module, just before
        // calling us; nothing writes it while we read it.
        crate::log::set_module_index(unsafe { (*std::ptr::addr_of!(md_module)).module_index });
        let (ssl, wd, n) = (MOD_SSL.0.as_ptr(), MOD_WATCHDOG.0.as_ptr(), null());
        // SAFETY: registering our hook functions with static, NULL-terminated
        // predecessor/successor lists, as httpd's hook API expects; the
        // optional hooks get functions of the signatures their callers use
        // (mod_status's status_hook, mod_ssl's init_server).
        unsafe {
            ffi::ap_hook_post_config(Some(hooks::post_config_before_ssl), n, ssl, FIRST);
            ffi::ap_hook_post_config(Some(hooks::post_config_after_ssl), ssl, wd, LAST);
            ffi::ap_hook_child_init(Some(hooks::child_init), n, ssl, MIDDLE);
            ffi::ap_hook_ssl_add_cert_files(Some(hooks::ssl_add_cert_files), n, n, MIDDLE);
            let fallback = Some(hooks::ssl_add_fallback_cert_files as _);
            ffi::ap_hook_ssl_add_fallback_cert_files(fallback, n, n, MIDDLE);
            ffi::ap_hook_post_read_request(Some(https::fallback_unavailable), n, n, FIRST);
            ffi::ap_hook_post_read_request(Some(https::require_https), ssl, n, MIDDLE);
            ffi::ap_hook_post_read_request(Some(challenge::http_challenge), n, n, MIDDLE);
            ffi::ap_hook_post_read_request(Some(status::certificate_status), n, ssl, MIDDLE);
            ffi::ap_hook_protocol_propose(Some(challenge::protocol_propose), n, n, MIDDLE);
            ffi::ap_hook_protocol_switch(Some(challenge::protocol_switch), n, n, MIDDLE);
            ffi::ap_hook_protocol_get(Some(challenge::protocol_get), n, n, MIDDLE);
            ffi::ap_hook_handler(Some(status::handler), n, n, MIDDLE);
            for f in [
                status::status_hook as StatusHook,
                status::stapling_status_hook,
            ] {
                let erased = std::mem::transmute::<StatusHook, unsafe extern "C" fn()>(f);
                add_optional_hook(c"status_hook", erased);
            }
            let init = hot::init_server as InitServer;
            add_optional_hook(
                c"init_server",
                std::mem::transmute::<InitServer, unsafe extern "C" fn()>(init),
            );
            ffi::ap_hook_ssl_ocsp_prime_hook(Some(ocsp::prime), n, n, MIDDLE);
            ffi::ap_hook_ssl_ocsp_get_resp_hook(Some(ocsp::get_resp), n, n, MIDDLE);
            let answer = Some(challenge::ssl_answer_challenge as _);
            ffi::ap_hook_ssl_answer_challenge(answer, n, n, MIDDLE);
        }
    })
}
