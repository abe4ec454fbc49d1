//! Property tests: whatever a CA, an OCSP responder, the store or a
//! configuration hands the engine, it answers with a value or an error,
//! never a panic (issue 11). Inputs are bounded in size; outputs must be
//! too (nothing grows beyond its input).

use md_engine::acme::{self, account::Account, order::Order, Directory};
use md_engine::base::http::Response;
use md_engine::lifecycle::jobfile::Job;
use md_engine::store::{Group, Store};
use proptest::prelude::*;
use serde_json::Value;

/// Arbitrary JSON, with the keys the parsers look for among random ones.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("status".to_string()),
        Just("url".to_string()),
        Just("ca-url".to_string()),
        Just("type".to_string()),
        Just("detail".to_string()),
        Just("subproblems".to_string()),
        Just("identifier".to_string()),
        Just("authorizations".to_string()),
        Just("finalize".to_string()),
        Just("certificate".to_string()),
        Just("challenges".to_string()),
        Just("newNonce".to_string()),
        Just("newAccount".to_string()),
        Just("newOrder".to_string()),
        Just("meta".to_string()),
        Just("renewalInfo".to_string()),
        Just("log".to_string()),
        Just("entries".to_string()),
        Just("last".to_string()),
        Just("next-run".to_string()),
        Just("valid".to_string()),
        Just("response".to_string()),
        "[a-z-]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("Wed, 02 Dec 2026 05:42:00 GMT".into())),
        Just(Value::String("https://127.0.0.1:14000/x".into())),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn response(status: u32, ctype: &str, body: Vec<u8>) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), ctype.into())],
        body,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn acme_json_documents(v in json()) {
        let _ = Order::from_json(&v);
        let _ = Account::from_json(&v);
        let _ = Directory::parse("https://ca.example/dir", &v);
        let _ = Job::from_json(&v);
        let _ = md_engine::serving::ocsp::Response::from_json(&v);
        let _ = md_engine::base::keyspec::KeySpec::from_json(&v);
        let body = serde_json::to_vec(&v).unwrap();
        let r = response(400, "application/problem+json", body);
        let e = acme::response_error(&r);
        prop_assert!(e.detail.len() <= r.body.len() + 4096);
        let _ = acme::json_body(&r);
    }

    #[test]
    fn acme_bodies_of_any_bytes(status in 100u32..600, body in prop::collection::vec(any::<u8>(), 0..2048),
                                ctype in prop_oneof![Just("application/json"), Just("application/problem+json"),
                                                     Just("text/html"), Just("")]) {
        let r = response(status, ctype, body);
        let _ = acme::json_body(&r);
        let e = acme::response_error(&r);
        prop_assert!(e.detail.len() <= r.body.len() + 4096);
        let _ = acme::retry_after(&r);
    }

    #[test]
    fn pem_and_der(bytes in prop::collection::vec(any::<u8>(), 0..4096), prefix in 0usize..3) {
        let mut pem = match prefix {
            0 => b"-----BEGIN CERTIFICATE-----\n".to_vec(),
            1 => b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n".to_vec(),
            _ => Vec::new(),
        };
        pem.extend_from_slice(&bytes);
        let _ = md_engine::serving::ocsp::Cert::from_pem(&pem, Some("a.org"));
        let _ = md_engine::lifecycle::state::CertInfo::from_pem("rsa", &pem);
        let _ = md_engine::base::crypto::Key::from_pem(&pem, Some(&[7u8; 48]));
        let _ = md_engine::X509::from_der(&bytes);
    }

    #[test]
    fn configuration_and_time_strings(s in ".{0,64}") {
        let _ = md_engine::base::uri::parse(&s);
        let _ = md_engine::base::uri::check_absolute_http(&s);
        let _ = md_engine::base::time::parse_duration(&s, "d");
        let _ = md_engine::base::time::TimeSlice::parse(&s, 86_400_000_000);
        let _ = md_engine::base::time::parse_rfc822(&s);
        let _ = md_engine::base::time::parse_rfc3339(&s);
        let _ = md_engine::serving::ocsp::parse_asn1_print(&s);
        let words = md_engine::config::split_conf(&s);
        prop_assert!(words.iter().map(String::len).sum::<usize>() <= s.len());
        let args: Vec<&str> = s.split(' ').collect();
        let _ = md_engine::base::keyspec::parse_specs(&args);
    }
}

/// A fresh store in a temporary directory, removed when dropped.
struct TmpStore(std::path::PathBuf, Store);

impl TmpStore {
    fn new() -> TmpStore {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "md-prop-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let store = Store::open(&dir, None, &mut Vec::new()).unwrap();
        TmpStore(dir, store)
    }
}

impl Drop for TmpStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Store files with any content: read with an error, or set aside and
    /// rebuilt; never a panic. md_store.json too: a clear error.
    #[test]
    fn store_files(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let t = TmpStore::new();
        let store = &t.1;
        std::fs::create_dir_all(store.local_path(Group::Staging, "a.org", "")).unwrap();
        for file in ["job.json", "md.json", "order.json", "account.json"] {
            std::fs::write(store.local_path(Group::Staging, "a.org", file), &bytes).unwrap();
        }
        let mut notes = Vec::new();
        let j = Job::load_healing(store, Group::Staging, "a.org", &mut notes).unwrap();
        prop_assert_eq!(j.name.as_str(), "a.org");
        let _ = store.load_json(Group::Staging, "a.org", "order.json")
            .map(|v| v.map(|v| Order::from_json(&v)));
        let _ = store.load_key(Group::Staging, "a.org", "account.json");
        std::fs::write(t.0.join("md_store.json"), &bytes).unwrap();
        let _ = Store::open(&t.0, None, &mut Vec::new());
    }
}
