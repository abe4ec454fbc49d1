//! The store (spec §5): groups and names as the C module lays them out,
//! `md_store.json` with the store key, and the façade the engine reads and
//! writes through (JSON, keys encrypted with the store key, files that heal
//! when broken). The place where bytes are kept is behind the [`Storage`]
//! and [`Locker`] traits; [`files::FileStorage`] is the file store,
//! compatible both ways with the C module's.

pub mod copy;
pub mod etcd;
pub mod etcd_lock;
pub mod etcd_mirror;
pub mod etcd_store;
pub mod files;
mod io;
pub mod lease;
pub mod request;
pub mod sealed;
pub mod sets;
pub mod storage;

use crate::base::log::{Level, Note, Notes};
use crate::base::util::{b64url_decode, b64url_encode, json_pretty};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use storage::{Guard, Locker, Stamp, Stat, Storage};

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
    /// CRLs and the result of their checks (this module only).
    Crl,
    /// Leases of the nodes of a cluster (this module only, `MDClusterNode`).
    Leases,
    /// Requests an operator left with `a2md` (this module only).
    Requests,
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
            Group::Crl => "crl",
            Group::Leases => "leases",
            Group::Requests => "requests",
        }
    }

    /// Mode a group directory is created with (the C module's).
    pub(crate) fn create_mode(self) -> u32 {
        match self {
            Group::None | Group::Crl | Group::Leases | Group::Requests => 0o755,
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
        matches!(
            self,
            Group::Challenges
                | Group::Staging
                | Group::Ocsp
                | Group::Crl
                | Group::Leases
                | Group::Requests
        )
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

/// The store as the engine uses it; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    storage: Arc<dyn Storage>,
    locker: Arc<dyn Locker>,
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

pub(crate) fn err(msg: impl Into<String>) -> StoreError {
    StoreError { msg: msg.into() }
}

impl Store {
    /// Opens the file store at `root`, creating it (and `md_store.json` with
    /// a new key) when missing, and makes sure the start-up groups exist.
    /// `user` is the uid to hand the child-written groups to (only when the
    /// server runs as root).
    pub fn open(
        root: &Path,
        user: Option<u32>,
        notes: &mut dyn Notes,
    ) -> Result<Store, StoreError> {
        let files = Arc::new(files::FileStorage::open(root, user, notes)?);
        Store::with(files.clone(), files, user, notes)
    }

    /// Opens the store the configuration names: the file store at `root`,
    /// or, with `MDStoreBackend etcd`, the store in etcd with `root` as its
    /// local cache of what mod_ssl reads.
    pub fn open_configured(
        global: &crate::config::Global,
        root: &Path,
        user: Option<u32>,
        notes: &mut dyn Notes,
    ) -> Result<Store, StoreError> {
        let e = &global.etcd;
        if e.endpoints.is_empty() {
            return Store::open(root, user, notes);
        }
        let s = Arc::new(etcd_store::EtcdStorage::configured(e, root, notes)?);
        Store::with(s.clone(), s, user, notes)
    }

    /// Opens a store kept by `storage`, locked through `locker`.
    pub fn with(
        storage: Arc<dyn Storage>,
        locker: Arc<dyn Locker>,
        user: Option<u32>,
        notes: &mut dyn Notes,
    ) -> Result<Store, StoreError> {
        let key = load_or_create_key(storage.as_ref(), notes)?;
        let store = Store {
            storage,
            locker,
            key,
            user,
        };
        // A store that cannot be written (full, read-only, permissions)
        // still serves what it holds (issue 25): a group that cannot be set
        // up is said, and what needs it fails later with its own error.
        for g in STARTUP_GROUPS {
            if let Err(e) = store.prepare_group(g) {
                notes.push(Note::new(
                    Level::Error,
                    format!("{e}; what the module writes there fails until it can be written"),
                ));
            }
        }
        // Account keys written by a root parent before they were handed to
        // `User` (earlier versions of this module): the renewal job could
        // not read them and registered a new account on every renewal.
        for id in store.names(Group::Accounts) {
            if let Err(e) = store
                .storage
                .hand_to_user(Group::Accounts, &id, ACCOUNT_KEY)
            {
                notes.push(Note::new(
                    Level::Warn,
                    format!(
                        "{e}; the renewal job running as httpd's User may not be able to use \
                         this ACME account"
                    ),
                ));
            }
        }
        Ok(store)
    }

    /// The uid child-written parts of the store are handed to (a root
    /// parent), if any.
    pub fn user(&self) -> Option<u32> {
        self.user
    }

    /// Where the admin finds the store (its directory), for messages.
    pub fn location(&self) -> String {
        self.storage.describe(Group::None, "", "")
    }

    /// Where the admin finds a place in the store, for messages.
    pub fn describe(&self, g: Group, name: &str, file: &str) -> String {
        self.storage.describe(g, name, file)
    }

    /// The 48 raw key bytes used as pass phrase for encrypted keys.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The local file mod_ssl reads for a place in the store.
    pub fn local_path(&self, g: Group, name: &str, file: &str) -> PathBuf {
        self.storage.local_path(g, name, file)
    }

    /// `<root>/<group>/<name>/<file>` (tests look at the files).
    #[cfg(test)]
    pub(crate) fn path(&self, g: Group, name: &str, file: &str) -> PathBuf {
        self.local_path(g, name, file)
    }

    #[cfg(test)]
    pub(crate) fn group_dir(&self, g: Group) -> PathBuf {
        self.local_path(g, "", "")
    }

    /// Makes a group ready for use (created, open to whom uses it).
    pub(crate) fn prepare_group(&self, g: Group) -> Result<(), StoreError> {
        self.storage.prepare_group(g)
    }

    /// Opens a group to the renewal job (the parent does this when it
    /// installs a staged set, as the C module does).
    pub(crate) fn open_group(&self, g: Group) -> Result<(), StoreError> {
        self.storage.open_group(g)
    }

    /// Removes what writers that died (a crash, a killed node of a cluster)
    /// left in the store, once ten minutes old; how many.
    pub(crate) fn sweep(&self) -> usize {
        self.storage.sweep()
    }

    /// Whether the store is still there (its `md_store.json`).
    pub fn present(&self) -> bool {
        self.storage.present()
    }

    /// The store-wide lock (`MDStoreLocks`, §5.6), retried for at most
    /// `wait`: used around the start-up installation, so that several httpd
    /// sharing a store do not install the same staged set at once.
    pub fn lock(&self, wait: std::time::Duration) -> Result<Guard, StoreError> {
        self.locker.lock_store(wait)
    }

    /// Takes one MD's order for this process if no other process of this
    /// server holds it. After a graceful restart a child of the old
    /// generation may still be busy with an MD's order until its next safe
    /// point; the new generation's run must not work on the same order
    /// meanwhile (both would ask the CA to validate the same challenge).
    /// `Ok(None)`: held by another process.
    pub(crate) fn lock_md(&self, name: &str) -> Result<Option<Guard>, StoreError> {
        self.locker.lock_md(name)
    }

    /// The store for a thread of httpd's parent that children never touch
    /// (the restart checker): its own connections and caches.
    pub fn detached(&self) -> Store {
        match self.storage.detached() {
            Some((storage, locker)) => Store {
                storage,
                locker,
                key: self.key.clone(),
                user: self.user,
            },
            None => self.clone(),
        }
    }

    /// What keeps the store from being written now (etcd cannot be
    /// reached), for md-status; `None` when all is well.
    pub fn problem(&self) -> Option<String> {
        self.storage.problem()
    }

    /// A child process of httpd starts: what it knows of the store is
    /// brought up to date and kept so (a store kept elsewhere).
    pub fn child_started(&self) {
        self.storage.child_started()
    }

    /// Brings what this process knows of the store up to date.
    pub fn refresh(&self) {
        self.storage.refresh()
    }

    /// Whether the store's cluster grants leases itself (etcd).
    pub fn grants_leases(&self) -> bool {
        self.locker.grants_leases()
    }

    /// A lease granted by the store's cluster, if it has them.
    pub(crate) fn grant(
        &self,
        ttl: std::time::Duration,
    ) -> Result<Option<Box<dyn storage::Granted>>, StoreError> {
        self.locker.grant(ttl)
    }
}

fn load_or_create_key(s: &dyn Storage, notes: &mut dyn Notes) -> Result<Vec<u8>, StoreError> {
    let at = s.describe(Group::None, "", STORE_FILE);
    for _ in 0..3 {
        match s.read(Group::None, "", STORE_FILE)? {
            Some(text) => return read_store_file(s, &at, &text, notes),
            None => {
                let mut key = vec![0u8; KEY_LEN];
                openssl::rand::rand_bytes(&mut key)
                    .map_err(|e| err(format!("cannot generate the store key: {e}")))?;
                let doc = json!({"store": {"version": STORE_VERSION}, "key": b64url_encode(&key)});
                // another process that created it first: read theirs
                if s.create(
                    Group::None,
                    "",
                    STORE_FILE,
                    json_pretty(&doc).as_bytes(),
                    true,
                    true,
                )? {
                    return Ok(key);
                }
            }
        }
    }
    Err(err(format!("cannot create or read {at}")))
}

fn read_store_file(
    s: &dyn Storage,
    at: &str,
    text: &[u8],
    notes: &mut dyn Notes,
) -> Result<Vec<u8>, StoreError> {
    let root = s.describe(Group::None, "", "");
    let mut doc: Value = serde_json::from_slice(text).map_err(|e| {
        err(format!(
            "The central store file {at} seems to exist, but its content are not readable as \
             JSON ({e}). If you have not changed it yourself, restore it from a backup; \
             without its key, the encrypted keys in 'accounts' and 'staging' cannot be read. \
             Removing the store directory makes the module start over with new accounts."
        ))
    })?;
    let version = doc
        .pointer("/store/version")
        .and_then(Value::as_f64)
        .filter(|v| *v > 0.0)
        .unwrap_or(1.0);
    if version > STORE_VERSION {
        return Err(err(format!(
            "version too new: {version}. The store at {root} was written by a newer mod_md; \
             this module understands store version {STORE_VERSION} and leaves it untouched. \
             Use the newer module or point MDStoreDir elsewhere."
        )));
    }
    let key = match doc.get("key").and_then(Value::as_str) {
        None => {
            return Err(err(format!(
                "missing key: key (in {at}). The store file is damaged; restore it from a backup."
            )))
        }
        Some(k) => b64url_decode(k)
            .filter(|k| k.len() == KEY_LEN)
            .ok_or_else(|| {
                err(format!(
                    "key length unexpected (in {at}); expected {KEY_LEN} bytes. The store file \
                     is damaged; restore it from a backup."
                ))
            })?,
    };
    if version < STORE_VERSION {
        if version < 2.0 {
            migrate_v1(s, notes);
        }
        if let Some(o) = doc.as_object_mut() {
            o.remove("version");
        }
        doc["store"] = json!({"version": STORE_VERSION});
        s.write(
            Group::None,
            "",
            STORE_FILE,
            json_pretty(&doc).as_bytes(),
            true,
            true,
        )
        .map_err(|e| err(format!("cannot update {at}: {e}")))?;
        notes.push(Note::new(
            Level::Info,
            format!("store {root} migrated from version {version} to {STORE_VERSION}"),
        ));
    }
    Ok(key)
}

/// v1 → v2: `pkey.pem` becomes `privkey.pem`, `cert.pem` + `chain.pem`
/// become `pubcert.pem` in `domains` and `archive`.
fn migrate_v1(s: &dyn Storage, notes: &mut dyn Notes) {
    for g in [Group::Domains, Group::Archive] {
        for name in s.list(g, "") {
            if s.stat(g, &name, "pkey.pem").ok().flatten().is_some() {
                if let Err(e) = s.rename(g, &name, "pkey.pem", "privkey.pem") {
                    notes.push(Note::new(Level::Warn, format!("migrating: {e}")));
                }
            }
            if let Ok(Some(mut chain)) = s.read(g, &name, "cert.pem") {
                if let Ok(Some(more)) = s.read(g, &name, "chain.pem") {
                    chain.extend_from_slice(&more);
                }
                let _ = s.write(g, &name, "pubcert.pem", &chain, true, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    /// `<a new temp dir>/md`, not created yet; the temp dir goes when the
    /// test ends.
    fn tmpdir(tag: &str) -> (crate::testutil::TempDir, PathBuf) {
        let t = crate::testutil::TempDir::new(&format!("store-{tag}"));
        let root = t.join("md");
        (t, root)
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn create_and_reopen() {
        let (_t, root) = tmpdir("create");
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
    }

    #[test]
    fn bad_store_files() {
        let (_t, root) = tmpdir("bad");
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
    }

    #[test]
    fn group_files() {
        let (_t, root) = tmpdir("files");
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
        assert!(s
            .save_json(Group::Staging, "../x", "f", &json!({}))
            .is_err());
        assert_eq!(s.names(Group::Staging), ["a.org"]);
        s.purge(Group::Staging, "a.org");
        assert!(s.names(Group::Staging).is_empty());
    }

    #[test]
    fn store_lock() {
        let (_t, root) = tmpdir("lock");
        let s = Store::open(&root, None, &mut Vec::new()).unwrap();
        let held = s.lock(std::time::Duration::from_millis(0)).unwrap();
        assert_eq!(mode(&root.join("store.lock")), 0o640);
        let t = std::time::Instant::now();
        let e = s.lock(std::time::Duration::from_millis(300)).unwrap_err();
        assert!(e.msg.contains("locked by another process"), "{e}");
        assert!(t.elapsed() >= std::time::Duration::from_millis(300));
        drop(held);
        assert!(s.lock(std::time::Duration::from_millis(0)).is_ok());
    }

    #[test]
    fn purges_stale_challenges() {
        let (_t, root) = tmpdir("purge");
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
    }

    #[test]
    fn migrates_old_versions() {
        let (_t, root) = tmpdir("migrate");
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
    }
}
