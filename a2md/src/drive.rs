//! `a2md drive`: obtains a certificate into the store now, without httpd.

use crate::cli::DriveArgs;
use crate::usage;
use md_engine::acme::challenge::{ChallengeEnv, Events, RunEnv};
use md_engine::acme::{status, Acme};
use md_engine::base::http::Client;
use md_engine::base::keyspec;
use md_engine::config::{schemify_contact, Eab, Md, MdDef, Settings};
use md_engine::store::Store;
use serde_json::json;

/// Progress and events go to stderr.
struct Stderr;
impl Events for Stderr {
    fn challenge_setup(
        &mut self,
        ctype: &md_engine::base::challenge::ChallengeType,
        domain: &str,
    ) -> Result<(), md_engine::base::command::CommandError> {
        eprintln!("[event] challenge-setup:{ctype}:{domain}");
        Ok(())
    }
    fn progress(&mut self, activity: &str) {
        eprintln!("[progress] {activity}");
    }
}

pub fn drive(store: &Store, ca: &str, http: Client, a: &DriveArgs) -> ! {
    let mut settings = Settings::default();
    let challenges = ChallengeEnv {
        types: if a.challenges.is_empty() {
            vec![md_engine::base::challenge::ChallengeType::Http01]
        } else {
            a.challenges.iter().map(|c| c.as_str().into()).collect()
        },
        dns01_cmd: a.dns01.clone(),
        dns01_version: a.dns01_version,
        tls_alpn_domains: None,
        preflight: None,
    };
    settings.contact = a.contact.clone();
    settings.ca_agreement = a.agreement.clone();
    if let Some(k) = &a.keys {
        let words: Vec<&str> = k.split_whitespace().collect();
        settings.pkey_specs = Some(keyspec::parse_specs(&words).unwrap_or_else(|e| usage(&e)));
    }
    if let [kid, hmac] = a.eab.as_slice() {
        settings.eab = Some(Eab {
            kid: kid.clone(),
            hmac: Some(hmac.clone()),
        });
    }
    if a.must_staple {
        settings.must_staple = Some(true);
    }
    settings.profile = a.profile.clone();
    if a.profile_mandatory {
        settings.profile_mandatory = Some(true);
    }
    let def = MdDef {
        domains: a.names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        transitive: None,
        settings: settings.clone(),
        cert_files: vec![],
        key_files: vec![],
        defn: None,
    };
    let mut md = Md::from_def(&def, &Settings::default(), None);
    if let Some(c) = &settings.contact {
        md.contacts = vec![schemify_contact(c)];
    }
    md.ca_urls = vec![ca.to_string()];
    md.found.ca_account = a.account.clone();
    let result = Acme::connect(http, ca).and_then(|mut acme| {
        let mut events = Stderr;
        let mut env = RunEnv {
            store,
            events: &mut events,
            challenges,
            notes: Vec::new(),
            replaced: Vec::new(),
            current: Vec::new(),
            leases: None,
        };
        let r = md_engine::acme::drive::stage(&mut acme, &md, &mut env);
        for n in &env.notes {
            eprintln!("[{:?}] {}", n.level, n.msg);
        }
        r
    });
    match result {
        Ok(staged) => {
            let out = json!({
                "status": 0,
                "name": md.name,
                "staged": staged.new_certs.iter().map(|s| s.name()).collect::<Vec<_>>(),
                "account": format!("{:?}", staged.account),
                "valid-from": md_engine::base::time::rfc822(staged.valid_from),
            });
            println!("{out}");
            std::process::exit(0)
        }
        Err(e) => {
            let out = json!({
                "status": e.status(),
                "status-description": status::describe(e.status()),
                "problem": e.problem,
                "detail": e.detail,
                "subproblems": e.subproblems,
            });
            println!("{out}");
            std::process::exit(1);
        }
    }
}
