//! The file store (spec §5.1–5.4): the C module's directory layout under
//! `MDStoreDir`, with its group directories' modes and ownership, as the
//! one implementation of [`Storage`] and [`Locker`]. Compatible both ways
//! with the C module's store.

use super::storage::{Guard, Locker, Stamp, Stat, Storage};
use super::{err, Group, StoreError, STORE_FILE};
use crate::base::log::{Level, Note, Notes};
use crate::base::util;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A store in a directory.
#[derive(Debug, Clone)]
pub struct FileStorage {
    root: PathBuf,
    /// httpd's `User`, when the store was opened by a root parent: the
    /// groups the renewal job writes are handed to it.
    user: Option<u32>,
}

impl FileStorage {
    /// The store at `root`, creating the directory when missing.
    pub fn open(
        root: &Path,
        user: Option<u32>,
        notes: &mut dyn Notes,
    ) -> Result<FileStorage, StoreError> {
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
        Ok(FileStorage {
            root: root.to_path_buf(),
            user,
        })
    }

    pub(crate) fn group_dir(&self, g: Group) -> PathBuf {
        if g == Group::None {
            self.root.clone()
        } else {
            self.root.join(g.dir_name())
        }
    }

    /// `<root>/<group>/<name>/<file>` (empty parts left out).
    pub(crate) fn path(&self, g: Group, name: &str, file: &str) -> PathBuf {
        let mut p = self.group_dir(g);
        for part in [name, file] {
            if !part.is_empty() {
                p.push(part);
            }
        }
        p
    }

    fn check_name(name: &str) -> Result<(), StoreError> {
        if name.contains('/') || name == "." || name == ".." {
            return Err(err(format!("invalid store name '{name}'")));
        }
        Ok(())
    }

    /// Makes sure `<group>/<name>` exists: a missing group directory gets
    /// its creation mode (`domains/` is created here, at the first
    /// certificate, and must not get the umask's), the name directory the
    /// mode of a group in use.
    fn ensure_name_dir(&self, g: Group, name: &str) -> Result<PathBuf, StoreError> {
        Self::check_name(name)?;
        let gdir = self.group_dir(g);
        let dir = self.path(g, name, "");
        // A missing group directory is made only inside a store that is
        // still there: when the store's file system went away (an unmounted
        // share) the writes fail instead of filling the mount point.
        if !gdir.exists() && !self.present() {
            return Err(err(format!(
                "the store at {} is gone ({STORE_FILE} is missing): cannot write {}",
                self.root.display(),
                dir.display()
            )));
        }
        if g == Group::None {
            return Ok(dir);
        }
        ensure_dir(&gdir, g.create_mode())
            // challenge data is served to the CA, OCSP responses read by
            // all children, staged sets by every child (hot activation):
            // these groups open at first use, as the C module opens a group
            // at each save into it (its `staging/` is 0755 after a failed
            // first run too)
            .and_then(|_| match g {
                Group::Challenges | Group::Ocsp | Group::Staging => set_mode(&gdir, g.used_mode()),
                _ => Ok(()),
            })
            .and_then(|_| {
                if name.is_empty() {
                    Ok(false)
                } else {
                    ensure_dir(&dir, g.used_mode())
                }
            })
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        Ok(dir)
    }

    fn chown_to_user(&self, path: &Path) -> std::io::Result<()> {
        let Some(uid) = self.user else {
            return Ok(());
        };
        match fs::symlink_metadata(path) {
            Ok(m) if m.uid() != uid && !m.file_type().is_symlink() => {
                std::os::unix::fs::chown(path, Some(uid), None)
            }
            _ => Ok(()),
        }
    }
}

impl Storage for FileStorage {
    fn describe(&self, g: Group, name: &str, file: &str) -> String {
        self.path(g, name, file).display().to_string()
    }

