//! OCSP stapling (spec §8), httpd's side: mod_ssl's prime and
//! get-response hooks. The registry and the refresh loop are the engine's
//! (`md_engine::serving::stapling`, one per configuration generation; its watchdog
//! is in `watchdog.rs`).

use crate::conf;
use crate::ffi;
use crate::guard::guard;
use crate::log;
use md_engine::base::time;
use std::os::raw::{c_char, c_int, c_void};

const DECLINED: c_int = ffi::DECLINED;
const OK: c_int = ffi::OK as c_int;

/// `ssl_ocsp_prime_hook`: mod_ssl offers a certificate (leaf + issuer PEM).
pub unsafe extern "C" fn prime(
    s: *mut ffi::server_rec,
    _p: *mut ffi::apr_pool_t,
    id: *const c_char,
    id_len: ffi::apr_size_t,
    pem: *const c_char,
) -> c_int {
    guard("ocsp prime", DECLINED, || {
        // SAFETY: s is a live server of this generation (mod_ssl's post_config).
        let Some(state) = (unsafe { conf::state(s) }) else {
            return DECLINED;
        };
        // SAFETY: as above; its configuration was created by us.
        let Some(sc) = (unsafe { conf::srv_conf(s) }) else {
            return DECLINED;
        };
        if id.is_null() || pem.is_null() {
            return DECLINED;
        }
        // SAFETY: mod_ssl passes `id_len` bytes at `id` and a C string.
        let (id, pem) = unsafe {
            (
                std::slice::from_raw_parts(id as *const u8, id_len),
                std::ffi::CStr::from_ptr(pem).to_bytes(),
            )
        };
        match state.prime(
            &log::ServerLog(s as usize),
            s as usize,
            &sc.settings,
            id,
            pem,
        ) {
            true => OK,
            false => DECLINED,
        }
    })
}

/// `ssl_ocsp_get_resp_hook`: the response to staple in a handshake.
pub unsafe extern "C" fn get_resp(
    s: *mut ffi::server_rec,
    _c: *mut ffi::conn_rec,
    id: *const c_char,
    id_len: ffi::apr_size_t,
    cb: ffi::ap_ssl_ocsp_copy_resp,
    userdata: *mut c_void,
) -> c_int {
    guard("ocsp get response", DECLINED, || {
        let Some(cb) = cb else {
            return DECLINED;
        };
        if id.is_null() {
            return DECLINED;
        }
        // SAFETY: the handshake's server belongs to this generation.
        let Some(state) = (unsafe { conf::state(s) }) else {
            return DECLINED;
        };
        // SAFETY: mod_ssl passes `id_len` bytes at `id`.
        let id = unsafe { std::slice::from_raw_parts(id as *const u8, id_len) };
        let stapled = state
            .stapling
            .with_response(id, time::now(), |der| match der {
                // SAFETY: mod_ssl copies the bytes before the callback returns.
                Some(der) => unsafe { cb(der.as_ptr(), der.len(), userdata) },
                // SAFETY: NULL/0 tells mod_ssl there is no response.
                None => unsafe { cb(std::ptr::null(), 0, userdata) },
            });
        if stapled.is_some() {
            OK
        } else {
            DECLINED
        }
    })
}
