//! Small, documented conversions between APR/C data and Rust values.

use crate::ffi;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_void};

/// Copies a C string (NULL → None). Invalid UTF-8 is replaced.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for this call.
pub unsafe fn opt_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL and NUL-terminated per the caller's contract.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Copies a C string, NULL → "".
///
/// # Safety
/// As [`opt_str`].
pub unsafe fn str_or_empty(p: *const c_char) -> String {
    // SAFETY: forwarded contract.
    unsafe { opt_str(p) }.unwrap_or_default()
}

/// Copies the strings of an APR array of `char *` (NULL array → empty).
///
/// # Safety
/// `arr` is NULL or an `apr_array_header_t` whose elements are `char *`.
pub unsafe fn str_array(arr: *const ffi::apr_array_header_t) -> Vec<String> {
    if arr.is_null() {
        return Vec::new();
    }
    // SAFETY: a valid array header per the caller's contract.
    let a = unsafe { &*arr };
    let n = usize::try_from(a.nelts).unwrap_or(0);
    let elts = a.elts as *const *const c_char;
    // SAFETY: elts holds nelts `char *` entries.
    (0..n)
        .filter_map(|i| unsafe { opt_str(*elts.add(i)) })
        .collect()
}

/// Copies `s` into `pool` as a C string that lives as long as the pool.
///
/// # Safety
/// `pool` is a live APR pool.
pub unsafe fn pstrdup(pool: *mut ffi::apr_pool_t, s: &str) -> *const c_char {
    let c = CString::new(s.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: apr_pstrdup copies the bytes into the pool.
    unsafe { ffi::apr_pstrdup(pool, c.as_ptr()) }
}

/// Hands a boxed value to `pool`: it is dropped when the pool is cleared or
/// destroyed. Returns the pointer, valid for the pool's lifetime.
///
/// # Safety
/// `pool` is a live APR pool; the caller must not use the pointer after the
/// pool's cleanup ran.
pub unsafe fn pool_own<T>(pool: *mut ffi::apr_pool_t, value: T) -> *mut T {
    unsafe extern "C" fn drop_box<T>(data: *mut c_void) -> ffi::apr_status_t {
        crate::guard::guard("pool cleanup", 0, || {
            // SAFETY: `data` came from Box::into_raw below and the cleanup
            // runs exactly once.
            drop(unsafe { Box::from_raw(data as *mut T) });
            0
        })
    }
    let ptr = Box::into_raw(Box::new(value));
    // SAFETY: registers the matching cleanup on a live pool;
    // apr_pool_cleanup_null is APR's no-op child cleanup.
    unsafe {
        ffi::apr_pool_cleanup_register(
            pool,
            ptr as *const c_void,
            Some(drop_box::<T>),
            Some(ffi::apr_pool_cleanup_null),
        );
    }
    ptr
}

/// A counter on the process pool under `key`, created zero on first use.
/// The process pool outlives this module's image (httpd reloads the module
/// at every restart), so the key is copied and the value lives in the pool.
///
/// # Safety
/// `s` is a live server_rec; the counter is valid for the process lifetime.
pub unsafe fn process_i64(
    s: *const ffi::server_rec,
    key: &std::ffi::CStr,
) -> &'static std::sync::atomic::AtomicI64 {
    // SAFETY: the process pool lives until the process exits; apr_palloc
    // returns memory aligned for any type (8 bytes at least), zeroed here.
    unsafe {
        let pool = (*(*s).process).pool;
        let mut data: *mut c_void = std::ptr::null_mut();
        ffi::apr_pool_userdata_get(&mut data, key.as_ptr(), pool);
        if data.is_null() {
            data = ffi::apr_palloc(pool, std::mem::size_of::<i64>());
            std::ptr::write_bytes(data as *mut u8, 0, std::mem::size_of::<i64>());
            ffi::apr_pool_userdata_set(data, key.as_ptr(), None, pool);
        }
        &*(data as *const std::sync::atomic::AtomicI64)
    }
}
