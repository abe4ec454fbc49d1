//! The OpenSSL objects of a staged set, made for hot activation: parsed
//! once per set in each child, shared by the handshakes that serve it.

use std::os::raw::{c_int, c_long, c_void};

// libssl/libcrypto (linked through the openssl crate); openssl-sys does not
// bind these two callbacks' helpers.
unsafe extern "C" {
    pub fn SSL_CTX_set_cert_cb(
        ctx: *mut c_void,
        cb: Option<unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int>,
        arg: *mut c_void,
    );
    pub fn SSL_use_cert_and_key(
        ssl: *mut c_void,
        x509: *mut c_void,
        pkey: *mut c_void,
        chain: *mut c_void,
        over: c_int,
    ) -> c_int;
    fn SSL_get0_alpn_selected(ssl: *const c_void, data: *mut *const u8, len: *mut u32);
    fn SSL_get_certificate(ssl: *const c_void) -> *mut c_void;
    fn SSL_get_privatekey(ssl: *const c_void) -> *mut c_void;
    fn SSL_certs_clear(ssl: *mut c_void);
    fn X509_up_ref(x: *mut c_void) -> c_int;
    fn EVP_PKEY_up_ref(k: *mut c_void) -> c_int;
    fn d2i_X509(a: *mut *mut c_void, pp: *mut *const u8, len: c_long) -> *mut c_void;
    fn d2i_AutoPrivateKey(a: *mut *mut c_void, pp: *mut *const u8, len: c_long) -> *mut c_void;
    fn X509_free(x: *mut c_void);
    fn EVP_PKEY_free(k: *mut c_void);
    fn OPENSSL_sk_new_null() -> *mut c_void;
    fn OPENSSL_sk_push(sk: *mut c_void, data: *const c_void) -> c_int;
    fn OPENSSL_sk_free(sk: *mut c_void);
}

/// Parsed OpenSSL objects of a staged set. Never modified after creation;
/// OpenSSL reference counts are atomic, so connections may share them.
pub struct Loaded {
    /// (key, leaf, stack of the rest of the chain, the chain certificates)
    pub pairs: Vec<(*mut c_void, *mut c_void, *mut c_void, Vec<*mut c_void>)>,
}

// SAFETY: see the struct comment: read-only OpenSSL objects with atomic
// reference counts.
unsafe impl Send for Loaded {}
// SAFETY: as above.
unsafe impl Sync for Loaded {}

impl Drop for Loaded {
    fn drop(&mut self) {
        for (key, leaf, sk, chain) in &self.pairs {
            // SAFETY: we own one reference to each object, created in load().
            unsafe {
                EVP_PKEY_free(*key);
                X509_free(*leaf);
                OPENSSL_sk_free(*sk);
                for c in chain {
                    X509_free(*c);
                }
            }
        }
    }
}

/// Whether the handshake of `ssl` negotiated `acme-tls/1` (RFC 8737).
///
/// # Safety
/// `ssl` is a live SSL in its handshake.
pub unsafe fn is_acme_tls(ssl: *mut c_void) -> bool {
    let (mut data, mut len) = (std::ptr::null(), 0u32);
    // SAFETY: out pointers to locals; OpenSSL returns a pointer into the
    // SSL's own state (or NULL), valid during this call.
    unsafe {
        SSL_get0_alpn_selected(ssl, &mut data, &mut len);
        !data.is_null() && std::slice::from_raw_parts(data, len as usize) == b"acme-tls/1"
    }
}

/// Keeps only the certificate and key that mod_ssl set last (the
/// tls-alpn-01 challenge certificate, set in its ALPN callback): the other
/// key types' certificates of the vhost would otherwise be offered too,
/// and a client preferring ECDSA would get the vhost's ECDSA certificate.
///
/// # Safety
/// `ssl` is a live SSL in its handshake.
pub unsafe fn keep_only_current(ssl: *mut c_void) {
    // SAFETY: the current certificate and key of the SSL; one reference
    // each is taken before the SSL drops its own, and given back after
    // OpenSSL took its references again.
    unsafe {
        let (x, k) = (SSL_get_certificate(ssl), SSL_get_privatekey(ssl));
        if x.is_null() || k.is_null() || X509_up_ref(x) != 1 {
            return;
        }
        if EVP_PKEY_up_ref(k) != 1 {
            X509_free(x);
            return;
        }
        SSL_certs_clear(ssl);
        SSL_use_cert_and_key(ssl, x, k, std::ptr::null_mut(), 1);
        X509_free(x);
        EVP_PKEY_free(k);
    }
}

fn d2i_cert(der: &[u8]) -> *mut c_void {
    let mut p = der.as_ptr();
    // SAFETY: d2i reads at most `len` bytes from p.
    unsafe { d2i_X509(std::ptr::null_mut(), &mut p, der.len() as c_long) }
}

pub fn load(set: &md_engine::reg::HotSet) -> Option<Loaded> {
    let mut loaded = Loaded { pairs: Vec::new() };
    for (key_der, chain_der) in &set.pairs {
        let mut p = key_der.as_ptr();
        // SAFETY: as d2i_cert.
        let key =
            unsafe { d2i_AutoPrivateKey(std::ptr::null_mut(), &mut p, key_der.len() as c_long) };
        let leaf = d2i_cert(chain_der.first()?);
        // SAFETY: a new empty stack.
        let sk = unsafe { OPENSSL_sk_new_null() };
        let chain: Vec<*mut c_void> = chain_der[1..].iter().map(|d| d2i_cert(d)).collect();
        let ok = !key.is_null()
            && !leaf.is_null()
            && !sk.is_null()
            && chain.iter().all(|c| !c.is_null());
        // The entry is pushed first so that Drop frees whatever was created.
        loaded.pairs.push((key, leaf, sk, chain.clone()));
        if !ok {
            return None;
        }
        for c in &chain {
            // SAFETY: the stack only borrows; `loaded` keeps the references.
            unsafe { OPENSSL_sk_push(sk, *c) };
        }
    }
    Some(loaded)
}
