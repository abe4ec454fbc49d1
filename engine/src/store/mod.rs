//! The file store (spec §5.1–5.4): `md_store.json` with the store key, and
//! the group directories with their modes and ownership. Compatible both ways
//! with the C module's store.

mod io;
pub mod lease;
mod lock;
pub use lock::StoreLock;
pub mod request;
pub mod sets;

use crate::base::log::{Level, Note};
use crate::base::util::{self, b64url_decode, b64url_encode, json_pretty};
use serde_json::{json, Value};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const STORE_FILE: &str = "md_store.json";
pub const STORE_VERSION: f64 = 3.0;
pub const KEY_LEN: usize = 48;

/// Store groups (sub directories of the root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    None,
    Accounts,
    Challenges,
    Domains,
    Staging,
    Archive,
    Tmp,
    Ocsp,
}

impl Group {
    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            Group::None => "",
            Group::Accounts => "accounts",
            Group::Challenges => "challenges",
            Group::Domains => "domains",
            Group::Staging => "staging",
            Group::Archive => "archive",
            Group::Tmp => "tmp",
            Group::Ocsp => "ocsp",
        }
    }

    /// Mode a group directory is created with (the C module's).
    pub(crate) fn create_mode(self) -> u32 {
        match self {
            Group::None => 0o755,
            Group::Domains | Group::Tmp | Group::Archive => 0o700,
            _ => 0o750,
        }
    }

    /// Mode of a group directory once something is stored in it, and of
    /// the per-name directories in it: as the C module, `accounts`,
    /// `staging`, `challenges` and `ocsp` open up to 0755 (the renewal job
    /// running as httpd's User reads the accounts the parent installed).
    pub(crate) fn used_mode(self) -> u32 {
        match self {
            Group::Domains | Group::Tmp | Group::Archive => 0o700,
            _ => 0o755,
        }
    }

    /// Whether the group directory is handed to httpd's `User` (the renewal
    /// job in the child writes there).
    pub(crate) fn owned_by_user(self) -> bool {
        matches!(self, Group::Challenges | Group::Staging | Group::Ocsp)
    }

    /// Whether private keys in this group are stored encrypted.
    pub(crate) fn encrypts_keys(self) -> bool {
        !matches!(self, Group::Domains | Group::Challenges | Group::Tmp)
    }
}

/// The file name of an account's (encrypted) private key.
pub const ACCOUNT_KEY: &str = "account.pem";

/// The groups that exist from the first start on (§2.2 step 2).
pub const STARTUP_GROUPS: [Group; 4] = [
    Group::Challenges,
    Group::Staging,
    Group::Accounts,
    Group::Ocsp,
];

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    key: Vec<u8>,
    /// httpd's `User`, when the store was opened by a root parent.
    user: Option<u32>,
}

/// Why the store cannot be used; `msg` says what and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub msg: String,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

fn err(msg: impl Into<String>) -> StoreError {
    StoreError { msg: msg.into() }
}

/// Creates `dir` (and parents) with `mode` if missing; returns whether it
/// was created.
fn ensure_dir(dir: &Path, mode: u32) -> std::io::Result<bool> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(false),
        Ok(_) => Err(std::io::Error::new(
            ErrorKind::AlreadyExists,
            format!("{} exists but is not a directory", dir.display()),
        )),
        Err(_) => {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
            Ok(true)
        }
    }
}

