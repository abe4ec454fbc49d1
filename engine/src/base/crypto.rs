//! Keys, JWS, CSRs and certificates on the system OpenSSL (spec §4.5, §4.7,
//! §4.8, §5.3): private keys as PKCS#8 PEM (encrypted with the store key
//! where the store says so), JWK thumbprints, flattened JWS, CSRs with
//! DNS/IP SANs and must-staple, tls-alpn-01 and fallback certificates.

use crate::base::keyspec::KeySpec;
use crate::base::util::b64url_encode;
use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, BigNumContext, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Extension, X509NameBuilder, X509Req, X509};
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// A crypto failure, with OpenSSL's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoError(pub String);

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<openssl::error::ErrorStack> for CryptoError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        CryptoError(e.to_string())
    }
}

type R<T> = Result<T, CryptoError>;

/// The OpenSSL group of a configured curve name (§4.8): NIST names, the
/// SECG names the C module knows, then OpenSSL's own names.
pub(crate) fn curve_nid(curve: &str) -> Option<Nid> {
    let nid = match curve.to_ascii_lowercase().as_str() {
        "p-256" | "secp256r1" | "prime256v1" => Nid::X9_62_PRIME256V1,
        "p-384" | "secp384r1" => Nid::SECP384R1,
        "p-521" | "secp521r1" => Nid::SECP521R1,
        "p-224" | "secp224r1" => Nid::SECP224R1,
        "p-192" | "secp192r1" | "prime192v1" => Nid::X9_62_PRIME192V1,
        _ => Asn1Object::from_str(curve).ok()?.nid(),
    };
    (nid != Nid::UNDEF).then_some(nid)
}

/// A private key (a clone shares the OpenSSL object).
#[derive(Clone)]
pub struct Key(PKey<Private>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:?}, {} bits)", self.0.id(), self.0.bits())
    }
}

impl Key {
    pub(crate) fn generate_rsa(bits: u32) -> R<Key> {
        Ok(Key(PKey::from_rsa(Rsa::generate(bits)?)?))
    }

    /// A new key for a key spec (§4.8).
    pub(crate) fn generate(spec: &KeySpec) -> R<Key> {
        match spec {
            KeySpec::Default => Key::generate_rsa(crate::base::keyspec::DEFAULT_RSA_BITS),
            KeySpec::Rsa(bits) => Key::generate_rsa(*bits),
            KeySpec::Ec(curve) => {
                if curve.eq_ignore_ascii_case("X25519") {
                    return Ok(Key(PKey::generate_x25519()?));
                }
                let nid = curve_nid(curve)
                    .ok_or_else(|| CryptoError(format!("ec curve unknown: {curve}")))?;
                let group = EcGroup::from_curve_name(nid)?;
                Ok(Key(PKey::from_ec_key(EcKey::generate(&group)?)?))
            }
        }
    }

    pub fn pkey(&self) -> &PKey<Private> {
        &self.0
    }

    /// Reads a PEM private key, encrypted with `pass` or plain.
    pub fn from_pem(pem: &[u8], pass: Option<&[u8]>) -> R<Key> {
        let k = match pass {
            // The callback form: the store key is 48 raw bytes that may hold
            // NULs, which the plain passphrase API cannot carry.
            Some(p) if pem_is_encrypted(pem) => PKey::private_key_from_pem_callback(pem, |buf| {
                if p.len() > buf.len() {
                    return Err(openssl::error::ErrorStack::get());
                }
                buf[..p.len()].copy_from_slice(p);
                Ok(p.len())
            })?,
            _ => PKey::private_key_from_pem(pem)?,
        };
        Ok(Key(k))
    }

