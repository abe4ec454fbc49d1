//! The module's background work in httpd: the renewal (`_md_renew_`,
//! spec §3.1) and OCSP (`_md_ocsp_`, §8) callbacks of mod_watchdog, one
//! child-process singleton each, the stop of the renewal workers at child
//! exit, and the parent's restart checker. What they do is the engine's
//! (`md_engine::generation`).

use crate::apr;
use crate::conf::ModState;
use crate::ffi;
use crate::guard::guard;
use crate::log;
use md_engine::base::log::Level;
use md_engine::generation::runtime::Runtime;
use md_engine::generation::{Restarter, Watchdog, WatchdogEnv, WatchdogState};
use std::os::raw::{c_int, c_void};
use std::sync::Arc;

/// Looks up one of mod_watchdog's optional functions.
///
/// # Safety
/// `T` must be the `Option<fn>` type of the named function.
unsafe fn optional_fn<T>(name: &std::ffi::CStr) -> Option<T> {
    // SAFETY: apr_dynamic_fn_retrieve returns the registered function or
    // NULL; an Option of a function pointer has the size of a pointer, so
    // reinterpreting it as the caller's (matching) type is sound.
    unsafe {
        let f = ffi::apr_dynamic_fn_retrieve(name.as_ptr());
        f.map(|f| std::mem::transmute_copy::<unsafe extern "C" fn(), T>(&f))
    }
}

/// What a callback needs; owned by the configuration pool.
struct Ctx {
    state: *const ModState,
    wd: *mut ffi::ap_watchdog_t,
    set_interval: ffi::apr_OFN_ap_watchdog_set_callback_interval_t,
    env: WatchdogEnv,
}

/// Registers one of the module's watchdogs on a child-process singleton
/// instance of mod_watchdog (after-SSL, real run, parent); the renewal one
/// first runs after `initial_delay` (µs). False when mod_watchdog is
/// missing or refuses (logged).
///
/// # Safety
/// `pconf` and `s` are the live configuration pool and main server;
/// `state` is the generation's (owned by pconf).
pub unsafe fn register(
    pconf: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
    state: &ModState,
    kind: Watchdog,
    initial_delay: i64,
) -> bool {
    type GetInstance = ffi::apr_OFN_ap_watchdog_get_instance_t;
    type SetInterval = ffi::apr_OFN_ap_watchdog_set_callback_interval_t;
    type Register = ffi::apr_OFN_ap_watchdog_register_callback_t;
    // SAFETY: names and types match mod_watchdog.h.
    let (get, set_interval, reg) = unsafe {
        (
            optional_fn::<GetInstance>(c"ap_watchdog_get_instance").flatten(),
            optional_fn::<SetInterval>(c"ap_watchdog_set_callback_interval"),
            optional_fn::<Register>(c"ap_watchdog_register_callback").flatten(),
        )
    };
    let (Some(get), Some(set_interval)) = (get, set_interval) else {
        log::log(s, Level::Crit, "AH10061: mod_watchdog is required");
        return false;
    };
    let mut wd: *mut ffi::ap_watchdog_t = std::ptr::null_mut();
    // SAFETY: a child-process (parent = 0) singleton instance from pconf.
    let rv = unsafe { get(&mut wd, kind.name().as_ptr(), 0, 1, pconf) };
    if rv != 0 || wd.is_null() {
        log::log_status(s, Level::Crit, rv, &kind.message("AH10066: create"));
        return false;
    }
    let Some(reg) = reg else {
        log::log(s, Level::Crit, kind.missing());
        return false;
    };
    // SAFETY: httpd's static server description and unixd configuration,
    // set before the children start.
    let (server_desc, run_user) = unsafe {
        (
            apr::str_or_empty(ffi::ap_get_server_description()),
            apr::str_or_empty(ffi::ap_unixd_config.user_name),
        )
    };
    let env = WatchdogEnv {
        kind,
        host: Arc::new(log::ServerLog(s as usize)),
        server_desc,
        run_user,
        run_at_start: initial_delay <= 0,
    };
    let ctx = Ctx {
        state,
        wd,
        set_interval,
        env,
    };
    // SAFETY: the context lives as long as pconf, like the watchdog; our
    // callback with its pool-owned data on our instance.
    let rv = unsafe {
        let data = apr::pool_own(pconf, ctx) as *const c_void;
        reg(wd, kind.first_run(initial_delay), data, Some(callback))
    };
    let msg = kind.message(kind.register_code());
    log::log_status(
        s,
        if rv != 0 { Level::Crit } else { Level::Debug },
        rv,
        &msg,
    );
    rv == 0
}