impl Store {
    /// Opens the store at `root`, creating it (and `md_store.json` with a new
    /// key) when missing, and makes sure the start-up group directories
    /// exist. `user` is the uid to hand the child-written groups to (only
    /// when the server runs as root).
    pub fn open(
        root: &Path,
        user: Option<u32>,
        notes: &mut Vec<Note>,
    ) -> Result<Store, StoreError> {
        if !root.exists() {
            notes.push(Note::new(
                Level::Info,
                format!(
                    "store directory does not exist, creating {}",
                    root.display()
                ),
            ));
            fs::create_dir_all(root)
                .and_then(|()| fs::set_permissions(root, fs::Permissions::from_mode(0o700)))
                .and_then(|()| fs::set_permissions(root, fs::Permissions::from_mode(0o755)))
                .map_err(|e| {
                    err(format!(
                        "cannot create the store directory {}: {e}. Check MDStoreDir and the \
                         permissions of its parent directory.",
                        root.display()
                    ))
                })?;
        } else if !root.is_dir() {
            return Err(err(format!(
                "the store path {} exists but is not a directory; check MDStoreDir",
                root.display()
            )));
        }
        let key = Self::load_or_create_key(root, notes)?;
        let store = Store {
            root: root.to_path_buf(),
            key,
            user,
        };
        // A store that cannot be written (full, read-only, permissions)
        // still serves what it holds (issue 25): a group that cannot be set
        // up is said, and what needs it fails later with its own error.
        for g in STARTUP_GROUPS {
            if let Err(e) = store.ensure_group(g, user) {
                notes.push(Note::new(
                    Level::Error,
                    format!(
                        "cannot set up store directory {}: {e}; what the module writes there \
                         fails until it can be written",
                        store.group_dir(g).display()
                    ),
                ));
            }
        }
        // Account keys written by a root parent before they were handed to
        // `User` (earlier versions of this module): the renewal job could
        // not read them and registered a new account on every renewal.
        for id in store.names(Group::Accounts) {
            let path = store.path(Group::Accounts, &id, ACCOUNT_KEY);
            if let Err(e) = store.hand_to_user(&path) {
                notes.push(Note::new(
                    Level::Warn,
                    format!(
                        "AH10082: Can't change owner of {}: {e}; the renewal job running as \
                         httpd's User may not be able to use this ACME account",
                        path.display()
                    ),
                ));
            }
        }
        Ok(store)
    }