    /// PKCS#8 PEM; with `pass`, encrypted with AES-256-CBC (PBES2) as the C
    /// module writes keys in `accounts` and `staging`.
    pub fn to_pem(&self, pass: Option<&[u8]>) -> R<Vec<u8>> {
        Ok(match pass {
            Some(p) => self
                .0
                .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), p)?,
            None => self.0.private_key_to_pem_pkcs8()?,
        })
    }

    /// The JWK of the public key, members in lexical order (RFC 7638).
    pub(crate) fn jwk(&self) -> R<Value> {
        match self.0.id() {
            Id::RSA => {
                let rsa = self.0.rsa()?;
                Ok(json!({
                    "e": b64url_encode(&rsa.e().to_vec()),
                    "kty": "RSA",
                    "n": b64url_encode(&rsa.n().to_vec()),
                }))
            }
            Id::EC => {
                let ec = self.0.ec_key()?;
                let group = ec.group();
                let (crv, len) = match group.curve_name() {
                    Some(Nid::X9_62_PRIME256V1) => ("P-256", 32),
                    Some(Nid::SECP384R1) => ("P-384", 48),
                    Some(Nid::SECP521R1) => ("P-521", 66),
                    _ => return Err(CryptoError("no JWK for this curve".into())),
                };
                let mut x = BigNum::new()?;
                let mut y = BigNum::new()?;
                let mut ctx = BigNumContext::new()?;
                ec.public_key()
                    .affine_coordinates(group, &mut x, &mut y, &mut ctx)?;
                Ok(json!({
                    "crv": crv,
                    "kty": "EC",
                    "x": b64url_encode(&x.to_vec_padded(len)?),
                    "y": b64url_encode(&y.to_vec_padded(len)?),
                }))
            }
            other => Err(CryptoError(format!("no JWK for key type {other:?}"))),
        }
    }

    /// base64url(SHA-256(compact JWK)), the account key thumbprint.
    pub(crate) fn thumbprint(&self) -> R<String> {
        let jwk = serde_json::to_string(&self.jwk()?).map_err(|e| CryptoError(e.to_string()))?;
        Ok(b64url_encode(&hash(
            MessageDigest::sha256(),
            jwk.as_bytes(),
        )?))
    }

    /// The JWS algorithm for this key.
    pub(crate) fn jws_alg(&self) -> R<&'static str> {
        match self.0.id() {
            Id::RSA => Ok("RS256"),
            Id::EC => match self.0.ec_key()?.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => Ok("ES256"),
                Some(Nid::SECP384R1) => Ok("ES384"),
                _ => Err(CryptoError("unsupported curve for JWS".into())),
            },
            other => Err(CryptoError(format!(
                "unsupported key type {other:?} for JWS"
            ))),
        }
    }

    /// Signs `data` as the JWS algorithm requires (ECDSA as r||s).
    pub(crate) fn sign(&self, data: &[u8]) -> R<Vec<u8>> {
        match self.0.id() {
            Id::RSA => {
                let mut s = Signer::new(MessageDigest::sha256(), &self.0)?;
                s.update(data)?;
                Ok(s.sign_to_vec()?)
            }
            Id::EC => {
                let (md, len) = if self.jws_alg()? == "ES256" {
                    (MessageDigest::sha256(), 32)
                } else {
                    (MessageDigest::sha384(), 48)
                };
                let digest = hash(md, data)?;
                let ec = self.0.ec_key()?;
                let sig = EcdsaSig::sign(&digest, &ec)?;
                let mut out = sig.r().to_vec_padded(len)?;
                out.extend(sig.s().to_vec_padded(len)?);
                Ok(out)
            }
            other => Err(CryptoError(format!("cannot sign with key type {other:?}"))),
        }
    }

    /// Whether `cert` carries this key's public key.
    pub fn matches(&self, cert: &X509) -> bool {
        cert.public_key()
            .map(|p| p.public_eq(&self.0))
            .unwrap_or(false)
    }
}

fn pem_is_encrypted(pem: &[u8]) -> bool {
    let s = String::from_utf8_lossy(pem);
    s.contains("ENCRYPTED PRIVATE KEY") || s.contains("Proc-Type: 4,ENCRYPTED")
}