    fn read(&self, g: Group, name: &str, file: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(g, name, file);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(format!("cannot read {}: {e}", path.display()))),
        }
    }

    fn write(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
        secret: bool,
        durable: bool,
    ) -> Result<(), StoreError> {
        let path = self.ensure_name_dir(g, name)?.join(file);
        let mode = file_mode(g, secret);
        if durable {
            util::write_atomic(&path, data, mode)
        } else {
            util::write_atomic_nosync(&path, data, mode)
        }
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))
    }

    fn create(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
        secret: bool,
        durable: bool,
    ) -> Result<bool, StoreError> {
        let path = self.ensure_name_dir(g, name)?.join(file);
        match util::create_exclusive(&path, data, file_mode(g, secret), durable) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(err(format!("cannot write {}: {e}", path.display()))),
        }
    }

    fn stat(&self, g: Group, name: &str, file: &str) -> Result<Option<Stat>, StoreError> {
        let path = self.path(g, name, file);
        let lm = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(format!("cannot look at {}: {e}", path.display()))),
        };
        let symlink = lm.file_type().is_symlink();
        let m = if symlink {
            fs::metadata(&path).unwrap_or(lm)
        } else {
            lm
        };
        Ok(Some(Stat {
            modified: m.mtime() * 1_000_000 + m.mtime_nsec() / 1000,
            stamp: Stamp([
                m.dev() as i64,
                m.ino() as i64,
                m.size() as i64,
                m.mtime(),
                m.mtime_nsec(),
            ]),
            symlink,
            owner: Some(m.uid()),
        }))
    }

    fn remove(&self, g: Group, name: &str, file: &str) -> Result<(), StoreError> {
        let path = self.path(g, name, file);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(err(format!("cannot remove {}: {e}", path.display())))
            }
            _ => Ok(()),
        }
    }

    fn rename(&self, g: Group, name: &str, file: &str, to: &str) -> Result<(), StoreError> {
        let from = self.path(g, name, file);
        let dest = self.path(g, name, to);
        fs::rename(&from, &dest).map_err(|e| {
            err(format!(
                "cannot rename {} to {}: {e}",
                from.display(),
                dest.display()
            ))
        })
    }

    fn list(&self, g: Group, name: &str) -> Vec<String> {
        sorted_dir(&self.path(g, name, ""))
    }

    fn remove_name(&self, g: Group, name: &str) -> Result<(), StoreError> {
        if name.is_empty() || Self::check_name(name).is_err() {
            return Err(err(format!("invalid store name '{name}'")));
        }
        let path = self.path(g, name, "");
        let res = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        res.map_err(|e| err(format!("cannot remove {}: {e}", path.display())))
    }

    fn move_name(
        &self,
        from: Group,
        name: &str,
        to: Group,
        to_name: &str,
    ) -> Result<(), StoreError> {
        Self::check_name(to_name)?;
        let src = self.path(from, name, "");
        let dest = self.path(to, to_name, "");
        if dest.exists() {
            return Err(err(format!(
                "cannot move {}: {} exists",
                src.display(),
                dest.display()
            )));
        }
        fs::rename(&src, &dest).map_err(|e| {
            err(format!(
                "cannot move {} to {}: {e}",
                src.display(),
                dest.display()
            ))
        })
    }

    fn prepare_group(&self, g: Group) -> Result<(), StoreError> {
        let dir = self.group_dir(g);
        let res = (|| {
            if !ensure_dir(&dir, g.create_mode())?
                && g == Group::Accounts
                && !sorted_dir(&dir).is_empty()
            {
                // accounts in use are open to the renewal job, as after the
                // C module's installation (earlier versions of this module
                // left them 0750 and the child registered a new account
                // every time)
                set_mode(&dir, g.used_mode())?;
            }
            if let (true, Some(uid)) = (g.owned_by_user(), self.user) {
                // only when it is another's (a read-only store refuses even
                // a chown to the same owner)
                if fs::metadata(&dir)?.uid() != uid {
                    std::os::unix::fs::chown(&dir, Some(uid), None)?;
                }
            }
            Ok::<(), std::io::Error>(())
        })();
        res.map_err(|e| {
            err(format!(
                "cannot set up store directory {}: {e}",
                dir.display()
            ))
        })
    }

    fn open_group(&self, g: Group) -> Result<(), StoreError> {
        let dir = self.group_dir(g);
        set_mode(&dir, g.used_mode())
            .map_err(|e| err(format!("cannot set the mode of {}: {e}", dir.display())))
    }

    fn hand_to_user(&self, g: Group, name: &str, file: &str) -> Result<(), StoreError> {
        let path = self.path(g, name, file);
        self.chown_to_user(&path).map_err(|e| {
            err(format!(
                "AH10082: Can't change owner of {}: {e}",
                path.display()
            ))
        })
    }

    fn sweep(&self) -> usize {
        let age = std::time::Duration::from_secs(600);
        let mut n = util::remove_stale_tmp(&self.root, age);
        for g in [
            Group::Accounts,
            Group::Challenges,
            Group::Domains,
            Group::Staging,
            Group::Ocsp,
            Group::Crl,
            Group::Leases,
        ] {
            let dir = self.group_dir(g);
            n += util::remove_stale_tmp(&dir, age);
            for name in sorted_dir(&dir) {
                n += util::remove_stale_tmp(&dir.join(name), age);
            }
        }
        n
    }

    fn present(&self) -> bool {
        self.root.join(STORE_FILE).exists()
    }

    fn local_path(&self, g: Group, name: &str, file: &str) -> PathBuf {
        self.path(g, name, file)
    }
}

impl Locker for FileStorage {
    /// `<root>/store.lock` (flock, exclusive), retried every 100 ms for at
    /// most `wait`.
    fn lock_store(&self, wait: std::time::Duration) -> Result<Guard, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.root.join("store.lock");
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
        let start = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Guard::new(file)),
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(std::time::Duration::from_millis(100))
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(err(format!(
                        "{} is locked by another process",
                        path.display()
                    )))
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(err(format!("cannot lock {}: {e}", path.display())))
                }
            }
        }
    }

    /// flock on the directory `staging/<md>`: no file is added to the
    /// store.
    fn lock_md(&self, name: &str) -> Result<Option<Guard>, StoreError> {
        if name.is_empty() {
            return Err(err("invalid store name ''"));
        }
        let dir = self.ensure_name_dir(Group::Staging, name)?;
        let f =
            fs::File::open(&dir).map_err(|e| err(format!("cannot open {}: {e}", dir.display())))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Guard::new(f))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                Err(err(format!("cannot lock {}: {e}", dir.display())))
            }
        }
    }
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