    /// Gives a file to httpd's `User` (root parent only; a no-op otherwise
    /// and for files that are missing or already theirs).
    fn hand_to_user(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Some(uid) = self.user else {
            return Ok(());
        };
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_file() && m.uid() != uid => {
                std::os::unix::fs::chown(path, Some(uid), None)
            }
            _ => Ok(()),
        }
    }

    fn load_or_create_key(root: &Path, notes: &mut Vec<Note>) -> Result<Vec<u8>, StoreError> {
        let path = root.join(STORE_FILE);
        for _ in 0..3 {
            match fs::read_to_string(&path) {
                Ok(text) => return Self::read_store_file(root, &path, &text, notes),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let mut key = vec![0u8; KEY_LEN];
                    openssl::rand::rand_bytes(&mut key)
                        .map_err(|e| err(format!("cannot generate the store key: {e}")))?;
                    let doc =
                        json!({"store": {"version": STORE_VERSION}, "key": b64url_encode(&key)});
                    match util::create_exclusive(&path, json_pretty(&doc).as_bytes(), 0o600) {
                        Ok(()) => return Ok(key),
                        // another process created it first: read theirs
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                        Err(e) => {
                            return Err(err(format!("cannot create {}: {e}", path.display())))
                        }
                    }
                }
                Err(e) => return Err(err(format!("cannot read {}: {e}", path.display()))),
            }
        }
        Err(err(format!("cannot create or read {}", path.display())))
    }

    fn read_store_file(
        root: &Path,
        path: &Path,
        text: &str,
        notes: &mut Vec<Note>,
    ) -> Result<Vec<u8>, StoreError> {
        let mut doc: Value = serde_json::from_str(text).map_err(|e| {
            err(format!(
                "The central store file {} seems to exist, but its content are not readable as \
                 JSON ({e}). If you have not changed it yourself, restore it from a backup; \
                 without its key, the encrypted keys in 'accounts' and 'staging' cannot be read. \
                 Removing the store directory makes the module start over with new accounts.",
                path.display()
            ))
        })?;
        let version = doc
            .pointer("/store/version")
            .and_then(Value::as_f64)
            .filter(|v| *v > 0.0)
            .unwrap_or(1.0);
        if version > STORE_VERSION {
            return Err(err(format!(
                "version too new: {version}. The store at {} was written by a newer mod_md; \
                 this module understands store version {STORE_VERSION} and leaves it untouched. \
                 Use the newer module or point MDStoreDir elsewhere.",
                root.display()
            )));
        }
        let key = match doc.get("key").and_then(Value::as_str) {
            None => {
                return Err(err(format!(
                "missing key: key (in {}). The store file is damaged; restore it from a backup.",
                path.display()
            )))
            }
            Some(k) => b64url_decode(k)
                .filter(|k| k.len() == KEY_LEN)
                .ok_or_else(|| {
                    err(format!(
                    "key length unexpected (in {}); expected {KEY_LEN} bytes. The store file is \
                     damaged; restore it from a backup.",
                    path.display()
                ))
                })?,
        };
        if version < STORE_VERSION {
            if version < 2.0 {
                migrate_v1(root, notes);
            }
            if let Some(o) = doc.as_object_mut() {
                o.remove("version");
            }
            doc["store"] = json!({"version": STORE_VERSION});
            util::write_atomic(path, json_pretty(&doc).as_bytes(), 0o600)
                .map_err(|e| err(format!("cannot update {}: {e}", path.display())))?;
            notes.push(Note::new(
                Level::Info,
                format!(
                    "store {} migrated from version {version} to {STORE_VERSION}",
                    root.display()
                ),
            ));
        }
        Ok(key)
    }

    /// The uid child-written parts of the store are handed to (a root
    /// parent), if any.
    pub fn user(&self) -> Option<u32> {
        self.user
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The 48 raw key bytes used as pass phrase for encrypted keys.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn group_dir(&self, g: Group) -> PathBuf {
        if g == Group::None {
            self.root.clone()
        } else {
            self.root.join(g.dir_name())
        }
    }

    /// Creates a group directory with its mode and, for child-written
    /// groups, hands it to `user`.
    pub(crate) fn ensure_group(&self, g: Group, user: Option<u32>) -> std::io::Result<()> {
        let dir = self.group_dir(g);
        if !ensure_dir(&dir, g.create_mode())?
            && g == Group::Accounts
            && !sorted_dir(&dir).is_empty()
        {
            // accounts in use are open to the renewal job, as after the C
            // module's installation (earlier versions of this module left
            // them 0750 and the child registered a new account every time)
            set_mode(&dir, g.used_mode())?;
        }
        if let (true, Some(uid)) = (g.owned_by_user(), user) {
            use std::os::unix::fs::MetadataExt;
            // only when it is another's (a read-only store refuses even a
            // chown to the same owner)
            if fs::metadata(&dir)?.uid() != uid {
                std::os::unix::fs::chown(&dir, Some(uid), None)?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Removes the temp files that writers which died (a crash, a killed
    /// node of a cluster) left in the store's directories, once they are
    /// ten minutes old; returns how many.
    pub(crate) fn remove_stale_tmp(&self) -> usize {
        let age = std::time::Duration::from_secs(600);
        let mut n = util::remove_stale_tmp(&self.root, age);
        for g in [
            Group::Accounts,
            Group::Challenges,
            Group::Domains,
            Group::Staging,
            Group::Ocsp,
        ] {
            let dir = self.group_dir(g);
            n += util::remove_stale_tmp(&dir, age);
            for name in sorted_dir(&dir) {
                n += util::remove_stale_tmp(&dir.join(name), age);
            }
        }
        n
    }

    /// Gives a group directory its mode of a group in use (the parent does
    /// this when it installs a staged set, as the C module does).
    pub(crate) fn open_group(&self, g: Group) -> Result<(), StoreError> {
        let dir = self.group_dir(g);
        set_mode(&dir, g.used_mode())
            .map_err(|e| err(format!("cannot set the mode of {}: {e}", dir.display())))
    }
}

/// Sets a directory's mode unless it has it already (a directory owned by
/// someone else with the right mode is fine).
fn set_mode(dir: &Path, mode: u32) -> std::io::Result<()> {
    if fs::metadata(dir)?.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Entry names of a directory, sorted; none when it cannot be read.
fn sorted_dir(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Mode of a file written into a group: private keys are always 0600 (the
/// C module leaves staged keys 0644); other files follow the group.
pub(crate) fn file_mode(g: Group, is_key: bool) -> u32 {
    if is_key {
        return 0o600;
    }
    match g {
        Group::Domains | Group::Tmp | Group::Archive | Group::None => 0o600,
        _ => 0o644,
    }
}

/// v1 → v2: `pkey.pem` becomes `privkey.pem`, `cert.pem` + `chain.pem`
/// become `pubcert.pem` in `domains` and `archive`.
fn migrate_v1(root: &Path, notes: &mut Vec<Note>) {
    for group in [Group::Domains, Group::Archive] {
        let Ok(entries) = fs::read_dir(root.join(group.dir_name())) else {
            continue;
        };
        for dir in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
            let pkey = dir.join("pkey.pem");
            if pkey.exists() {
                if let Err(e) = fs::rename(&pkey, dir.join("privkey.pem")) {
                    notes.push(Note::new(
                        Level::Warn,
                        format!("migrating {}: {e}", pkey.display()),
                    ));
                }
            }
            if let Ok(cert) = fs::read(dir.join("cert.pem")) {
                let mut chain = cert;
                if let Ok(more) = fs::read(dir.join("chain.pem")) {
                    chain.extend_from_slice(&more);
                }
                let _ = util::write_atomic(&dir.join("pubcert.pem"), &chain, 0o600);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("md-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn create_and_reopen() {
        let root = tmpdir("create").join("md");
        let mut notes = Vec::new();
        let s = Store::open(&root, None, &mut notes).unwrap();
        assert!(notes[0]
            .msg
            .starts_with("store directory does not exist, creating"));
        assert_eq!(s.key().len(), KEY_LEN);
        assert_eq!(mode(&root), 0o755);
        assert_eq!(mode(&root.join(STORE_FILE)), 0o600);
        for g in STARTUP_GROUPS {
            assert_eq!(mode(&s.group_dir(g)), 0o750, "{g:?}");
        }
        let text = fs::read_to_string(root.join(STORE_FILE)).unwrap();
        assert!(text.starts_with("{\n  \"store\": {\n    \"version\": 3.0\n  },\n  \"key\": \""));
        assert!(!text.ends_with('\n'));
        // a group in use left 0750 by an earlier version is opened up again
        fs::create_dir(s.group_dir(Group::Accounts).join("ACME-x-0000")).unwrap();
        let again = Store::open(&root, None, &mut Vec::new()).unwrap();
        assert_eq!(again.key(), s.key());
        assert_eq!(mode(&s.group_dir(Group::Accounts)), 0o755);
        fs::remove_dir_all(root.parent().unwrap()).unwrap();
    }

    #[test]
    fn bad_store_files() {
        let root = tmpdir("bad");
        fs::create_dir_all(&root).unwrap();
        let f = root.join(STORE_FILE);
        let cases = [
            ("{not json", "not readable as JSON"),
            (
                r#"{"store":{"version":4.0},"key":"x"}"#,
                "version too new: 4",
            ),
            (r#"{"store":{"version":3.0}}"#, "missing key: key"),
            (
                r#"{"store":{"version":3.0},"key":"Zm9v"}"#,
                "key length unexpected",
            ),
        ];
        for (content, expect) in cases {
            fs::write(&f, content).unwrap();
            let e = Store::open(&root, None, &mut Vec::new()).unwrap_err();
            assert!(e.msg.contains(expect), "{content}: {}", e.msg);
            // the file is left untouched
            assert_eq!(fs::read_to_string(&f).unwrap(), content);
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn group_files() {
        let root = tmpdir("files");
        let s = Store::open(&root, None, &mut Vec::new()).unwrap();
        s.save_json(
            Group::Staging,
            "a.org",
            "md.json",
            &json!({"name": "a.org"}),
        )
        .unwrap();
        assert_eq!(
            s.load_json(Group::Staging, "a.org", "md.json").unwrap(),
            Some(json!({"name": "a.org"}))
        );
        assert_eq!(mode(&s.path(Group::Staging, "a.org", "md.json")), 0o644);
        assert_eq!(
            s.load_json(Group::Staging, "a.org", "none.json").unwrap(),
            None
        );
        fs::write(s.path(Group::Staging, "a.org", "bad.json"), "{").unwrap();
        assert!(s
            .load_json(Group::Staging, "a.org", "bad.json")
            .unwrap_err()
            .msg
            .contains("bad.json is not valid JSON"));
        let k = crate::base::crypto::Key::generate_rsa(2048).unwrap();
        s.save_key(Group::Staging, "a.org", "privkey.pem", &k)
            .unwrap();
        s.save_key(Group::Domains, "a.org", "privkey.pem", &k)
            .unwrap();
        let staged = fs::read_to_string(s.path(Group::Staging, "a.org", "privkey.pem")).unwrap();
        let live = fs::read_to_string(s.path(Group::Domains, "a.org", "privkey.pem")).unwrap();
        assert!(staged.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert!(live.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(mode(&s.path(Group::Staging, "a.org", "privkey.pem")), 0o600);
        assert_eq!(mode(&s.path(Group::Domains, "a.org", "privkey.pem")), 0o600);
        assert_eq!(mode(&s.group_dir(Group::Domains).join("a.org")), 0o700);
        // the group directory too, not the umask's mode
        assert_eq!(mode(&s.group_dir(Group::Domains)), 0o700);
        let back = s
            .load_key(Group::Staging, "a.org", "privkey.pem")
            .unwrap()
            .unwrap();
        assert!(back.pkey().public_eq(k.pkey()));
        assert!(s.ensure_name_dir(Group::Staging, "../x").is_err());
        assert_eq!(s.names(Group::Staging), ["a.org"]);
        s.purge(Group::Staging, "a.org");
        assert!(s.names(Group::Staging).is_empty());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn store_lock() {
        let root = tmpdir("lock");
        let s = Store::open(&root, None, &mut Vec::new()).unwrap();
        let held = s.lock(std::time::Duration::from_millis(0)).unwrap();
        assert_eq!(mode(&root.join("store.lock")), 0o640);
        let t = std::time::Instant::now();
        let e = s.lock(std::time::Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("locked by another process"), "{e}");
        assert!(t.elapsed() >= std::time::Duration::from_millis(300));
        drop(held);
        assert!(s.lock(std::time::Duration::from_millis(0)).is_ok());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn purges_stale_challenges() {
        let root = tmpdir("purge");
        let s = Store::open(&root, None, &mut Vec::new()).unwrap();
        let ch = s.group_dir(Group::Challenges);
        for d in ["a.org", "stale.org", "*.b.org"] {
            fs::create_dir_all(ch.join(d)).unwrap();
            fs::write(ch.join(d).join("acme-http-01.txt"), "x").unwrap();
        }
        let notes = s.purge_group_except(Group::Challenges, &["a.org", "*.b.org"]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        let mut left: Vec<_> = fs::read_dir(&ch)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, vec!["*.b.org", "a.org"]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn migrates_old_versions() {
        let root = tmpdir("migrate");
        fs::create_dir_all(root.join("domains/a.org")).unwrap();
        fs::write(root.join("domains/a.org/pkey.pem"), "K").unwrap();
        fs::write(root.join("domains/a.org/cert.pem"), "C").unwrap();
        fs::write(root.join("domains/a.org/chain.pem"), "I").unwrap();
        let key = b64url_encode(&[7u8; KEY_LEN]);
        fs::write(
            root.join(STORE_FILE),
            format!(r#"{{"version":1.0,"key":"{key}"}}"#),
        )
        .unwrap();
        let s = Store::open(&root, None, &mut Vec::new()).unwrap();
        assert_eq!(s.key(), &[7u8; KEY_LEN]);
        let doc: Value =
            serde_json::from_str(&fs::read_to_string(root.join(STORE_FILE)).unwrap()).unwrap();
        assert_eq!(doc, json!({"key": key, "store": {"version": 3.0}}));
        assert_eq!(
            fs::read_to_string(root.join("domains/a.org/privkey.pem")).unwrap(),
            "K"
        );
        assert_eq!(
            fs::read_to_string(root.join("domains/a.org/pubcert.pem")).unwrap(),
            "CI"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
