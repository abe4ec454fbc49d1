//! The certificate sets mod_ssl gets (issue 25): checked in the parent
//! before mod_ssl reads them, so that no file that cannot work takes the
//! whole server down (mod_ssl stops httpd on a certificate it cannot parse
//! or a key that does not match: AH02562, AH02565).
//!
//! A live set of a managed MD that fails is moved aside
//! (`<file>.broken`) and the MD is treated as one without a certificate:
//! it serves a valid staged set (hot activation) or its fallback, and is
//! renewed at once. A static set (`MDCertificateFile`) that fails is left
//! where it is: its vhosts get the fallback, and the error names the
//! directive to correct.

use crate::base::crypto;
use crate::base::keyspec::KeySpec;
use crate::base::util::FileStamp;
use crate::config::Md;
use crate::store::{Group, Store};
use openssl::pkey::PKey;
use openssl::x509::X509;
use std::fs;
use std::path::Path;

/// What is wrong with one file of a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The file at fault.
    pub file: String,
    /// What is wrong with it, for the error log.
    pub what: String,
}

/// Why PEM text does not hold what was asked for (OpenSSL's words where
/// it has them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    NotText,
    BadBeginLine,
    BadEndLine,
    BadBase64,
    NoPrivateKey,
    NoCertificate,
    /// OpenSSL's reason.
    OpenSsl(String),
}

impl std::fmt::Display for PemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PemError::NotText => "not PEM text",
            PemError::BadBeginLine => "bad begin line",
            PemError::BadEndLine => "bad end line",
            PemError::BadBase64 => "bad base64 decode",
            PemError::NoPrivateKey => "no PEM private key in it",
            PemError::NoCertificate => "holds no certificate",
            PemError::OpenSsl(r) => r,
        })
    }
}

impl From<openssl::error::ErrorStack> for PemError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        PemError::OpenSsl(reason(&e))
    }
}

/// Why an MD's fallback pair could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackError {
    /// The key or certificate for a key spec could not be made.
    Make {
        md: String,
        spec: String,
        why: String,
    },
    /// The store refused to keep it.
    Store(super::StoreError),
    /// The directory outside the store could not be written.
    Write { dir: String, why: String },
}

impl std::fmt::Display for FallbackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FallbackError::Make { md, spec, why } => {
                write!(f, "{md}: make fallback {spec} certificate: {why}")
            }
            FallbackError::Store(e) => write!(f, "{e}"),
            FallbackError::Write { dir, why } => write!(f, "cannot write {dir}: {why}"),
        }
    }
}

impl From<super::StoreError> for FallbackError {
    fn from(e: super::StoreError) -> Self {
        FallbackError::Store(e)
    }
}

fn broken(file: &Path, what: impl Into<String>) -> Broken {
    Broken {
        file: file.display().to_string(),
        what: what.into(),
    }
}

/// Why OpenSSL could not parse something: its first reason, short.
fn reason(e: &openssl::error::ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|x| x.reason().map(str::to_string))
        .unwrap_or_else(|| e.to_string())
}

/// One PEM block: its label and its DER.
struct Block<'a> {
    label: &'a str,
    der: Vec<u8>,
}

/// The PEM blocks of `text` as OpenSSL's readers take them: anything
/// outside `-----BEGIN`/`-----END` lines is skipped; a block without its
/// END line or with bad base64 is an error ("bad end line").
fn pem_blocks(text: &str) -> Result<Vec<Block<'_>>, PemError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find("-----BEGIN ") {
        let after = &rest[b + 11..];
        let label_end = after.find("-----").ok_or(PemError::BadBeginLine)?;
        let label = &after[..label_end];
        let body = &after[label_end + 5..];
        let end_line = format!("-----END {label}-----");
        let e = body.find(&end_line).ok_or(PemError::BadEndLine)?;
        let b64: String = body[..e]
            .lines()
            .filter(|l| !l.contains(':'))
            .flat_map(str::split_whitespace)
            .collect();
        let der = openssl::base64::decode_block(&b64).map_err(|_| PemError::BadBase64)?;
        out.push(Block { label, der });
        rest = &body[e + end_line.len()..];
    }
    Ok(out)
}

/// DER: one tag-length-value; (tag, value, rest).
fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, d) = d.split_first()?;
    let (&l, mut d) = d.split_first()?;
    let len = if l < 0x80 {
        usize::from(l)
    } else {
        let n = usize::from(l & 0x7f);
        if n == 0 || n > 3 || d.len() < n {
            return None;
        }
        let v = d[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        d = &d[n..];
        v
    };
    (d.len() >= len).then(|| (tag, &d[..len], &d[len..]))
}

