//! OCSP stapling (spec §8): mod_ssl's prime and get-response hooks, the
//! per-process registry of stapled certificates, and the `_md_ocsp_`
//! watchdog that fetches responses (in one child, as `User`) into the
//! store, from where every child picks them up.

use crate::conf;
use crate::ffi;
use crate::guard::guard;
use crate::log::{self, Lvl};
use md_engine::job::{self, CommandNotify, Job};
use md_engine::ocsp::{self, Cert, CertStatus, PrimeError, Response};
use md_engine::store::{Group, Store};
use md_engine::time::{self, Micros, TimeSlice};
use md_engine::util::hex;
use std::collections::HashMap;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Mutex;

const DECLINED: c_int = ffi::DECLINED;
const OK: c_int = ffi::OK as c_int;

/// One stapled certificate of this process.
pub struct Entry {
    pub cert: Cert,
    pub resp: Option<Response>,
    /// mtime of the store file we loaded (µs).
    mtime: Micros,
    /// When this process last looked at the store file.
    last_check: Micros,
    /// When the watchdog fetches next (only meaningful in its child).
    pub next_run: Micros,
    pub errors: i32,
    /// SHA-256 fingerprint of the certificate (lower-case hex), to find it
    /// from md-status.
    pub sha256: String,
}

/// The stapled certificates of this configuration generation, with the
/// store and renewal window they are kept by.
pub struct Registry {
    pub store: Store,
    pub renew_window: TimeSlice,
    pub entries: HashMap<String, Entry>,
    /// Registration order, for status pages.
    pub order: Vec<String>,
}