/// A flattened JWS (members `protected`, `payload`, `signature`).
/// `protected` is the header object; `payload` the payload text ("" for
/// POST-as-GET).
pub(crate) fn jws(key: &Key, protected: &Map<String, Value>, payload: &str) -> R<Value> {
    let prot = b64url_encode(
        serde_json::to_string(protected)
            .map_err(|e| CryptoError(e.to_string()))?
            .as_bytes(),
    );
    let pay = b64url_encode(payload.as_bytes());
    let sig = key.sign(format!("{prot}.{pay}").as_bytes())?;
    let mut o = Map::new();
    o.insert("protected".into(), Value::String(prot));
    o.insert("payload".into(), Value::String(pay));
    o.insert("signature".into(), Value::String(b64url_encode(&sig)));
    Ok(Value::Object(o))
}

/// The external account binding object of newAccount (RFC 8555 §7.3.4):
/// a JWS over the account JWK with HS256 and the decoded `hmac_b64`.
pub(crate) fn eab_jws(kid: &str, hmac_b64: &str, url: &str, account_jwk: &Value) -> R<Value> {
    let hkey = crate::base::util::b64url_decode(hmac_b64)
        .ok_or_else(|| CryptoError("apache:eab-hmac-invalid".into()))?;
    let mut prot = Map::new();
    prot.insert("alg".into(), json!("HS256"));
    prot.insert("kid".into(), json!(kid));
    prot.insert("url".into(), json!(url));
    let p = b64url_encode(serde_json::to_string(&prot).unwrap_or_default().as_bytes());
    let pay = b64url_encode(
        serde_json::to_string(account_jwk)
            .unwrap_or_default()
            .as_bytes(),
    );
    let pkey = PKey::hmac(&hkey)?;
    let mut s = Signer::new(MessageDigest::sha256(), &pkey)?;
    s.update(format!("{p}.{pay}").as_bytes())?;
    let sig = s.sign_to_vec()?;
    Ok(json!({"protected": p, "payload": pay, "signature": b64url_encode(&sig)}))
}

/// An ACME identifier: a DNS name (maybe a wildcard) or an IP address.
pub(crate) fn ident_type(value: &str) -> &'static str {
    if value.parse::<IpAddr>().is_ok() {
        "ip"
    } else {
        "dns"
    }
}

/// The reverse-DNS name of an IP address (RFC 8738 §6: the SNI of a
/// tls-alpn-01 validation of an IP identifier).
pub(crate) fn reverse_dns_name(ip: &str) -> Option<String> {
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]))
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            Some(s)
        }
    }
}

fn san_ext(idents: &[String], ctx: &openssl::x509::X509v3Context<'_>) -> R<X509Extension> {
    let mut san = SubjectAlternativeName::new();
    for i in idents {
        if ident_type(i) == "ip" {
            san.ip(i);
        } else {
            san.dns(i);
        }
    }
    Ok(san.build(ctx)?)
}

/// The TLS Feature extension with status_request (must-staple).
fn must_staple_ext() -> R<X509Extension> {
    let oid = Asn1Object::from_str("1.3.6.1.5.5.7.1.24")?;
    let der = Asn1OctetString::new_from_bytes(&[0x30, 0x03, 0x02, 0x01, 0x05])?;
    Ok(X509Extension::new_from_der(&oid, false, &der)?)
}

/// A CSR (DER) for `idents` (§4.7): CN = first DNS identifier when shorter
/// than 64 characters, SANs for all, must-staple on request.
pub(crate) fn csr_der(key: &Key, idents: &[String], must_staple: bool) -> R<Vec<u8>> {
    let mut b = X509Req::builder()?;
    let mut name = X509NameBuilder::new()?;
    if let Some(first) = idents
        .first()
        .filter(|f| f.len() < 64 && ident_type(f) == "dns")
    {
        name.append_entry_by_nid(Nid::COMMONNAME, first)?;
    }
    b.set_subject_name(&name.build())?;
    b.set_pubkey(key.pkey())?;
    let mut exts = Stack::new()?;
    exts.push(san_ext(idents, &b.x509v3_context(None))?)?;
    if must_staple {
        exts.push(must_staple_ext()?)?;
    }
    b.add_extensions(&exts)?;
    match key.pkey().id() {
        Id::ED25519 | Id::ED448 => b.sign(key.pkey(), MessageDigest::null())?,
        _ => b.sign(key.pkey(), MessageDigest::sha256())?,
    }
    Ok(b.build().to_der()?)
}

