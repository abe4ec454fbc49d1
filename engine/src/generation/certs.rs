//! What mod_ssl and the TLS handshakes get from the generation (spec §2.4,
//! §8.2): certificate files, fallbacks, the staged set served hot, the
//! certificates to staple.

use super::*;

impl Generation {
    /// mod_ssl asks for the certificate files of server `id` (§2.4);
    /// `had` files are configured already. `host` logs for that server.
    pub fn cert_files(&self, host: &dyn Host, id: usize, had: usize) -> Served {
        let mut st = self.lock();
        st.ssl_servers.insert(id);
        let Some(rt) = st.runtime.clone() else {
            return Served::Declined;
        };
        let Some(vhost) = rt.vhost(id) else {
            return Served::Declined;
        };
        let vname = &vhost.host.name;
        log_get_certificates(host, vname);
        if vhost.mds.len() > 1 {
            host.log(Level::Error, &format!(
                "AH10238: conflict: {} MDs match Virtualhost {vname} which uses SSL, however there can be at most 1.",
                vhost.mds.len()
            ));
            return Served::Declined;
        }
        let Some(md) = rt.md_of(id).map(|d| &d.md) else {
            return Served::Declined;
        };
        let files = sets::servable_files(&rt.store, md);
        // The C module says it provides them before it finds none.
        host.log(
            Level::Debug,
            &format!(
                "AH10077: {}[state={}]: providing certificates for server {vname}",
                md.name,
                md.found.state.code()
            ),
        );
        if files.is_empty() {
            // A vhost with certificate files of its own (SSLCertificateFile,
            // say a bought certificate) keeps serving them until the MD has
            // its certificate, as with the C module, whose hook declines
            // here (mod_ssl asks for a fallback only when it has none);
            // hot activation takes over once the MD's set is staged.
            if had > 0 {
                host.log(Level::Info, &format!(
                    "{vname}: serves its own certificate files until Managed Domain {} has its certificate",
                    md.name
                ));
                return Served::Declined;
            }
            // With hot activation the fallback comes from here: mod_ssl
            // then does not mark the vhost unavailable for the whole
            // generation, and the MD's first certificate goes live without
            // a restart (the 503 is ours: `report::fallback_unavailable`).
            if !(rt.global.hot_activation && md.cert_files.is_empty()) {
                return Served::Declined;
            }
            let served = self.fallback(host, &rt.store, md, vname, st.runtime_dir.as_deref());
            if let Served::Files(_) = served {
                st.fallback_servers.insert(id);
                host.log(Level::Info, &format!(
                    "{vname}: answers 503 with the fallback certificate of {} until its certificate is obtained, which then goes live without a restart (MDHotActivation)",
                    md.name
                ));
            }
            return served;
        }
        if had > 0 {
            host.log(Level::Debug, &format!(
                "AH10084: host '{vname}' is covered by a Managed Domain, but certificate/key files are already configured for it (most likely via SSLCertificateFile).",
            ));
        }
        Served::Files(files)
    }

    /// mod_ssl has no certificate for SSL vhost `id`: its MD's self-signed
    /// fallback, so that the vhost answers 503 until the real one is there.
    pub fn fallback_files(&self, host: &dyn Host, id: usize) -> Served {
        let (rt, runtime_dir) = {
            let st = self.lock();
            (st.runtime.clone(), st.runtime_dir.clone())
        };
        let Some(rt) = rt else {
            return Served::Declined;
        };
        let Some(vhost) = rt.vhost(id) else {
            return Served::Declined;
        };
        log_get_certificates(host, &vhost.host.name);
        match rt.md_of(id) {
            Some(d) => self.fallback(
                host,
                &rt.store,
                &d.md,
                &vhost.host.name,
                runtime_dir.as_deref(),
            ),
            None => Served::Declined,
        }
    }

    /// `staple_here` (§8.1) for server `id` with `settings`: where a
    /// certificate of it is stapled from, or None when it is not stapled.
    pub(crate) fn staple_target(&self, id: usize, settings: &Settings) -> Option<StapleTarget> {
        let rt = self.runtime()?;
        let md = rt.md_of(id).map(|d| &d.md);
        if let Some(md) = md.filter(|m| m.stapling) {
            return Some(StapleTarget::Md(md.name.clone()));
        }
        if settings.stapling.unwrap_or(false) && settings.staple_others.unwrap_or(true) {
            return Some(match md {
                Some(m) => StapleTarget::Md(m.name.clone()),
                None => StapleTarget::Other,
            });
        }
        None
    }

    /// The staged set SSL vhost `id` serves now (hot activation), if any;
    /// `host` hears when a new one goes live.
    pub fn hot_set(&self, host: &dyn Host, id: usize) -> Option<Arc<TlsSet>> {
        let log = |level, msg: &str| host.log(level, msg);
        self.hot.current(id, time::now(), &TlsSet::load, &log)
    }

    /// mod_ssl offers a certificate of server `id` (with `settings`) for
    /// stapling: leaf and issuer PEM under its `id`. True when stapled.
    pub fn prime(
        &self,
        host: &dyn Host,
        id: usize,
        settings: &Settings,
        cert_id: &[u8],
        pem: &[u8],
    ) -> bool {
        if !self.stapling.active() {
            return false;
        }
        let Some(target) = self.staple_target(id, settings) else {
            return false;
        };
        let md = match &target {
            StapleTarget::Md(name) => Some(name.as_str()),
            StapleTarget::Other => None,
        };
        let mut notes = Vec::new();
        let stapled = self.stapling.prime(cert_id, pem, md, &mut notes);
        emit(host, &notes);
        stapled
    }

    /// The MD's self-signed fallback certificates (created when missing), or
    /// Declined when they cannot be made (AH10174).
    fn fallback(
        &self,
        host: &dyn Host,
        store: &crate::store::Store,
        md: &crate::config::Md,
        vname: &str,
        runtime_dir: Option<&std::path::Path>,
    ) -> Served {
        let made = sets::ensure_fallbacks(store, md, &self.fallback_keys).or_else(|e| {
            // A store that cannot be written (full, read-only) must not stop
            // the server (issue 25): the fallback is made in httpd's runtime
            // directory instead, each start anew.
            let Some(dir) = runtime_dir else {
                return Err(e.to_string());
            };
            let dir = dir.join("md-fallback").join(&md.name);
            match sets::fallbacks_in(&dir, md, &self.fallback_keys) {
                Ok(pairs) => {
                    let msg = format!(
                        "AH10174: {e}; the fallback certificate is made in {} instead until the \
                         store can be written",
                        dir.display()
                    );
                    if problems::store_problem(&md.name, &msg) {
                        host.log(Level::Error, &msg);
                    }
                    Ok(pairs)
                }
                Err(e2) => Err(format!("{e}; and in {}: {e2}", dir.display())),
            }
        });
        match made {
            Ok(pairs) => {
                for spec in md.effective_specs() {
                    host.log(
                        Level::Debug,
                        &format!(
                            "AH10116: {}: providing {} fallback certificate for server {vname}",
                            md.name,
                            spec.name(),
                        ),
                    );
                }
                Served::Files(pairs)
            }
            Err(e) => {
                host.log(Level::Error, &format!("AH10174: {e}"));
                Served::Declined
            }
        }
    }
}

/// Where a stapled certificate's OCSP response is kept (§8.1): under its
/// MD, or `other` (a vhost's own certificate with `MDStapleOthers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StapleTarget {
    Md(String),
    Other,
}
