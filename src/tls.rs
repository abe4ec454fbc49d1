//! The libssl side of the certificate callback (hot activation and
//! tls-alpn-01): through the openssl crate where it binds the calls, and
//! the three it does not bind declared here (libssl is linked through it).

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::ssl::SslRef;
use std::os::raw::{c_int, c_void};

unsafe extern "C" {
    pub fn SSL_CTX_set_cert_cb(
        ctx: *mut c_void,
        cb: Option<unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int>,
        arg: *mut c_void,
    );
    fn SSL_use_cert_and_key(
        ssl: *mut c_void,
        x509: *mut c_void,
        pkey: *mut c_void,
        chain: *mut c_void,
        over: c_int,
    ) -> c_int;
    fn SSL_certs_clear(ssl: *mut c_void);
}

/// Whether the handshake negotiated `acme-tls/1` (RFC 8737).
pub fn is_acme_tls(ssl: &SslRef) -> bool {
    ssl.selected_alpn_protocol() == Some(b"acme-tls/1".as_slice())
}

/// Keeps only the certificate and key that mod_ssl set last (the
/// tls-alpn-01 challenge certificate, set in its ALPN callback): the other
/// key types' certificates of the vhost would otherwise be offered too,
/// and a client preferring ECDSA would get the vhost's ECDSA certificate.
pub fn keep_only_current(ssl: &mut SslRef) {
    let cert = ssl.certificate().map(|x| x.to_owned());
    let (Some(x), Some(k)) = (cert, ssl.private_key().map(|k| k.to_owned())) else {
        return;
    };
    // SAFETY: `ssl` is live (we hold it); `x` and `k` keep their own
    // references across the clear, and OpenSSL takes its own again.
    unsafe {
        SSL_certs_clear(ssl.as_ptr().cast());
        let (xp, kp) = (x.as_ptr().cast(), k.as_ptr().cast());
        SSL_use_cert_and_key(ssl.as_ptr().cast(), xp, kp, std::ptr::null_mut(), 1);
    }
}

/// Hands the handshake of `ssl` a key with its leaf and chain (replacing
/// what it had for that key type).
pub fn use_cert_and_key(ssl: &mut SslRef, set: &md_engine::serving::hot::TlsSet) {
    for (key, leaf, chain) in &set.pairs {
        let (x, k, sk) = (
            leaf.as_ptr().cast(),
            key.as_ptr().cast(),
            chain.as_ptr().cast(),
        );
        // SAFETY: a live SSL in its handshake; the objects stay valid while
        // `set` lives, and OpenSSL takes its own references.
        unsafe { SSL_use_cert_and_key(ssl.as_ptr().cast(), x, k, sk, 1) };
    }
}
