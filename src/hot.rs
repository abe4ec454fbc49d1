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

use crate::conf::Runtime;
use crate::ffi;
use crate::guard::guard;
use crate::log::{self, Lvl};
use md_engine::config::Md;
use md_engine::store::{Group, Store};
use md_engine::time;
use std::collections::HashMap;
use std::os::raw::{c_int, c_long, c_void};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

// libssl/libcrypto (linked through the openssl crate); openssl-sys does not
// bind these two callbacks' helpers.
unsafe extern "C" {
    fn SSL_CTX_set_cert_cb(
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
    fn d2i_X509(a: *mut *mut c_void, pp: *mut *const u8, len: c_long) -> *mut c_void;
    fn d2i_AutoPrivateKey(a: *mut *mut c_void, pp: *mut *const u8, len: c_long) -> *mut c_void;
    fn X509_free(x: *mut c_void);
    fn EVP_PKEY_free(k: *mut c_void);
    fn OPENSSL_sk_new_null() -> *mut c_void;
    fn OPENSSL_sk_push(sk: *mut c_void, data: *const c_void) -> c_int;
    fn OPENSSL_sk_free(sk: *mut c_void);
}

/// How often a handshake may look at the staging area of its MD.
const CHECK_EVERY: i64 = 5 * time::USEC_PER_SEC;

/// Parsed OpenSSL objects of a staged set. Never modified after creation;
/// OpenSSL reference counts are atomic, so connections may share them.
struct Loaded {
    /// (key, leaf, stack of the rest of the chain, the chain certificates)
    pairs: Vec<(*mut c_void, *mut c_void, *mut c_void, Vec<*mut c_void>)>,
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

fn d2i_cert(der: &[u8]) -> *mut c_void {
    let mut p = der.as_ptr();
    // SAFETY: d2i reads at most `len` bytes from p.
    unsafe { d2i_X509(std::ptr::null_mut(), &mut p, der.len() as c_long) }
}

fn load(set: &md_engine::reg::HotSet) -> Option<Loaded> {
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

struct SlotState {
    next_check: i64,
    /// `valid-from` of the loaded set (identifies it).
    stamp: i64,
    loaded: Option<Arc<Loaded>>,
}

/// The MD of one SSL vhost.
struct Slot {
    md: Md,
    store: Store,
    server: usize,
    state: Mutex<SlotState>,
}

impl Slot {
    /// The staged set to serve now, if any (looks at the store at most
    /// every CHECK_EVERY).
    fn current(&self, now: i64) -> Option<Arc<Loaded>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now >= st.next_check {
            st.next_check = now + CHECK_EVERY;
            let job = md_engine::job::Job::load(&self.store, Group::Staging, &self.md.name).ok();
            match job {
                Some(j) if j.finished && j.valid_from <= now && j.valid_from > 0 => {
                    if j.valid_from != st.stamp || st.loaded.is_none() {
                        match md_engine::reg::hot_set(&self.store, &self.md, now)
                            .as_ref()
                            .and_then(load)
                        {
                            Some(l) => {
                                st.loaded = Some(Arc::new(l));
                                st.stamp = j.valid_from;
                                log::log(
                                    self.server as *const ffi::server_rec,
                                    Lvl::Notice,
                                    &format!(
                                        "{}: renewed certificate is live for new connections (hot activation, no restart needed)",
                                        self.md.name
                                    ),
                                );
                            }
                            None => st.loaded = None,
                        }
                    }
                }
                _ => {
                    st.loaded = None;
                    st.stamp = 0;
                }
            }
        }
        st.loaded.clone()
    }
}

/// server_rec address → slot, rebuilt at every (re)start.
static SLOTS: LazyLock<RwLock<HashMap<usize, Arc<Slot>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Whether hot activation serves a staged set for `md` in this process.
pub fn serving_staged(md: &str) -> bool {
    let now = time::now();
    let slots = SLOTS.read().unwrap_or_else(|e| e.into_inner());
    slots
        .values()
        .any(|s| s.md.name == md && s.current(now).is_some())
}

/// Rebuilds the slots from this generation's runtime (after-SSL, parent).
pub fn prepare(rt: &Runtime, ssl_servers: &std::collections::HashSet<usize>, enabled: bool) {
    let mut map = HashMap::new();
    if enabled {
        for (vi, a) in rt.assigned.iter().enumerate() {
            let server = rt.servers[vi];
            if let ([mi], true) = (a.as_slice(), ssl_servers.contains(&server)) {
                let md = &rt.mds[*mi];
                if md.cert_files.is_empty() {
                    map.insert(
                        server,
                        Arc::new(Slot {
                            md: md.clone(),
                            store: rt.store.clone(),
                            server,
                            state: Mutex::new(SlotState {
                                next_check: 0,
                                stamp: 0,
                                loaded: None,
                            }),
                        }),
                    );
                }
            }
        }
    }
    *SLOTS.write().unwrap_or_else(|e| e.into_inner()) = map;
}

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
        // SAFETY: s is the live server of this SSL context.
        let enabled = unsafe { crate::conf::state(s) }
            .is_some_and(|st| st.lock().config.global.hot_activation);
        if enabled {
            // SAFETY: ctx is mod_ssl's SSL_CTX for s; `s` lives as long as the
            // configuration that owns the context.
            unsafe { SSL_CTX_set_cert_cb(ctx, Some(cert_cb), s as *mut c_void) };
        }
        ffi::OK as c_int
    })
}

/// The certificate callback: runs in every handshake of the vhost. Never
/// fails a handshake: on any problem the configured certificate stays.
unsafe extern "C" fn cert_cb(ssl: *mut c_void, arg: *mut c_void) -> c_int {
    guard("certificate callback", 1, || {
        let slot = {
            let slots = SLOTS.read().unwrap_or_else(|e| e.into_inner());
            match slots.get(&(arg as usize)) {
                Some(s) => s.clone(),
                None => return 1,
            }
        };
        if let Some(l) = slot.current(time::now()) {
            for (key, leaf, sk, _) in &l.pairs {
                // SAFETY: a live SSL in its handshake; the objects stay valid
                // while `l` lives, and OpenSSL takes its own references.
                unsafe { SSL_use_cert_and_key(ssl, *leaf, *key, *sk, 1) };
            }
        }
        1
    })
}
