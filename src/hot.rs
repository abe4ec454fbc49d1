//! Hot activation (issue 5): renewed certificates go live without a
//! restart.
//!
//! mod_ssl runs the optional hook `init_server(s, p, is_proxy, SSL_CTX *)`
//! for every SSL context it builds (in the parent, before the children
//! fork). We install a certificate callback on each context. During a
//! handshake the callback looks at the vhost's MD: once a renewal has
//! finished and its activation time has come, the staged key and chain are
//! loaded (in every child, by itself) and handed to the connection with
//! `SSL_use_cert_and_key`; otherwise the connection keeps what mod_ssl
//! configured. The move into `domains/` still happens at the next restart,
//! so the store stays as the C module expects it.

use crate::ffi;
use crate::guard::guard;
use crate::log;
use crate::tls::{self, SSL_CTX_set_cert_cb};
use foreign_types::ForeignTypeRef;
use openssl::ssl::SslRef;
use std::os::raw::{c_int, c_void};

/// mod_ssl's `init_server`: install the certificate callback.
pub unsafe extern "C" fn init_server(
    s: *mut ffi::server_rec,
    _p: *mut ffi::apr_pool_t,
    is_proxy: c_int,
    ctx: *mut c_void,
) -> c_int {
    guard("init_server", ffi::DECLINED, || {
        if is_proxy != 0 || ctx.is_null() {
            return ffi::DECLINED;
        }
        // Installed whether hot activation is on or not (its slots are
        // empty then): tls-alpn-01 answers need it too.
        // SAFETY: ctx is mod_ssl's SSL_CTX for s; `s` lives as long as the
        // configuration that owns the context.
        unsafe { SSL_CTX_set_cert_cb(ctx, Some(cert_cb), s as *mut c_void) };
        ffi::OK as c_int
    })
}

/// The certificate callback: runs in every handshake of the vhost. Never
/// fails a handshake: on any problem the configured certificate stays.
/// An `acme-tls/1` handshake offers only the challenge certificate; the
/// others get the staged set that hot activation serves, if any.
unsafe extern "C" fn cert_cb(ssl: *mut c_void, arg: *mut c_void) -> c_int {
    guard("certificate callback", 1, || {
        // SAFETY: a live SSL in its handshake (OpenSSL's callback), used
        // only during it.
        let ssl = unsafe { SslRef::from_ptr_mut(ssl.cast()) };
        if tls::is_acme_tls(ssl) {
            tls::keep_only_current(ssl);
            return 1;
        }
        let s = arg as *const ffi::server_rec;
        // SAFETY: `arg` is the server of this SSL context (init_server),
        // alive as long as its configuration.
        let Some(state) = (unsafe { crate::conf::state(s) }) else {
            return 1;
        };
        if let Some(set) = state.hot_set(&log::ServerLog(arg as usize), arg as usize) {
            tls::use_cert_and_key(ssl, &set);
        }
        1
    })
}
