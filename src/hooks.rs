//! httpd hooks. Each is a thin shell: gather data from httpd's structures,
//! call the engine, log, return a status.

use crate::apr;
use crate::conf::{self, Runtime};
use crate::ffi;
use crate::guard::guard;
use crate::log;
use md_engine::config;
use md_engine::log::Level;
use md_engine::reg;
use md_engine::startup;
use md_engine::vhost::VHost;
use md_engine::MOD_MD_VERSION;
use std::os::raw::{c_int, c_void};

const OK: c_int = ffi::OK as c_int;
const DECLINED: c_int = ffi::DECLINED;
const DONE: c_int = ffi::DONE;
const FAILED: c_int = ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;

/// The first post_config call in a process lifetime is httpd's dry run
/// (config check pass); it is recorded on the process pool, as the C module
/// does, under the same key.
///
/// The process pool outlives this module's image: httpd unloads and reloads
/// the module between the dry run and the real start (and at every restart),
/// often at another address. So the key is copied into the pool
/// (`apr_pool_userdata_set`, not `setn`) and the value is no pointer into
/// the module either (APR never dereferences it; only NULL matters).
///
/// # Safety
/// `s` is the live main server.
unsafe fn is_dry_run(s: *mut ffi::server_rec) -> bool {
    const KEY: &std::ffi::CStr = c"mod_md_init_counter";
    // SAFETY: s->process and its pool live as long as the process; the key
    // is only read during the calls.
    unsafe {
        let pool = (*(*s).process).pool;
        let mut data: *mut c_void = std::ptr::null_mut();
        ffi::apr_pool_userdata_get(&mut data, KEY.as_ptr(), pool);
        if data.is_null() {
            ffi::apr_pool_userdata_set(std::ptr::dangling::<c_void>(), KEY.as_ptr(), None, pool);
            return true;
        }
    }
    false
}

/// The list of servers (main first, then vhosts) as plain data.
///
/// # Safety
/// `s` is the live main server; the list is walked during post_config.
unsafe fn collect_vhosts(s: *mut ffi::server_rec) -> (Vec<usize>, Vec<VHost>) {
    let mut ptrs = Vec::new();
    let mut out = Vec::new();
    let mut cur = s;
    // SAFETY: the server list is built by httpd and ends in NULL; all its
    // strings and arrays live in pconf.
    unsafe {
        while let Some(sr) = cur.as_ref() {
            let mut addrs = Vec::new();
            let mut a = sr.addrs;
            while let Some(ar) = a.as_ref() {
                addrs.push((apr::str_or_empty(ar.virthost), ar.host_port));
                a = ar.next;
            }
            ptrs.push(cur as usize);
            out.push(VHost {
                name: apr::str_or_empty(sr.server_hostname),
                port: sr.port,
                aliases: apr::str_array(sr.names),
                wild_aliases: apr::str_array(sr.wild_names),
                addrs,
                is_base: sr.is_virtual == 0,
            });
            cur = sr.next;
        }
    }
    (ptrs, out)
}

fn fatal(s: *const ffi::server_rec, f: &config::Fatal) -> c_int {
    log::log(s, Level::Error, &f.to_string());
    FAILED
}

/// Logs why start-up cannot go on; httpd then stops.
fn start_failed(s: *const ffi::server_rec, e: startup::StartError) -> c_int {
    match e {
        startup::StartError::Fatal(f) => fatal(s, &f),
        e => {
            log::log(s, Level::Error, &e.to_string());
            FAILED
        }
    }
}