fn random_serial() -> R<Asn1Integer> {
    let mut bn = BigNum::new()?;
    bn.rand(159, MsbOption::MAYBE_ZERO, false)?;
    Ok(bn.to_asn1_integer()?)
}

fn self_signed(
    key: &Key,
    cn: &str,
    idents: &[String],
    days: u32,
    extra: Option<X509Extension>,
) -> R<X509> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = random_serial()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(key.pkey())?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(days)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    let san = san_ext(idents, &b.x509v3_context(None, None))?;
    b.append_extension(san)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    if let Some(e) = extra {
        b.append_extension(e)?;
    } else {
        b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    }
    b.sign(key.pkey(), MessageDigest::sha256())?;
    Ok(b.build())
}

/// The tls-alpn-01 certificate (RFC 8737) for `ident`: SAN of the
/// identifier, critical acmeIdentifier with SHA-256 of the key
/// authorization, valid 7 days.
pub(crate) fn tls_alpn01_cert(key: &Key, ident: &str, key_authz: &str) -> R<X509> {
    let digest = hash(MessageDigest::sha256(), key_authz.as_bytes())?;
    let mut der = vec![0x04, 0x20];
    der.extend_from_slice(&digest);
    let oid = Asn1Object::from_str("1.3.6.1.5.5.7.1.31")?;
    let value = Asn1OctetString::new_from_bytes(&der)?;
    let ext = X509Extension::new_from_der(&oid, true, &value)?;
    self_signed(
        key,
        "tls-alpn-01-challenge",
        &[ident.to_string()],
        7,
        Some(ext),
    )
}

/// The subject CN of the fallback certificates (as the C module names them).
pub const FALLBACK_CN: &str = "Apache Managed Domain Fallback";

/// The fallback certificate served until a real one exists (§2.4).
/// Key generation slots of the process, one per core: the keys of
/// parallel renewals do not slow each other down, and an account key,
/// which every renewal of a run waits for, goes before them. One per
/// process, as the cores are.
struct KeygenGate {
    /// (slots in use, account keys waiting)
    state: std::sync::Mutex<(usize, usize)>,
    freed: std::sync::Condvar,
    slots: usize,
}

static GATE: std::sync::LazyLock<KeygenGate> = std::sync::LazyLock::new(|| {
    KeygenGate::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});

/// A key generation slot, given back when dropped.
struct Slot<'a>(&'a KeygenGate);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 -= 1;
        self.0.freed.notify_all();
    }
}

impl KeygenGate {
    fn new(slots: usize) -> KeygenGate {
        KeygenGate {
            state: std::sync::Mutex::new((0, 0)),
            freed: std::sync::Condvar::new(),
            slots: slots.max(1),
        }
    }

    /// Waits for a slot (`first`: an account key, ahead of the others);
    /// None when the process is stopping meanwhile.
    fn slot(&self, first: bool) -> Option<Slot<'_>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 += usize::from(first);
        while !(st.0 < self.slots && (first || st.1 == 0)) {
            if crate::base::shutdown::requested() {
                st.1 -= usize::from(first);
                return None;
            }
            let wait = std::time::Duration::from_millis(100);
            st = self
                .freed
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.1 -= usize::from(first);
        st.0 += 1;
        Some(Slot(self))
    }
}

