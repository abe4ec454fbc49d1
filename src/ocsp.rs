//! OCSP stapling (spec §8), httpd's side: mod_ssl's prime and
//! get-response hooks and the `_md_ocsp_` watchdog. The registry and the
//! refresh loop are the engine's (`md_engine::stapling`), one per
//! configuration generation in its `ModState`.

use crate::conf;
use crate::ffi;
use crate::guard::guard;
use crate::log;
use md_engine::log::Level;
use md_engine::ocsp;
use md_engine::time::{self, Micros, TimeSlice};
use std::os::raw::{c_char, c_int, c_void};

const DECLINED: c_int = ffi::DECLINED;
const OK: c_int = ffi::OK as c_int;

/// `staple_here` (§8.1): the MD to file the certificate under, or None
/// when this vhost's certificates are not stapled. `Some(None)`: stapled
/// as `other`.
fn staple_here(s: *const ffi::server_rec) -> Option<Option<String>> {
    // SAFETY: s is a live server of this generation (mod_ssl's post_config).
    let sc = unsafe { conf::srv_conf(s) }?;
    // SAFETY: the state pointer shares the configuration pool's lifetime.
    let state = unsafe { sc.state.as_ref() }?;
    let rt = state.runtime()?;
    let md = rt.md_of(s as usize).map(|d| &d.md);
    if let Some(md) = md.filter(|m| m.stapling) {
        return Some(Some(md.name.clone()));
    }
    if sc.settings.stapling.unwrap_or(false) && sc.settings.staple_others.unwrap_or(true) {
        return Some(md.map(|m| m.name.clone()));
    }
    None
}

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
        if id.is_null() || pem.is_null() || !state.stapling.active() {
            return DECLINED;
        }
        let Some(md) = staple_here(s) else {
            return DECLINED;
        };
        // SAFETY: mod_ssl passes `id_len` bytes at `id` and a C string.
        let (id, pem) = unsafe {
            (
                std::slice::from_raw_parts(id as *const u8, id_len),
                std::ffi::CStr::from_ptr(pem).to_bytes(),
            )
        };
        let mut notes = Vec::new();
        let stapled = state.stapling.prime(id, pem, md.as_deref(), &mut notes);
        log::notes(s, &notes);
        if stapled {
            OK
        } else {
            DECLINED
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

/// What one watchdog run needs from the configuration.
pub struct OcspWatchdog {
    pub main_server: *const ffi::server_rec,
    pub state: *const conf::ModState,
    pub wd: *mut ffi::ap_watchdog_t,
    pub set_interval: ffi::apr_OFN_ap_watchdog_set_callback_interval_t,
}

/// Registers `_md_ocsp_` (real run, parent, after mod_ssl primed) and
/// prunes old response files.
///
/// # Safety
/// `pconf` and `s` are the live configuration pool and main server.
pub unsafe fn register(
    pconf: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
    state: *const conf::ModState,
    keep: &TimeSlice,
) -> bool {
    // SAFETY: forwarded contract (the state lives as long as pconf).
    if let Some(rt) = unsafe { state.as_ref() }.and_then(|st| st.runtime()) {
        for p in ocsp::prune(&rt.store, keep, time::now()) {
            log::log(s, Level::Debug, &format!("removed old OCSP response {p}"));
        }
    }
    // SAFETY: forwarded contract.
    let Some((wd, set)) = (unsafe { crate::watchdog::watchdog_instance(pconf, s, c"_md_ocsp_") })
    else {
        return false;
    };
    let ctx = OcspWatchdog {
        main_server: s,
        state,
        wd,
        set_interval: set,
    };
    // SAFETY: the context lives as long as pconf, like the watchdog.
    let data = unsafe { crate::apr::pool_own(pconf, ctx) } as *const c_void;
    // SAFETY: registering our callback with its pool-owned data; interval 0
    // (runs right after start).
    unsafe { crate::watchdog::watchdog_register(s, wd, 0, data, Some(callback), "_md_ocsp_") }
}

unsafe extern "C" fn callback(
    state: c_int,
    data: *mut c_void,
    _ptemp: *mut ffi::apr_pool_t,
) -> ffi::apr_status_t {
    guard("md ocsp watchdog", 0, || {
        // SAFETY: `data` is the pool-owned OcspWatchdog registered above.
        let Some(wd) = (unsafe { (data as *const OcspWatchdog).as_ref() }) else {
            return 0;
        };
        let s = wd.main_server;
        // SAFETY: the state lives as long as the configuration pool.
        let Some(st) = (unsafe { wd.state.as_ref() }) else {
            return 0;
        };
        let count = || st.stapling.count();
        if state as u32 == ffi::AP_WATCHDOG_STATE_STARTING {
            let msg = format!(
                "AH10197: md ocsp watchdog start, ocsp stapling {} certificates",
                count()
            );
            log::log(s, Level::Debug, &msg);
        } else if state as u32 == ffi::AP_WATCHDOG_STATE_STOPPING {
            log::log(s, Level::Debug, "AH10200: md ocsp watchdog stopping");
        } else if state as u32 == ffi::AP_WATCHDOG_STATE_RUNNING {
            let Some(_running) = st.scheduler.enter_callback() else {
                return 0; // the child is exiting
            };
            let msg = format!(
                "AH10198: md ocsp watchdog run, ocsp stapling {} certificates",
                count()
            );
            log::log(s, Level::Debug, &msg);
            let next = log::live(s, || run(wd));
            let msg = format!(
                "AH10199: md ocsp watchdog next run in {}",
                time::print_duration(next, false)
            );
            log::log(s, Level::Debug, &msg);
            if let Some(set) = wd.set_interval {
                // SAFETY: re-arming our own callback on our instance.
                unsafe { set(wd.wd, next, data, Some(callback)) };
            }
        }
        0
    })
}

/// One `_md_ocsp_` run: the engine fetches what is due through the
/// configured proxy; returns the next interval.
fn run(wd: &OcspWatchdog) -> Micros {
    // SAFETY: the state lives as long as the configuration pool.
    let Some(state) = (unsafe { wd.state.as_ref() }) else {
        return time::from_secs(3600);
    };
    let global = state.lock().config.global.clone();
    // SAFETY: httpd's static server description string.
    let desc = unsafe { crate::apr::str_or_empty(ffi::ap_get_server_description()) };
    let ua = desc
        .split_whitespace()
        .next()
        .unwrap_or("Apache/2.4")
        .to_string();
    let proxy = global.proxy_url.clone();
    let fetch = move |c: &ocsp::Cert| {
        let mut client = md_engine::http::Client::new(ua.clone());
        client.proxy = proxy.clone();
        client.body_limit = ocsp::BODY_LIMIT;
        client.timeout = std::time::Duration::from_secs(60);
        client.connect_timeout = std::time::Duration::from_secs(30);
        c.fetch(&client, time::now())
    };
    let host = log::ServerLog(wd.main_server as usize);
    state.stapling.refresh(&host, &global, &fetch)
}
