//! What the engine reads and writes: bytes, JSON and (encrypted) keys per
//! group and name, listed, removed and moved, all through [`Storage`].

use super::*;

impl Store {
    /// Writes a file atomically into `<group>/<name>/`.
    pub(crate) fn save_bytes(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
        is_key: bool,
    ) -> Result<(), StoreError> {
        self.storage.write(g, name, file, data, is_key, true)?;
        // An account key stays 0600 (the C module leaves it 0644, encrypted),
        // but belongs to `User`: the renewal job must be able to use the
        // account the parent installed, or it registers a new one.
        if g == Group::Accounts && is_key {
            self.storage.hand_to_user(g, name, file)?;
        }
        Ok(())
    }

    /// Writes a file derived from the configuration at every start:
    /// atomic, but not forced to disk (a crash leaves the old or the new
    /// file; the next start rewrites it).
    pub(crate) fn save_derived(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
    ) -> Result<(), StoreError> {
        self.storage.write(g, name, file, data, false, false)
    }

    /// Creates a file only if it is not there yet: `Ok(false)` when
    /// another writer was first.
    pub(crate) fn create_bytes(
        &self,
        g: Group,
        name: &str,
        file: &str,
        data: &[u8],
    ) -> Result<bool, StoreError> {
        self.storage.create(g, name, file, data, false, true)
    }

    /// Reads a file of `<group>/<name>/`; `None` when it does not exist.
    pub fn load_bytes(
        &self,
        g: Group,
        name: &str,
        file: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.storage.read(g, name, file)
    }

    /// Whether a file (or, with file `""`, a name) exists (one that cannot
    /// be looked at counts as not there).
    pub fn exists(&self, g: Group, name: &str, file: &str) -> bool {
        self.stat(g, name, file).is_some()
    }

    /// What is known of a file (or, with file `""`, of a name); None when
    /// it is not there or cannot be looked at.
    pub fn stat(&self, g: Group, name: &str, file: &str) -> Option<Stat> {
        self.storage.stat(g, name, file).ok().flatten()
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
                    self.describe(g, name, file)
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
        notes: &mut dyn Notes,
    ) -> Result<Option<Value>, StoreError> {
        let why = match self.storage.stat(g, name, file) {
            Ok(None) => return Ok(None),
            Ok(Some(s)) if s.symlink => "it is a symbolic link".to_string(),
            _ => match self.load_json(g, name, file) {
                Ok(Some(v)) if v.is_object() => return Ok(Some(v)),
                Ok(None) => return Ok(None),
                Ok(Some(_)) => "it is not a JSON object".to_string(),
                Err(e) => e.msg,
            },
        };
        self.set_aside(g, name, file, &why, notes)
    }

    /// Sets a file that cannot be used aside as `<file>.broken` (replacing
    /// an older one) and says so in `notes`; `Err` when it cannot be.
    pub(crate) fn set_aside(
        &self,
        g: Group,
        name: &str,
        file: &str,
        why: &str,
        notes: &mut dyn Notes,
    ) -> Result<Option<Value>, StoreError> {
        let path = self.describe(g, name, file);
        let aside = format!("{file}.broken");
        self.storage
            .rename(g, name, file, &aside)
            .map_err(|e| err(format!("{path} cannot be used ({why}) nor set aside: {e}")))?;
        notes.push(Note::new(
            Level::Warn,
            format!(
                "{path} cannot be used ({why}); set aside as {} and rebuilt",
                self.describe(g, name, &aside)
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
    /// another node of a cluster starting at the same time). `durable`:
    /// forced to disk before it counts (not for derived keys, such as a
    /// fallback's, which the next start makes again if a crash lost it).
    pub(crate) fn save_key_new(
        &self,
        g: Group,
        name: &str,
        file: &str,
        key: &crate::base::crypto::Key,
        durable: bool,
    ) -> Result<bool, StoreError> {
        let pass = g.encrypts_keys().then_some(self.key.as_slice());
        let pem = key
            .to_pem(pass)
            .map_err(|e| err(format!("cannot serialize key {file}: {e}")))?;
        self.storage.create(g, name, file, &pem, true, durable)
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
                        self.describe(g, name, file)
                    ))
                }),
        }
    }

    /// Makes a file readable by the renewal job (httpd's `User`).
    pub(crate) fn hand_to_user(&self, g: Group, name: &str, file: &str) -> Result<(), StoreError> {
        self.storage.hand_to_user(g, name, file)
    }

    pub(crate) fn remove(&self, g: Group, name: &str, file: &str) {
        let _ = self.storage.remove(g, name, file);
    }

    /// Removes a file, saying why not when it cannot.
    pub(crate) fn remove_file(&self, g: Group, name: &str, file: &str) -> Result<(), StoreError> {
        self.storage.remove(g, name, file)
    }

    /// Removes `<group>/<name>` with everything in it.
    pub(crate) fn purge(&self, g: Group, name: &str) {
        let _ = self.storage.remove_name(g, name);
    }

    /// Moves `<from>/<name>` to `<to>/<to_name>` in one step; fails when
    /// the target exists.
    pub(crate) fn move_name(
        &self,
        from: Group,
        name: &str,
        to: Group,
        to_name: &str,
    ) -> Result<(), StoreError> {
        self.storage.move_name(from, name, to, to_name)
    }

    /// File names in `<group>/<name>/`.
    pub fn names_in(&self, g: Group, name: &str) -> Vec<String> {
        self.storage.list(g, name)
    }

    /// Names in a group.
    pub fn names(&self, g: Group) -> Vec<String> {
        self.storage.list(g, "")
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
        let now = crate::base::time::now();
        for name in self.names(g) {
            if keep.contains(&name.as_str()) {
                continue;
            }
            if let Some(age) = age {
                let recent = self
                    .stat(g, &name, "")
                    .is_none_or(|s| now - s.modified < age.as_micros() as i64);
                if recent {
                    continue;
                }
            }
            match self.storage.remove_name(g, &name) {
                Ok(()) => notes.push(Note::new(
                    Level::Debug,
                    format!("purged {}/{name}", g.dir_name()),
                )),
                Err(e) => notes.push(Note::new(Level::Warn, e.msg)),
            }
        }
        notes
    }
}
