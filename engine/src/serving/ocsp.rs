//! OCSP stapling (spec §8): which certificates are stapled, the OCSP
//! request and the checks of its response, and the store files
//! `ocsp/<md|other>/ocsp-<sha1hex>.json` the C module reads and writes.
//!
//! The responder's signature is not verified (as in the C module): the
//! response is only handed on to TLS clients, which verify it themselves.

use crate::base::http::Client;
use crate::base::time::{self, Micros, TimeSlice};
use crate::base::util::{self, hex};
use crate::store::{Group, Store, StoreError};
use openssl::hash::MessageDigest;
use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspRequest, OcspResponse, OcspResponseStatus};
use openssl::x509::X509;
use serde_json::{json, Value};

/// Directory of certificates that belong to no MD.
pub const DIR_OTHER: &str = "other";

/// Why no usable OCSP response came; the text says what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcspError {
    /// The request could not be made (certificate id, nonce).
    Request(String),
    /// The responder could not be reached, or answered with an HTTP error.
    Responder(String),
    /// The answer is no usable response for this certificate.
    Invalid(String),
}

impl std::fmt::Display for OcspError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request(m) | Responder(m) | Invalid(m) => f.write_str(m),
        }
    }
}

use OcspError::{Invalid, Request, Responder};

/// The keep window's normalisation period (7 days).
pub const KEEP_NORM: Micros = 7 * 86_400 * time::USEC_PER_SEC;
/// 2.4.71's limits of the OCSP transfer.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Certificate status as stored and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked,
    Unknown,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Good => "good",
            CertStatus::Revoked => "revoked",
            CertStatus::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Option<CertStatus> {
        match s {
            "good" => Some(CertStatus::Good),
            "revoked" => Some(CertStatus::Revoked),
            "unknown" => Some(CertStatus::Unknown),
            _ => None,
        }
    }
}

/// A checked OCSP response for one certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// DER OCSPResponse, as stapled.
    pub der: Vec<u8>,
    pub status: CertStatus,
    pub valid_from: Micros,
    pub valid_until: Micros,
}

impl Response {
    /// The store file's JSON (§8.3).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "response": util::b64url_encode(&self.der),
            "status": self.status.as_str(),
            "valid": {
                "from": time::rfc822(self.valid_from),
                "until": time::rfc822(self.valid_until),
            },
        })
    }

    /// A store file; `None` without a usable `response`.
    pub fn from_json(v: &Value) -> Option<Response> {
        let der = util::b64url_decode(v.get("response")?.as_str()?)?;
        if der.is_empty() {
            return None;
        }
        let status = v
            .get("status")
            .and_then(Value::as_str)
            .and_then(CertStatus::parse)
            .unwrap_or(CertStatus::Unknown);
        let t = |k: &str| {
            v.get("valid")
                .and_then(|x| x.get(k))
                .and_then(Value::as_str)
                .and_then(time::parse_rfc822)
                .unwrap_or(0)
        };
        Some(Response {
            der,
            status,
            valid_from: t("from"),
            valid_until: t("until"),
        })
    }

    /// Start of the renewal window: `until − window` (window relative to
    /// the response's lifetime).
    pub(crate) fn renew_at(&self, window: &TimeSlice) -> Micros {
        self.valid_until - window.length_within(self.valid_until - self.valid_from)
    }
}

/// Why a certificate cannot be primed.
#[derive(Debug, Clone, PartialEq)]
pub enum PrimeError {
    /// AH10269: fewer than two certificates (leaf and issuer).
    TooFew,
    /// AH10268: the PEM does not parse.
    Parse(String),
}

/// A certificate registered for stapling.
#[derive(Clone)]
pub struct Cert {
    /// SHA-1 of the certificate's DER, lower-case hex.
    pub id: String,
    /// `ocsp/<dir>`: the MD's name or `other`.
    pub dir: String,
    /// The first OCSP responder URL of the certificate's AIA.
    pub responder: String,
    cert: X509,
    issuer: X509,
}

