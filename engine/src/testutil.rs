//! What the unit tests share: a temporary directory that is removed when
//! the test ends (also when it fails).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system's temp dir, unique per process and
/// call, removed with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("md-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An MD of `domains` with default settings.
pub fn md(domains: &[&str]) -> crate::config::Md {
    let def = crate::config::MdDef::new(domains.iter().map(|s| s.to_string()).collect());
    crate::config::Md::from_def(&def, &crate::config::Settings::default(), None)
}

/// A server (virtual host) `name` on 127.0.0.1:443 with ServerAdmin
/// `admin`, as start-up sees it.
pub(crate) fn server(
    id: usize,
    name: &str,
    admin: Option<&str>,
) -> crate::generation::runtime::Server {
    crate::generation::runtime::Server {
        id,
        vhost: crate::config::vhost::VHost {
            name: name.into(),
            port: 443,
            aliases: Vec::new(),
            wild_aliases: Vec::new(),
            addrs: vec![("127.0.0.1".into(), 443)],
            is_base: false,
        },
        contact: None,
        admin: admin.map(str::to_string),
    }
}

/// A new store in a temporary directory (removed when the test ends).
pub(crate) fn tmpstore(tag: &str) -> (TempDir, crate::store::Store) {
    let d = TempDir::new(tag);
    let s = crate::store::Store::open(&d, None, &mut Vec::new()).expect("store");
    (d, s)
}