unsafe extern "C" fn callback(
    state: c_int,
    data: *mut c_void,
    _ptemp: *mut ffi::apr_pool_t,
) -> ffi::apr_status_t {
    guard("md watchdog", 0, || {
        // SAFETY: `data` is the pool-owned Ctx registered above; the state
        // lives as long as the same pool.
        let Some(ctx) = (unsafe { (data as *const Ctx).as_ref() }) else {
            return 0;
        };
        // SAFETY: as above.
        let Some(st) = (unsafe { ctx.state.as_ref() }) else {
            return 0;
        };
        let state = match state as u32 {
            ffi::AP_WATCHDOG_STATE_STARTING => WatchdogState::Starting,
            ffi::AP_WATCHDOG_STATE_RUNNING => WatchdogState::Running,
            ffi::AP_WATCHDOG_STATE_STOPPING => WatchdogState::Stopping,
            _ => return 0,
        };
        if let (Some(next), Some(set)) = (st.watchdog(&ctx.env, state), ctx.set_interval) {
            // SAFETY: re-arming our own callback on our instance.
            unsafe { set(ctx.wd, next, data, Some(callback)) };
        }
        0
    })
}

/// Registers the child-exit stop of the renewal workers on `pchild`.
///
/// # Safety
/// `pchild` is the child's process pool (child_init); `s` is the main
/// server of this generation (in pconf, which outlives pchild).
pub unsafe fn on_child_exit(pchild: *mut ffi::apr_pool_t, s: *const ffi::server_rec) {
    unsafe extern "C" fn stop(data: *mut c_void) -> ffi::apr_status_t {
        guard("child exit", 0, || {
            let s = data as *const ffi::server_rec;
            // SAFETY: s is the generation's main server (see below).
            let Some(state) = (unsafe { crate::conf::state(s) }) else {
                return 0;
            };
            if !state.child_exit(&log::ServerLog(s as usize)) {
                // SAFETY: exit() would run OpenSSL's atexit cleanup while a
                // worker is inside libcrypto (a crash); _exit ends the
                // process without it. This child is exiting anyway: its
                // pools are being destroyed and the parent reaps it.
                unsafe { libc::_exit(0) };
            }
            0
        })
    }
    // SAFETY: a pre-cleanup runs when pchild is destroyed, before its
    // sub-pools (mod_watchdog's threads) and before the process exits, while
    // this module is still loaded; `s` (in pconf) outlives pchild.
    unsafe { ffi::apr_pool_pre_cleanup_register(pchild, s.cast(), Some(stop)) };
}

/// The main error log, for a thread that outlives the configuration's
/// server_rec by a little; it can restart httpd gracefully.
struct ParentLog;

impl md_engine::base::host::Host for ParentLog {
    fn log(&self, level: Level, msg: &str) {
        log::log(std::ptr::null(), level, msg);
    }

    fn graceful_restart(&self) {
        // SAFETY: signalling our own (parent) process: httpd's SIGUSR1
        // handler starts a graceful restart.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
    }
}

/// Starts the restart checker of this configuration generation; the pool
/// owns it and joins its thread when it is cleared, before httpd unloads
/// this module (a thread left running in an unloaded image would crash
/// the parent).
///
/// # Safety
/// `pconf` and `s` are the live configuration pool and main server (real
/// start, parent).
pub unsafe fn start_restarter(
    pconf: *mut ffi::apr_pool_t,
    s: *const ffi::server_rec,
    rt: Arc<Runtime>,
    interval: i64,
    eager: bool,
) {
    // When this parent process last asked for a restart (µs), kept on the
    // process pool: this module's statics start over with every generation.
    // SAFETY: s->process->pool lives as long as the process.
    let last = unsafe { apr::process_i64(s, c"mod_md_rs_last_restart") };
    match Restarter::start(rt, last, interval, eager, Arc::new(ParentLog)) {
        Ok(r) => {
            // SAFETY: the pool owns the handle; its cleanup joins the thread.
            unsafe { apr::pool_own(pconf, r) };
        }
        Err(_) => log::log(
            s,
            Level::Error,
            "MDGracefulRestart: cannot start the restart checker thread",
        ),
    }
}