impl std::fmt::Debug for Cert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cert")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .field("responder", &self.responder)
            .finish()
    }
}

impl Cert {
    /// From mod_ssl's PEM (leaf, then issuer). `Ok(None)`: the certificate
    /// names no OCSP responder, it is not stapled.
    pub fn from_pem(pem: &[u8], md: Option<&str>) -> Result<Option<Cert>, PrimeError> {
        let certs = X509::stack_from_pem(pem).map_err(|e| PrimeError::Parse(e.to_string()))?;
        if certs.len() < 2 {
            return Err(PrimeError::TooFew);
        }
        let cert = certs[0].clone();
        let issuer = certs[1].clone();
        let Some(responder) = cert
            .ocsp_responders()
            .ok()
            .and_then(|r| r.iter().next().map(|s| s.to_string()))
        else {
            return Ok(None);
        };
        let der = cert
            .to_der()
            .map_err(|e| PrimeError::Parse(e.to_string()))?;
        let id = openssl::hash::hash(MessageDigest::sha1(), &der)
            .map_err(|e| PrimeError::Parse(e.to_string()))?;
        Ok(Some(Cert {
            id: hex(&id),
            dir: md.unwrap_or(DIR_OTHER).to_string(),
            responder,
            cert,
            issuer,
        }))
    }

    /// SHA-256 fingerprint of the certificate, lower-case hex.
    pub(crate) fn sha256(&self) -> String {
        self.cert
            .digest(MessageDigest::sha256())
            .map(|d| hex(&d))
            .unwrap_or_default()
    }

    /// The store file name of this certificate's response.
    pub fn file(&self) -> String {
        format!("ocsp-{}.json", self.id)
    }

    fn cert_id(&self) -> Result<OcspCertId, OcspError> {
        OcspCertId::from_cert(MessageDigest::sha1(), &self.cert, &self.issuer)
            .map_err(|e| Request(format!("cannot make the OCSP certificate id: {e}")))
    }

    /// A DER OCSPRequest for this certificate with a nonce extension.
    pub fn request(&self, nonce: &[u8]) -> Result<Vec<u8>, OcspError> {
        let req_err = |e: openssl::error::ErrorStack| Request(e.to_string());
        let mut req = OcspRequest::new().map_err(req_err)?;
        req.add_id(self.cert_id()?).map_err(req_err)?;
        let der = req.to_der().map_err(req_err)?;
        der::add_nonce(&der, nonce).ok_or_else(|| Request("cannot add the OCSP nonce".into()))
    }

    /// Checks a responder's answer (§8.3) and makes a `Response` of it.
    pub fn check(&self, body: &[u8], nonce: &[u8], now: Micros) -> Result<Response, OcspError> {
        let resp = OcspResponse::from_der(body)
            .map_err(|_| Invalid("the responder's answer is not an OCSP response".into()))?;
        if resp.status() != OcspResponseStatus::SUCCESSFUL {
            return Err(Invalid(format!(
                "the responder answered with status {}",
                response_status(resp.status())
            )));
        }
        let basic = resp
            .basic()
            .map_err(|_| Invalid("the OCSP response has no basic response".into()))?;
        if let Some(theirs) = der::response_nonce(body) {
            if theirs != nonce {
                return Err(Invalid(
                    "the OCSP response's nonce does not match the request's".into(),
                ));
            }
        }
        let id = self.cert_id()?;
        let st = basic.find_status(&id).ok_or_else(|| {
            Invalid("the OCSP response has no status for this certificate".into())
        })?;
        let status = match st.status {
            OcspCertStatus::GOOD => CertStatus::Good,
            OcspCertStatus::REVOKED => CertStatus::Revoked,
            _ => {
                return Err(Invalid(
                    "the responder does not know this certificate (status unknown)".into(),
                ))
            }
        };
        let this = parse_asn1_print(&st.this_update.to_string());
        let from = this.unwrap_or(now);
        let until = st
            .next_update()
            .and_then(|t| parse_asn1_print(&t.to_string()))
            .unwrap_or(from + time::from_secs(12 * 3600));
        Ok(Response {
            der: body.to_vec(),
            status,
            valid_from: from,
            valid_until: until,
        })
    }