impl Key {
    /// Generates a key in one of the process's key generation slots (see
    /// [`KeygenGate`]); `account`: a key every renewal waits for, first.
    pub(crate) fn generate_in_turn(spec: &KeySpec, account: bool) -> R<Key> {
        let _slot = GATE.slot(account).ok_or_else(|| {
            CryptoError("key generation stopped: the server is shutting down".into())
        })?;
        Key::generate(spec)
    }
}

/// One key per key spec, made once and handed out again: the fallback
/// certificates of a generation's MDs share it (a fallback only serves a
/// 503 behind an untrusted certificate, its key protects nothing), so a
/// start with many new MDs pays one key generation, not one per MD.
#[derive(Default)]
pub struct KeyCache(std::sync::Mutex<std::collections::HashMap<String, Key>>);

impl KeyCache {
    pub fn get(&self, spec: &KeySpec) -> R<Key> {
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = keys.get(&spec.name()) {
            return Ok(k.clone());
        }
        let key = Key::generate(spec)?;
        keys.insert(spec.name(), key.clone());
        Ok(key)
    }
}

pub(crate) fn fallback_cert(key: &Key, domains: &[String]) -> R<X509> {
    self_signed(key, FALLBACK_CN, domains, 14, None)
}

/// All certificates of a PEM chain, in order.
pub(crate) fn chain_from_pem(pem: &[u8]) -> R<Vec<X509>> {
    Ok(X509::stack_from_pem(pem)?)
}

/// A chain as PEM, leaf first.
pub(crate) fn chain_to_pem(chain: &[X509]) -> R<Vec<u8>> {
    let mut out = Vec::new();
    for c in chain {
        out.extend(c.to_pem()?);
    }
    Ok(out)
}

/// DNS names and IP addresses of a certificate's SAN.
pub(crate) fn cert_names(cert: &X509) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(names) = cert.subject_alt_names() {
        for n in &names {
            if let Some(d) = n.dnsname() {
                out.push(d.to_string());
            } else if let Some(ip) = n.ipaddress() {
                let ip = match ip.len() {
                    4 => Some(IpAddr::from(<[u8; 4]>::try_from(ip).unwrap_or_default())),
                    16 => Some(IpAddr::from(<[u8; 16]>::try_from(ip).unwrap_or_default())),
                    _ => None,
                };
                if let Some(ip) = ip {
                    out.push(ip.to_string());
                }
            }
        }
    }
    out
}

/// ASN.1 time to µs since the epoch.
pub(crate) fn asn1_micros(t: &openssl::asn1::Asn1TimeRef) -> crate::base::time::Micros {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).expect("epoch");
    epoch
        .diff(t)
        .map(|d| (i64::from(d.days) * 86_400 + i64::from(d.secs)) * crate::base::time::USEC_PER_SEC)
        .unwrap_or(0)
}

