//! httpd hooks. Each is a thin shell: gather data from httpd's structures,
//! call the generation's engine state, return a status.

use crate::apr;
use crate::conf;
use crate::ffi;
use crate::guard::guard;
use crate::log;
use md_engine::base::host::Host;
use md_engine::base::log::Level;
use md_engine::config::vhost::VHost;
use md_engine::generation::runtime;
use md_engine::generation::{Background, Served, SslInput, StartInput};
use std::os::raw::{c_char, c_int};
use std::sync::Arc;

const OK: c_int = ffi::OK as c_int;
const DECLINED: c_int = ffi::DECLINED;
const DONE: c_int = ffi::DONE;
const FAILED: c_int = ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;

/// The first post_config call in a process lifetime is httpd's dry run
/// (config check pass); it is recorded on the process pool (which outlives
/// this module's image: httpd reloads the module between the dry run and
/// the real start), under the C module's key, whose value only matters
/// when NULL.
///
/// # Safety
/// `s` is the live main server.
unsafe fn is_dry_run(s: *mut ffi::server_rec) -> bool {
    use std::sync::atomic::Ordering;
    // SAFETY: forwarded contract.
    let runs = unsafe { apr::process_i64(s, c"mod_md_init_counter") };
    runs.fetch_add(1, Ordering::SeqCst) == 0
}

/// The main server's log, as the engine's host.
fn host(s: *const ffi::server_rec) -> Arc<dyn Host> {
    Arc::new(log::ServerLog(s as usize))
}