    /// Asks the responder (HTTP POST) and checks its answer.
    pub(crate) fn fetch(&self, client: &Client, now: Micros) -> Result<Response, OcspError> {
        let mut nonce = [0u8; 16];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| Request(e.to_string()))?;
        let req = self.request(&nonce)?;
        let resp = client
            .request(
                "POST",
                &self.responder,
                Some((&req, "application/ocsp-request")),
            )
            .map_err(|e| Responder(format!("OCSP request to {} failed: {e}", self.responder)))?;
        if resp.status != 200 {
            return Err(Responder(format!(
                "OCSP responder {} answered with HTTP status {}",
                self.responder, resp.status
            )));
        }
        let at = |m: String| format!("{}: {m}", self.responder);
        self.check(&resp.body, &nonce, now).map_err(|e| match e {
            Request(m) => Request(at(m)),
            Responder(m) => Responder(at(m)),
            Invalid(m) => Invalid(at(m)),
        })
    }

    /// The stored response, if any (an unparsable file counts as none).
    pub fn load(&self, store: &Store) -> Option<Response> {
        self.try_load(store).ok().flatten()
    }

    /// The stored response: `Ok(None)` without a file (or without a
    /// `response` in it, as the C module), `Err` for a file that cannot be
    /// read or parsed.
    pub(crate) fn try_load(&self, store: &Store) -> Result<Option<Response>, StoreError> {
        Ok(store
            .load_json(Group::Ocsp, &self.dir, &self.file())?
            .and_then(|v| Response::from_json(&v)))
    }

    /// Modification time of the store file (µs), 0 when missing.
    pub(crate) fn file_mtime(&self, store: &Store) -> Micros {
        store
            .stat(Group::Ocsp, &self.dir, &self.file())
            .map_or(0, |s| s.modified)
    }

    pub fn save(&self, store: &Store, resp: &Response) -> Result<(), StoreError> {
        store.save_json(Group::Ocsp, &self.dir, &self.file(), &resp.to_json())
    }
}

/// How often a process re-reads a response file from the store once the
/// response is in its renewal window (§8.2).
pub(crate) fn reload_interval(resp: Option<&Response>, now: Micros) -> Micros {
    match resp {
        None => 0,
        Some(r) => {
            let left = r.valid_until - now;
            if left >= time::from_secs(86_400) {
                time::from_secs(3600)
            } else if left >= time::from_secs(60) {
                time::from_secs(60)
            } else {
                time::from_secs(1)
            }
        }
    }
}

/// Deletes response files older than the keep window (§8.3). Returns the
/// paths removed.
pub(crate) fn prune(store: &Store, keep: &TimeSlice, now: Micros) -> Vec<String> {
    let cutoff = now - keep.length_within(KEEP_NORM);
    let mut removed = Vec::new();
    for dir in store.names(Group::Ocsp) {
        for f in store.names_in(Group::Ocsp, &dir) {
            if !(f.starts_with("ocsp") && f.ends_with(".json")) {
                continue;
            }
            let old = store
                .stat(Group::Ocsp, &dir, &f)
                .is_some_and(|s| s.modified < cutoff);
            if old && store.remove_file(Group::Ocsp, &dir, &f).is_ok() {
                removed.push(store.describe(Group::Ocsp, &dir, &f));
            }
        }
    }
    removed
}

fn response_status(s: OcspResponseStatus) -> &'static str {
    match s {
        OcspResponseStatus::MALFORMED_REQUEST => "malformedRequest",
        OcspResponseStatus::INTERNAL_ERROR => "internalError",
        OcspResponseStatus::TRY_LATER => "tryLater",
        OcspResponseStatus::SIG_REQUIRED => "sigRequired",
        OcspResponseStatus::UNAUTHORIZED => "unauthorized",
        _ => "unknown",
    }
}

