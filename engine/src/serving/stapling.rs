//! OCSP stapling of one configuration generation (spec §8): the registry of
//! stapled certificates that mod_ssl primes at start-up, the responses it
//! staples in handshakes, and the refresh loop that one child runs (as
//! `User`) to fetch new responses into the store, from where every child
//! picks them up.

use crate::base::host::Host;
use crate::base::log::{Level, Note, Notes};
use crate::base::time::{self, Micros, TimeSlice};
use crate::base::util::hex;
use crate::config::Global;
use crate::lifecycle::events::CommandNotify;
use crate::lifecycle::jobfile::{Job, LogKind};
use crate::lifecycle::{events, jobfile};
use crate::serving::ocsp::{self, Cert, CertStatus, PrimeError, Response};
use crate::store::{Group, Store};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// One stapled certificate of this process.
struct Entry {
    cert: Cert,
    resp: Option<Response>,
    /// mtime of the store file we loaded (µs).
    mtime: Micros,
    /// When this process last looked at the store file.
    last_check: Micros,
    /// When the refresh loop fetches next (only meaningful in its child).
    next_run: Micros,
    errors: i32,
    /// SHA-256 fingerprint of the certificate (lower-case hex), to find it
    /// from md-status.
    sha256: String,
}

struct Registry {
    store: Store,
    renew_window: TimeSlice,
    entries: HashMap<String, Entry>,
    /// Registration order, for status pages.
    order: Vec<String>,
}

/// The stapled certificates of a generation. Empty until [`Stapling::reset`]
/// gives it a store.
#[derive(Default)]
pub struct Stapling {
    inner: Mutex<Option<Registry>>,
}

/// Fetches a response from a certificate's responder.
pub type Fetch = dyn Fn(&Cert) -> Result<Response, crate::serving::ocsp::OcspError> + Sync;

impl Stapling {
    fn lock(&self) -> MutexGuard<'_, Option<Registry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new, empty registry for this configuration pass (before mod_ssl's
    /// post_config primes certificates into it).
    pub(crate) fn reset(&self, store: Store, renew_window: TimeSlice) {
        *self.lock() = Some(Registry {
            store,
            renew_window,
            entries: HashMap::new(),
            order: Vec::new(),
        });
    }

    /// Number of registered certificates.
    pub(crate) fn count(&self) -> usize {
        self.lock().as_ref().map_or(0, |r| r.entries.len())
    }

    /// Whether a registry exists (after `reset`).
    pub(crate) fn active(&self) -> bool {
        self.lock().is_some()
    }

    /// mod_ssl offers a certificate (leaf + issuer PEM) under its id; `md`
    /// is the MD to file it under (None: `other`). True when it is stapled
    /// (registered now or before); the notes say what happened.
    pub fn prime(&self, id: &[u8], pem: &[u8], md: Option<&str>, notes: &mut dyn Notes) -> bool {
        let cert = match Cert::from_pem(pem, md) {
            Ok(Some(c)) => c,
            Ok(None) => {
                // no OCSP responder named (Let's Encrypt today): said at
                // debug, in the C module's words
                let serial = crate::X509::from_pem(pem)
                    .ok()
                    .and_then(|c| c.serial_number().to_bn().ok())
                    .and_then(|b| b.to_hex_str().ok().map(|h| h.to_string()))
                    .unwrap_or_default();
                notes.push(Note::new(
                    Level::Debug,
                    format!(
                        "md[{}]: certificate with serial {serial} has no OCSP responder URL",
                        md.unwrap_or("other")
                    ),
                ));
                return false;
            }
            Err(PrimeError::TooFew) => {
                notes.push(Note::new(
                    Level::Error,
                    "AH10269: init stapling for: need at least the certificate and its issuer",
                ));
                return false;
            }
            Err(PrimeError::Parse(e)) => {
                notes.push(Note::new(
                    Level::Error,
                    format!("AH10268: init stapling: error parsing the certificate PEM: {e}"),
                ));
                return false;
            }
        };
        let key = hex(id);
        let mut guard = self.lock();
        let Some(reg) = guard.as_mut() else {
            return false;
        };
        if reg.entries.contains_key(&key) {
            return true;
        }
        let resp = match cert.try_load(&reg.store) {
            Err(e) => {
                notes.push(Note::new(
                    Level::Warn,
                    format!(
                        "md[{}]: ignoring the stored OCSP response of certificate {}: {e}; a new one will be fetched",
                        cert.dir, cert.id
                    ),
                ));
                None
            }
            Ok(r) => r,
        };
        notes.push(Note::new(
            Level::Debug,
            format!(
                "md[{}]: OCSP stapling registered for certificate {} (responder {}){}",
                cert.dir,
                cert.id,
                cert.responder,
                if resp.is_some() {
                    ", response loaded from the store"
                } else {
                    ""
                }
            ),
        ));
        let entry = Entry {
            mtime: cert.file_mtime(&reg.store),
            next_run: resp.as_ref().map_or(0, |r| r.renew_at(&reg.renew_window)),
            sha256: cert.sha256(),
            cert,
            resp,
            last_check: 0,
            errors: 0,
        };
        reg.order.push(key.clone());
        reg.entries.insert(key, entry);
        true
    }

