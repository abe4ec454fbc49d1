//! ACME Renewal Information for the renewal job (spec §4.9, RFC 9773):
//! whether the CA advises renewing now, and when.

use super::context::{ca_client, JobCtx};
use super::events::rand_byte;
use super::jobfile::Job;
use crate::base::log::{Level, Note, Notes};
use crate::base::time::{self, Micros};

/// ACME Renewal Information (§4.9): whether the CA advises renewing now.
/// A time within the next 24 hours becomes the job's next run.
pub(crate) fn ari_says_renew(
    ctx: &JobCtx<'_>,
    job: &mut Job,
    now: Micros,
    notes: &mut dyn Notes,
) -> bool {
    let md = ctx.md;
    let until = time::print_duration(ctx.renew_at - now, true);
    let not_yet = |notes: &mut dyn Notes, why: &str| {
        notes.push(Note::new(
            Level::Debug,
            format!(
                "AH10514: md({}): {why}up for configured renewal in {until}",
                md.name
            ),
        ));
        false
    };
    if !md.ari || !md.cert_files.is_empty() || ctx.certs.is_empty() {
        return not_yet(notes, "");
    }
    notes.push(Note::new(
        Level::Debug,
        format!("AH10513: md({}): ARI is enabled", md.name),
    ));
    let Some((at, explanation)) = ari_time(ctx, notes) else {
        return not_yet(notes, "no ARI available, ");
    };
    let see = explanation
        .as_ref()
        .map(|u| format!(", for explanation see {u}"))
        .unwrap_or_default();
    if at > ctx.renew_at {
        not_yet(notes, "")
    } else if at > now {
        notes.push(Note::new(
            Level::Notice,
            format!(
                "AH10515: md({}): CA advises renew via ARI at {}{see}",
                md.name,
                time::rfc822(at)
            ),
        ));
        // the job comes back at the ARI time when the regular check would
        // come later (within a day, as the C module, or MDCheckInterval)
        if at - now < time::from_secs(time::SECS_PER_DAY).max(ctx.global.check_interval) {
            job.next_run = at;
        }
        false
    } else {
        notes.push(Note::new(
            Level::Notice,
            format!(
                "AH10517: md({}): CA advises renew via ARI now{see}",
                md.name
            ),
        ));
        if let Some(u) = explanation {
            job.add_log(
                now,
                crate::lifecycle::jobfile::LogKind::AriRenewal,
                None,
                Some(format!(
                    "Renewal triggered by CA via ARI, explanation at {u}"
                )),
            );
        }
        true
    }
}

/// The MD's ARI time: for each certificate `start + (end − start)·(c − 128)/256`
/// with a random byte `c`; the earliest over the certificates, with its
/// explanation URL. None without ARI at the first CA or without answers.
pub(crate) fn ari_time(
    ctx: &JobCtx<'_>,
    notes: &mut dyn Notes,
) -> Option<(Micros, Option<String>)> {
    let md = ctx.md;
    let ca = md.ca_urls.first()?;
    let http = ca_client(ctx);
    let base = DIRECTORIES.renewal_info(ca, time::now(), || {
        http.get(ca)
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| crate::acme::json_body(&r))
    })?;
    let mut best: Option<(Micros, Option<String>)> = None;
    for (_, cert) in &ctx.certs {
        let Some(id) = crate::base::crypto::ari_cert_id(cert) else {
            continue; // no AKI key id
        };
        let url = format!("{base}/{id}");
        let j = match http.get(&url) {
            Ok(r) if r.status == 200 => crate::acme::json_body(&r),
            Ok(r) => {
                notes.push(Note::new(
                    Level::Warn,
                    format!(
                        "md({}): ARI request {url} answered HTTP {}",
                        md.name, r.status
                    ),
                ));
                None
            }
            Err(e) => {
                notes.push(Note::new(
                    Level::Warn,
                    format!("md({}): ARI request {url} failed: {e}", md.name),
                ));
                None
            }
        };
        let Some(j) = j else { continue };
        let w = j.get("suggestedWindow");
        let t = |k: &str| {
            w.and_then(|w| w.get(k))
                .and_then(serde_json::Value::as_str)
                .and_then(time::parse_rfc3339)
        };
        let window = match (t("start"), t("end")) {
            (Some(start), Some(end)) if end >= start => Ok((start, end)),
            (Some(_), Some(_)) => Err("an inverted window"),
            _ => Err("no valid suggestedWindow"),
        };
        let (start, end) = match window {
            Ok(w) => w,
            Err(why) => {
                notes.push(Note::new(
                    Level::Warn,
                    format!("md({}): ARI answer of {url} has {why}, ignored", md.name),
                ));
                continue;
            }
        };
        let c = i64::from(rand_byte());
        let at = start + (end - start) / 256 * (c - 128);
        let expl = j
            .get("explanationURL")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        if best.as_ref().is_none_or(|(b, _)| at < *b) {
            best = Some((at, expl));
        }
    }
    best
}

