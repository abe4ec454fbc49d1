//! Files of the store: reading and atomic writing of bytes, JSON and
//! (encrypted) keys per group and name, listing and removing them.

use super::*;

impl Store {
    /// `<root>/<group>/<name>/<file>`.
    pub fn path(&self, g: Group, name: &str, file: &str) -> PathBuf {
        self.group_dir(g).join(name).join(file)
    }

    /// Makes sure `<group>/<name>` exists: a missing group directory gets
    /// its creation mode (`domains/` is created here, at the first
    /// certificate, and must not get the umask's), the name directory the
    /// mode of a group in use.
    pub fn ensure_name_dir(&self, g: Group, name: &str) -> Result<PathBuf, StoreError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(err(format!("invalid store name '{name}'")));
        }
        let gdir = self.group_dir(g);
        let dir = gdir.join(name);
        // A missing group directory is made only inside a store that is
        // still there: when the store's file system went away (an unmounted
        // share) the writes fail instead of filling the mount point.
        if !gdir.exists() && !self.root.join(STORE_FILE).exists() {
            return Err(err(format!(
                "the store at {} is gone ({STORE_FILE} is missing): cannot write {}",
                self.root.display(),
                dir.display()
            )));
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
            .and_then(|()| ensure_dir(&dir, g.used_mode()))
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        Ok(dir)
    }

    /// Writes a file atomically into `<group>/<name>/`.
    pub(crate) fn save_bytes(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
        is_key: bool,
    ) -> Result<(), StoreError> {
        let dir = self.ensure_name_dir(g, name)?;
        let path = dir.join(file);
        util::write_atomic(&path, data, file_mode(g, is_key))
            .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
        // An account key stays 0600 (the C module leaves it 0644, encrypted),
        // but belongs to `User`: the renewal job must be able to use the
        // account the parent installed, or it registers a new one.
        if g == Group::Accounts && is_key {
            self.hand_to_user(&path).map_err(|e| {
                err(format!(
                    "AH10082: Can't change owner of {}: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(())
    }

    /// Reads a file of `<group>/<name>/`; `None` when it does not exist.
    pub fn load_bytes(
        &self,
        g: Group,
        name: &str,
        file: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(g, name, file);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(format!("cannot read {}: {e}", path.display()))),
        }
    }

    pub(crate) fn save_json(
        &self,
        g: Group,
        name: &str,
        file: &str,
        v: &Value,
    ) -> Result<(), StoreError> {
        self.save_bytes(g, name, file, json_pretty(v).as_bytes(), false)
    }

    /// Reads a JSON file; a file that does not parse is an error naming it.
    pub fn load_json(&self, g: Group, name: &str, file: &str) -> Result<Option<Value>, StoreError> {
        match self.load_bytes(g, name, file)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                err(format!(
                    "{} is not valid JSON: {e}",
                    self.path(g, name, file).display()
                ))
            }),
        }
    }

    /// Reads a JSON object the module owns and rebuilds when it must.
    /// One that cannot be used (unreadable, not a JSON object, a symlink:
    /// the module never writes those) is set aside as `<file>.broken`
    /// (replacing an older one), reported once in `notes` at warn with its
    /// path, and `Ok(None)` lets the caller start afresh: no manual `rm` is
    /// ever needed. `Err` only when it cannot even be set aside.
    pub(crate) fn load_json_healing(
        &self,
        g: Group,
        name: &str,
        file: &str,
        notes: &mut Vec<Note>,
    ) -> Result<Option<Value>, StoreError> {
        let path = self.path(g, name, file);
        let why = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Ok(m) if m.file_type().is_symlink() => "it is a symbolic link".to_string(),
            _ => match self.load_json(g, name, file) {
                Ok(Some(v)) if v.is_object() => return Ok(Some(v)),
                Ok(None) => return Ok(None),
                Ok(Some(_)) => "it is not a JSON object".to_string(),
                Err(e) => e.msg,
            },
        };
        let aside = path.with_file_name(format!("{file}.broken"));
        fs::rename(&path, &aside).map_err(|e| {
            err(format!(
                "{} cannot be used ({why}) nor set aside: {e}",
                path.display()
            ))
        })?;
        notes.push(Note::new(
            Level::Warn,
            format!(
                "{} cannot be used ({why}); set aside as {} and rebuilt",
                path.display(),
                aside.display()
            ),
        ));
        Ok(None)
    }

    /// Writes a private key, encrypted with the store key where the group
    /// requires it, mode 0600.
    pub(crate) fn save_key(
        &self,
        g: Group,
        name: &str,
        file: &str,
        key: &crate::base::crypto::Key,
    ) -> Result<(), StoreError> {
        let pass = g.encrypts_keys().then_some(self.key.as_slice());
        let pem = key
            .to_pem(pass)
            .map_err(|e| err(format!("cannot serialize key {file}: {e}")))?;
        self.save_bytes(g, name, file, &pem, true)
    }

    /// Like [`Store::save_key`], but only if the file does not exist yet
    /// (created atomically: `Ok(false)` when another writer was first, e.g.
    /// another node of a cluster starting at the same time).
    pub(crate) fn save_key_new(
        &self,
        g: Group,
        name: &str,
        file: &str,
        key: &crate::base::crypto::Key,
    ) -> Result<bool, StoreError> {
        let pass = g.encrypts_keys().then_some(self.key.as_slice());
        let pem = key
            .to_pem(pass)
            .map_err(|e| err(format!("cannot serialize key {file}: {e}")))?;
        let dir = self.ensure_name_dir(g, name)?;
        let path = dir.join(file);
        match util::create_exclusive(&path, &pem, file_mode(g, true)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(err(format!("cannot write {}: {e}", path.display()))),
        }
    }

    pub fn load_key(
        &self,
        g: Group,
        name: &str,
        file: &str,
    ) -> Result<Option<crate::base::crypto::Key>, StoreError> {
        match self.load_bytes(g, name, file)? {
            None => Ok(None),
            Some(pem) => crate::base::crypto::Key::from_pem(&pem, Some(&self.key))
                .map(Some)
                .map_err(|e| {
                    err(format!(
                        "cannot read key {}: {e}",
                        self.path(g, name, file).display()
                    ))
                }),
        }
    }

    pub(crate) fn remove(&self, g: Group, name: &str, file: &str) {
        let _ = fs::remove_file(self.path(g, name, file));
    }

    /// Removes `<group>/<name>` with everything in it.
    pub(crate) fn purge(&self, g: Group, name: &str) {
        if !name.is_empty() && !name.contains('/') && name != ".." {
            let _ = fs::remove_dir_all(self.group_dir(g).join(name));
        }
    }

    /// File names in `<group>/<name>/`.
    pub fn names_in(&self, g: Group, name: &str) -> Vec<String> {
        sorted_dir(&self.group_dir(g).join(name))
    }

    /// Names in a group.
    pub fn names(&self, g: Group) -> Vec<String> {
        sorted_dir(&self.group_dir(g))
    }

    #[cfg(test)]
    /// Removes every entry of group `g` whose name is not in `keep` (spec
    /// §2.2 after-SSL step 4: stale challenge data of MDs no longer
    /// configured). Names are compared exactly.
    pub(crate) fn purge_group_except(&self, g: Group, keep: &[&str]) -> Vec<Note> {
        self.purge_group_except_older(g, keep, None)
    }

    /// [`Store::purge_group_except`], sparing entries modified within `age`
    /// (another node of a cluster may be using them right now).
    pub(crate) fn purge_group_except_older(
        &self,
        g: Group,
        keep: &[&str],
        age: Option<std::time::Duration>,
    ) -> Vec<Note> {
        let mut notes = Vec::new();
        let Ok(entries) = fs::read_dir(self.group_dir(g)) else {
            return notes;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if keep.contains(&name.as_str()) {
                continue;
            }
            if let Some(age) = age {
                let recent = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_none_or(|el| el < age);
                if recent {
                    continue;
                }
            }
            let path = e.path();
            let res = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match res {
                Ok(()) => notes.push(Note::new(
                    Level::Debug,
                    format!("purged {}/{name}", g.dir_name()),
                )),
                Err(err) => notes.push(Note::new(
                    Level::Warn,
                    format!("cannot purge {}: {err}", path.display()),
                )),
            }
        }
        notes
    }
}