    /// Hands `f` the response to staple for a certificate id (DER, not
    /// copied), after a look at the store (another child may have fetched a
    /// newer one); `f` gets None when the certificate is stapled here but
    /// has no response yet. None when it is not stapled here.
    pub fn with_response<R>(
        &self,
        id: &[u8],
        now: Micros,
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Option<R> {
        let mut guard = self.lock();
        let reg = guard.as_mut()?;
        let e = reg.entries.get_mut(&hex(id))?;
        refresh_from_store(e, &reg.store, &reg.renew_window, now);
        Some(f(e.resp.as_ref().map(|r| r.der.as_slice())))
    }

    /// Whether the responder reported a certificate of an MD revoked
    /// (§3.3). Reads the store: the refresh loop may run in another child.
    pub(crate) fn md_revoked(&self, md: &str) -> bool {
        let (store, certs): (Store, Vec<Cert>) = {
            let guard = self.lock();
            let Some(reg) = guard.as_ref() else {
                return false;
            };
            let certs = reg.entries.values().filter(|e| e.cert.dir == md);
            (reg.store.clone(), certs.map(|e| e.cert.clone()).collect())
        };
        certs.iter().any(|c| {
            c.load(&store)
                .is_some_and(|r| r.status == CertStatus::Revoked)
        })
    }

    /// The stapled certificates for the status pages, with what the store
    /// holds (responses another child fetched, job.json).
    pub(crate) fn views(&self, now: Micros) -> Vec<StaplingView> {
        let (store, mut views) = {
            let mut guard = self.lock();
            let Some(reg) = guard.as_mut() else {
                return Vec::new();
            };
            let Registry {
                store,
                renew_window,
                entries,
                order,
            } = reg;
            let mut views = Vec::new();
            for k in order.iter() {
                let Some(e) = entries.get_mut(k) else {
                    continue;
                };
                refresh_from_store(e, store, renew_window, now);
                views.push(StaplingView {
                    dir: e.cert.dir.clone(),
                    id: e.cert.id.clone(),
                    sha256: e.sha256.clone(),
                    responder: e.cert.responder.clone(),
                    refresh_at: e.resp.as_ref().map(|r| r.renew_at(renew_window)),
                    resp: e.resp.clone(),
                    job: None,
                });
            }
            (store.clone(), views)
        };
        for v in &mut views {
            v.job = Job::load(&store, Group::Ocsp, &v.dir)
                .ok()
                .filter(|j| j.last_run > 0 || !j.log.is_empty());
        }
        views
    }

    /// One refresh run: fetches the responses that are due (≤ 6 at once)
    /// with `fetch`, stores them, records each certificate's job and fires
    /// its events; returns the interval until the next run (≤ 1 hour).
    pub fn refresh(&self, host: &dyn Host, global: &Global, fetch: &Fetch) -> Micros {
        let now = time::now();
        let (store, due): (Store, Vec<Cert>) = {
            let guard = self.lock();
            let Some(reg) = guard.as_ref() else {
                return time::from_secs(3600);
            };
            let due = reg
                .order
                .iter()
                .filter_map(|k| reg.entries.get(k))
                .filter(|e| e.next_run <= now + time::from_secs(60))
                .map(|e| e.cert.clone())
                .collect();
            (reg.store.clone(), due)
        };
        let mut results: Vec<(Cert, Result<Response, crate::serving::ocsp::OcspError>)> =
            Vec::new();
        for chunk in due.chunks(6) {
            let done: Vec<_> = std::thread::scope(|sc| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|c| sc.spawn(move || (c.clone(), fetch(c))))
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            results.extend(done);
        }
        let mut notes = Vec::new();
        let mut notify = CommandNotify {
            message_cmd: global.message_cmd.clone(),
            notify_cmd: None,
            notes: Vec::new(),
        };
        let now = time::now();
        for (cert, res) in results {
            self.record(&store, global, cert, res, now, &mut notify, &mut notes);
        }
        for n in notes.iter().chain(&notify.notes).filter(|n| !n.emitted) {
            host.log(n.level, &n.msg);
        }
        let now = time::now();
        let earliest = self.lock().as_ref().and_then(|r| {
            r.entries
                .values()
                .map(|e| e.next_run)
                .filter(|t| *t > now)
                .min()
        });
        let next = earliest
            .unwrap_or(now + time::from_secs(3600))
            .min(now + time::from_secs(3600));
        (next - now).max(time::from_secs(1))
    }

    /// Stores one fetch result and schedules the certificate's next fetch.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        store: &Store,
        global: &Global,
        cert: Cert,
        res: Result<Response, crate::serving::ocsp::OcspError>,
        now: Micros,
        notify: &mut CommandNotify,
        notes: &mut dyn Notes,
    ) {
        let mut jb =
            Job::load(store, Group::Ocsp, &cert.dir).unwrap_or_else(|_| Job::new(&cert.dir));
        jb.name = cert.dir.clone();
        jb.finished = true;
        jb.last_run = now;
        let (next, event) = match res {
            Ok(resp) => {
                if let Err(e) = cert.save(store, &resp) {
                    notes.push(Note::new(
                        Level::Error,
                        format!("md[{}]: cannot save the OCSP response: {e}", cert.dir),
                    ));
                }
                notes.push(Note::new(
                    Level::Debug,
                    format!(
                        "md[{}]: OCSP response for {} is {}, valid until {}",
                        cert.dir,
                        cert.id,
                        resp.status.as_str(),
                        time::rfc822(resp.valid_until)
                    ),
                ));
                if resp.status == CertStatus::Revoked {
                    notes.push(Note::new(
                        Level::Warn,
                        format!(
                            "md[{}]: the OCSP responder says certificate {} is REVOKED; the MD will be renewed",
                            cert.dir, cert.id
                        ),
                    ));
                }
                jb.errors = 0;
                let detail = Some(format!("certificate {}", cert.id));
                jb.add_log(now, LogKind::OcspRenewed, None, detail);
                // the result as the C module records it (md-status shows
                // the job under `ocsp.renewal`)
                jb.last = Some(jobfile::JobResult {
                    status: 0,
                    activity: Some(format!("status of certid {}, reading response", cert.id)),
                    detail: Some(format!(
                        "certificate status is {}, status valid {} - {}",
                        resp.status.as_str().to_ascii_uppercase(),
                        time::rfc822(resp.valid_from),
                        time::rfc822(resp.valid_until)
                    )),
                    ..Default::default()
                });
                let w = global.stapling_renew_window;
                let next = resp.renew_at(&w).max(now + time::from_secs(1));
                let mtime = cert.file_mtime(store);
                self.with_entry(&cert.id, |e| {
                    e.resp = Some(resp);
                    e.mtime = mtime;
                    e.errors = 0;
                    e.next_run = next;
                });
                (next, events::Event::OcspRenewed)
            }
            Err(err) => {
                let errors = self
                    .with_entry(&cert.id, |e| {
                        e.errors += 1;
                        e.errors
                    })
                    .unwrap_or(1);
                let next =
                    now + events::backoff(errors, global.retry_delay, false, events::rand_byte());
                self.with_entry(&cert.id, |e| e.next_run = next);
                notes.push(Note::new(
                    Level::Error,
                    format!(
                        "md[{}]: OCSP response for certificate {} could not be renewed: {err}; retrying in {}",
                        cert.dir,
                        cert.id,
                        time::print_duration(next - now, true)
                    ),
                ));
                jb.errors = errors;
                jb.add_log(now, LogKind::OcspError, None, Some(err.to_string()));
                (next, events::Event::OcspErrored)
            }
        };
        // after a success the registry knows when to refresh; the job
        // file names a next run only after an error, as the C module's
        jb.next_run = if event == events::Event::OcspRenewed {
            0
        } else {
            next
        };
        let _ = events::fire(&mut jb, notify, &event, now, notes);
        if let Err(e) = jb.save(store, Group::Ocsp) {
            notes.push(Note::new(
                Level::Error,
                format!("md[{}]: cannot save the OCSP job: {e}", cert.dir),
            ));
        }
    }