/// DER: one tag-length-value of tag `tag`; (value, rest).
fn take(d: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, v, rest) = tlv(d)?;
    (t == tag).then_some((v, rest))
}

/// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo, when it holds an RSA
/// key (RFC 5208: SEQUENCE { INTEGER, AlgorithmIdentifier, OCTET STRING }).
fn pkcs8_rsa(der: &[u8]) -> Option<&[u8]> {
    const RSA_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (info, _) = take(der, 0x30)?;
    let (_, rest) = take(info, 0x02)?;
    let (alg, rest) = take(rest, 0x30)?;
    let (oid, _) = take(alg, 0x06)?;
    let (inner, _) = take(rest, 0x04)?;
    (oid == RSA_OID).then_some(inner)
}

/// The EC key inside a PKCS#8 PrivateKeyInfo on a named curve, as OpenSSL
/// and the C module write EC keys (RFC 5915 inside RFC 5208), rebuilt from
/// its scalar: the public point is computed, so a key that passes belongs
/// to the certificate only if its secret does. `None` when the DER is not
/// such a key: the generic reader decides then (and says what is wrong).
fn pkcs8_ec(
    der: &[u8],
) -> Option<Result<PKey<openssl::pkey::Private>, openssl::error::ErrorStack>> {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    use openssl::nid::Nid;
    const EC_OID: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const CURVES: [(&[u8], Nid); 3] = [
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            Nid::X9_62_PRIME256V1,
        ),
        (&[0x2b, 0x81, 0x04, 0x00, 0x22], Nid::SECP384R1),
        (&[0x2b, 0x81, 0x04, 0x00, 0x23], Nid::SECP521R1),
    ];
    let (info, _) = take(der, 0x30)?;
    let (_, rest) = take(info, 0x02)?;
    let (alg, rest) = take(rest, 0x30)?;
    let (oid, params) = take(alg, 0x06)?;
    let (curve, _) = take(params, 0x06)?;
    let nid = CURVES.iter().find(|(o, _)| *o == curve)?.1;
    let (inner, _) = take(rest, 0x04)?;
    let (ec, _) = take(inner, 0x30)?;
    let (version, rest) = take(ec, 0x02)?;
    let (secret, _) = take(rest, 0x04)?;
    if oid != EC_OID || version != [1] {
        return None;
    }
    let build = || {
        let group = EcGroup::from_curve_name(nid)?;
        let d = BigNum::from_slice(secret)?;
        let mut ctx = BigNumContext::new()?;
        let mut order = BigNum::new()?;
        group.order(&mut order, &mut ctx)?;
        Ok::<_, openssl::error::ErrorStack>((group, d, order, ctx))
    };
    let (group, d, order, mut ctx) = match build() {
        Ok(x) => x,
        Err(e) => return Some(Err(e)),
    };
    // 0 < d < n, or it is no key of this curve: the generic reader says why
    if d.num_bits() == 0 || d >= order {
        return None;
    }
    let key = (|| {
        let mut public = EcPoint::new(&group)?;
        public.mul_generator2(&group, &d, &mut ctx)?;
        let key = EcKey::from_private_components(&group, &d, &public)?;
        PKey::from_ec_key(key)
    })();
    Some(key)
}

/// A private key from PEM. OpenSSL 3.0's generic decoders take ~0.4 ms for
/// an RSA key; RSA keys (PKCS#8 or traditional) and EC keys on the usual
/// curves (PKCS#8 or traditional) go through their own DER readers (µs);
/// others the generic way.
fn private_key(pem: &[u8]) -> Result<PKey<openssl::pkey::Private>, PemError> {
    let text = std::str::from_utf8(pem).map_err(|_| PemError::NotText)?;
    let blocks = pem_blocks(text)?;
    let Some(b) = blocks.iter().find(|b| b.label.ends_with("PRIVATE KEY")) else {
        return Err(PemError::NoPrivateKey);
    };
    let fast = match b.label {
        "RSA PRIVATE KEY" => {
            Some(openssl::rsa::Rsa::private_key_from_der(&b.der).and_then(PKey::from_rsa))
        }
        "EC PRIVATE KEY" => {
            Some(openssl::ec::EcKey::private_key_from_der(&b.der).and_then(PKey::from_ec_key))
        }
        "PRIVATE KEY" => pkcs8_rsa(&b.der)
            .map(|inner| openssl::rsa::Rsa::private_key_from_der(inner).and_then(PKey::from_rsa))
            .or_else(|| pkcs8_ec(&b.der)),
        _ => None,
    };
    Ok(fast.unwrap_or_else(|| PKey::private_key_from_pem(pem))?)
}