/// post_config, first part ("before SSL", §2.2): store, MD merge, fatal
/// checks, vhost matching.
pub unsafe extern "C" fn post_config_before_ssl(
    pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> c_int {
    guard("post_config", FAILED, || {
        crate::guard::test_panic("post_config");
        // SAFETY: httpd passes the live main server and pconf; the state
        // lives as long as pconf.
        let (state, input) = unsafe { (&*conf::state_for_pool(pconf), start_input(s)) };
        let Some(input) = input else {
            log::log(s, Level::Error, "mod_md: main server configuration missing");
            return FAILED;
        };
        match state.before_ssl(&host(s), input) {
            Ok(()) => OK,
            Err(_) => FAILED,
        }
    })
}

/// The uid the store's child-written groups are handed to: only a root
/// parent hands directories to the child user.
fn run_user() -> Option<u32> {
    // SAFETY: geteuid has no preconditions; ap_unixd_config is filled by
    // mod_unixd's directives before post_config.
    unsafe { (libc::geteuid() == 0).then_some(ffi::ap_unixd_config.user_id) }
}

/// What start-up needs from httpd's configuration.
///
/// # Safety
/// `s` is the main server during post_config.
unsafe fn start_input(s: *mut ffi::server_rec) -> Option<StartInput> {
    // SAFETY: forwarded contract; the strings are httpd's.
    unsafe {
        Some(StartInput {
            dry_run: is_dry_run(s),
            main: conf::srv_conf(s)?.settings.clone(),
            server_admin: apr::opt_str((*s).server_admin),
            server_root: apr::str_or_empty(ffi::ap_server_root),
            run_user: run_user(),
            servers: servers(s),
            runtime_dir: runtime_dir(s),
        })
    }
}

/// httpd's runtime directory (`DefaultRuntimeDir`, absolute).
///
/// # Safety
/// `s` is the live main server during post_config.
unsafe fn runtime_dir(s: *mut ffi::server_rec) -> Option<std::path::PathBuf> {
    // SAFETY: the process and its pconf live as long as the server; the
    // returned string is allocated in pconf and copied here.
    unsafe {
        let pool = (*s).process.as_ref()?.pconf;
        let dir = apr::opt_str(ffi::ap_runtime_dir_relative(pool, c"".as_ptr()))?;
        (!dir.is_empty()).then(|| std::path::PathBuf::from(dir))
    }
}

/// The servers of this generation (main first, then vhosts) as start-up
/// sees them; `id` is the `server_rec` address.
///
/// # Safety
/// `s` is the live main server; the list is walked during post_config.
unsafe fn servers(s: *mut ffi::server_rec) -> Vec<runtime::Server> {
    let mut out = Vec::new();
    let mut cur = s;
    // SAFETY: the server list is built by httpd and ends in NULL; all its
    // strings and arrays, and our configurations, live in pconf.
    unsafe {
        while let Some(sr) = cur.as_ref() {
            let mut addrs = Vec::new();
            let mut a = sr.addrs;
            while let Some(ar) = a.as_ref() {
                addrs.push((apr::str_or_empty(ar.virthost), ar.host_port));
                a = ar.next;
            }
            let vhost = VHost {
                name: apr::str_or_empty(sr.server_hostname),
                port: sr.port,
                aliases: apr::str_array(sr.names),
                wild_aliases: apr::str_array(sr.wild_names),
                addrs,
                is_base: sr.is_virtual == 0,
            };
            out.push(runtime::Server {
                id: cur as usize,
                vhost,
                contact: conf::srv_conf(cur).and_then(|c| c.settings.contact.clone()),
                admin: apr::opt_str(sr.server_admin),
            });
            cur = sr.next;
        }
    }
    out
}

/// post_config, second part ("after SSL", §2.2): checks that need to know
/// which vhosts use SSL, then the background work. Skipped in the dry run.
pub unsafe extern "C" fn post_config_after_ssl(
    pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> c_int {
    guard("post_config", FAILED, || {
        // SAFETY: pconf is the live configuration pool.
        let state = unsafe { &*conf::state_for_pool(pconf) };
        // SAFETY: post_config, listeners are set up; the ids are servers
        // of this generation.
        let input = SslInput {
            reach: &|p80, p443| unsafe { reachability(p80, p443) },
            // SAFETY: as above, the listener list is stable in post_config.
            listeners: unsafe { listen_addrs() },
            acme_tls: &|id| unsafe { allows_acme_tls(id as *mut ffi::server_rec) },
        };
        let started = match state.after_ssl(&host(s), &input) {
            // SAFETY: real run, parent; pconf and s are live.
            Ok(bg) => unsafe { start_background(pconf, s, state, bg) },
            Err(_) => FAILED,
        };
        // Start-up's transient memory (with 10,000 MDs: tens of MiB of
        // parsed files, notes and the dry run's generation) goes back to
        // the system before httpd forks its children, which would
        // otherwise each carry it in their resident set.
        crate::log::release_free_memory();
        started
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
                http |= Some(port) == local_80;
                https |= Some(port) == local_443;
            }
            lr = l.next;
        }
    }
    (http, https)
}

/// The addresses of the `Listen` sockets that serve http or https (the
/// challenge pre-flight connects to them).
///
/// # Safety
/// Called during post_config, while httpd's listener list is stable.
unsafe fn listen_addrs() -> Vec<std::net::SocketAddr> {
    let mut out = Vec::new();
    // SAFETY: ap_listeners is a NULL-terminated list built by httpd before
    // post_config; its addresses and strings live in the process pool.
    // apr_sockaddr_ip_getbuf writes at most `buf.len()` bytes, NUL included.
    unsafe {
        let mut lr = ffi::ap_listeners;
        while let Some(l) = lr.as_ref() {
            let proto = apr::opt_str(l.protocol)
                .unwrap_or_default()
                .to_ascii_lowercase();
            if let Some(a) = l.bind_addr.as_mut() {
                let mut buf = [0 as std::os::raw::c_char; 64];
                if (proto.is_empty() || proto.starts_with("http"))
                    && ffi::apr_sockaddr_ip_getbuf(buf.as_mut_ptr(), buf.len() as _, a) == 0
                {
                    let ip = std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy();
                    let ip = ip.split('%').next().unwrap_or("");
                    if let Ok(ip) = ip.parse::<std::net::IpAddr>() {
                        out.push(std::net::SocketAddr::new(ip, a.port));
                    }
                }
            }
            lr = l.next;
        }
    }
    out
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
    bg: Background,
) -> c_int {
    use md_engine::generation::Watchdog;
    // SAFETY: forwarded contract.
    unsafe {
        if let Some(delay) = bg.renew {
            if !crate::watchdog::register(pconf, s, state, Watchdog::Renew, delay) {
                return FAILED;
            }
        }
        if bg.ocsp && !crate::watchdog::register(pconf, s, state, Watchdog::Ocsp, 0) {
            return FAILED;
        }
        if let Some((rt, interval, eager)) = bg.restarter {
            crate::watchdog::start_restarter(pconf, s, rt, interval, eager);
        }
    }
    OK
}

/// Child start (before mod_ssl, as the spec orders it): arranges that the
/// renewal workers of this child stop before it exits.
pub unsafe extern "C" fn child_init(p: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
    guard("child_init", (), || {
        // SAFETY: s is the main server of this generation; its state
        // lives in pconf, which outlives the child.
        if let Some(state) = unsafe { crate::conf::state(s) } {
            state.child_started();
        }
        // SAFETY: p is pchild, destroyed when the child exits; s is the
        // main server of this generation.
        unsafe { crate::watchdog::on_child_exit(p, s) }
    })
}

/// Appends (key, cert) pairs to mod_ssl's arrays: DONE, or DECLINED.
///
/// # Safety
/// The arrays are mod_ssl's arrays of `char *`, from pool `p`.
unsafe fn serve(
    p: *mut ffi::apr_pool_t,
    cert_files: *mut ffi::apr_array_header_t,
    key_files: *mut ffi::apr_array_header_t,
    served: Served,
) -> c_int {
    let Served::Files(files) = served else {
        return DECLINED;
    };
    for (key, cert) in &files {
        // SAFETY: apr_array_push returns a slot of elt_size (a pointer) in
        // the array; the strings are copied into pool `p`.
        unsafe {
            *(ffi::apr_array_push(cert_files) as *mut *const c_char) = apr::pstrdup(p, cert);
            *(ffi::apr_array_push(key_files) as *mut *const c_char) = apr::pstrdup(p, key);
        }
    }
    DONE
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
        // SAFETY: cert_files/key_files are mod_ssl's arrays from pool p.
        let had = unsafe { cert_files.as_ref().map_or(0, |a| a.nelts) };
        let had = usize::try_from(had).unwrap_or(0);
        let served = state.cert_files(&log::ServerLog(s as usize), s as usize, had);
        // SAFETY: see above.
        unsafe { serve(p, cert_files, key_files, served) }
    })
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
        let served = state.fallback_files(&log::ServerLog(s as usize), s as usize);
        // SAFETY: mod_ssl's arrays from pool p.
        unsafe { serve(p, cert_files, key_files, served) }
    })
}
