//! a2md: drive the ACME engine on a store from the command line (a subset
//! of upstream mod_md's tool of the same name). Used by the end-to-end
//! tests and handy for admins:
//!
//!   a2md -d STORE -a CA_URL [-C CAFILE] [-p PROXY [-P PROXY_CAFILE]] drive [options] name...
//!
//! drive options: --challenges T[,T..]  --dns01 CMD  --dns01-version N
//!   --contact ADDR  --agreement accepted|URL  --keys "SPEC..."  --eab KID HMAC
//!   --must-staple  --profile NAME  --profile-mandatory  --account ID
//!
//! Prints a JSON result; exit code 0 on success, 1 on an ACME error, 2 on
//! bad usage.

use md_engine::acme::order::{self, ChallengeEnv, Events, RunEnv};
use md_engine::acme::{status, Acme};
use md_engine::config::{schemify_contact, Eab, Md, MdDef, Settings};
use md_engine::http::Client;
use md_engine::keyspec;
use md_engine::store::Store;
use serde_json::json;
use std::path::PathBuf;

/// Progress and events go to stderr.
struct Stderr;
impl Events for Stderr {
    fn challenge_setup(&mut self, ctype: &str, domain: &str) -> Result<(), String> {
        eprintln!("[event] challenge-setup:{ctype}:{domain}");
        Ok(())
    }
    fn progress(&mut self, activity: &str) {
        eprintln!("[progress] {activity}");
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("a2md: {msg}\nusage: a2md -d STORE -a CA_URL [-C CAFILE] [-p PROXY] drive [options] name...");
    std::process::exit(2)
}

fn main() {
    md_engine::http::global_init();
    let mut args = std::env::args().skip(1);
    let (mut store_dir, mut ca, mut cafile, mut proxy, mut proxy_cafile) =
        (None, None, None, None, None);
    let mut cmd = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-d" | "--dir" => store_dir = args.next(),
            "-a" | "--acme" => ca = args.next(),
            "-C" | "--cafile" => cafile = args.next(),
            "-p" | "--proxy" => proxy = args.next(),
            "-P" | "--proxy-cafile" => proxy_cafile = args.next(),
            "drive" => {
                cmd = Some(a);
                break;
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    if cmd.is_none() {
        usage("missing command");
    }
    let store_dir = store_dir.unwrap_or_else(|| usage("missing -d STORE"));
    let ca = ca.unwrap_or_else(|| usage("missing -a CA_URL"));

    let mut settings = Settings::default();
    let mut challenges = ChallengeEnv {
        types: vec!["http-01".into()],
        dns01_cmd: None,
        dns01_version: 1,
        tls_alpn_domains: None,
    };
    let mut names = Vec::new();
    let mut account = None;
    let rest: Vec<String> = args.collect();
    let mut i = 0;
    let next = |i: &mut usize| -> String {
        *i += 1;
        rest.get(*i)
            .cloned()
            .unwrap_or_else(|| usage("missing option value"))
    };
    while i < rest.len() {
        match rest[i].as_str() {
            "--challenges" => {
                challenges.types = next(&mut i).split(',').map(str::to_string).collect()
            }
            "--dns01" => challenges.dns01_cmd = Some(next(&mut i)),
            "--dns01-version" => challenges.dns01_version = next(&mut i).parse().unwrap_or(1),
            "--contact" => settings.contact = Some(next(&mut i)),
            "--agreement" => settings.ca_agreement = Some(next(&mut i)),
            "--keys" => {
                let v = next(&mut i);
                let words: Vec<&str> = v.split_whitespace().collect();
                settings.pkey_specs =
                    Some(keyspec::parse_specs(&words).unwrap_or_else(|e| usage(&e)));
            }
            "--eab" => {
                let kid = next(&mut i);
                let hmac = next(&mut i);
                settings.eab = Some(Eab {
                    kid,
                    hmac: Some(hmac),
                });
            }
            "--must-staple" => settings.must_staple = Some(true),
            "--profile" => settings.profile = Some(next(&mut i)),
            "--profile-mandatory" => settings.profile_mandatory = Some(true),
            "--account" => account = Some(next(&mut i)),
            n if n.starts_with("--") => usage(&format!("unknown drive option {n}")),
            n => names.push(n.to_ascii_lowercase()),
        }
        i += 1;
    }
    if names.is_empty() {
        usage("no domain names");
    }
    let def = MdDef {
        domains: names,
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
    md.ca_urls = vec![ca.clone()];
    md.found.ca_account = account;

    let mut notes = Vec::new();
    let store = match Store::open(&PathBuf::from(&store_dir), None, &mut notes) {
        Ok(s) => s,
        Err(e) => {
            println!("{}", json!({"status": status::EGENERAL, "detail": e.msg}));
            std::process::exit(1);
        }
    };
    let mut http = Client::new(format!("apachemd/{}", md_engine::MOD_MD_VERSION));
    http.ca_file = cafile;
    http.proxy = proxy;
    http.proxy_ca_file = proxy_cafile;
    let result = Acme::connect(http, &ca).and_then(|mut acme| {
        let mut events = Stderr;
        let mut env = RunEnv {
            store: &store,
            events: &mut events,
            challenges,
            notes: Vec::new(),
            replaced: Vec::new(),
            current: Vec::new(),
            leases: None,
        };
        let r = order::stage(&mut acme, &md, &mut env);
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
                "valid-from": md_engine::time::rfc822(staged.valid_from),
            });
            println!("{out}");
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