/// The chain's certificates that parsed fine in this process, by DER:
/// the intermediates many MDs share are parsed once.
static GOOD_CERTS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<Vec<u8>>>> =
    std::sync::LazyLock::new(Default::default);

/// The leaf of a chain, the others checked as mod_ssl would load them.
fn chain_leaf(pem: &[u8]) -> Result<X509, PemError> {
    let text = std::str::from_utf8(pem).map_err(|_| PemError::NotText)?;
    let blocks: Vec<Block<'_>> = pem_blocks(text)?
        .into_iter()
        .filter(|b| {
            b.label == "CERTIFICATE"
                || b.label == "TRUSTED CERTIFICATE"
                || b.label == "X509 CERTIFICATE"
        })
        .collect();
    let (first, rest) = blocks.split_first().ok_or(PemError::NoCertificate)?;
    let leaf = X509::from_der(&first.der)?;
    for b in rest {
        let known = GOOD_CERTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&b.der);
        if !known {
            X509::from_der(&b.der)?;
            GOOD_CERTS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(b.der.clone());
        }
    }
    Ok(leaf)
}

/// Pairs checked in this process, by their files' stamps: the real run of
/// a start and later graceful restarts do not parse unchanged files again.
type Checked = ((Option<FileStamp>, Option<FileStamp>), Result<(), Broken>);
static CHECKED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<(std::path::PathBuf, std::path::PathBuf), Checked>>,
> = std::sync::LazyLock::new(Default::default);

/// Checks a (key, chain) pair as mod_ssl loads it: every certificate of
/// the chain parses, there is at least one, the key parses and belongs to
/// the first certificate. An encrypted key is taken as it is when
/// `encrypted_ok` (mod_ssl asks for its pass phrase; only the chain can be
/// checked). Unchanged files are not checked again in this process.
pub(crate) fn check_pair(key: &Path, cert: &Path, encrypted_ok: bool) -> Result<(), Broken> {
    let stamps = (FileStamp::of(key), FileStamp::of(cert));
    let id = (key.to_path_buf(), cert.to_path_buf());
    if let (Some(_), Some(_)) = stamps {
        if let Some((s, r)) = CHECKED.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            if *s == stamps {
                return r.clone();
            }
        }
    }
    let r = check_pair_now(key, cert, encrypted_ok);
    if let (Some(_), Some(_)) = stamps {
        CHECKED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (stamps, r.clone()));
    }
    r
}

/// A chain file as read, and its leaf (the other certificates checked).
pub struct Chain {
    pub pem: Vec<u8>,
    pub leaf: X509,
}

/// Reads a certificate chain file and parses its leaf (the others are
/// checked, each distinct one once per process); what is wrong as the
/// error log says it.
pub(crate) fn read_chain(cert: &Path) -> Result<Chain, Broken> {
    let pem = fs::read(cert).map_err(|e| broken(cert, format!("cannot be read ({e})")))?;
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Err(broken(cert, "is empty"));
    }
    let leaf = chain_leaf(&pem)
        .map_err(|e| broken(cert, format!("is not a PEM certificate chain ({e})")))?;
    Ok(Chain { pem, leaf })
}

