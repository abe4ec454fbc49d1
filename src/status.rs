//! The `md-status` handler (spec §6.1).

use crate::apr;
use crate::conf;
use crate::ffi;
use crate::guard::guard;
use md_engine::generation::report;
use std::os::raw::{c_int, c_void};

const DECLINED: c_int = ffi::DECLINED;
const OK: c_int = ffi::OK as c_int;

pub unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> c_int {
    guard("md-status handler", DECLINED, || {
        // SAFETY: httpd passes a live request of this generation.
        let Some((req, state)) = (unsafe { conf::request(r) }) else {
            return DECLINED;
        };
        // SAFETY: request strings live in the request pool.
        let (handler, path_info) =
            unsafe { (apr::opt_str(req.handler), apr::opt_str(req.path_info)) };
        let metrics = match handler.as_deref() {
            Some("md-status") => false,
            Some("md-metrics") => true,
            _ => return DECLINED,
        };
        if req.method_number != ffi::M_GET as c_int {
            return ffi::HTTP_NOT_IMPLEMENTED as c_int;
        }
        crate::guard::test_panic("md-status");
        let host = crate::log::ServerLog(req.server as usize);
        // SAFETY: the query string and the request headers live in the
        // request pool; the header name is a static C string.
        let (args, accept) = unsafe {
            (
                apr::opt_str(req.args),
                apr::opt_str(ffi::apr_table_get(req.headers_in, c"Accept".as_ptr())),
            )
        };
        let html = !metrics
            && md_engine::status::dashboard::wants_html(args.as_deref(), accept.as_deref());
        let Some((ctype, text)) = state.status_page(&host, metrics, html, path_info.as_deref())
        else {
            return ffi::HTTP_SERVICE_UNAVAILABLE as c_int;
        };
        if !metrics {
            // SAFETY: headers_out is the request's table; both strings are
            // static.
            unsafe { ffi::apr_table_mergen(req.headers_out, c"Vary".as_ptr(), c"Accept".as_ptr()) };
        }
        // SAFETY: writing the response of `r`.
        unsafe { write(r, ctype, &text, req.header_only != 0) };
        OK
    })
}

/// Sets type and length and writes `body` (not for HEAD).
///
/// # Safety
/// `r` is the live request being answered.
unsafe fn write(r: *mut ffi::request_rec, ctype: &str, body: &str, header_only: bool) {
    // SAFETY: the type string is copied into the request pool; the body is
    // written through httpd's output filters.
    unsafe {
        ffi::ap_set_content_type(r, apr::pstrdup((*r).pool, ctype));
        ffi::ap_set_content_length(r, body.len() as ffi::apr_off_t);
        if !header_only {
            ffi::ap_rwrite(body.as_ptr() as *const c_void, body.len() as c_int, r);
        }
    }
}

/// `/.httpd/certificate-status` (§6.2), in post_read_request.
pub unsafe extern "C" fn certificate_status(r: *mut ffi::request_rec) -> c_int {
    guard("certificate-status", DECLINED, || {
        // SAFETY: httpd passes a live request of this generation.
        let Some((req, state)) = (unsafe { conf::request(r) }) else {
            return DECLINED;
        };
        // SAFETY: request strings live in the request pool.
        let (path, host) = unsafe {
            (
                apr::opt_str(req.parsed_uri.path),
                apr::opt_str(req.hostname),
            )
        };
        if path.as_deref() != Some(report::CERTIFICATE_STATUS_PATH) {
            return DECLINED;
        }
        let Some(rt) = state.runtime() else {
            return DECLINED;
        };
        if !report::answers_certificate_status(&rt, path.as_deref(), host.as_deref()) {
            return DECLINED;
        }
        if req.method_number != ffi::M_GET as c_int {
            return ffi::HTTP_NOT_IMPLEMENTED as c_int;
        }
        let Some(body) =
            host.and_then(|h| report::certificate_status(&rt, &h, md_engine::base::time::now()))
        else {
            return DECLINED;
        };
        let text = md_engine::base::util::json_pretty(&body);
        // SAFETY: answering `r` from post_read_request (DONE ends it).
        unsafe { write(r, "application/json", &text, req.header_only != 0) };
        ffi::DONE
    })
}

/// Appends one of our mod_status sections (only with `MDServerStatus on`).
///
/// # Safety
/// `r` is the live request of the status page being generated.
unsafe fn status_section(r: *mut ffi::request_rec, flags: c_int, staplings: bool) -> c_int {
    // SAFETY: httpd passes a live request; its server belongs to this
    // generation.
    let Some(state) = (unsafe { r.as_ref().and_then(|req| conf::state(req.server)) }) else {
        return DECLINED;
    };
    let short = flags & ffi::AP_STATUS_SHORT as c_int != 0;
    let Some(text) = state.status_section(staplings, short) else {
        return DECLINED;
    };
    // SAFETY: appending to the status page being generated.
    unsafe { ffi::ap_rwrite(text.as_ptr() as *const c_void, text.len() as c_int, r) };
    OK
}

/// mod_status: the managed certificates section (§6.3).
pub unsafe extern "C" fn status_hook(r: *mut ffi::request_rec, flags: c_int) -> c_int {
    // SAFETY: forwarded from mod_status.
    guard("status_hook", DECLINED, || unsafe {
        status_section(r, flags, false)
    })
}

/// mod_status: the managed staplings section (§6.3; the `?auto` summary
/// lines also when nothing is stapled, as scripts expect them).
pub unsafe extern "C" fn stapling_status_hook(r: *mut ffi::request_rec, flags: c_int) -> c_int {
    // SAFETY: forwarded from mod_status.
    guard("stapling status_hook", DECLINED, || unsafe {
        status_section(r, flags, true)
    })
}