/// The ARI certificate id (§4.9): AKI key id and the serial's magnitude.
pub(crate) fn ari_cert_id(c: &X509) -> Option<String> {
    let aki = c.authority_key_id()?;
    let serial = c.serial_number().to_bn().ok()?.to_vec();
    Some(format!(
        "{}.{}",
        b64url_encode(aki.as_slice()),
        b64url_encode(&serial)
    ))
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_account_key_goes_before_waiting_domain_keys() {
        use std::sync::{Arc, Mutex};
        let gate = Arc::new(KeygenGate::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = gate.slot(false).unwrap();
        let spawn = |name: &'static str, first: bool| {
            let (gate, order) = (gate.clone(), order.clone());
            std::thread::spawn(move || {
                let _s = gate.slot(first).unwrap();
                order.lock().unwrap().push(name);
                std::thread::sleep(std::time::Duration::from_millis(20));
            })
        };
        let domain = spawn("domain", false);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let account = spawn("account", true);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(order.lock().unwrap().is_empty(), "the only slot is held");
        drop(held);
        domain.join().unwrap();
        account.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["account", "domain"]);
    }

    use super::*;

    #[test]
    fn keys_roundtrip_plain_and_encrypted() {
        let k = Key::generate(&KeySpec::Ec("P-256".into())).unwrap();
        let plain = k.to_pem(None).unwrap();
        assert!(String::from_utf8_lossy(&plain).starts_with("-----BEGIN PRIVATE KEY-----"));
        let pass = [0u8, 1, 2, 255, 0, 7].repeat(8); // 48 bytes with NULs, like a store key
        let enc = k.to_pem(Some(&pass)).unwrap();
        assert!(String::from_utf8_lossy(&enc).starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = Key::from_pem(&enc, Some(&pass)).unwrap();
        assert!(back.pkey().public_eq(k.pkey()));
        assert!(Key::from_pem(&enc, Some(&[9u8; 48])).is_err());
        assert!(Key::from_pem(&plain, Some(&pass)).is_ok());
    }

    #[test]
    fn key_specs() {
        assert_eq!(
            Key::generate(&KeySpec::Rsa(3072)).unwrap().pkey().bits(),
            3072
        );
        assert_eq!(
            Key::generate(&KeySpec::Default).unwrap().pkey().bits(),
            2048
        );
        for c in ["secp384r1", "P-384", "prime256v1", "secp521r1"] {
            Key::generate(&KeySpec::Ec(c.into())).unwrap();
        }
        assert_eq!(
            Key::generate(&KeySpec::Ec("nope".into())).unwrap_err().0,
            "ec curve unknown: nope"
        );
    }

    #[test]
    fn rfc7638_thumbprint() {
        // The example key of RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let e = "AQAB";
        let rsa = Rsa::from_public_components(
            BigNum::from_slice(&crate::base::util::b64url_decode(n).unwrap()).unwrap(),
            BigNum::from_slice(&crate::base::util::b64url_decode(e).unwrap()).unwrap(),
        )
        .unwrap();
        let jwk = json!({"e": e, "kty": "RSA", "n": n});
        let text = serde_json::to_string(&jwk).unwrap();
        let tp = b64url_encode(&hash(MessageDigest::sha256(), text.as_bytes()).unwrap());
        assert_eq!(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        // and our JWK of that key is the same text
        let pk = PKey::from_rsa(rsa).unwrap();
        let rsa = pk.rsa().unwrap();
        assert_eq!(b64url_encode(&rsa.n().to_vec()), n);
    }

    #[test]
    fn jws_verifies() {
        for spec in [
            KeySpec::Rsa(2048),
            KeySpec::Ec("P-256".into()),
            KeySpec::Ec("P-384".into()),
        ] {
            let k = Key::generate(&spec).unwrap();
            let mut prot = Map::new();
            prot.insert("alg".into(), json!(k.jws_alg().unwrap()));
            prot.insert("nonce".into(), json!("n1"));
            let j = jws(&k, &prot, r#"{"a":1}"#).unwrap();
            let signing = format!(
                "{}.{}",
                j["protected"].as_str().unwrap(),
                j["payload"].as_str().unwrap()
            );
            let sig = crate::base::util::b64url_decode(j["signature"].as_str().unwrap()).unwrap();
            let ok = if k.pkey().id() == Id::RSA {
                let mut v =
                    openssl::sign::Verifier::new(MessageDigest::sha256(), k.pkey()).unwrap();
                v.update(signing.as_bytes()).unwrap();
                v.verify(&sig).unwrap()
            } else {
                let half = sig.len() / 2;
                let es = EcdsaSig::from_private_components(
                    BigNum::from_slice(&sig[..half]).unwrap(),
                    BigNum::from_slice(&sig[half..]).unwrap(),
                )
                .unwrap();
                let md = if half == 32 {
                    MessageDigest::sha256()
                } else {
                    MessageDigest::sha384()
                };
                es.verify(
                    &hash(md, signing.as_bytes()).unwrap(),
                    &k.pkey().ec_key().unwrap(),
                )
                .unwrap()
            };
            assert!(ok, "{spec:?}");
            assert_eq!(k.thumbprint().unwrap().len(), 43);
        }
    }

    #[test]
    fn eab() {
        let k = Key::generate_rsa(2048).unwrap();
        let j = eab_jws(
            "kid-1",
            "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
            "https://ca/new-acct",
            &k.jwk().unwrap(),
        )
        .unwrap();
        let prot = crate::base::util::b64url_decode(j["protected"].as_str().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(prot).unwrap(),
            r#"{"alg":"HS256","kid":"kid-1","url":"https://ca/new-acct"}"#
        );
        assert_eq!(
            crate::base::util::b64url_decode(j["signature"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert!(eab_jws("k", "not base64!", "u", &json!({})).is_err());
    }

    #[test]
    fn csr_contents() {
        let k = Key::generate(&KeySpec::Rsa(2048)).unwrap();
        let idents = vec![
            "a.example.org".to_string(),
            "*.b.example.org".into(),
            "127.0.0.1".into(),
        ];
        let der = csr_der(&k, &idents, true).unwrap();
        let req = X509Req::from_der(&der).unwrap();
        assert!(req.verify(k.pkey()).unwrap());
        let text = String::from_utf8_lossy(&req.to_text().unwrap()).to_string();
        assert!(
            text.contains("CN = a.example.org") || text.contains("CN=a.example.org"),
            "{text}"
        );
        assert!(text.contains("DNS:a.example.org"));
        assert!(text.contains("DNS:*.b.example.org"));
        assert!(text.contains("IP Address:127.0.0.1"));
        assert!(
            text.contains("TLS Feature") || text.contains("1.3.6.1.5.5.7.1.24"),
            "{text}"
        );
        // an IP first: no CN
        let der = csr_der(&k, &["::1".to_string()], false).unwrap();
        let text = String::from_utf8_lossy(&X509Req::from_der(&der).unwrap().to_text().unwrap())
            .to_string();
        assert!(!text.contains("CN"), "{text}");
        assert!(text.contains("IP Address:0:0:0:0:0:0:0:1"), "{text}");
    }

    #[test]
    fn alpn_and_fallback_certs() {
        let k = Key::generate(&KeySpec::Ec("P-256".into())).unwrap();
        let c = tls_alpn01_cert(&k, "a.example.org", "tok.thumb").unwrap();
        assert!(k.matches(&c));
        assert_eq!(cert_names(&c), ["a.example.org"]);
        // Extension ::= SEQUENCE { id-pe-acmeIdentifier, critical TRUE,
        //   OCTET STRING { OCTET STRING (32) SHA-256(key authorization) } }
        let digest = hash(MessageDigest::sha256(), b"tok.thumb").unwrap();
        let mut ext = vec![
            0x30, 0x31, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f,
        ];
        ext.extend([0x01, 0x01, 0xff, 0x04, 0x22, 0x04, 0x20]);
        ext.extend_from_slice(&digest);
        let der = c.to_der().unwrap();
        assert!(der.windows(ext.len()).any(|w| w == ext.as_slice()));
        let f = fallback_cert(&k, &["a.org".into(), "www.a.org".into()]).unwrap();
        assert_eq!(cert_names(&f), ["a.org", "www.a.org"]);
        let other = Key::generate(&KeySpec::Ec("P-256".into())).unwrap();
        assert!(!other.matches(&f));
        let pem = chain_to_pem(&[f.clone(), c.clone()]).unwrap();
        assert_eq!(chain_from_pem(&pem).unwrap().len(), 2);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_dns_name("127.0.0.1").unwrap(),
            "1.0.0.127.in-addr.arpa"
        );
        assert!(reverse_dns_name("::1").unwrap().starts_with("1.0.0.0."));
        assert!(reverse_dns_name("::1").unwrap().ends_with(".ip6.arpa"));
        assert_eq!(reverse_dns_name("example.org"), None);
        assert_eq!(ident_type("10.0.0.1"), "ip");
        assert_eq!(ident_type("*.a.org"), "dns");
    }
}
