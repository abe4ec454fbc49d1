//! Answers to the CA's challenges, by httpd itself: http-01 in
//! post_read_request (spec §2.6) and tls-alpn-01 through the `acme-tls/1`
//! protocol and mod_ssl's `ssl_answer_challenge` (§2.7).

use crate::apr;
use crate::conf;
use crate::ffi;
use crate::guard::guard;
use crate::log;
use md_engine::base::log::Level;
use md_engine::generation::report::{self, Http01};
use std::os::raw::{c_char, c_int, c_void};

const OK: c_int = ffi::OK as c_int;
const DECLINED: c_int = ffi::DECLINED;
const DONE: c_int = ffi::DONE;
const ACME_TLS_1: &std::ffi::CStr = c"acme-tls/1";

/// http-01: `GET /.well-known/acme-challenge/<token>` (§2.6).
pub unsafe extern "C" fn http_challenge(r: *mut ffi::request_rec) -> c_int {
    guard("http-01 challenge", DECLINED, || {
        // SAFETY: httpd passes a live request of this generation.
        let Some((req, state)) = (unsafe { conf::request(r) }) else {
            return DECLINED;
        };
        // SAFETY: parsed_uri.path and hostname are request pool strings or NULL.
        let (Some(path), Some(host)) = (unsafe {
            (
                apr::opt_str(req.parsed_uri.path),
                apr::opt_str(req.hostname),
            )
        }) else {
            return DECLINED;
        };
        if !path.starts_with("/.well-known/") {
            return DECLINED;
        }
        let Some(rt) = state.runtime() else {
            return DECLINED;
        };
        match report::http01(&rt, &path, &host) {
            Http01::Decline => DECLINED,
            Http01::NotFound => ffi::HTTP_NOT_FOUND as c_int,
            Http01::Respond(_) if req.method_number != ffi::M_GET as c_int => {
                ffi::HTTP_NOT_IMPLEMENTED as c_int
            }
            Http01::Respond(data) => {
                // SAFETY: writing the body of this request.
                unsafe {
                    ffi::ap_set_content_length(r, data.len() as ffi::apr_off_t);
                    ffi::ap_rwrite(data.as_ptr() as *const c_void, data.len() as c_int, r);
                }
                DONE
            }
            Http01::Failed(e) => {
                log::log(req.server, Level::Error, &e);
                ffi::HTTP_INTERNAL_SERVER_ERROR as c_int
            }
        }
    })
}

/// The connection note set once a connection switched to `acme-tls/1`.
const SWITCHED: &std::ffi::CStr = c"mod_md.acme-tls/1";

/// Whether connection `c` switched to `acme-tls/1`.
///
/// # Safety
/// `c` is NULL or a live connection.
unsafe fn is_switched(c: *const ffi::conn_rec) -> bool {
    // SAFETY: the connection's notes table lives in its pool.
    unsafe {
        c.as_ref()
            .is_some_and(|c| !ffi::apr_table_get(c.notes, SWITCHED.as_ptr()).is_null())
    }
}

pub unsafe extern "C" fn protocol_propose(
    c: *mut ffi::conn_rec,
    r: *mut ffi::request_rec,
    _s: *mut ffi::server_rec,
    offers: *const ffi::apr_array_header_t,
    proposals: *mut ffi::apr_array_header_t,
) -> c_int {
    guard("protocol_propose", DECLINED, || {
        // SAFETY: live connection and arrays of protocol names.
        unsafe {
            if !r.is_null() || ffi::ap_ssl_conn_is_ssl(c) == 0 {
                return DECLINED;
            }
            if apr::str_array(offers).iter().any(|o| o == "acme-tls/1") {
                let slot = ffi::apr_array_push(proposals) as *mut *const c_char;
                *slot = ACME_TLS_1.as_ptr();
                return OK;
            }
        }
        DECLINED
    })
}

pub unsafe extern "C" fn protocol_switch(
    c: *mut ffi::conn_rec,
    r: *mut ffi::request_rec,
    _s: *mut ffi::server_rec,
    protocol: *const c_char,
) -> c_int {
    guard("protocol_switch", DECLINED, || {
        // SAFETY: live connection; protocol is a C string; the note is
        // copied into the connection's pool.
        unsafe {
            if !r.is_null() || apr::opt_str(protocol).as_deref() != Some("acme-tls/1") {
                return DECLINED;
            }
            let Some(conn) = c.as_mut() else {
                return DECLINED;
            };
            ffi::apr_table_set(conn.notes, SWITCHED.as_ptr(), c"1".as_ptr());
            conn.keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
        }
        OK
    })
}

pub unsafe extern "C" fn protocol_get(c: *const ffi::conn_rec) -> *const c_char {
    guard("protocol_get", std::ptr::null(), || {
        // SAFETY: live connection.
        if unsafe { is_switched(c) } {
            ACME_TLS_1.as_ptr()
        } else {
            std::ptr::null()
        }
    })
}

/// mod_ssl asks for the certificate of an `acme-tls/1` handshake.
pub unsafe extern "C" fn ssl_answer_challenge(
    c: *mut ffi::conn_rec,
    servername: *const c_char,
    pcert: *mut *const c_char,
    pkey: *mut *const c_char,
) -> c_int {
    guard("ssl_answer_challenge", DECLINED, || {
        // SAFETY: live connection from mod_ssl.
        if !unsafe { is_switched(c) } {
            return DECLINED;
        }
        // SAFETY: C string or NULL.
        let name = unsafe { apr::str_or_empty(servername) }.to_ascii_lowercase();
        // SAFETY: the connection's base server is of this generation.
        let base = unsafe { (*c).base_server };
        let Some(state) = (unsafe { conf::state(base) }) else {
            return DECLINED;
        };
        let Some((cert, key)) = state.tls_alpn01(&log::ServerLog(base as usize), &name) else {
            return DECLINED;
        };
        // SAFETY: strings copied into the connection pool, which outlives
        // the handshake.
        unsafe {
            *pcert = apr::pstrdup((*c).pool, &cert);
            *pkey = apr::pstrdup((*c).pool, &key);
        }
        OK
    })
}
