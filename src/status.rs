//! The `md-status` handler (spec §6.1).

use crate::apr;
use crate::conf;
use crate::ffi;
use crate::guard::guard;
use md_engine::status;
use md_engine::store::Group;
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
        let metrics = match handler.as_deref() {
            Some("md-status") => false,
            Some("md-metrics") => true,
            _ => return DECLINED,
        };
        if req.method_number != ffi::M_GET as c_int {
            return ffi::HTTP_NOT_IMPLEMENTED as c_int;
        }
        crate::guard::test_panic("md-status");
        // SAFETY: the request's server belongs to this generation.
        let Some(state) = (unsafe { conf::state(req.server) }) else {
            return DECLINED;
        };
        // The frozen registry (an Arc snapshot; no lock held while rendering).
        let Some(rt) = state.runtime() else {
            return ffi::HTTP_SERVICE_UNAVAILABLE as c_int;
        };
        let store = &rt.store;
        if metrics {
            let now = md_engine::time::now();
            let text = status::metrics(&views(&rt), now);
            // SAFETY: as below.
            unsafe {
                write(
                    r,
                    "text/plain; version=0.0.4; charset=utf-8",
                    &text,
                    req.header_only != 0,
                )
            };
            return OK;
        }
        let items: Vec<_> = rt
            .mds
            .iter()
            .zip(rt.md_rt.iter())
            .map(|(m, x)| (m, &x.cert_json, x.renew_at, x.watched))
            .collect();
        let now = md_engine::time::now();
        let want = path_info
            .filter(|p| p.len() > 1)
            .map(|p| p.rsplit('/').next().unwrap_or("").to_string())
            .filter(|p| !p.is_empty());
        let staplings = state.stapling.views(md_engine::time::now());
        let ocsp = |mut j, logs| {
            status::add_ocsp(&mut j, &staplings, logs);
            j
        };
        // An MD by name, else the MD covering the domain (wildcards too);
        // anything else gets the overview, as from the C module.
        let found = want.and_then(|name| {
            items.iter().find(|(m, ..)| m.name == name).or_else(|| {
                items.iter().find(|(m, ..)| {
                    m.domains
                        .iter()
                        .any(|d| md_engine::vhost::domain_matches(d, &name))
                })
            })
        });
        let body = match found {
            Some((m, certs, at, w)) => with_live(
                state,
                ocsp(status::md_json(store, m, certs, *at, *w, true, now), true),
                m,
                certs,
            ),
            None => status::overview(
                items
                    .iter()
                    .map(|(m, certs, at, w)| {
                        with_live(
                            state,
                            ocsp(status::md_json(store, m, certs, *at, *w, false, now), false),
                            m,
                            certs,
                        )
                    })
                    .collect(),
            ),
        };
        let text = md_engine::util::json_pretty(&body);
        // SAFETY: writing the response of `r`.
        unsafe { write(r, "application/json", &text, req.header_only != 0) };
        OK
    })
}

/// Adds `live`: which certificate new connections get (our addition to
/// the C module's JSON): `staging` when hot activation serves a renewed
/// set, `domains` for the installed one, `none` before the first.
fn with_live(
    state: &conf::ModState,
    mut j: md_engine::serde_json::Value,
    md: &md_engine::config::Md,
    certs: &md_engine::serde_json::Value,
) -> md_engine::serde_json::Value {
    let live = if crate::hot::serving_staged(state, &md.name) {
        "staging"
    } else if certs.as_object().is_some_and(|o| !o.is_empty()) {
        "domains"
    } else {
        "none"
    };
    if let Some(o) = j.as_object_mut() {
        o.insert("live".into(), md_engine::serde_json::json!(live));
    }
    j
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

/// The status views of all MDs, sorted by name as the C module lists them,
/// with the staging jobs read live.
fn views(rt: &conf::Runtime) -> Vec<status::MdView<'_>> {
    let mut v: Vec<_> = rt
        .mds
        .iter()
        .zip(rt.md_rt.iter())
        .map(|(m, x)| {
            let job = match rt.store.load_json(Group::Staging, &m.name, "job.json") {
                Ok(Some(j)) => Some(md_engine::job::Job::from_json(&j)),
                _ => None,
            };
            let last = job
                .as_ref()
                .map_or(0, status::last_finished)
                .max(x.last_success);
            status::MdView {
                md: m,
                certs: &x.certs,
                renew_at: x.renew_at,
                job,
                last_success: last,
            }
        })
        .collect();
    v.sort_by(|a, b| a.md.name.cmp(&b.md.name));
    v
}

