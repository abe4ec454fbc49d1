//! The `md-status` handler (spec §6.1).

use crate::apr;
use crate::conf;
use crate::ffi;
use crate::guard::guard;
use md_engine::status;
use std::os::raw::{c_int, c_void};

const DECLINED: c_int = ffi::DECLINED;
const OK: c_int = ffi::OK as c_int;

pub unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> c_int {
    guard("md-status handler", DECLINED, || {
        // SAFETY: httpd passes a live request.
        let Some(req) = (unsafe { r.as_mut() }) else {
            return DECLINED;
        };
        // SAFETY: request strings live in the request pool.
        let (handler, path_info) =
            unsafe { (apr::opt_str(req.handler), apr::opt_str(req.path_info)) };
        if handler.as_deref() != Some("md-status") {
            return DECLINED;
        }
        if req.method_number != ffi::M_GET as c_int {
            return ffi::HTTP_NOT_IMPLEMENTED as c_int;
        }
        // SAFETY: the request's server belongs to this generation.
        let Some(state) = (unsafe { conf::state(req.server) }) else {
            return DECLINED;
        };
        // Snapshot under the lock; render without it.
        let (store, items) = {
            let st = state.lock();
            let Some(rt) = st.runtime.as_ref() else {
                return ffi::HTTP_SERVICE_UNAVAILABLE as c_int;
            };
            let items: Vec<_> = rt
                .mds
                .iter()
                .zip(rt.md_rt.iter())
                .map(|(m, x)| (m.clone(), x.certs.clone(), x.renew_at, x.watched))
                .collect();
            (rt.store.clone(), items)
        };
        let now = md_engine::time::now();
        let want = path_info
            .filter(|p| p.len() > 1)
            .map(|p| p.rsplit('/').next().unwrap_or("").to_string())
            .filter(|p| !p.is_empty());
        let body = match want {
            Some(name) => {
                let found = items
                    .iter()
                    .find(|(m, ..)| m.name == name)
                    .or_else(|| items.iter().find(|(m, ..)| m.contains(&name)));
                match found {
                    Some((m, certs, at, w)) => {
                        status::md_json(&store, m, certs, *at, *w, true, now)
                    }
                    None => return ffi::HTTP_NOT_FOUND as c_int,
                }
            }
            None => status::overview(
                items
                    .iter()
                    .map(|(m, certs, at, w)| status::md_json(&store, m, certs, *at, *w, false, now))
                    .collect(),
            ),
        };
        let text = md_engine::util::json_pretty(&body);
        // SAFETY: setting the response type and writing the body of `r`.
        unsafe {
            ffi::ap_set_content_type(r, c"application/json".as_ptr());
            ffi::ap_set_content_length(r, text.len() as ffi::apr_off_t);
            if req.header_only == 0 {
                ffi::ap_rwrite(text.as_ptr() as *const c_void, text.len() as c_int, r);
            }
        }
        OK
    })
}
