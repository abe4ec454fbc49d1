//! The processing of one MD's renewal job (spec §3.3): whether it is
//! due, the lease of a cluster, the staging run, its result and events.

use super::ari::ari_says_renew;
use super::events::{backoff, fire, rand_byte, CommandError, Event, Notify};
use super::jobfile::{Job, JobResult, LogKind};
use crate::acme::challenge::{ChallengeEnv, Events, RunEnv};
use crate::acme::drive;
use crate::acme::{Acme, AcmeError, Kind};
use crate::base::log::{Level, Note, Notes};
use crate::base::time::{self, Micros};
use crate::config::RenewMode;
use crate::lifecycle::context::ca_client;
use crate::lifecycle::context::JobCtx;
use crate::lifecycle::context::RevokedBy;
use crate::store::{Group, StoreError};
use serde_json::Value;

struct ProgressToJob<'a> {
    job: &'a mut Job,
    notify: &'a mut dyn Notify,
    notes: &'a mut dyn Notes,
    last: Option<String>,
}

impl Events for ProgressToJob<'_> {
    fn challenge_setup(
        &mut self,
        ctype: &crate::base::challenge::ChallengeType,
        domain: &str,
    ) -> Result<(), CommandError> {
        let ev = Event::ChallengeSetup {
            ctype: ctype.clone(),
            domain: domain.to_string(),
        };
        fire(self.job, self.notify, &ev, time::now(), self.notes)
    }
    fn progress(&mut self, activity: &str) {
        if self.last.as_deref() != Some(activity) {
            self.job.add_log(
                time::now(),
                LogKind::Progress,
                None,
                Some(activity.to_string()),
            );
            self.last = Some(activity.to_string());
        }
    }
}