/// The SubjectPublicKeyInfo of a certificate's DER, found by walking its
/// structure (RFC 5280 §4.1) without decoding it as OpenSSL does (0.1 ms a
/// certificate in 3.0): whole TLVs with their headers; None when the
/// structure does not hold.
fn cert_spki(der: &[u8]) -> Option<&[u8]> {
    let (cert, rest) = take(der, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (tbs, after) = take(cert, 0x30)?;
    // signatureAlgorithm and signatureValue follow, and nothing else
    let (_, after) = take(after, 0x30)?;
    let (_, after) = take(after, 0x03)?;
    if !after.is_empty() {
        return None;
    }
    let mut t = tbs;
    if t.first() == Some(&0xa0) {
        t = tlv(t)?.2;
    }
    // serialNumber, signature, issuer, validity, subject
    for tag in [0x02, 0x30, 0x30, 0x30, 0x30] {
        t = take(t, tag)?.1;
    }
    let (_, rest) = take(t, 0x30)?;
    Some(&t[..t.len() - rest.len()])
}

/// A fallback pair (files this module made) checked by structure: the
/// certificate's PEM and DER hold together and carry the key's public key,
/// which parses. Cheaper than [`check_pair`] at every start with many MDs
/// without certificates; what a full disk or a bad block leaves (empty,
/// truncated, garbage, another key) it finds all the same.
pub(crate) fn check_fallback_pair(key: &Path, cert: &Path) -> Result<(), Broken> {
    let pem = fs::read(cert).map_err(|e| broken(cert, format!("cannot be read ({e})")))?;
    let text = std::str::from_utf8(&pem).map_err(|_| broken(cert, "is not PEM text"))?;
    let blocks = pem_blocks(text).map_err(|e| broken(cert, format!("is not PEM ({e})")))?;
    let der = blocks
        .iter()
        .find(|b| b.label == "CERTIFICATE")
        .map(|b| b.der.as_slice())
        .ok_or_else(|| broken(cert, "holds no certificate"))?;
    let spki = cert_spki(der).ok_or_else(|| broken(cert, "is not a certificate (bad DER)"))?;
    let kpem = fs::read(key).map_err(|e| broken(key, format!("cannot be read ({e})")))?;
    let pkey =
        private_key(&kpem).map_err(|e| broken(key, format!("is not a PEM private key ({e})")))?;
    if pkey.public_key_to_der().ok().as_deref() != Some(spki) {
        return Err(broken(
            key,
            format!("does not belong to the certificate in {}", cert.display()),
        ));
    }
    Ok(())
}

fn check_pair_now(key: &Path, cert: &Path, encrypted_ok: bool) -> Result<(), Broken> {
    let chain = read_chain(cert)?;
    let leaf = &chain.leaf;
    let kpem = fs::read(key).map_err(|e| broken(key, format!("cannot be read ({e})")))?;
    if kpem.iter().all(u8::is_ascii_whitespace) {
        return Err(broken(key, "is empty"));
    }
    let s = String::from_utf8_lossy(&kpem);
    if encrypted_ok && (s.contains("ENCRYPTED PRIVATE KEY") || s.contains("Proc-Type: 4,ENCRYPTED"))
    {
        return Ok(());
    }
    let pkey =
        private_key(&kpem).map_err(|e| broken(key, format!("is not a PEM private key ({e})")))?;
    let matches = leaf.public_key().is_ok_and(|p| p.public_eq(&pkey));
    if !matches {
        return Err(broken(
            key,
            format!("does not belong to the certificate in {}", cert.display()),
        ));
    }
    Ok(())
}

/// One (key, chain) pair of an MD's live set, as paths mod_ssl reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePair {
    /// `rsa`, the curve name, or "0", "1"… for static files.
    pub key_name: String,
    pub key: String,
    pub cert: String,
}

/// The live pairs of an MD: one per key spec in `domains/<md>/`, or the
/// static files.
pub(crate) fn live_files(store: &Store, md: &Md) -> Vec<LivePair> {
    if !md.cert_files.is_empty() {
        return md
            .cert_files
            .iter()
            .zip(md.key_files.iter())
            .enumerate()
            .map(|(i, (c, k))| LivePair {
                key_name: i.to_string(),
                key: k.clone(),
                cert: c.clone(),
            })
            .collect();
    }
    md.effective_specs()
        .iter()
        .map(|s| {
            let sfx = s.file_suffix();
            let path = |f: &str| {
                store
                    .local_path(Group::Domains, &md.name, &format!("{f}{sfx}.pem"))
                    .display()
                    .to_string()
            };
            LivePair {
                key_name: s.name(),
                key: path("privkey"),
                cert: path("pubcert"),
            }
        })
        .collect()
}

/// Moves `path` aside to `<path>.broken`; the new name, or why not.
fn set_aside(path: &Path) -> std::io::Result<String> {
    let to = format!("{}.broken", path.display());
    fs::rename(path, &to).map(|()| to)
}