/// Parses OpenSSL's printed ASN.1 time: `Nov 29 00:00:00 2026 GMT`
/// (seconds may carry a fraction).
pub fn parse_asn1_print(s: &str) -> Option<Micros> {
    let mut it = s.split_whitespace();
    let (mon, day, hms, year) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let hms = hms.split('.').next()?;
    time::parse_rfc822(&format!("{day} {mon} {year} {hms} GMT"))
}

/// Just enough DER to put a nonce into a request and find the nonce of a
/// response (rust-openssl has no safe API for either).
mod der {
    /// id-pkix-ocsp-nonce, 1.3.6.1.5.5.7.48.1.2
    const NONCE_OID: &[u8] = &[
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
    ];

    /// One TLV at the start of `b`: (tag, content, total length).
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], usize)> {
        let tag = *b.first()?;
        let first = *b.get(1)?;
        let (len, hdr) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *b.get(2 + i)? as usize;
            }
            (len, 2 + n)
        };
        let end = hdr.checked_add(len)?;
        Some((tag, b.get(hdr..end)?, end))
    }

    /// The TLVs inside a constructed content.
    fn children(mut b: &[u8]) -> Option<Vec<(u8, &[u8])>> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let (tag, content, n) = tlv(b)?;
            out.push((tag, content));
            b = &b[n..];
        }
        Some(out)
    }

    fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .iter()
                .copied()
                .skip_while(|x| *x == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend_from_slice(&bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// OCSPRequest { TBSRequest { ..., requestList } } gets
    /// `requestExtensions [2] { Extensions { nonce } }` at the end of its
    /// TBSRequest (which OpenSSL wrote without extensions).
    pub(crate) fn add_nonce(req: &[u8], nonce: &[u8]) -> Option<Vec<u8>> {
        let (0x30, outer, _) = tlv(req)? else {
            return None;
        };
        let (0x30, tbs, tbs_len) = tlv(outer)? else {
            return None;
        };
        let rest = &outer[tbs_len..];
        let ext = encode(
            0x30,
            &[NONCE_OID, &encode(0x04, &encode(0x04, nonce))].concat(),
        );
        let exts = encode(0xa2, &encode(0x30, &ext));
        let tbs = encode(0x30, &[tbs, &exts].concat());
        Some(encode(0x30, &[&tbs[..], rest].concat()))
    }

    /// The nonce of an OCSPResponse's BasicOCSPResponse, if it has one.
    pub(crate) fn response_nonce(resp: &[u8]) -> Option<Vec<u8>> {
        let (0x30, outer, _) = tlv(resp)? else {
            return None;
        };
        // responseStatus ENUMERATED, responseBytes [0] EXPLICIT
        let kids = children(outer)?;
        let (_, rb) = kids.iter().find(|(t, _)| *t == 0xa0)?;
        let (0x30, rb, _) = tlv(rb)? else {
            return None;
        };
        let rb = children(rb)?;
        let (0x04, basic) = *rb.get(1)? else {
            return None;
        };
        let (0x30, basic, _) = tlv(basic)? else {
            return None;
        };
        let (0x30, tbs, _) = tlv(basic)? else {
            return None;
        };
        // [0] version?, responderID ([1] | [2]), producedAt, responses,
        // [1] responseExtensions?
        let mut fields = children(tbs)?.into_iter().peekable();
        if fields.peek().map(|f| f.0) == Some(0xa0) {
            fields.next();
        }
        fields.next()?; // responderID
        fields.next()?; // producedAt
        fields.next()?; // responses
        let (0xa1, exts) = fields.next()? else {
            return None;
        };
        let (0x30, exts, _) = tlv(exts)? else {
            return None;
        };
        for (tag, ext) in children(exts)? {
            if tag != 0x30 || !ext.starts_with(NONCE_OID) {
                continue;
            }
            // extnID, critical?, extnValue OCTET STRING
            let (_, value) = *children(ext)?.last()?;
            // the value is an OCTET STRING holding the nonce (RFC 8954);
            // some responders put the bare bytes
            return Some(match tlv(value) {
                Some((0x04, inner, n)) if n == value.len() => inner.to_vec(),
                _ => value.to_vec(),
            });
        }
        None
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn long_lengths_round_trip() {
            let content = vec![7u8; 300];
            let e = encode(0x04, &content);
            assert_eq!(&e[..4], &[0x04, 0x82, 0x01, 0x2c]);
            let (tag, c, n) = tlv(&e).unwrap();
            assert_eq!((tag, c.len(), n), (0x04, 300, e.len()));
        }

        #[test]
        fn random_input_never_panics() {
            let mut buf = [0u8; 64];
            for i in 0..2000 {
                openssl::rand::rand_bytes(&mut buf).unwrap();
                // make some of them start like a SEQUENCE of plausible length
                if i % 2 == 0 {
                    buf[0] = 0x30;
                    buf[1] = (i % 70) as u8;
                }
                let n = 2 + i % 62;
                let _ = response_nonce(&buf[..n]);
                let _ = add_nonce(&buf[..n], b"nonce");
            }
        }

        #[test]
        fn truncated_input_is_none() {
            assert!(tlv(&[0x30, 0x05, 1, 2]).is_none());
            assert!(tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
            assert!(add_nonce(&[0x30, 0x03, 0x30, 0x01], b"n").is_none());
            assert!(response_nonce(&[0x30, 0x00]).is_none());
            assert!(response_nonce(b"garbage").is_none());
        }
    }
}

/// Certificates for tests, with or without an OCSP responder.
#[cfg(test)]
pub(crate) mod test_certs {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::x509::{X509Builder, X509NameBuilder, X509};

    pub fn cert(
        cn: &str,
        ocsp: Option<&str>,
        signer: Option<&PKey<openssl::pkey::Private>>,
    ) -> X509 {
        let key = PKey::ec_gen("prime256v1").unwrap();
        let mut b = X509Builder::new().unwrap();
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        let n = n.build();
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(&n).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(9).unwrap())
            .unwrap();
        if let Some(url) = ocsp {
            let ext = openssl::x509::X509Extension::new_from_der(
                openssl::asn1::Asn1Object::from_str("1.3.6.1.5.5.7.1.1")
                    .unwrap()
                    .as_ref(),
                false,
                &openssl::asn1::Asn1OctetString::new_from_bytes(&aia_der(url)).unwrap(),
            )
            .unwrap();
            b.append_extension(ext).unwrap();
        }
        b.sign(signer.unwrap_or(&key), MessageDigest::sha256())
            .unwrap();
        b.build()
    }

    /// AuthorityInfoAccessSyntax with one OCSP URI.
    fn aia_der(url: &str) -> Vec<u8> {
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
        let mut uri = vec![0x86, url.len() as u8];
        uri.extend_from_slice(url.as_bytes());
        let mut ad = oid.to_vec();
        ad.extend_from_slice(&uri);
        let mut seq = vec![0x30, ad.len() as u8];
        seq.extend_from_slice(&ad);
        let mut outer = vec![0x30, seq.len() as u8];
        outer.extend_from_slice(&seq);
        outer
    }

    pub fn pem(certs: &[&X509]) -> Vec<u8> {
        certs.iter().flat_map(|c| c.to_pem().unwrap()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_certs::*;
    use super::*;

    #[test]
    fn priming_needs_issuer_and_responder() {
        let issuer = cert("issuer", None, None);
        let leaf = cert("leaf", Some("http://127.0.0.1:9/ocsp"), None);
        assert_eq!(
            Cert::from_pem(&pem(&[&leaf]), None).unwrap_err(),
            PrimeError::TooFew
        );
        assert!(matches!(
            Cert::from_pem(
                b"-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n",
                None
            ),
            Err(PrimeError::Parse(_)) | Err(PrimeError::TooFew)
        ));
        let plain = cert("plain", None, None);
        assert!(Cert::from_pem(&pem(&[&plain, &issuer]), None)
            .unwrap()
            .is_none());
        let c = Cert::from_pem(&pem(&[&leaf, &issuer]), Some("example.org"))
            .unwrap()
            .unwrap();
        assert_eq!(c.responder, "http://127.0.0.1:9/ocsp");
        assert_eq!(c.dir, "example.org");
        let sha1 = openssl::hash::hash(MessageDigest::sha1(), &leaf.to_der().unwrap()).unwrap();
        assert_eq!(c.id, hex(&sha1));
        assert_eq!(c.file(), format!("ocsp-{}.json", c.id));
        let other = Cert::from_pem(&pem(&[&leaf, &issuer]), None)
            .unwrap()
            .unwrap();
        assert_eq!(other.dir, "other");
    }

    #[test]
    fn request_carries_nonce_and_parses() {
        let issuer = cert("issuer", None, None);
        let leaf = cert("leaf", Some("http://127.0.0.1:9/ocsp"), None);
        let c = Cert::from_pem(&pem(&[&leaf, &issuer]), None)
            .unwrap()
            .unwrap();
        let nonce = [0xabu8; 16];
        let der = c.request(&nonce).unwrap();
        // still a request OpenSSL reads, now with the nonce extension in it
        assert!(OcspRequest::from_der(&der).is_ok());
        let needle = [&[0x04u8, 0x12, 0x04, 0x10][..], &nonce].concat();
        assert!(der.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn garbage_answers_are_errors() {
        let issuer = cert("issuer", None, None);
        let leaf = cert("leaf", Some("http://127.0.0.1:9/ocsp"), None);
        let c = Cert::from_pem(&pem(&[&leaf, &issuer]), None)
            .unwrap()
            .unwrap();
        assert!(c
            .check(b"<html>", b"n", 0)
            .unwrap_err()
            .to_string()
            .contains("not an OCSP response"));
        // a bare OCSPResponse { tryLater }
        let try_later = [0x30, 0x03, 0x0a, 0x01, 0x03];
        assert!(c
            .check(&try_later, b"n", 0)
            .unwrap_err()
            .to_string()
            .contains("tryLater"));
        assert!(matches!(c.check(&try_later, b"n", 0), Err(Invalid(_))));
    }

    #[test]
    fn json_round_trip_and_windows() {
        let r = Response {
            der: vec![1, 2, 3],
            status: CertStatus::Revoked,
            valid_from: time::from_secs(1_800_000_000),
            valid_until: time::from_secs(1_800_000_000 + 7 * 86_400),
        };
        let v = r.to_json();
        assert_eq!(v["response"], "AQID");
        assert_eq!(v["status"], "revoked");
        assert_eq!(Response::from_json(&v).unwrap(), r);
        assert!(Response::from_json(&json!({"status": "good"})).is_none());
        let w = TimeSlice::percent_of(100 * 86_400 * time::USEC_PER_SEC, 33);
        let at = r.renew_at(&w);
        let expect = r.valid_until - time::from_secs(7 * 86_400 * 33 / 100);
        assert_eq!(at, expect);
        assert_eq!(reload_interval(None, 0), 0);
        assert_eq!(
            reload_interval(Some(&r), r.valid_until - time::from_secs(2 * 86_400)),
            time::from_secs(3600)
        );
        assert_eq!(
            reload_interval(Some(&r), r.valid_until - time::from_secs(120)),
            time::from_secs(60)
        );
        assert_eq!(reload_interval(Some(&r), r.valid_until), time::from_secs(1));
    }

    #[test]
    fn printed_asn1_times() {
        assert_eq!(
            parse_asn1_print("Nov 29 00:00:00 2026 GMT"),
            time::parse_rfc822("Sun, 29 Nov 2026 00:00:00 GMT")
        );
        assert_eq!(
            parse_asn1_print("Jan  2 03:04:05.5 2027 GMT"),
            time::parse_rfc822("2 Jan 2027 03:04:05 GMT")
        );
        assert_eq!(parse_asn1_print("bad"), None);
    }
}
