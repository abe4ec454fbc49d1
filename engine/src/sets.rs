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

/// The live files of an MD: one (key, chain) path pair per key spec, or the
/// static files.
pub fn live_files(store: &Store, md: &Md) -> Vec<(String, String, String)> {
    if !md.cert_files.is_empty() {
        return md
            .cert_files
            .iter()
            .zip(md.key_files.iter())
            .enumerate()
            .map(|(i, (c, k))| (i.to_string(), k.clone(), c.clone()))
            .collect();
    }
    md.effective_specs()
        .iter()
        .map(|s| {
            let sfx = s.file_suffix();
            (
                s.name(),
                store
                    .path(Group::Domains, &md.name, &format!("privkey{sfx}.pem"))
                    .display()
                    .to_string(),
                store
                    .path(Group::Domains, &md.name, &format!("pubcert{sfx}.pem"))
                    .display()
                    .to_string(),
            )
        })
        .collect()
}

/// Checks a (key, chain) pair as mod_ssl loads it: every certificate of
/// the chain parses, there is at least one, the key parses and belongs to
/// the first certificate. An encrypted key is taken as it is when
/// `encrypted_ok` (mod_ssl asks for its pass phrase; only the chain can be
/// checked).
pub fn check_pair(key: &Path, cert: &Path, encrypted_ok: bool) -> Result<(), Broken> {
    let pem = fs::read(cert).map_err(|e| broken(cert, format!("cannot be read ({e})")))?;
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Err(broken(cert, "is empty"));
    }
    let chain = X509::stack_from_pem(&pem).map_err(|e| {
        broken(
            cert,
            format!("is not a PEM certificate chain ({})", reason(&e)),
        )
    })?;
    let Some(leaf) = chain.first() else {
        return Err(broken(cert, "holds no certificate"));
    };
    let kpem = fs::read(key).map_err(|e| broken(key, format!("cannot be read ({e})")))?;
    if kpem.iter().all(u8::is_ascii_whitespace) {
        return Err(broken(key, "is empty"));
    }
    let s = String::from_utf8_lossy(&kpem);
    if encrypted_ok && (s.contains("ENCRYPTED PRIVATE KEY") || s.contains("Proc-Type: 4,ENCRYPTED"))
    {
        return Ok(());
    }
    let pkey = PKey::private_key_from_pem(&kpem)
        .map_err(|e| broken(key, format!("is not a PEM private key ({})", reason(&e))))?;
    let matches = leaf.public_key().is_ok_and(|p| p.public_eq(&pkey));
    if !matches {
        return Err(broken(
            key,
            format!("does not belong to the certificate in {}", cert.display()),
        ));
    }
    Ok(())
}

/// Moves `path` aside to `<path>.broken`; the new name, or why not.
fn set_aside(path: &Path) -> Result<String, String> {
    let to = format!("{}.broken", path.display());
    fs::rename(path, &to)
        .map(|()| to)
        .map_err(|e| format!("cannot move it aside: {e}"))
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
    for (_, key, cert) in live_files(store, md) {
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
            format!("left in place ({e}), not used")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{fallback_cert, Key};
    use crate::keyspec::KeySpec;

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
}