/// Checks the set mod_ssl would get for `md`, before it gets it: the
/// static files, or the live pairs whose files both exist. What fails is
/// recorded in `md.found.broken` (never handed to mod_ssl, counted as
/// missing); a broken live pair is moved aside. `staged`: whether a valid
/// staged set is served meanwhile (hot activation; asked only when a pair
/// fails). Returns one error text per failing pair, with what happens next.
pub fn check(store: &Store, md: &mut Md, staged: &dyn Fn(&Md) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    if !md.cert_files.is_empty() {
        for (cert, key) in md.cert_files.iter().zip(md.key_files.iter()) {
            let Err(b) = check_pair(Path::new(key), Path::new(cert), true) else {
                continue;
            };
            let directive = if b.file == *key {
                "MDCertificateKeyFile"
            } else {
                "MDCertificateFile"
            };
            let msg = format!(
                "md[{}]: {} ({directive}) {}: the MD's vhosts serve the fallback certificate (503) \
                 until MDCertificateFile and MDCertificateKeyFile name a certificate and its key",
                md.name, b.file, b.what
            );
            problems.push(msg);
            md.found.broken.push(cert.clone());
        }
        return problems;
    }
    for LivePair { key, cert, .. } in live_files(store, md) {
        let (kp, cp) = (Path::new(&key), Path::new(&cert));
        if !(kp.exists() && cp.exists()) {
            continue;
        }
        let Err(b) = check_pair(kp, cp, false) else {
            continue;
        };
        let other = if b.file == key { &cert } else { &key };
        let moved = set_aside(Path::new(&b.file)).and_then(|to| {
            set_aside(Path::new(other))
                .map(|other_to| format!("set aside as {to} (and {other_to})"))
        });
        let moved = moved.unwrap_or_else(|e| {
            // not moved (a store that cannot be written): never handed to
            // mod_ssl all the same
            md.found.broken.push(cert.clone());
            md.found.broken.push(key.clone());
            format!("left in place (cannot move it aside: {e}), not used")
        });
        let serves = if staged(md) {
            "its staged certificate"
        } else {
            "the fallback certificate (503)"
        };
        let msg = format!(
            "md[{}]: {} {}: {moved}; the MD is renewed now and serves {serves} meanwhile",
            md.name, b.file, b.what
        );
        problems.push(msg);
    }
    problems
}

/// The (key, chain) files mod_ssl gets for an MD's SSL vhost (§2.4): the
/// static files as configured, else the live pairs that exist.
/// Files start-up found broken ([`crate::store::sets::check`]) are never among
/// them: a static set with one goes entirely (its vhosts get the fallback).
pub(crate) fn servable_files(store: &Store, md: &Md) -> Vec<(String, String)> {
    if !md.cert_files.is_empty() && !md.found.broken.is_empty() {
        return Vec::new();
    }
    live_files(store, md)
        .into_iter()
        .filter(|p| {
            !md.cert_files.is_empty()
                || (Path::new(&p.key).exists()
                    && Path::new(&p.cert).exists()
                    && !md.found.broken.contains(&p.cert))
        })
        .map(|p| (p.key, p.cert))
        .collect()
}

/// The fallback key/certificate pairs of an MD, created when missing
/// (§2.4; existing ones are reused even when expired) with keys from
/// `keys`. Returns (key path, cert path) per key spec.
pub(crate) fn ensure_fallbacks(
    store: &Store,
    md: &Md,
    keys: &crypto::KeyCache,
) -> Result<Vec<(String, String)>, FallbackError> {
    let mut out = Vec::new();
    for spec in md.effective_specs() {
        let sfx = spec.file_suffix();
        let kf = format!("fallback-privkey{sfx}.pem");
        let cf = format!("fallback-pubcert{sfx}.pem");
        let kp = store.local_path(Group::Domains, &md.name, &kf);
        let cp = store.local_path(Group::Domains, &md.name, &cf);
        // existing ones are reused (even expired), unless mod_ssl could not
        // load them: then they are made again
        let usable = kp.exists() && cp.exists() && check_fallback_pair(&kp, &cp).is_ok();
        // (a damaged key is replaced below, a certificate is made for the
        // key on disk: nothing another node just made is removed)
        if !usable {
            let kspec = match &spec {
                KeySpec::Ec(c) if c.eq_ignore_ascii_case("x25519") => KeySpec::Ec("P-256".into()),
                s => s.clone(),
            };
            let fail = |why: String| FallbackError::Make {
                md: md.name.clone(),
                spec: spec.name(),
                why,
            };
            // The key is created only where there is none, atomically, and
            // the certificate is made for the key on disk: nodes of a
            // cluster starting together over one store never leave a key
            // with another one's certificate (which mod_ssl refuses).
            let on_disk = store.load_key(Group::Domains, &md.name, &kf);
            let key = match on_disk {
                Ok(Some(k)) => k,
                _ => {
                    let k = keys.get(&kspec).map_err(|e| fail(e.to_string()))?;
                    if on_disk.is_err() {
                        // damaged: replaced (a missing one is never removed:
                        // another node may have created it just now)
                        store.remove(Group::Domains, &md.name, &kf);
                    }
                    // derived: one lost to a crash is made again at the
                    // next start (an empty or damaged key is replaced)
                    if store.save_key_new(Group::Domains, &md.name, &kf, &k, false)? {
                        k
                    } else {
                        store
                            .load_key(Group::Domains, &md.name, &kf)?
                            .ok_or_else(|| fail(format!("{} vanished", kp.display())))?
                    }
                }
            };
            let cert = crypto::fallback_cert(&key, &md.domains).map_err(|e| fail(e.0))?;
            let pem = cert.to_pem().map_err(|e| fail(e.to_string()))?;
            store.save_derived(Group::Domains, &md.name, &cf, &pem)?;
        }
        // asked again: a store kept elsewhere (etcd) writes them into its
        // local cache now
        let kp = store.local_path(Group::Domains, &md.name, &kf);
        let cp = store.local_path(Group::Domains, &md.name, &cf);
        out.push((kp.display().to_string(), cp.display().to_string()));
    }
    Ok(out)
}