/// post_config, first part ("before SSL", §2.2 steps 1–9 as far as this
/// module implements them): store, MD merge, fatal checks, vhost matching.
pub unsafe extern "C" fn post_config_before_ssl(
    pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> c_int {
    guard("post_config", FAILED, || {
        // SAFETY: httpd passes the live main server and pconf.
        unsafe { before_ssl(pconf, s) }
    })
}

/// AH10070 / AH10071: which post_config run this is.
fn log_start(s: *mut ffi::server_rec, dry_run: bool) {
    if dry_run {
        log::log(
            s,
            Level::Trace1,
            "AH10070: initializing post config dry run",
        );
    } else {
        log::log(
            s,
            Level::Info,
            &format!("AH10071: mod_md (v{MOD_MD_VERSION}), initializing..."),
        );
    }
}

/// The uid the store's child-written groups are handed to: only a root
/// parent hands directories to the child user.
fn run_user() -> Option<u32> {
    // SAFETY: geteuid has no preconditions; ap_unixd_config is filled by
    // mod_unixd's directives before post_config.
    unsafe { (libc::geteuid() == 0).then_some(ffi::ap_unixd_config.user_id) }
}

/// The servers of this generation as start-up sees them.
///
/// # Safety
/// `s` is the main server during post_config.
unsafe fn servers(s: *mut ffi::server_rec) -> Vec<startup::Server> {
    // SAFETY: s is the main server; the list lives in pconf.
    let (ids, vhosts) = unsafe { collect_vhosts(s) };
    ids.iter()
        .zip(vhosts)
        .map(|(&id, vhost)| {
            let sp = id as *const ffi::server_rec;
            // SAFETY: a server of this generation.
            let (contact, admin) = unsafe {
                (
                    conf::srv_conf(sp).and_then(|c| c.settings.contact.clone()),
                    apr::opt_str((*sp).server_admin),
                )
            };
            startup::Server {
                id,
                vhost,
                contact,
                admin,
            }
        })
        .collect()
}

unsafe fn before_ssl(pconf: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) -> c_int {
    crate::guard::test_panic("post_config");
    // SAFETY: s is the main server during post_config.
    let dry_run = unsafe { is_dry_run(s) };
    log_start(s, dry_run);
    // SAFETY: pconf is the live configuration pool of this generation.
    let state = unsafe { &*conf::state_for_pool(pconf) };
    // SAFETY: s is live; its config was created by us.
    let Some(main) = (unsafe { conf::srv_conf(s) }) else {
        log::log(s, Level::Error, "mod_md: main server configuration missing");
        return FAILED;
    };
    let main_settings = main.settings.clone();
    // SAFETY: valid C strings owned by httpd.
    let (server_root, server_admin) = unsafe {
        (
            apr::str_or_empty(ffi::ap_server_root),
            apr::opt_str((*s).server_admin),
        )
    };
    // libcurl and OpenSSL are initialised here, in the single-threaded
    // parent, before any child or thread exists.
    md_engine::http::global_init();
    let mut st = state.lock();
    st.dry_run = dry_run;
    let global = st.config.global.clone();
    let store_dir = global.store_dir_in(&server_root);
    // SAFETY: s is the main server during post_config.
    let servers = unsafe { servers(s) };
    let mut notes = Vec::new();
    let planned = log::live(s, || {
        startup::before_ssl(
            &st.config,
            &main_settings,
            server_admin.as_deref(),
            &store_dir,
            run_user(),
            servers,
            &mut notes,
        )
    });
    log::notes(s, &notes);
    let plan = match planned {
        Ok(p) => p,
        Err(e) => return start_failed(s, e),
    };
    // mod_ssl primes the certificates it loads into a new OCSP registry
    // during its post_config, which runs next (§8.2).
    state
        .stapling
        .reset(plan.store.clone(), global.stapling_renew_window);
    st.runtime = Some(std::sync::Arc::new(Runtime::from_plan(plan)));
    OK
}

/// post_config, second part ("after SSL", §2.2): checks that need to know
/// which vhosts use SSL. Skipped in the dry run.
pub unsafe extern "C" fn post_config_after_ssl(
    pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> c_int {
    guard("post_config", FAILED, || {
        // SAFETY: httpd passes the live main server and pconf.
        unsafe {
            let state = &*conf::state_for_pool(pconf);
            if state.lock().dry_run {
                return OK;
            }
            after_ssl(pconf, s)
        }
    })
}

/// Which of the public ports 80/443 (as mapped by MDPortMap) a Listen
/// serves (§2.2 step 4).
///
/// # Safety
/// Called during post_config, while httpd's listener list is stable.
unsafe fn reachability(local_80: Option<u16>, local_443: Option<u16>) -> (bool, bool) {
    let (mut http, mut https) = (false, false);
    // SAFETY: ap_listeners is a NULL-terminated list built by httpd before
    // post_config; its addresses and strings live in the process pool.
    unsafe {
        let mut lr = ffi::ap_listeners;
        while let Some(l) = lr.as_ref() {
            let port = l.bind_addr.as_ref().map_or(0, |a| a.port);
            let proto = apr::opt_str(l.protocol)
                .unwrap_or_default()
                .to_ascii_lowercase();
            if proto.is_empty() || proto.starts_with("http") {
                if Some(port) == local_80 {
                    http = true;
                }
                if Some(port) == local_443 {
                    https = true;
                }
            }
            lr = l.next;
        }
    }
    (http, https)
}

/// Whether a server allows the `acme-tls/1` protocol (`Protocols`).
///
/// # Safety
/// `s` is a live server of this generation.
unsafe fn allows_acme_tls(s: *mut ffi::server_rec) -> bool {
    // SAFETY: ap_is_allowed_protocol reads the server's core config only
    // when no connection/request is given.
    unsafe {
        ffi::ap_is_allowed_protocol(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            s,
            c"acme-tls/1".as_ptr(),
        ) != 0
    }
}

unsafe fn after_ssl(pconf: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) -> c_int {
    // SAFETY: pconf is the live configuration pool.
    let state = unsafe { &*conf::state_for_pool(pconf) };
    let mut st = state.lock();
    let ssl_servers = st.ssl_servers.clone();
    let fallback_servers = st.fallback_servers.clone();
    let global = st.config.global.clone();
    // The runtime is still only ours here: nothing else holds a clone yet.
    let Some(rt) = st.runtime.as_mut().and_then(std::sync::Arc::get_mut) else {
        return OK;
    };
    // SAFETY: post_config, listeners are set up.
    let (http_ok, https_ok) = unsafe { reachability(global.local_80, global.local_443) };
    // SAFETY: the ids are servers of this generation.
    let acme_tls = |id: usize| unsafe { allows_acme_tls(id as *mut ffi::server_rec) };
    let facts = startup::SslFacts {
        ssl: &ssl_servers,
        fallback: &fallback_servers,
        acme_tls: &acme_tls,
        http_ok,
        https_ok,
    };
    let mut notes = Vec::new();
    let now = md_engine::time::now();
    let done = log::live(s, || {
        startup::after_ssl(rt, &global, &facts, now, &mut notes)
    });
    log::notes(s, &notes);
    if let Err(e) = done {
        return start_failed(s, e);
    }
    crate::hot::prepare(state, rt, &ssl_servers, global.hot_activation);
    let watched = rt.domains.iter().filter(|d| d.rt.watched).count();
    let total = rt.domains.len();
    drop(st);
    state.publish();
    // SAFETY: real run, parent; pconf and s are live.
    unsafe { start_background(pconf, s, state, &global, watched, total) }
}

/// The generation's background work, once its runtime is published: the
/// renewal and OCSP watchdogs (in a child) and the restart checker (in
/// this parent).
///
/// # Safety
/// Real run, parent; `pconf` and `s` are the live configuration pool and
/// main server, `state` the generation's.
unsafe fn start_background(
    pconf: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
    state: &conf::ModState,
    global: &config::Global,
    watched: usize,
    total: usize,
) -> c_int {
    if watched > 0 {
        log::log(
            s,
            Level::Debug,
            &format!("AH10074: {watched} out of {total} mds need watching"),
        );
        // SAFETY: forwarded contract.
        if !unsafe { crate::renew::register(pconf, s, state, global.initial_delay) } {
            return FAILED;
        }
    } else {
        log::log(s, Level::Debug, "AH10075: no mds to supervise");
    }
    if state.stapling.count() > 0 {
        // SAFETY: forwarded contract.
        if !unsafe { crate::ocsp::register(pconf, s, state, &global.stapling_keep_response) } {
            return FAILED;
        }
    }
    if global.graceful_restart || (global.hot_activation && watched > 0) {
        if let Some(rt) = state.runtime() {
            let (interval, eager) = (global.check_interval, global.graceful_restart);
            // SAFETY: forwarded contract.
            unsafe { crate::renew::start_restarter(pconf, s, rt, interval, eager) };
        }
    }
    OK
}

/// Child start (before mod_ssl, as the spec orders it): arranges that the
/// renewal workers of this child stop before it exits.
pub unsafe extern "C" fn child_init(p: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
    guard("child_init", (), || {
        // SAFETY: p is pchild, destroyed when the child exits; s is the
        // main server of this generation.
        unsafe { crate::renew::on_child_exit(p, s) }
    })
}

/// Appends a path to an APR array of `const char *`.
///
/// # Safety
/// `arr` is a live array of `char *` allocated from `p`.
unsafe fn push_path(p: *mut ffi::apr_pool_t, arr: *mut ffi::apr_array_header_t, path: &str) {
    // SAFETY: apr_array_push returns a slot of elt_size (a pointer) in the
    // array; the string is copied into pool `p`.
    unsafe {
        let slot = ffi::apr_array_push(arr) as *mut *const std::os::raw::c_char;
        *slot = apr::pstrdup(p, path);
    }
}

/// mod_ssl asks for certificate files of an SSL vhost (§2.4).
pub unsafe extern "C" fn ssl_add_cert_files(
    s: *mut ffi::server_rec,
    p: *mut ffi::apr_pool_t,
    cert_files: *mut ffi::apr_array_header_t,
    key_files: *mut ffi::apr_array_header_t,
) -> c_int {
    guard("ssl_add_cert_files", DECLINED, || {
        // SAFETY: s is a live server of this generation.
        let Some(state) = (unsafe { conf::state(s) }) else {
            return DECLINED;
        };
        let mut st = state.lock();
        st.ssl_servers.insert(s as usize);
        let Some(rt) = st.runtime.clone() else {
            return DECLINED;
        };
        let Some(vhost) = rt.vhost(s as usize) else {
            return DECLINED;
        };
        let vname = &vhost.host.name;
        log_get_certificates(s, vname);
        if vhost.mds.len() > 1 {
            log_conflict(s, vhost.mds.len(), vname);
            return DECLINED;
        }
        let Some(md) = rt.md_of(s as usize).map(|d| &d.md) else {
            return DECLINED;
        };
        // SAFETY: cert_files/key_files are mod_ssl's arrays from pool p.
        let had = unsafe { cert_files.as_ref().map_or(0, |a| a.nelts) };
        let files = reg::servable_files(&rt.store, md);
        // SAFETY: see above.
        unsafe { push_pairs(p, cert_files, key_files, &files) };
        // The C module says it provides them before it finds none.
        log_providing(s, md, vname);
        if files.is_empty() {
            // With hot activation the fallback comes from here: mod_ssl
            // then does not mark the vhost unavailable for the whole
            // generation, and the MD's first certificate goes live without
            // a restart (the 503 is ours: `https::fallback_unavailable`).
            if !(rt.global.hot_activation && md.cert_files.is_empty()) {
                return DECLINED;
            }
            // SAFETY: see above.
            let rv = unsafe { provide_fallback(s, p, cert_files, key_files, &rt.store, md, vname) };
            if rv == DONE {
                st.fallback_servers.insert(s as usize);
                log_hot_fallback(s, md, vname);
            }
            return rv;
        }
        if had > 0 {
            log::log(
                s,
                Level::Debug,
                &format!(
                    "AH10084: host '{vname}' is covered by a Managed Domain, but certificate/key files are already configured for it (most likely via SSLCertificateFile).",
                ),
            );
        }
        DONE
    })
}

fn log_conflict(s: *mut ffi::server_rec, n: usize, vname: &str) {
    log::log(
        s,
        Level::Error,
        &format!(
            "AH10238: conflict: {n} MDs match Virtualhost {vname} which uses SSL, however there can be at most 1.",
        ),
    );
}

fn log_hot_fallback(s: *mut ffi::server_rec, md: &config::Md, vname: &str) {
    log::log(
        s,
        Level::Info,
        &format!(
            "{vname}: answers 503 with the fallback certificate of {} until its certificate is obtained, which then goes live without a restart (MDHotActivation)",
            md.name
        ),
    );
}

/// Appends (key, cert) pairs to mod_ssl's arrays.
///
/// # Safety
/// The arrays are mod_ssl's, from pool `p`.
unsafe fn push_pairs(
    p: *mut ffi::apr_pool_t,
    cert_files: *mut ffi::apr_array_header_t,
    key_files: *mut ffi::apr_array_header_t,
    files: &[(String, String)],
) {
    for (key, cert) in files {
        // SAFETY: forwarded contract.
        unsafe {
            push_path(p, cert_files, cert);
            push_path(p, key_files, key);
        }
    }
}

/// Hands mod_ssl the MD's self-signed fallback certificates (created when
/// missing): DONE, or DECLINED when they cannot be made (AH10174).
///
/// # Safety
/// As [`push_pairs`]; `s` is the live SSL vhost.
unsafe fn provide_fallback(
    s: *mut ffi::server_rec,
    p: *mut ffi::apr_pool_t,
    cert_files: *mut ffi::apr_array_header_t,
    key_files: *mut ffi::apr_array_header_t,
    store: &md_engine::store::Store,
    md: &config::Md,
    vname: &str,
) -> c_int {
    match reg::ensure_fallbacks(store, md) {
        Ok(pairs) => {
            // SAFETY: forwarded contract.
            unsafe { push_pairs(p, cert_files, key_files, &pairs) };
            for spec in md.effective_specs() {
                log::log(
                    s,
                    Level::Debug,
                    &format!(
                        "AH10116: {}: providing {} fallback certificate for server {vname}",
                        md.name,
                        spec.name(),
                    ),
                );
            }
            DONE
        }
        Err(e) => {
            log::log(s, Level::Error, &format!("AH10174: {e}"));
            DECLINED
        }
    }
}

/// AH10113, as the C module logs it each time mod_ssl asks for a server's
/// certificates (both hooks).
fn log_get_certificates(s: *mut ffi::server_rec, vhost: &str) {
    log::log(
        s,
        Level::Debug,
        &format!("AH10113: get_certificates called for vhost {vhost}."),
    );
}

fn log_providing(s: *mut ffi::server_rec, md: &config::Md, vhost: &str) {
    log::log(
        s,
        Level::Debug,
        &format!(
            "AH10077: {}[state={}]: providing certificates for server {vhost}",
            md.name,
            md.found.state.code()
        ),
    );
}

/// mod_ssl has no certificate for an SSL vhost: hand it the MD's self-signed
/// fallback, so the vhost answers 503 until the real certificate is there.
pub unsafe extern "C" fn ssl_add_fallback_cert_files(
    s: *mut ffi::server_rec,
    p: *mut ffi::apr_pool_t,
    cert_files: *mut ffi::apr_array_header_t,
    key_files: *mut ffi::apr_array_header_t,
) -> c_int {
    guard("ssl_add_fallback_cert_files", DECLINED, || {
        // SAFETY: s is a live server of this generation.
        let Some(state) = (unsafe { conf::state(s) }) else {
            return DECLINED;
        };
        let st = state.lock();
        let Some(rt) = st.runtime.as_ref() else {
            return DECLINED;
        };
        let Some(vhost) = rt.vhost(s as usize) else {
            return DECLINED;
        };
        let vname = &vhost.host.name;
        log_get_certificates(s, vname);
        let Some(md) = rt.md_of(s as usize).map(|d| &d.md) else {
            return DECLINED;
        };
        // SAFETY: mod_ssl's arrays from pool p; s is the live vhost.
        unsafe { provide_fallback(s, p, cert_files, key_files, &rt.store, md, vname) }
    })
}