/// The `renewalInfo` resource of each CA as its directory named it, for
/// a while: a run over thousands of MDs of one CA asks the directory once,
/// not once per MD (a CA that did not answer is asked again after a minute).
pub(crate) struct DirectoryCache {
    seen: std::sync::Mutex<std::collections::HashMap<String, (Micros, Option<String>)>>,
}

static DIRECTORIES: std::sync::LazyLock<DirectoryCache> =
    std::sync::LazyLock::new(DirectoryCache::new);

impl DirectoryCache {
    const KEEP: Micros = 600 * time::USEC_PER_SEC;
    const KEEP_FAILED: Micros = 60 * time::USEC_PER_SEC;

    pub(crate) fn new() -> DirectoryCache {
        DirectoryCache {
            seen: Default::default(),
        }
    }

    /// The CA's `renewalInfo` base URL (no trailing slash), from the cache
    /// or from `fetch` (the directory's JSON, None when it did not answer).
    pub(crate) fn renewal_info(
        &self,
        ca: &str,
        now: Micros,
        fetch: impl FnOnce() -> Option<serde_json::Value>,
    ) -> Option<String> {
        let lock = || self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, base)) = lock().get(ca) {
            let keep = if base.is_some() {
                Self::KEEP
            } else {
                Self::KEEP_FAILED
            };
            if now >= *at && now - *at < keep {
                return base.clone();
            }
        }
        let base = fetch().and_then(|dir| {
            let b = dir.get("renewalInfo")?.as_str()?;
            Some(b.trim_end_matches('/').to_string())
        });
        lock().insert(ca.to_string(), (now, base.clone()));
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Thousands of MDs of one CA: the directory is fetched once per ten
    /// minutes (once a minute while it does not answer), per CA.
    #[test]
    fn the_directory_is_asked_once_per_ca_and_while() {
        let c = DirectoryCache::new();
        let fetched = Cell::new(0);
        let dir = || {
            fetched.set(fetched.get() + 1);
            Some(serde_json::json!({"renewalInfo": "https://ca/ari/"}))
        };
        let t0 = 1_000 * time::USEC_PER_SEC;
        for i in 0..10_000 {
            let base = c.renewal_info("https://ca/dir", t0 + i * 1000, dir);
            assert_eq!(base.as_deref(), Some("https://ca/ari"));
        }
        assert_eq!(fetched.get(), 1);
        c.renewal_info("https://other/dir", t0, dir);
        assert_eq!(fetched.get(), 2);
        c.renewal_info("https://ca/dir", t0 + 601 * time::USEC_PER_SEC, dir);
        assert_eq!(fetched.get(), 3);
        // a CA without ARI, and one that does not answer
        let none = || Some(serde_json::json!({"newOrder": "x"}));
        assert_eq!(c.renewal_info("https://plain/dir", t0, none), None);
        assert_eq!(
            c.renewal_info("https://plain/dir", t0 + 1, || panic!()),
            None
        );
        let down = Cell::new(0);
        let fail = || {
            down.set(down.get() + 1);
            None
        };
        c.renewal_info("https://down/dir", t0, fail);
        c.renewal_info("https://down/dir", t0 + 59 * time::USEC_PER_SEC, fail);
        assert_eq!(down.get(), 1);
        c.renewal_info("https://down/dir", t0 + 61 * time::USEC_PER_SEC, fail);
        assert_eq!(down.get(), 2);
    }
}