/// `/.httpd/certificate-status` (§6.2), in post_read_request.
pub unsafe extern "C" fn certificate_status(r: *mut ffi::request_rec) -> c_int {
    guard("certificate-status", DECLINED, || {
        // SAFETY: httpd passes a live request.
        let Some(req) = (unsafe { r.as_mut() }) else {
            return DECLINED;
        };
        // SAFETY: request strings live in the request pool.
        let (path, host) = unsafe {
            (
                apr::opt_str(req.parsed_uri.path),
                apr::opt_str(req.hostname),
            )
        };
        if path.as_deref() != Some("/.httpd/certificate-status") {
            return DECLINED;
        }
        // SAFETY: the request's server belongs to this generation.
        let Some(state) = (unsafe { conf::state(req.server) }) else {
            return DECLINED;
        };
        if !state.lock().config.global.certificate_status {
            return DECLINED;
        }
        let Some(rt) = state.runtime() else {
            return DECLINED;
        };
        let Some(host) = host else { return DECLINED };
        let Some(mi) = rt.mds.iter().position(|m| {
            m.domains
                .iter()
                .any(|d| md_engine::vhost::domain_matches(d, &host))
        }) else {
            return DECLINED;
        };
        if req.method_number != ffi::M_GET as c_int {
            return ffi::HTTP_NOT_IMPLEMENTED as c_int;
        }
        let x = &rt.md_rt[mi];
        let body = status::certificate_status(
            &rt.store,
            &rt.mds[mi],
            &x.certs,
            x.renew_at,
            md_engine::time::now(),
        );
        let text = md_engine::util::json_pretty(&body);
        // SAFETY: answering `r` from post_read_request (DONE ends it).
        unsafe { write(r, "application/json", &text, req.header_only != 0) };
        ffi::DONE
    })
}

/// Appends one of our mod_status sections (only with `MDServerStatus on`):
/// `render` gets the module state and whether the short (`?auto`) form is
/// asked for.
///
/// # Safety
/// `r` is the live request of the status page being generated.
unsafe fn status_section(
    r: *mut ffi::request_rec,
    flags: c_int,
    render: impl FnOnce(&conf::ModState, bool) -> Option<String>,
) -> c_int {
    // SAFETY: httpd passes a live request.
    let Some(req) = (unsafe { r.as_mut() }) else {
        return DECLINED;
    };
    // SAFETY: the request's server belongs to this generation.
    let Some(state) = (unsafe { conf::state(req.server) }) else {
        return DECLINED;
    };
    if !state.lock().config.global.server_status {
        return DECLINED;
    }
    let Some(text) = render(state, flags & ffi::AP_STATUS_SHORT as c_int != 0) else {
        return DECLINED;
    };
    // SAFETY: appending to the status page being generated.
    unsafe { ffi::ap_rwrite(text.as_ptr() as *const c_void, text.len() as c_int, r) };
    OK
}

/// mod_status: the managed certificates section (§6.3).
pub unsafe extern "C" fn status_hook(r: *mut ffi::request_rec, flags: c_int) -> c_int {
    guard("status_hook", DECLINED, || {
        // SAFETY: forwarded from mod_status.
        unsafe {
            status_section(r, flags, |state, short| {
                let global = state.lock().config.global.clone();
                let rt = state.runtime()?;
                let now = md_engine::time::now();
                let v = views(&rt);
                let (name, url) = (&global.cert_check_name, &global.cert_check_url);
                Some(if short {
                    status::server_status_text(&v, name, url, now)
                } else {
                    status::server_status_html(&v, name, url, now)
                })
            })
        }
    })
}

/// mod_status: the managed staplings section (§6.3; the `?auto` summary
/// lines also when nothing is stapled, as scripts expect them).
pub unsafe extern "C" fn stapling_status_hook(r: *mut ffi::request_rec, flags: c_int) -> c_int {
    guard("stapling status_hook", DECLINED, || {
        // SAFETY: forwarded from mod_status.
        unsafe {
            status_section(r, flags, |state, short| {
                let views = state.stapling.views(md_engine::time::now());
                let now = md_engine::time::now();
                Some(if short {
                    status::staplings_text(&views, now)
                } else {
                    status::staplings_html(&views, now)
                })
            })
        }
    })
}
