//! `MDRequireHttps` in post_read_request (spec §2.5), and the 503 of a
//! connection handed an MD's fallback certificate (hot activation).

use crate::apr;
use crate::conf;
use crate::ffi;
use crate::guard::guard;
use md_engine::generation::report;
use md_engine::serving::redirect::{self, Action};
use std::os::raw::c_int;

const DECLINED: c_int = ffi::DECLINED;

pub unsafe extern "C" fn require_https(r: *mut ffi::request_rec) -> c_int {
    guard("require_https", DECLINED, || {
        // SAFETY: httpd passes a live request of this generation.
        let Some((req, state)) = (unsafe { conf::request(r) }) else {
            return DECLINED;
        };
        // SAFETY: request strings live in the request pool.
        let (path, query, fragment, host) = unsafe {
            (
                apr::str_or_empty(req.parsed_uri.path),
                apr::opt_str(req.parsed_uri.query),
                apr::opt_str(req.parsed_uri.fragment),
                apr::str_or_empty(ffi::ap_get_server_name_for_url(r)),
            )
        };
        let Some(rt) = state.runtime() else {
            return DECLINED;
        };
        let Some(md) = report::https_md(&rt, req.server as usize, &host) else {
            return DECLINED;
        };
        // SAFETY: the request's connection is live.
        let is_https = unsafe { ffi::ap_ssl_conn_is_ssl(req.connection) } != 0;
        let get_or_head = req.method_number == ffi::M_GET as c_int;
        let action = redirect::decide(
            md.require_https,
            is_https,
            &path,
            get_or_head,
            &host,
            query.as_deref(),
            fragment.as_deref(),
        );
        // SAFETY: `req` is the live request being read.
        unsafe { apply(req, action) }
    })
}

/// Carries out what `MDRequireHttps` decided for the request.
///
/// # Safety
/// `req` is a live request.
unsafe fn apply(req: &mut ffi::request_rec, action: Action) -> c_int {
    match action {
        Action::Nothing => DECLINED,
        Action::Hsts => {
            // SAFETY: headers_out is the request's table; values are
            // copied into the request pool.
            unsafe {
                let name = c"Strict-Transport-Security";
                if ffi::apr_table_get(req.headers_out, name.as_ptr()).is_null() {
                    let v = apr::pstrdup(req.pool, redirect::HSTS_VALUE);
                    ffi::apr_table_setn(req.headers_out, name.as_ptr(), v);
                }
            }
            DECLINED
        }
        Action::Redirect(status, url) => {
            // SAFETY: as above.
            unsafe {
                let v = apr::pstrdup(req.pool, &url);
                ffi::apr_table_setn(req.headers_out, c"Location".as_ptr(), v);
            }
            c_int::from(status)
        }
    }
}

/// The 503 of a vhost that started without its MD's certificate: mod_ssl
/// got the fallback through the ordinary certificate hook (so it serves the
/// vhost normally once hot activation swaps the certificate in), and this
/// hook answers 503 on the connections that were handed the fallback, as
/// mod_ssl would have for the whole generation.
pub unsafe extern "C" fn fallback_unavailable(r: *mut ffi::request_rec) -> c_int {
    guard("fallback_unavailable", DECLINED, || {
        // SAFETY: httpd passes a live request of this generation.
        let Some((req, state)) = (unsafe { conf::request(r) }) else {
            return DECLINED;
        };
        let Some(rt) = state.runtime() else {
            return DECLINED;
        };
        if !rt.vhost(req.server as usize).is_some_and(|v| v.fallback) {
            return DECLINED;
        }
        // SAFETY: request strings live in the request pool.
        let (path, host) = unsafe {
            (
                apr::opt_str(req.parsed_uri.path),
                apr::opt_str(req.hostname),
            )
        };
        // the certificate status answers there, as the C module's does
        // (its hook runs before mod_ssl's 503)
        if report::answers_certificate_status(&rt, path.as_deref(), host.as_deref()) {
            return DECLINED;
        }
        // SAFETY: the request's connection is live; mod_ssl returns a
        // request pool string (or NULL) for the connection's certificate.
        let cn = unsafe {
            if ffi::ap_ssl_conn_is_ssl(req.connection) == 0 {
                return DECLINED;
            }
            apr::opt_str(ffi::ap_ssl_var_lookup(
                req.pool,
                req.server,
                req.connection,
                r,
                c"SSL_SERVER_S_DN_CN".as_ptr(),
            ))
        };
        if report::fallback_unavailable(&rt, req.server as usize, cn.as_deref()) {
            ffi::HTTP_SERVICE_UNAVAILABLE as c_int
        } else {
            DECLINED
        }
    })
}