pub static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> std::sync::MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new, empty registry for this configuration pass (before mod_ssl's
/// post_config primes certificates into it).
pub fn reset(store: Store, renew_window: TimeSlice) {
    *registry() = Some(Registry {
        store,
        renew_window,
        entries: HashMap::new(),
        order: Vec::new(),
    });
}

/// Number of registered certificates.
pub fn count() -> usize {
    registry().as_ref().map_or(0, |r| r.entries.len())
}

/// `staple_here` (§8.1): the MD to file the certificate under, or None
/// when this vhost's certificates are not stapled. `Some(None)`: stapled
/// as `other`.
fn staple_here(s: *const ffi::server_rec) -> Option<Option<String>> {
    // SAFETY: s is a live server of this generation (mod_ssl's post_config).
    let sc = unsafe { conf::srv_conf(s) }?;
    // SAFETY: the state pointer shares the configuration pool's lifetime.
    let state = unsafe { sc.state.as_ref() }?;
    let rt = state.runtime()?;
    if let Some(vi) = rt.vhost_index(s) {
        if let [mi] = rt.assigned[vi].as_slice() {
            let md = &rt.mds[*mi];
            if md.stapling {
                return Some(Some(md.name.clone()));
            }
        }
    }
    if sc.settings.stapling.unwrap_or(false) && sc.settings.staple_others.unwrap_or(true) {
        let md = rt
            .vhost_index(s)
            .and_then(|vi| match rt.assigned[vi].as_slice() {
                [mi] => Some(rt.mds[*mi].name.clone()),
                _ => None,
            });
        return Some(md);
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
        if id.is_null() || pem.is_null() || registry().is_none() {
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
        let cert = match Cert::from_pem(pem, md.as_deref()) {
            Ok(Some(c)) => c,
            Ok(None) => {
                // no OCSP responder named (Let's Encrypt today): said at
                // debug, in the C module's words
                let serial = md_engine::X509::from_pem(pem)
                    .ok()
                    .and_then(|c| c.serial_number().to_bn().ok())
                    .and_then(|b| b.to_hex_str().ok().map(|h| h.to_string()))
                    .unwrap_or_default();
                log::log(
                    s,
                    Lvl::Debug,
                    &format!(
                        "md[{}]: certificate with serial {serial} has no OCSP responder URL",
                        md.as_deref().unwrap_or("other")
                    ),
                );
                return DECLINED;
            }
            Err(PrimeError::TooFew) => {
                log::log(
                    s,
                    Lvl::Err,
                    "AH10269: init stapling for: need at least the certificate and its issuer",
                );
                return DECLINED;
            }
            Err(PrimeError::Parse(e)) => {
                log::log(
                    s,
                    Lvl::Err,
                    &format!("AH10268: init stapling: error parsing the certificate PEM: {e}"),
                );
                return DECLINED;
            }
        };
        let key = hex(id);
        let mut guard = registry();
        let Some(reg) = guard.as_mut() else {
            return DECLINED;
        };
        if !reg.entries.contains_key(&key) {
            let resp = match cert.try_load(&reg.store) {
                Err(e) => {
                    log::log(
                        s,
                        Lvl::Warn,
                        &format!(
                            "md[{}]: ignoring the stored OCSP response of certificate {}: {e}; a new one will be fetched",
                            cert.dir, cert.id
                        ),
                    );
                    None
                }
                Ok(r) => r,
            };
            let mtime = cert.file_mtime(&reg.store);
            let next_run = resp.as_ref().map_or(0, |r| r.renew_at(&reg.renew_window));
            let sha256 = cert.sha256();
            log::log(
                s,
                Lvl::Debug,
                &format!(
                    "md[{}]: OCSP stapling registered for certificate {} (responder {}){}",
                    cert.dir,
                    cert.id,
                    cert.responder,
                    if resp.is_some() {
                        ", response loaded from the store"
                    } else {
                        ""
                    }
                ),
            );
            reg.order.push(key.clone());
            reg.entries.insert(
                key,
                Entry {
                    cert,
                    resp,
                    mtime,
                    last_check: 0,
                    next_run,
                    errors: 0,
                    sha256,
                },
            );
        }
        OK
    })
}

/// `ssl_ocsp_get_resp_hook`: the response to staple in a handshake.
pub unsafe extern "C" fn get_resp(
    _s: *mut ffi::server_rec,
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
        // SAFETY: mod_ssl passes `id_len` bytes at `id`.
        let key = hex(unsafe { std::slice::from_raw_parts(id as *const u8, id_len) });
        let mut guard = registry();
        let Some(reg) = guard.as_mut() else {
            return DECLINED;
        };
        let Some(e) = reg.entries.get_mut(&key) else {
            return DECLINED;
        };
        refresh_from_store(e, &reg.store, &reg.renew_window, time::now());
        match &e.resp {
            // SAFETY: mod_ssl copies the bytes before we return.
            Some(r) => unsafe { cb(r.der.as_ptr(), r.der.len(), userdata) },
            // SAFETY: NULL/0 tells mod_ssl there is no response.
            None => unsafe { cb(std::ptr::null(), 0, userdata) },
        }
        OK
    })
}

/// Re-reads the store file when the watchdog (another child) may have
/// written a newer response (§8.2 intervals).
fn refresh_from_store(e: &mut Entry, store: &Store, w: &TimeSlice, now: Micros) {
    if let Some(r) = &e.resp {
        if now < r.renew_at(w) {
            return; // not in its renewal window yet
        }
    }
    let every = ocsp::reload_interval(e.resp.as_ref(), now);
    if e.resp.is_some() && now - e.last_check < every {
        return;
    }
    e.last_check = now;
    let mtime = e.cert.file_mtime(store);
    if mtime != 0 && mtime != e.mtime {
        if let Some(r) = e.cert.load(store) {
            e.resp = Some(r);
            e.mtime = mtime;
        }
    }
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
    if let Some(store) = registry().as_ref().map(|r| r.store.clone()) {
        for p in ocsp::prune(&store, keep, time::now()) {
            log::log(s, Lvl::Debug, &format!("removed old OCSP response {p}"));
        }
    }
    // SAFETY: forwarded contract.
    let Some((wd, set)) = (unsafe { crate::renew::watchdog_instance(pconf, s, c"_md_ocsp_") })
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
    unsafe { crate::renew::watchdog_register(s, wd, 0, data, Some(callback), "_md_ocsp_") }
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
        if state as u32 == ffi::AP_WATCHDOG_STATE_STARTING {
            let msg = format!(
                "AH10197: md ocsp watchdog start, ocsp stapling {} certificates",
                count()
            );
            log::log(s, Lvl::Debug, &msg);
        } else if state as u32 == ffi::AP_WATCHDOG_STATE_STOPPING {
            log::log(s, Lvl::Debug, "AH10200: md ocsp watchdog stopping");
        } else if state as u32 == ffi::AP_WATCHDOG_STATE_RUNNING {
            let Some(_running) = crate::renew::InCallback::enter() else {
                return 0; // the child is exiting
            };
            let msg = format!(
                "AH10198: md ocsp watchdog run, ocsp stapling {} certificates",
                count()
            );
            log::log(s, Lvl::Debug, &msg);
            let next = log::live(s, || run(wd));
            let msg = format!(
                "AH10199: md ocsp watchdog next run in {}",
                time::print_duration(next, false)
            );
            log::log(s, Lvl::Debug, &msg);
            if let Some(set) = wd.set_interval {
                // SAFETY: re-arming our own callback on our instance.
                unsafe { set(wd.wd, next, data, Some(callback)) };
            }
        }
        0
    })
}

