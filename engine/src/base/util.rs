//! Small helpers: base64url and atomic file writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Lower-case hex without separators (fingerprints, certificate ids).
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// base64url without padding (RFC 4648 §5), as mod_md writes it.
pub(crate) fn b64url_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        let emit = chunk.len() + 1;
        for i in 0..emit {
            out.push(B64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64url (padding and the standard alphabet's `+/` accepted).
pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(out)
}

/// A temp file name beside `path` that no other writer uses: not another
/// thread of this process, nor a process with the same pid on another host
/// that shares the store (a cluster on NFS).
fn tmp_name(path: &Path) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static NONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let nonce = NONCE.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() & 0xffff_ffff
    });
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}.{nonce:08x}.{seq}", std::process::id()));
    path.with_file_name(name)
}

/// Whether `name` is one of [`tmp_name`]'s (a writer that died leaves it).
pub(crate) fn is_tmp_name(name: &str) -> bool {
    name.contains(".tmp.")
}

/// Removes temp files that writers which died left in `dir` (not its
/// subdirectories), if older than `age`; returns how many.
pub(crate) fn remove_stale_tmp(dir: &Path, age: std::time::Duration) -> usize {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_tmp_name(&name) {
            continue;
        }
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|el| el >= age);
        if old && fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

fn write_tmp(path: &Path, data: &[u8], mode: u32) -> io::Result<PathBuf> {
    write_tmp_sync(path, data, mode, true)
}

fn write_tmp_sync(path: &Path, data: &[u8], mode: u32, sync: bool) -> io::Result<PathBuf> {
    let tmp = tmp_name(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let res = (|| {
        f.write_all(data)?;
        // the umask may have narrowed the mode; set it exactly
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if sync {
            f.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Replaces `path` atomically: temp file with `mode`, fsync, rename, fsync
/// of the directory. Readers see the old or the new content, never a part.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_tmp(path, data, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path);
    Ok(())
}

/// Like [`write_atomic`] without the fsyncs: for derived data that is
/// rebuilt at every start (a crash leaves the old or the new file, and at
/// worst an outdated copy that the next start rewrites).
pub(crate) fn write_atomic_nosync(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_tmp_sync(path, data, mode, false)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Creates `path` with `data` only if it does not exist yet, atomically:
/// `ErrorKind::AlreadyExists` when another writer was first. `durable`:
/// forced to disk (file and directory) before it returns.
pub(crate) fn create_exclusive(
    path: &Path,
    data: &[u8],
    mode: u32,
    durable: bool,
) -> io::Result<()> {
    let tmp = write_tmp_sync(path, data, mode, durable)?;
    let res = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    res?;
    if durable {
        sync_dir(path);
    }
    Ok(())
}

/// A serde field of a file another writer may have written: a value of
/// the wrong type is read as the default, the rest of the file is kept
/// (`#[serde(default, deserialize_with = "crate::base::util::lenient")]`).
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    Ok(T::deserialize(v).unwrap_or_default())
}

/// JSON as jansson writes it with `JSON_INDENT(2)`: 2-space indent, no
/// trailing newline.
pub fn json_pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into())
}

/// Splits a command line like `apr_tokenize_to_argv`: whitespace separates
/// words; double or single quotes group; a backslash escapes the next
/// character inside quotes.
pub(crate) fn tokenize_argv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) if c == '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            Some(_) => cur.push(c),
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// What identifies one version of a file: a file the store replaced (by
/// a rename: a new inode) or changed has another stamp. One `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileStamp {
    /// None: the file is not there (or cannot be looked at).
    pub fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv() {
        assert_eq!(
            tokenize_argv("  /bin/cmd a  'b c' \"d e\" "),
            ["/bin/cmd", "a", "b c", "d e"]
        );
        assert_eq!(tokenize_argv(""), Vec::<String>::new());
        assert_eq!(tokenize_argv("x \"a\\\"b\""), ["x", "a\"b"]);
    }

    #[test]
    fn b64() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"\xfb\xff\xfe", "-__-"),
        ] {
            assert_eq!(b64url_encode(raw), enc);
            assert_eq!(b64url_decode(enc).as_deref(), Some(raw));
        }
        assert_eq!(b64url_decode("Zm9v=").as_deref(), Some(&b"foo"[..]));
        assert_eq!(b64url_decode("Z"), None);
        assert_eq!(b64url_decode("Zm$v"), None);
    }

    #[test]
    fn atomic_writes() {
        let dir = crate::testutil::TempDir::new("util");
        let p = dir.join("a.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let q = dir.join("b.json");
        create_exclusive(&q, b"first", 0o600, true).unwrap();
        let e = create_exclusive(&q, b"second", 0o600, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&q).unwrap(), b"first");
        assert_eq!(
            fs::metadata(&q).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // no temp files left behind
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