    /// Runs `f` on the registry entry of a certificate id, if it is there.
    fn with_entry<T>(&self, id: &str, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        self.lock()
            .as_mut()
            .and_then(|r| r.entries.get_mut(id))
            .map(f)
    }
}

/// Re-reads the store file when another child may have written a newer
/// response (§8.2 intervals).
fn refresh_from_store(e: &mut Entry, store: &Store, w: &TimeSlice, now: Micros) {
    if let Some(r) = &e.resp {
        if now < r.renew_at(w) {
            return; // not in its renewal window yet
        }
    }
    let every = ocsp::reload_interval(e.resp.as_ref(), now);
    if e.resp.is_some() && now - e.last_check < every {
        return;
    }
    e.last_check = now;
    let mtime = e.cert.file_mtime(store);
    if mtime != 0 && mtime != e.mtime {
        if let Some(r) = e.cert.load(store) {
            e.resp = Some(r);
            e.mtime = mtime;
        }
    }
}

/// One stapled certificate as the status pages show it (§6.3, §6.1).
#[derive(Debug, Clone)]
pub struct StaplingView {
    /// MD name or `other`.
    pub dir: String,
    /// SHA-1 of the certificate, hex.
    pub id: String,
    /// SHA-256 fingerprint of the certificate, hex.
    pub sha256: String,
    pub responder: String,
    pub resp: Option<crate::serving::ocsp::Response>,
    /// When the response gets refreshed (renewal window start).
    pub refresh_at: Option<Micros>,
    /// `ocsp/<dir>/job.json`.
    pub job: Option<Job>,
}