/// One `_md_ocsp_` run: fetch what is due (≤ 6 at once); returns the next
/// interval.
fn run(wd: &OcspWatchdog) -> Micros {
    let s = wd.main_server;
    // SAFETY: the state lives as long as the configuration pool.
    let Some(state) = (unsafe { wd.state.as_ref() }) else {
        return time::from_secs(3600);
    };
    let global = state.lock().config.global.clone();
    let now = time::now();
    let (store, due): (Store, Vec<Cert>) = {
        let guard = registry();
        let Some(reg) = guard.as_ref() else {
            return time::from_secs(3600);
        };
        let store = reg.store.clone();
        let due = reg
            .order
            .iter()
            .filter_map(|k| reg.entries.get(k))
            .filter(|e| e.next_run <= now + time::from_secs(60))
            .map(|e| e.cert.clone())
            .collect();
        (store, due)
    };
    // SAFETY: httpd's static server description string.
    let desc = unsafe { crate::apr::str_or_empty(ffi::ap_get_server_description()) };
    let ua = desc
        .split_whitespace()
        .next()
        .unwrap_or("Apache/2.4")
        .to_string();
    let mut results: Vec<(Cert, Result<Response, String>)> = Vec::new();
    for chunk in due.chunks(6) {
        let done: Vec<_> = std::thread::scope(|sc| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|c| {
                    let mut client = md_engine::http::Client::new(ua.clone());
                    client.proxy = global.proxy_url.clone();
                    client.body_limit = ocsp::BODY_LIMIT;
                    client.timeout = std::time::Duration::from_secs(60);
                    client.connect_timeout = std::time::Duration::from_secs(30);
                    sc.spawn(move || (c.clone(), c.fetch(&client, time::now())))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        results.extend(done);
    }
    let mut notes = Vec::new();
    let mut notify = CommandNotify {
        message_cmd: global.message_cmd.clone(),
        notify_cmd: None,
        notes: Vec::new(),
    };
    let now = time::now();
    for (cert, res) in results {
        let mut jb =
            Job::load(&store, Group::Ocsp, &cert.dir).unwrap_or_else(|_| Job::new(&cert.dir));
        jb.name = cert.dir.clone();
        jb.finished = true;
        jb.last_run = now;
        let (next, event) = match res {
            Ok(resp) => {
                if let Err(e) = cert.save(&store, &resp) {
                    log::log(
                        s,
                        Lvl::Err,
                        &format!("md[{}]: cannot save the OCSP response: {e}", cert.dir),
                    );
                }
                log::log(
                    s,
                    Lvl::Debug,
                    &format!(
                        "md[{}]: OCSP response for {} is {}, valid until {}",
                        cert.dir,
                        cert.id,
                        resp.status.as_str(),
                        time::rfc822(resp.valid_until)
                    ),
                );
                if resp.status == CertStatus::Revoked {
                    log::log(
                        s,
                        Lvl::Warn,
                        &format!(
                            "md[{}]: the OCSP responder says certificate {} is REVOKED; the MD will be renewed",
                            cert.dir, cert.id
                        ),
                    );
                }
                jb.errors = 0;
                jb.add_log(
                    now,
                    "ocsp-renewed",
                    None,
                    Some(format!("certificate {}", cert.id)),
                );
                let w = global.stapling_renew_window;
                let next = resp.renew_at(&w).max(now + time::from_secs(1));
                let mtime = cert.file_mtime(&store);
                with_entry(&cert.id, |e| {
                    e.resp = Some(resp);
                    e.mtime = mtime;
                    e.errors = 0;
                    e.next_run = next;
                });
                (next, "ocsp-renewed")
            }
            Err(err) => {
                let errors = with_entry(&cert.id, |e| {
                    e.errors += 1;
                    e.errors
                })
                .unwrap_or(1);
                let next = now + job::backoff(errors, global.retry_delay, false, job::rand_byte());
                with_entry(&cert.id, |e| e.next_run = next);
                log::log(
                    s,
                    Lvl::Err,
                    &format!(
                        "md[{}]: OCSP response for certificate {} could not be renewed: {err}; retrying in {}",
                        cert.dir,
                        cert.id,
                        time::print_duration(next - now, true)
                    ),
                );
                jb.errors = errors;
                jb.add_log(now, "ocsp-error", None, Some(err));
                (next, "ocsp-errored")
            }
        };
        jb.next_run = next;
        let _ = job::fire(&mut jb, &mut notify, event, now, &mut notes);
        if let Err(e) = jb.save(&store, Group::Ocsp) {
            log::log(
                s,
                Lvl::Err,
                &format!("md[{}]: cannot save the OCSP job: {e}", cert.dir),
            );
        }
    }
    log::notes(s, &notes);
    log::notes(s, &notify.notes);
    let now = time::now();
    let earliest = registry().as_ref().and_then(|r| {
        r.entries
            .values()
            .map(|e| e.next_run)
            .filter(|t| *t > now)
            .min()
    });
    let next = earliest
        .unwrap_or(now + time::from_secs(3600))
        .min(now + time::from_secs(3600));
    (next - now).max(time::from_secs(1))
}

/// Runs `f` on the registry entry of a certificate id, if it is there.
fn with_entry<T>(id: &str, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
    registry()
        .as_mut()
        .and_then(|r| r.entries.get_mut(id))
        .map(f)
}

/// Whether the OCSP responder reported a certificate of an MD revoked
/// (§3.3). Reads the store: the OCSP watchdog may run in another child.
pub fn md_revoked(md: &str) -> bool {
    let (store, certs): (Store, Vec<Cert>) = {
        let guard = registry();
        let Some(reg) = guard.as_ref() else {
            return false;
        };
        (
            reg.store.clone(),
            reg.entries
                .values()
                .filter(|e| e.cert.dir == md)
                .map(|e| e.cert.clone())
                .collect(),
        )
    };
    certs.iter().any(|c| {
        c.load(&store)
            .is_some_and(|r| r.status == CertStatus::Revoked)
    })
}

/// The stapled certificates of this process for the status pages, with
/// what the store holds (responses another child fetched, job.json).
pub fn stapling_views() -> Vec<md_engine::status::StaplingView> {
    let now = time::now();
    let (store, mut views) = {
        let mut guard = registry();
        let Some(reg) = guard.as_mut() else {
            return Vec::new();
        };
        let Registry {
            store,
            renew_window,
            entries,
            order,
        } = reg;
        let mut views = Vec::new();
        for k in order.iter() {
            let Some(e) = entries.get_mut(k) else {
                continue;
            };
            refresh_from_store(e, store, renew_window, now);
            views.push(md_engine::status::StaplingView {
                dir: e.cert.dir.clone(),
                id: e.cert.id.clone(),
                sha256: e.sha256.clone(),
                responder: e.cert.responder.clone(),
                refresh_at: e.resp.as_ref().map(|r| r.renew_at(renew_window)),
                resp: e.resp.clone(),
                job: None,
            });
        }
        (store.clone(), views)
    };
    for v in &mut views {
        v.job = Job::load(&store, Group::Ocsp, &v.dir)
            .ok()
            .filter(|j| j.last_run > 0 || !j.log.is_empty());
    }
    views
}
