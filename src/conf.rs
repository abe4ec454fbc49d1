//! Per-server configuration and the per-generation module state.
//!
//! httpd creates one `SrvConf` per server (main and each vhost) from the
//! configuration pool `pconf`; all of them point to one `ModState`, kept as
//! userdata of the same pool. Both are Rust boxes owned by that pool (see
//! `apr::pool_own`), so they live exactly as long as the configuration
//! generation; a graceful restart builds new ones.

use crate::apr;
use crate::ffi;
use md_engine::config::{ModConfig, Settings};
use std::collections::HashSet;
use std::os::raw::c_void;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the module keeps per server.
pub struct SrvConf {
    pub settings: Settings,
    /// The generation's module state (owned by the same pool).
    pub state: *const ModState,
}

pub use md_engine::startup::Runtime;

#[derive(Default)]
pub struct StateInner {
    pub config: ModConfig,
    /// Built by post_config; after it, only read (request handlers take a
    /// cheap `Arc` clone and release the lock at once).
    pub runtime: Option<Arc<Runtime>>,
    /// Servers that mod_ssl asked for certificates (SSL vhosts).
    pub ssl_servers: HashSet<usize>,
    /// SSL vhosts handed their MD's fallback by `ssl_add_cert_files`.
    pub fallback_servers: HashSet<usize>,
    /// This generation is httpd's configuration dry run.
    pub dry_run: bool,
}

/// The module state of one configuration generation.
#[derive(Default)]
pub struct ModState {
    inner: Mutex<StateInner>,
    /// The renewal workers (used in the child that runs the watchdog); the
    /// OCSP and renewal callbacks register with it, and the child's exit
    /// stops it.
    pub scheduler: Arc<md_engine::scheduler::Scheduler>,
    /// The stapled certificates (mod_ssl primes them in the parent; every
    /// child staples from them; one child refreshes them).
    pub stapling: Arc<md_engine::stapling::Stapling>,
    /// Hot activation: the staged set each SSL vhost serves (`hot.rs`).
    pub hot: md_engine::hot::HotSlots<crate::tls::Loaded>,
    /// The runtime once start-up is complete (set in the parent before the
    /// children fork): request handlers read it without taking the lock.
    published: std::sync::OnceLock<Arc<Runtime>>,
}

impl ModState {
    /// The runtime snapshot, if post_config built one.
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        if let Some(rt) = self.published.get() {
            return Some(rt.clone());
        }
        self.lock().runtime.clone()
    }

    /// Start-up is complete: from now on the runtime is only read, and
    /// [`ModState::runtime`] hands it out without the lock.
    pub fn publish(&self) {
        if let Some(rt) = self.lock().runtime.clone() {
            let _ = self.published.set(rt);
        }
    }

    /// Locks the state; a poisoned lock (a panic while holding it, caught by
    /// the guard) is recovered, the data stays usable.
    pub fn lock(&self) -> MutexGuard<'_, StateInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

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
