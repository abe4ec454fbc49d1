//! mod_watchdog's optional functions: a child-process singleton instance
//! per watchdog name and callback registration (renewal and OCSP).

use crate::ffi;
use crate::log;
use md_engine::log::Level;
use std::os::raw::c_void;

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

/// A child-process singleton watchdog instance of mod_watchdog, and its
/// `set_callback_interval` function. None (logged) when mod_watchdog is
/// missing or refuses.
///
/// # Safety
/// `pconf` and `s` are the live configuration pool and main server.
pub unsafe fn watchdog_instance(
    pconf: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
    name: &std::ffi::CStr,
) -> Option<(
    *mut ffi::ap_watchdog_t,
    ffi::apr_OFN_ap_watchdog_set_callback_interval_t,
)> {
    type GetInstance = ffi::apr_OFN_ap_watchdog_get_instance_t;
    type SetInterval = ffi::apr_OFN_ap_watchdog_set_callback_interval_t;
    // SAFETY: names and types match mod_watchdog.h.
    let (get, set) = unsafe {
        (
            optional_fn::<GetInstance>(c"ap_watchdog_get_instance").flatten(),
            optional_fn::<SetInterval>(c"ap_watchdog_set_callback_interval"),
        )
    };
    let (Some(get), Some(set)) = (get, set) else {
        log::log(s, Level::Crit, "AH10061: mod_watchdog is required");
        return None;
    };
    let mut wd: *mut ffi::ap_watchdog_t = std::ptr::null_mut();
    // SAFETY: a child-process (parent = 0) singleton instance from pconf.
    let rv = unsafe { get(&mut wd, name.as_ptr(), 0, 1, pconf) };
    if rv != 0 || wd.is_null() {
        log::log_status(
            s,
            Level::Crit,
            rv,
            &format!(
                "AH10066: create md {} watchdog({})",
                kind(&name.to_string_lossy()),
                name.to_string_lossy()
            ),
        );
        return None;
    }
    Some((wd, set))
}

fn kind(name: &str) -> &'static str {
    if name.contains("ocsp") {
        "ocsp"
    } else {
        "renew"
    }
}

/// Registers a callback with pool-owned `data` on a watchdog instance.
///
/// # Safety
/// `wd` comes from `watchdog_instance`; `data` lives as long as the pool.
pub unsafe fn watchdog_register(
    s: *mut ffi::server_rec,
    wd: *mut ffi::ap_watchdog_t,
    interval: i64,
    data: *const c_void,
    cb: ffi::ap_watchdog_callback_fn_t,
    name: &str,
) -> bool {
    type Register = ffi::apr_OFN_ap_watchdog_register_callback_t;
    // SAFETY: name and type match mod_watchdog.h.
    let Some(reg) =
        (unsafe { optional_fn::<Register>(c"ap_watchdog_register_callback") }).flatten()
    else {
        let msg = match kind(name) {
            "ocsp" => "AH10201: mod_watchdog is required for OCSP stapling",
            _ => "AH10061: mod_watchdog is required",
        };
        log::log(s, Level::Crit, msg);
        return false;
    };
    // SAFETY: forwarded contract.
    let rv = unsafe { reg(wd, interval, data, cb) };
    let code = match kind(name) {
        "ocsp" => "AH10203",
        _ => "AH10067",
    };
    let msg = format!("{code}: register md {} watchdog({name})", kind(name));
    if rv != 0 {
        log::log_status(s, Level::Crit, rv, &msg);
        return false;
    }
    log::log(s, Level::Debug, &msg);
    true
}