impl StaplingView {
    pub fn status(&self) -> &'static str {
        self.resp.as_ref().map_or("unknown", |r| r.status.as_str())
    }

    /// The OCSP job is only shown when the status is unknown or the
    /// refresh time has passed (§6.3).
    pub(crate) fn shown_job(&self, now: Micros) -> Option<&Job> {
        let due = self.resp.is_none() || self.refresh_at.is_some_and(|t| t <= now);
        self.job.as_ref().filter(|_| due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The response stapled for `id`, copied.
    fn der(s: &Stapling, id: &[u8]) -> Option<Option<Vec<u8>>> {
        s.with_response(id, time::now(), |d| d.map(<[u8]>::to_vec))
    }
    use crate::serving::ocsp::test_certs::{cert, pem};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Lines(Mutex<Vec<(Level, String)>>);
    impl Host for Lines {
        fn log(&self, l: Level, m: &str) {
            self.0.lock().unwrap().push((l, m.to_string()));
        }
    }

    fn store(tag: &str) -> (crate::testutil::TempDir, Store) {
        crate::testutil::tmpstore(&format!("stapling-{tag}"))
    }

    fn response(status: CertStatus, hours: i64) -> Response {
        let now = time::now();
        Response {
            der: vec![0x30, 0x03, 0x0a, 0x01, 0x00],
            status,
            valid_from: now - time::from_secs(60),
            valid_until: now + time::from_secs(hours * 3600),
        }
    }

    fn primed(tag: &str) -> (crate::testutil::TempDir, Stapling, Vec<u8>) {
        let (d, st) = store(tag);
        let s = Stapling::default();
        s.reset(st, Global::default().stapling_renew_window);
        let issuer = cert("issuer", None, None);
        let leaf = cert("leaf", Some("http://127.0.0.1:9/ocsp"), None);
        let both = pem(&[&leaf, &issuer]);
        // mod_ssl's id of a certificate: the SHA-1 of its DER, as ours
        let hex_id = Cert::from_pem(&both, None).unwrap().unwrap().id;
        let id: Vec<u8> = (0..hex_id.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex_id[i..i + 2], 16).unwrap())
            .collect();
        let mut notes = Vec::new();
        assert!(s.prime(&id, &both, Some("a.org"), &mut notes));
        assert!(
            notes[0].msg.contains("OCSP stapling registered"),
            "{notes:?}"
        );
        (d, s, id)
    }

    #[test]
    fn priming_registers_once_and_explains_refusals() {
        let (d, s, id) = primed("prime");
        let issuer = cert("issuer", None, None);
        let leaf = cert("leaf", Some("http://127.0.0.1:9/ocsp"), None);
        assert!(s.prime(&id, &pem(&[&leaf, &issuer]), Some("a.org"), &mut Vec::new()));
        assert_eq!(s.count(), 1);
        let mut notes = Vec::new();
        assert!(!s.prime(b"x", &pem(&[&leaf]), None, &mut notes));
        assert!(notes[0].msg.starts_with("AH10269"));
        let mut notes = Vec::new();
        let plain = cert("plain", None, None);
        assert!(!s.prime(b"y", &pem(&[&plain, &issuer]), Some("b.org"), &mut notes));
        assert!(
            notes[0].msg.contains("has no OCSP responder URL"),
            "{notes:?}"
        );
        // nothing stapled yet, but registered
        assert_eq!(der(&s, &id), Some(None));
        assert_eq!(der(&s, b"unknown"), None);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn refresh_fetches_due_stores_and_schedules() {
        let (d, s, id) = primed("refresh");
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let fetch = move |_: &Cert| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(response(CertStatus::Good, 24))
        };
        let host = Lines(Mutex::new(Vec::new()));
        let global = Global::default();
        let next = s.refresh(&host, &global, &fetch);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // stapled now, and stored for the other children
        assert_eq!(der(&s, &id), Some(Some(response(CertStatus::Good, 24).der)));
        let view = &s.views(time::now())[0];
        assert_eq!(view.dir, "a.org");
        assert_eq!(view.job.as_ref().map(|j| j.errors), Some(0));
        // the next run: at most an hour; not fetched again before its window
        assert!(
            next <= time::from_secs(3600) && next >= time::from_secs(1),
            "{next}"
        );
        s.refresh(&host, &global, &fetch);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(!s.md_revoked("a.org"));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn errors_back_off_and_revocations_are_seen() {
        let (d, s, id) = primed("errors");
        let host = Lines(Mutex::new(Vec::new()));
        let global = Global {
            retry_delay: time::from_secs(5),
            ..Global::default()
        };
        let next = s.refresh(&host, &global, &|_| {
            Err(crate::serving::ocsp::OcspError::Responder(
                "responder down".into(),
            ))
        });
        // the retry delay with its jitter of up to ±50 % (events::backoff)
        assert!(
            next >= time::from_secs(2) && next <= time::from_secs(8),
            "{next}"
        );
        let lines = host.0.lock().unwrap();
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == Level::Error && m.contains("responder down")),
            "{lines:?}"
        );
        drop(lines);
        assert_eq!(
            s.views(time::now())[0].job.as_ref().map(|j| j.errors),
            Some(1)
        );
        // due again after the back-off: a revoked answer is seen by the
        // renewal (md_revoked reads the store)
        std::thread::sleep(std::time::Duration::from_millis(10));
        s.with_entry(&hex(&id), |e| e.next_run = 0);
        s.refresh(&host, &global, &|_| Ok(response(CertStatus::Revoked, 24)));
        assert!(s.md_revoked("a.org"));
        assert!(!s.md_revoked("b.org"));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn without_reset_nothing_is_stapled() {
        let s = Stapling::default();
        assert!(!s.active());
        let issuer = cert("issuer", None, None);
        let leaf = cert("leaf", Some("http://127.0.0.1:9/ocsp"), None);
        assert!(!s.prime(b"i", &pem(&[&leaf, &issuer]), None, &mut Vec::new()));
        assert_eq!(s.count(), 0);
        let host = Lines(Mutex::new(Vec::new()));
        assert_eq!(
            s.refresh(&host, &Global::default(), &|_| Err(
                crate::serving::ocsp::OcspError::Responder("x".into())
            )),
            time::from_secs(3600)
        );
    }
}
