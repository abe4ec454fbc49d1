//! How a store file is kept as an etcd value (issue 27): a small envelope
//! with the time it was written (etcd keeps revisions, not times; the
//! engine ages OCSP responses and leftovers by it) and, for private keys,
//! the content sealed with AES-256-GCM under a key that is not in etcd: a
//! file on each node (`MDStoreEtcdSealKey`), read by the parent at start.

use crate::base::time::Micros;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use std::path::Path;

/// The first bytes of an envelope; a value without them is a plain file
/// someone put there (taken as it is, written at time 0).
const MAGIC: &[u8; 4] = b"md1\0";
const SEALED: u8 = 1;
const NONCE: usize = 12;
const TAG: usize = 16;

/// The node-local key private keys are sealed with.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// Reads a key file: 32 bytes, as raw bytes, 64 hex digits or base64
    /// (`openssl rand -out FILE 32`, `openssl rand -hex 32 > FILE`). It must
    /// not be readable by others than its owner.
    pub fn load(path: &Path) -> Result<SealKey, String> {
        use std::os::unix::fs::MetadataExt;
        let what = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {what}: {e}"))?;
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{what} is readable by others (mode {:o}): chmod 600 it, it protects the \
                 private keys in etcd",
                meta.mode() & 0o777
            ));
        }
        let data = std::fs::read(path).map_err(|e| format!("cannot read {what}: {e}"))?;
        SealKey::from_bytes(&data).ok_or_else(|| {
            format!(
                "{what} holds no key: 32 bytes are expected (make one with `openssl rand -out \
                 {what} 32`)"
            )
        })
    }

    /// A key from raw, hex or base64 bytes.
    pub(crate) fn from_bytes(data: &[u8]) -> Option<SealKey> {
        let raw = if data.len() == 32 {
            data.to_vec()
        } else {
            let text = std::str::from_utf8(data).ok()?.trim();
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                (0..32)
                    .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()?
            } else {
                openssl::base64::decode_block(text).ok()?
            }
        };
        raw.try_into().ok().map(SealKey)
    }

    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| e.to_string())?;
        let mut tag = [0u8; TAG];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(&nonce),
            MAGIC,
            plain,
            &mut tag,
        )
        .map_err(|e| e.to_string())?;
        Ok([&nonce[..], &ct, &tag].concat())
    }

    fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE + TAG {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE);
        let (ct, tag) = rest.split_at(rest.len() - TAG);
        decrypt_aead(Cipher::aes_256_gcm(), &self.0, Some(nonce), MAGIC, ct, tag).ok()
    }
}

/// A value as kept in etcd: written at `modified`, `content` sealed when
/// `secret`.
pub(crate) fn wrap(
    content: &[u8],
    modified: Micros,
    secret: Option<&SealKey>,
) -> Result<Vec<u8>, String> {
    let (flags, body) = match secret {
        Some(k) => (SEALED, k.seal(content)?),
        None => (0, content.to_vec()),
    };
    Ok([&MAGIC[..], &[flags], &modified.to_be_bytes(), &body].concat())
}

/// What a value in etcd holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unwrapped {
    /// The content and when it was written.
    Plain(Vec<u8>, Micros),
    /// A sealed value this node has no key for, or another key.
    Sealed(Micros),
}

/// Opens a value (with `key` when it is sealed).
pub(crate) fn unwrap(value: &[u8], key: Option<&SealKey>) -> Unwrapped {
    let head = MAGIC.len() + 1 + 8;
    if value.len() < head || !value.starts_with(MAGIC) {
        return Unwrapped::Plain(value.to_vec(), 0);
    }
    let flags = value[MAGIC.len()];
    let mut t = [0u8; 8];
    t.copy_from_slice(&value[MAGIC.len() + 1..head]);
    let modified = i64::from_be_bytes(t);
    let body = &value[head..];
    if flags & SEALED == 0 {
        return Unwrapped::Plain(body.to_vec(), modified);
    }
    match key.and_then(|k| k.open(body)) {
        Some(p) => Unwrapped::Plain(p, modified),
        None => Unwrapped::Sealed(modified),
    }
}

/// Whether a value is sealed.
pub(crate) fn is_sealed(value: &[u8]) -> bool {
    value.len() > MAGIC.len() && value.starts_with(MAGIC) && value[MAGIC.len()] & SEALED != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let k = SealKey::from_bytes(&[7u8; 32]).unwrap();
        let other = SealKey::from_bytes("11".repeat(32).as_bytes()).unwrap();
        let pem = b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
        let v = wrap(pem, 42, Some(&k)).unwrap();
        assert!(is_sealed(&v));
        assert!(!v.windows(6).any(|w| w == b"secret"));
        assert_eq!(unwrap(&v, Some(&k)), Unwrapped::Plain(pem.to_vec(), 42));
        assert_eq!(unwrap(&v, Some(&other)), Unwrapped::Sealed(42));
        assert_eq!(unwrap(&v, None), Unwrapped::Sealed(42));
        // a flipped bit is found
        let mut bad = v.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(unwrap(&bad, Some(&k)), Unwrapped::Sealed(42));
        let plain = wrap(b"{}", 5, None).unwrap();
        assert!(!is_sealed(&plain));
        assert_eq!(unwrap(&plain, None), Unwrapped::Plain(b"{}".to_vec(), 5));
        // a value put there by someone else
        assert_eq!(unwrap(b"{}", None), Unwrapped::Plain(b"{}".to_vec(), 0));
    }

    #[test]
    fn key_files() {
        let d = crate::testutil::TempDir::new("seal");
        let p = d.join("k");
        std::fs::write(&p, "ab".repeat(32)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SealKey::load(&p)
            .unwrap_err()
            .contains("readable by others"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SealKey::load(&p).unwrap().0, [0xab; 32]);
        std::fs::write(&p, "short").unwrap();
        assert!(SealKey::load(&p)
            .unwrap_err()
            .contains("32 bytes are expected"));
        assert!(
            SealKey::from_bytes(openssl::base64::encode_block(&[1u8; 32]).as_bytes()).is_some()
        );
    }
}