/// The fallback pairs of an MD made in `dir` (outside the store, when the
/// store cannot be written): made anew, key 0600, certificate 0644.
pub(crate) fn fallbacks_in(
    dir: &std::path::Path,
    md: &Md,
    keys: &crypto::KeyCache,
) -> Result<Vec<(String, String)>, FallbackError> {
    use std::os::unix::fs::DirBuilderExt;
    let write_err = |e: std::io::Error| FallbackError::Write {
        dir: dir.display().to_string(),
        why: e.to_string(),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_err)?;
    let mut out = Vec::new();
    for spec in md.effective_specs() {
        let sfx = spec.file_suffix();
        let kspec = match &spec {
            KeySpec::Ec(c) if c.eq_ignore_ascii_case("x25519") => KeySpec::Ec("P-256".into()),
            s => s.clone(),
        };
        let fail = |why: String| FallbackError::Make {
            md: md.name.clone(),
            spec: spec.name(),
            why,
        };
        let key = keys.get(&kspec).map_err(|e| fail(e.to_string()))?;
        let cert = crypto::fallback_cert(&key, &md.domains).map_err(|e| fail(e.0))?;
        let kp = dir.join(format!("fallback-privkey{sfx}.pem"));
        let cp = dir.join(format!("fallback-pubcert{sfx}.pem"));
        let kpem = key.to_pem(None).map_err(|e| fail(e.0))?;
        let cpem = cert.to_pem().map_err(|e| fail(e.to_string()))?;
        crate::base::util::write_atomic(&kp, &kpem, 0o600)
            .and_then(|()| crate::base::util::write_atomic(&cp, &cpem, 0o644))
            .map_err(write_err)?;
        out.push((kp.display().to_string(), cp.display().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::crypto::{fallback_cert, Key};
    use crate::base::keyspec::KeySpec;
    use crate::lifecycle::state::CertInfo;
    use crate::testutil::md;
    use crate::testutil::tmpstore;

    fn pair(dir: &Path, tag: &str) -> (std::path::PathBuf, std::path::PathBuf, Key) {
        let k = Key::generate(&KeySpec::Ec("P-256".into())).unwrap();
        let c = fallback_cert(&k, &["a.org".into()]).unwrap();
        let (kp, cp) = (
            dir.join(format!("{tag}.key")),
            dir.join(format!("{tag}.pem")),
        );
        fs::write(&kp, k.to_pem(None).unwrap()).unwrap();
        fs::write(&cp, c.to_pem().unwrap()).unwrap();
        (kp, cp, k)
    }

    #[test]
    fn keys_the_fast_way_are_the_keys_of_the_slow_way() {
        for spec in [KeySpec::Rsa(2048), KeySpec::Ec("P-256".into())] {
            let k = Key::generate(&spec).unwrap();
            let pkcs8 = k.to_pem(None).unwrap();
            let fast = private_key(&pkcs8).unwrap();
            let slow = PKey::private_key_from_pem(&pkcs8).unwrap();
            assert!(fast.public_eq(&slow));
            // traditional forms
            let trad = match spec {
                KeySpec::Rsa(_) => slow.rsa().unwrap().private_key_to_pem().unwrap(),
                _ => slow.ec_key().unwrap().private_key_to_pem().unwrap(),
            };
            assert!(private_key(&trad).unwrap().public_eq(&slow));
        }
        // truncated, garbage, no key at all
        let k = Key::generate(&KeySpec::Rsa(2048))
            .unwrap()
            .to_pem(None)
            .unwrap();
        assert!(private_key(&k[..k.len() / 2]).is_err());
        assert!(
            private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
        assert!(private_key(b"hello").is_err());
    }

    /// PKCS#8 EC keys (as OpenSSL and the C module write them) take the
    /// fast reader on the usual curves, give the key the generic reader
    /// gives, and a changed secret gives another key (the public point is
    /// computed from the secret, not taken from the file).
    #[test]
    fn pkcs8_ec_keys_the_fast_way() {
        for curve in ["P-256", "P-384", "P-521"] {
            let k = Key::generate(&KeySpec::Ec(curve.into())).unwrap();
            let pem = k.to_pem(None).unwrap();
            let slow = PKey::private_key_from_pem(&pem).unwrap();
            let der = slow.private_key_to_pkcs8().unwrap();
            let fast = pkcs8_ec(&der).expect("the fast reader takes it").unwrap();
            assert!(fast.public_eq(&slow), "{curve}");
            assert!(private_key(&pem).unwrap().public_eq(&slow));
            // change the secret's last byte
            let mut other = der.clone();
            let ec = slow.ec_key().unwrap();
            let secret_len = ec.group().order_bits().div_ceil(8) as usize;
            let secret = ec.private_key().to_vec_padded(secret_len as i32).unwrap();
            let at = der.windows(secret_len).position(|w| w == secret).unwrap();
            other[at + secret_len - 1] ^= 1;
            let changed = pkcs8_ec(&other).unwrap().unwrap();
            assert!(!changed.public_eq(&slow), "{curve}");
            // a zero secret is no key: left to the generic reader
            let mut zero = der.clone();
            zero[at..at + secret_len].fill(0);
            assert!(pkcs8_ec(&zero).is_none());
        }
        // RSA is not EC
        let rsa = Key::generate(&KeySpec::Rsa(2048))
            .unwrap()
            .to_pem(None)
            .unwrap();
        let der = PKey::private_key_from_pem(&rsa)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        assert!(pkcs8_ec(&der).is_none());
    }

    #[test]
    fn fallback_pairs_by_structure() {
        let d = crate::testutil::TempDir::new("sets-fallback");
        for spec in [KeySpec::Rsa(2048), KeySpec::Ec("P-256".into())] {
            let (kp, cp, _) = pair(&d, "fb");
            let k = Key::generate(&spec).unwrap();
            let c = fallback_cert(&k, &["a.org".into()]).unwrap();
            fs::write(&kp, k.to_pem(None).unwrap()).unwrap();
            fs::write(&cp, c.to_pem().unwrap()).unwrap();
            assert_eq!(check_fallback_pair(&kp, &cp), Ok(()));
            // the SPKI walk finds what OpenSSL finds
            let der = c.to_der().unwrap();
            assert_eq!(
                cert_spki(&der).unwrap(),
                c.public_key()
                    .unwrap()
                    .public_key_to_der()
                    .unwrap()
                    .as_slice()
            );
            let pem = fs::read(&cp).unwrap();
            fs::write(&cp, &pem[..pem.len() - 40]).unwrap();
            assert!(check_fallback_pair(&kp, &cp).is_err());
            fs::write(&cp, b"").unwrap();
            assert!(check_fallback_pair(&kp, &cp).is_err());
            fs::write(&cp, &pem).unwrap();
            let (other, _, _) = pair(&d, "other");
            assert!(check_fallback_pair(&other, &cp)
                .unwrap_err()
                .what
                .starts_with("does not belong"));
        }
    }

    #[test]
    fn pem_and_der_of_any_bytes_never_panic() {
        // a cheap deterministic spray of inputs (the proptest suite covers
        // the parsers reachable from the API)
        let mut x: u32 = 12345;
        for n in 0..2000 {
            let mut v = Vec::new();
            for _ in 0..(n % 97) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                v.push((x >> 16) as u8);
            }
            let _ = tlv(&v);
            let _ = pkcs8_rsa(&v);
            let mut pem = b"-----BEGIN PRIVATE KEY-----\n".to_vec();
            pem.extend(&v);
            let _ = private_key(&pem);
            let mut c = b"-----BEGIN CERTIFICATE-----\n".to_vec();
            c.extend(&v);
            c.extend(b"\n-----END CERTIFICATE-----\n");
            let _ = chain_leaf(&c);
            let _ = cert_spki(&v);
        }
    }

    #[test]
    fn pairs_as_mod_ssl_loads_them() {
        let d = crate::testutil::TempDir::new("sets-pairs");
        let (kp, cp, _) = pair(&d, "good");
        assert_eq!(check_pair(&kp, &cp, false), Ok(()));
        let pem = fs::read(&cp).unwrap();
        // truncated, garbage, empty certificates
        fs::write(&cp, &pem[..pem.len() / 2]).unwrap();
        let e = check_pair(&kp, &cp, false).unwrap_err();
        assert_eq!(e.file, cp.display().to_string());
        assert!(
            e.what.starts_with("is not a PEM certificate chain"),
            "{e:?}"
        );
        fs::write(&cp, b"garbage\n").unwrap();
        assert!(check_pair(&kp, &cp, false).is_err());
        fs::write(&cp, b"").unwrap();
        assert_eq!(check_pair(&kp, &cp, false).unwrap_err().what, "is empty");
        fs::write(&cp, &pem).unwrap();
        // another key, a garbage key, an empty key
        let (other, _, _) = pair(&d, "other");
        let e = check_pair(&other, &cp, false).unwrap_err();
        assert_eq!(e.file, other.display().to_string());
        assert!(
            e.what.starts_with("does not belong to the certificate"),
            "{e:?}"
        );
        fs::write(
            &kp,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(check_pair(&kp, &cp, false)
            .unwrap_err()
            .what
            .starts_with("is not a PEM private key"));
        fs::write(&kp, b"\n").unwrap();
        assert_eq!(check_pair(&kp, &cp, false).unwrap_err().what, "is empty");
        // an encrypted static key: only the chain is checked
        fs::write(
            &kp,
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        assert_eq!(check_pair(&kp, &cp, true), Ok(()));
        // missing
        fs::remove_file(&cp).unwrap();
        assert!(check_pair(&kp, &cp, true)
            .unwrap_err()
            .what
            .starts_with("cannot be read"));
    }

    #[test]
    fn fallbacks_of_a_generation_share_one_key_per_type() {
        let (dir, s) = tmpstore("fbkeys");
        let keys = crypto::KeyCache::default();
        let (a, b) = (md(&["a.org"]), md(&["b.org"]));
        let fa = ensure_fallbacks(&s, &a, &keys).unwrap();
        let fb = ensure_fallbacks(&s, &b, &keys).unwrap();
        let pem = |p: &str| fs::read(p).unwrap();
        assert_eq!(pem(&fa[0].0), pem(&fb[0].0), "one key generation for both");
        assert_ne!(pem(&fa[0].1), pem(&fb[0].1), "each MD its own certificate");
        let info = CertInfo::from_pem("rsa", &pem(&fb[0].1)).unwrap();
        assert_eq!(info.names, ["b.org"]);
        // private keys stay the owner's alone
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&fb[0].0).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn nodes_making_fallbacks_together_leave_matching_pairs() {
        // nodes of a cluster starting at once over one store, each with
        // its own keys: whatever the interleaving, key and certificate match
        let (dir, s) = tmpstore("fbrace");
        let m = md(&["race.org"]);
        // each node's keys, made before the races
        let caches: Vec<_> = (0..8)
            .map(|_| {
                let keys = std::sync::Arc::new(crypto::KeyCache::default());
                for spec in m.effective_specs() {
                    keys.get(&spec).unwrap();
                }
                keys
            })
            .collect();
        for _round in 0..10 {
            let _ = fs::remove_dir_all(s.group_dir(Group::Domains).join("race.org"));
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let handles: Vec<_> = caches
                .iter()
                .map(|keys| {
                    let (s, m, b, keys) = (s.clone(), m.clone(), barrier.clone(), keys.clone());
                    std::thread::spawn(move || {
                        b.wait();
                        let fb = ensure_fallbacks(&s, &m, &keys).unwrap();
                        // what mod_ssl reads right after the hook returns
                        let key = s
                            .load_key(Group::Domains, "race.org", "fallback-privkey.pem")
                            .unwrap()
                            .unwrap();
                        let pem = fs::read(&fb[0].1).unwrap();
                        key.matches(&openssl::x509::X509::from_pem(&pem).unwrap())
                    })
                })
                .collect();
            for h in handles {
                assert!(h.join().unwrap(), "fallback key and certificate differ");
            }
        }
        let _ = fs::remove_dir_all(dir);
    }
}