/// The CA to use for this run (§3.5 failover): the URL of the previous
/// staging run, moved on by one once `errors` reached `MDRetryFailover`.
fn pick_ca(ctx: &JobCtx<'_>, errors: i32) -> (String, bool) {
    let urls: Vec<String> = if ctx.md.ca_urls.is_empty() {
        vec![crate::config::LETSENCRYPT_URL.to_string()]
    } else {
        ctx.md.ca_urls.clone()
    };
    let prev = ctx
        .store
        .load_json(Group::Staging, &ctx.md.name, "md.json")
        .ok()
        .flatten()
        .and_then(|j| {
            j.pointer("/ca/url")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .and_then(|u| urls.iter().position(|x| *x == u));
    match prev {
        Some(i) if urls.len() >= 2 && errors >= ctx.global.retry_failover => {
            (urls[(i + 1) % urls.len()].clone(), true)
        }
        Some(i) => (urls[i].clone(), false),
        None => (urls[0].clone(), false),
    }
}

/// What processing a job decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not due, or nothing to do.
    Idle,
    /// Vetoed by the `renewing` event.
    Vetoed,
    Renewed,
    Failed,
    /// Stopped because the process is shutting down: no error is counted
    /// and the staged order resumes on the next run.
    Cancelled,
}

/// Processes the job of one MD (§3.3). Returns what happened; the job's
/// `next_run` says when it wants to run again (0 = at the regular check).
pub fn process(
    ctx: &JobCtx<'_>,
    notify: &mut dyn Notify,
    now: Micros,
    notes: &mut dyn Notes,
) -> Result<(Outcome, Job), StoreError> {
    process_leased(ctx, notify, now, notes, None)
}

/// [`process`], with the MD's cluster lease when this run holds it already.
fn process_leased(
    ctx: &JobCtx<'_>,
    notify: &mut dyn Notify,
    now: Micros,
    notes: &mut dyn Notes,
    held: Option<crate::store::lease::Lease>,
) -> Result<(Outcome, Job), StoreError> {
    let md = ctx.md;
    let mut job = Job::load_healing(ctx.store, Group::Staging, &md.name, notes)?;
    // job.json is written only when the job changed (as the C module): a
    // healthy or static MD has none, and shows no renewal activity.
    let loaded = job.clone();
    let save = |job: &Job| -> Result<(), StoreError> {
        if *job != loaded {
            job.save(ctx.store, Group::Staging)?;
        }
        Ok(())
    };
    job.name = md.name.clone();
    if job.finished && !crate::lifecycle::install::staged_files_present(ctx.store, md) {
        // A finished job whose staged set is gone (installed, purged, or
        // left by a crash) would block renewal forever: start over, as the
        // C module's driver does since 2.6.10.
        notes.push(Note::new(
            Level::Debug,
            format!(
                "md({}): the finished renewal job has no staged certificates (any more), starting over",
                md.name
            ),
        ));
        let log = std::mem::take(&mut job.log);
        job = Job::new(&md.name);
        job.log = log;
    }
    if let Some(r) = &ctx.requested {
        // a set staged before the request does not answer it
        if job.finished && job.last_run < r.since_micros() {
            notes.push(Note::new(
                Level::Info,
                format!(
                    "md({}): a new certificate was requested at {}; the set staged before is dropped",
                    md.name,
                    time::rfc822(r.since_micros())
                ),
            ));
            crate::lifecycle::install::purge_staging(ctx.store, md);
            let log = std::mem::take(&mut job.log);
            job = Job::new(&md.name);
            job.log = log;
        }
    }
    if job.next_run > now {
        return Ok((Outcome::Idle, job));
    }
    job.next_run = 0;
    if job.finished && job.notified_renewed {
        return Ok((Outcome::Idle, job));
    }
    let mut outcome = Outcome::Idle;
    let manual = md.renew_mode == RenewMode::Manual;
    let mut renew = ctx.revoked.is_some() || ctx.requested.is_some() || ctx.renew_at <= now;
    if !manual && !job.finished && !renew {
        renew = ari_says_renew(ctx, &mut job, now, notes);
    }
    let mut lease = held;
    // the renewal, and the `renewed` event of a set staged earlier, are one
    // node's work in a cluster
    let leased_work = (!manual && !job.finished && renew)
        || (job.finished && !job.notified_renewed && job.valid_from <= now);
    if leased_work && lease.is_none() {
        if let Some(leases) = &ctx.leases {
            // one node of a cluster renews an MD at a time
            match leases.try_take(&lease_name(&md.name), now) {
                Ok(crate::store::lease::Take::Taken(l)) => {
                    // the job may have moved on while another node held the
                    // lease: look again, holding it now
                    let fresh = Job::load_healing(ctx.store, Group::Staging, &md.name, notes)?;
                    if fresh != loaded {
                        return process_leased(ctx, notify, now, notes, Some(l));
                    }
                    lease = Some(l);
                }
                Ok(crate::store::lease::Take::Busy(h)) => {
                    notes.push(Note::new(
                        Level::Info,
                        format!(
                            "{}: renewal is in the hands of cluster node {} (pid {}) since {}; \
                             looking again when its lease runs out ({})",
                            md.name,
                            h.node,
                            h.pid,
                            time::rfc822(h.since_micros()),
                            time::rfc822(h.expires_micros())
                        ),
                    ));
                    // job.json belongs to the holder: written by it alone
                    let mut j = loaded.clone();
                    j.next_run =
                        (h.expires_micros() + crate::store::lease::SKEW + time::USEC_PER_SEC)
                            .max(now + time::USEC_PER_SEC);
                    return Ok((Outcome::Idle, j));
                }
                Err(e) => {
                    return Err(crate::store::err(format!(
                        "cannot take the cluster lease of {} in {}: {e}",
                        md.name,
                        leases.location()
                    )));
                }
            }
        }
    }
    if !manual && !job.finished && renew {
        if let Some(r) = &ctx.requested {
            notes.push(Note::new(
                Level::Notice,
                format!(
                    "md({}): renewing now as requested at {}{}",
                    md.name,
                    time::rfc822(r.since_micros()),
                    r.reason
                        .as_ref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                ),
            ));
        }
        notes.push(Note::new(
            Level::Debug,
            if ctx.revoked == Some(RevokedBy::Ocsp) {
                format!(
                    "AH10500: md({}): need to renew, OCSP reports revoked certificate(s)",
                    md.name
                )
            } else if ctx.revoked == Some(RevokedBy::Crl) {
                format!(
                    "md({}): need to renew, the issuer's CRL lists certificate(s) as revoked",
                    md.name
                )
            } else {
                format!("AH10512: md({}): need to renew now", md.name)
            },
        ));
        // One run per MD on this server at a time: a child of the previous
        // generation may still be busy with this MD's order after a
        // graceful restart, until its next safe point (issue 25: both asked
        // the CA to validate one challenge, and pebble judged on the second
        // validation, after the stopped run's answer was gone).
        let _one_run = match ctx.store.lock_md(&md.name) {
            Ok(Some(l)) => Some(l),
            Ok(None) => {
                notes.push(Note::new(
                    Level::Debug,
                    format!(
                        "md({}): another process of this server is still working on it; looking again in a second",
                        md.name
                    ),
                ));
                job.next_run = now + time::USEC_PER_SEC;
                return Ok((Outcome::Idle, job));
            }
            // a store that cannot be locked is said by what follows
            Err(_) => None,
        };
        if let Err(e) = fire(&mut job, notify, &Event::Renewing, now, notes) {
            notes.push(Note::new(Level::Info, format!("AH10060: {}: event-handler for 'renewing' returned {e}, preventing renewal to proceed.", md.name)));
            save(&job)?;
            return Ok((Outcome::Vetoed, job));
        }
        outcome = match &lease {
            Some(l) => crate::base::shutdown::with_abandon(l.lost_flag(), || {
                run(ctx, &mut job, notify, now, notes)
            }),
            None => run(ctx, &mut job, notify, now, notes),
        };
        if outcome == Outcome::Cancelled {
            return Ok((outcome, job));
        }
        if let (Outcome::Renewed, Some(r)) = (&outcome, &ctx.requested) {
            crate::store::request::clear(ctx.store, &md.name, r);
        }
    } else if job.finished && !job.notified_renewed && job.valid_from <= now {
        // staged earlier, activation time has come: tell the admin now
        notify_renewed(&mut job, notify, now, ctx, notes);
    }
    if !job.finished {
        if let Some(w) = ctx.warn_at {
            if ctx.complete && w <= now {
                if let Err(e) = fire(&mut job, notify, &Event::Expiring, now, notes) {
                    job.errors += 1;
                    job.next_run =
                        now + backoff(job.errors, ctx.global.retry_delay, false, rand_byte());
                    notes.push(Note::new(Level::Error, e.to_string()));
                }
            }
        }
    }
    save(&job)?;
    Ok((outcome, job))
}

/// The cluster lease of an MD's renewal.
pub(crate) fn lease_name(md: &str) -> String {
    format!("md@{md}")
}

fn notify_renewed(
    job: &mut Job,
    notify: &mut dyn Notify,
    now: Micros,
    ctx: &JobCtx<'_>,
    notes: &mut dyn Notes,
) {
    match fire(job, notify, &Event::Renewed, now, notes) {
        Ok(()) => {
            job.notified = true;
            job.notified_renewed = true;
        }
        Err(e) => {
            job.errors += 1;
            job.next_run = now + backoff(job.errors, ctx.global.retry_delay, false, rand_byte());
            notes.push(Note::new(Level::Error, e.to_string()));
        }
    }
}

fn run(
    ctx: &JobCtx<'_>,
    job: &mut Job,
    notify: &mut dyn Notify,
    now: Micros,
    notes: &mut dyn Notes,
) -> Outcome {
    let md = ctx.md;
    job.last_run = now;
    job.add_log(now, LogKind::Starting, None, None);
    let result: Result<i64, AcmeError> = (|| {
        if crate::lifecycle::tailscale::is_tailscale(md) {
            let mut progress = ProgressToJob {
                job,
                notify,
                notes,
                last: None,
            };
            progress.progress(&format!(
                "Fetching the certificate of {} from tailscaled",
                md.name
            ));
            return crate::lifecycle::tailscale::fetch(
                ctx.store,
                md,
                &ctx.user_agent,
                &ctx.run_user,
            );
        }
        let types = ctx
            .challenges
            .clone()
            .map_err(|e| AcmeError::new(Kind::General, e.to_string()))?;
        let (ca_url, failover) = pick_ca(ctx, job.errors);
        if failover {
            notes.push(Note::new(
                Level::Info,
                format!("{}: failing over to CA {ca_url}", md.name),
            ));
            crate::lifecycle::install::purge_staging(ctx.store, md);
        }
        // Record the CA of this run first: the next run fails over from it
        // even when this one cannot reach it at all.
        let mut staged_md = md.clone();
        staged_md.found.ca_url = Some(ca_url.clone());
        ctx.store
            .save_json(Group::Staging, &md.name, "md.json", &staged_md.to_json())
            .map_err(|e| AcmeError::new(Kind::General, e.msg))?;
        let replaced = job.ari_replaced.clone();
        let mut progress = ProgressToJob {
            job,
            notify,
            notes,
            last: None,
        };
        progress.progress(&format!(
            "Contacting ACME server for {} at {ca_url}",
            md.name
        ));
        let mut acme = Acme::connect(ca_client(ctx), &ca_url)?;
        let mut env = RunEnv {
            store: ctx.store,
            events: &mut progress,
            challenges: ChallengeEnv {
                types,
                dns01_cmd: ctx.global.dns01_cmd.clone(),
                dns01_version: ctx.global.dns01_version,
                tls_alpn_domains: Some(md.found.acme_tls_1_domains.clone()),
                preflight: ctx
                    .global
                    .challenge_preflight
                    .then(|| crate::acme::preflight::Env {
                        local_80: ctx.global.local_80,
                        local_443: ctx.global.local_443,
                        listeners: ctx.global.listeners.clone(),
                    }),
            },
            notes: Vec::new(),
            replaced,
            current: ctx.certs.clone(),
            leases: ctx.leases.clone(),
        };
        let r = drive::stage(&mut acme, md, &mut env);
        let more = std::mem::take(&mut env.notes);
        let replaced = std::mem::take(&mut env.replaced);
        drop(env);
        progress.notes.extend_from(more);
        progress.job.ari_replaced = replaced;
        r.map(|staged| staged.valid_from)
    })();
    match result {
        Ok(valid_from) => {
            // judged against the time the run ends, not the one it started
            // at: a certificate issued during the run is valid by now
            let now = now.max(time::now());
            // a complete staged set opens its group, as in the C module
            if let Err(e) = ctx.store.open_group(Group::Staging) {
                notes.push(Note::new(Level::Warn, e.msg));
            }
            // ready when the newest certificate is valid; a live MD waits
            // MDActivationDelay more (§4.11)
            let mut ready = if valid_from > 0 { valid_from } else { now };
            if ctx.complete && ctx.global.activation_delay != 0 {
                ready += ctx.global.activation_delay;
            }
            job.finished = true;
            job.valid_from = ready;
            job.errors = 0;
            let detail = if ready > now {
                format!(
                    "The certificate for the managed domain has been renewed successfully and can be used from {} on.",
                    time::rfc822(ready)
                )
            } else {
                format!(
                    "The certificate for the managed domain has been renewed successfully and can be used (valid since {}). A graceful server restart now is recommended.",
                    time::rfc822(ready)
                )
            };
            // as the C module: the success text goes to the job log, `last`
            // keeps only status and valid-from
            job.last = Some(JobResult {
                status: 0,
                valid_from: ready,
                ..Default::default()
            });
            job.add_log(now, LogKind::Finished, None, Some(detail));
            if ready > now {
                job.next_run = ready;
            } else {
                let _ = job.save(ctx.store, Group::Staging);
                notify_renewed(job, notify, now, ctx, notes);
            }
            Outcome::Renewed
        }
        Err(e) if crate::base::shutdown::abandoned() => {
            notes.push(Note::new(
                Level::Warn,
                format!(
                    "md({}): renewal stopped: this node's cluster lease ran out and another node took the renewal over ({})",
                    md.name, e.detail
                ),
            ));
            Outcome::Cancelled
        }
        Err(e) if crate::base::shutdown::requested() => {
            notes.push(Note::new(
                Level::Debug,
                format!(
                    "md({}): renewal stopped, the server is shutting down ({}); it resumes at the next start",
                    md.name, e.detail
                ),
            ));
            Outcome::Cancelled
        }
        Err(e) => {
            job.errors += 1;
            job.next_run = now
                + backoff(
                    job.errors,
                    ctx.global.retry_delay,
                    e.retry() == crate::acme::Retry::NextDay,
                    rand_byte(),
                );
            if ctx.md.must_staple && job.errors == 1 {
                notes.push(Note::new(
                    Level::Warn,
                    format!(
                        "md[{}]: the renewal with MDMustStaple on failed ({e}). A CA that runs no OCSP responder (Let's Encrypt since 2025) rejects must-staple orders, and clients reject must-staple certificates without a stapled response: consider MDMustStaple off",
                        ctx.md.name
                    ),
                ));
            }
            // what the run was doing when it failed (as the C module keeps it)
            let activity = job
                .last_log(&LogKind::Progress)
                .filter(|l| l.when >= now)
                .and_then(|l| l.detail.clone());
            job.last = Some(JobResult {
                status: e.status(),
                problem: e.problem.clone(),
                detail: Some(e.detail.clone()),
                activity,
                valid_from: 0,
                subproblems: e.subproblems.as_deref().cloned(),
            });
            job.add_log(
                now,
                LogKind::RenewalError,
                e.problem.clone(),
                Some(e.detail.clone()),
            );
            notes.push(Note::new(
                Level::Error,
                format!("AH10056: processing {}: {}", md.name, e.detail),
            ));
            notes.push(Note::new(
                Level::Info,
                format!(
                    "AH10057: {}: encountered error for the {}. time, next run in {}",
                    md.name,
                    job.errors,
                    time::print_duration(job.next_run - now, false)
                ),
            ));
            let _ = fire(job, notify, &Event::Errored, now, notes);
            Outcome::Failed
        }
    }
}

/// Next watchdog run (§3.1): `interval` ± 50% jitter, or earlier if a job
/// asked for it.
pub(crate) fn next_interval(
    check_interval: Micros,
    job_next_runs: &[Micros],
    now: Micros,
    rand: u8,
) -> Micros {
    let base = check_interval + check_interval * (i64::from(rand) - 128) / 256;
    let earliest = job_next_runs
        .iter()
        .copied()
        .filter(|t| *t > 0)
        .map(|t| t - now)
        .min();
    match earliest {
        Some(d) if d < base => d.max(time::USEC_PER_SEC / 10),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Global;
    use crate::config::Md;
    use crate::lifecycle::events::CommandNotify;

    #[test]
    fn a_renewal_another_node_holds_waits_for_its_lease() {
        use crate::store::lease::{Leases, Take, SKEW};
        let (_d, store) = crate::testutil::tmpstore("joblease");
        let global = Global {
            cluster_node: Some("me".into()),
            cluster_lease: time::from_secs(60),
            ..Global::default()
        };
        let other = Global {
            cluster_node: Some("other".into()),
            ..global.clone()
        };
        let leases = Leases::of(&store, &global).unwrap();
        leases.prepare().unwrap();
        let now = time::now();
        let Take::Taken(held) = Leases::of(&store, &other)
            .unwrap()
            .try_take(&lease_name("a.org"), now)
            .unwrap()
        else {
            panic!("free lease not taken")
        };
        let md = Md::from_def(
            &crate::config::MdDef::new(vec!["a.org".into()]),
            &crate::config::Settings::default(),
            None,
        );
        let ctx = JobCtx {
            store: &store,
            md: &md,
            global: &global,
            renew_at: now - 1,
            warn_at: None,
            complete: false,
            challenges: Ok(vec![crate::base::challenge::ChallengeType::Http01]),
            user_agent: "test".into(),
            run_user: "nobody".into(),
            revoked: None,
            certs: Vec::new(),
            leases: Some(leases),
            requested: None,
        };
        let mut notify = CommandNotify {
            message_cmd: None,
            notify_cmd: None,
            notes: Vec::new(),
        };
        let mut notes = Vec::new();
        let (outcome, job) = process(&ctx, &mut notify, now, &mut notes).unwrap();
        assert!(outcome == Outcome::Idle);
        // back when the holder's lease has run out, and not a moment later
        assert_eq!(
            job.next_run,
            held.holder().expires_micros() + SKEW + time::USEC_PER_SEC
        );
        // the job belongs to the holder: nothing written, no event
        assert!(!store.path(Group::Staging, "a.org", "job.json").exists());
        assert!(notes
            .iter()
            .any(|n| n.msg.contains("in the hands of cluster node other")));
        drop(held);
    }

    #[test]
    fn intervals() {
        let h12 = time::from_secs(12 * 3600);
        assert_eq!(next_interval(h12, &[], 0, 128), h12);
        assert_eq!(next_interval(h12, &[], 0, 0), h12 / 2);
        assert_eq!(
            next_interval(h12, &[0, time::from_secs(30)], 0, 128),
            time::from_secs(30)
        );
    }
}
