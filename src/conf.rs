//! Per-server configuration and the per-generation module state.
//!
//! httpd creates one `SrvConf` per server (main and each vhost) from the
//! configuration pool `pconf`; all of them point to one `ModState`, kept as
//! userdata of the same pool. Both are Rust boxes owned by that pool (see
//! `apr::pool_own`), so they live exactly as long as the configuration
//! generation; a graceful restart builds new ones.

use crate::apr;
use crate::ffi;
use md_engine::config::Settings;
use std::os::raw::c_void;

/// What the module keeps per server.
pub struct SrvConf {
    pub settings: Settings,
    /// The generation's module state (owned by the same pool).
    pub state: *const ModState,
}

/// The module state of one configuration generation (the engine's).
pub type ModState = md_engine::generation::Generation;

const STATE_KEY: &std::ffi::CStr = c"mod_md_rs_state";

/// The module state of the generation that `pool` (pconf) belongs to,
/// created on first use.
///
/// # Safety
/// `pool` is httpd's live configuration pool. The returned pointer is valid
/// until that pool is cleared.
pub unsafe fn state_for_pool(pool: *mut ffi::apr_pool_t) -> *const ModState {
    let mut data: *mut c_void = std::ptr::null_mut();
    // SAFETY: valid pool and out pointer; the key is a static C string.
    unsafe { ffi::apr_pool_userdata_get(&mut data, STATE_KEY.as_ptr(), pool) };
    if !data.is_null() {
        return data as *const ModState;
    }
    // SAFETY: the box is owned by the pool from here on.
    let st = unsafe { apr::pool_own(pool, ModState::default()) };
    // SAFETY: stores the pointer without a cleanup (the box already has
    // one); the key is copied into the pool, which must not keep pointers
    // into this module's image.
    unsafe {
        ffi::apr_pool_userdata_set(st as *const c_void, STATE_KEY.as_ptr(), None, pool);
    }
    st
}

/// Our configuration of server `s`.
///
/// # Safety
/// `s` is a live server_rec whose module_config was built by httpd with our
/// create/merge functions.
pub unsafe fn srv_conf<'a>(s: *const ffi::server_rec) -> Option<&'a mut SrvConf> {
    if s.is_null() {
        return None;
    }
    // SAFETY: s is valid; module_config is an array indexed by module_index
    // (this is ap_get_module_config).
    unsafe {
        let idx = crate::log::module_index();
        let vec = (*s).module_config as *mut *mut c_void;
        if vec.is_null() || idx < 0 {
            return None;
        }
        let p = *vec.add(idx as usize) as *mut SrvConf;
        p.as_mut()
    }
}

/// The module state reachable from server `s`.
///
/// # Safety
/// As [`srv_conf`]; the reference is valid while the configuration pool lives.
pub unsafe fn state<'a>(s: *const ffi::server_rec) -> Option<&'a ModState> {
    // SAFETY: forwarded contract; the state pointer shares the pool lifetime.
    unsafe { srv_conf(s).and_then(|c| c.state.as_ref()) }
}

/// A request being processed and the state of its generation.
///
/// # Safety
/// `r` is NULL or a live request of this generation; the references are
/// used during the hook that received it.
pub unsafe fn request<'a>(
    r: *mut ffi::request_rec,
) -> Option<(&'a mut ffi::request_rec, &'a ModState)> {
    // SAFETY: forwarded contract; the state outlives the request.
    unsafe {
        let req = r.as_mut()?;
        let state = state(req.server)?;
        Some((req, state))
    }
}

pub unsafe extern "C" fn create_server_config(
    p: *mut ffi::apr_pool_t,
    _s: *mut ffi::server_rec,
) -> *mut c_void {
    crate::guard::guard("create_server_config", std::ptr::null_mut(), || {
        // SAFETY: p is pconf, live for this configuration generation.
        unsafe {
            let state = state_for_pool(p);
            apr::pool_own(
                p,
                SrvConf {
                    settings: Settings::default(),
                    state,
                },
            ) as *mut c_void
        }
    })
}

pub unsafe extern "C" fn merge_server_config(
    p: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    crate::guard::guard("merge_server_config", add, || {
        // SAFETY: httpd passes two configs created by create_server_config
        // (or merged before) from the same generation.
        unsafe {
            let (Some(b), Some(a)) = (
                (base as *const SrvConf).as_ref(),
                (add as *const SrvConf).as_ref(),
            ) else {
                return add;
            };
            apr::pool_own(
                p,
                SrvConf {
                    settings: Settings::merged(&b.settings, &a.settings),
                    state: if a.state.is_null() { b.state } else { a.state },
                },
            ) as *mut c_void
        }
    })
}
