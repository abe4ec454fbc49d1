//! `a2md list` and `a2md status`: the managed domains of a store, with or
//! without httpd running (md-status's fields, from the store alone).

use crate::fail;
use md_engine::base::time;
use md_engine::status::listing;
use md_engine::store::Store;
use serde_json::Value;

fn text<'a>(j: &'a Value, ptr: &str) -> &'a str {
    j.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// One line per MD.
pub fn list(store: &Store, json: bool) -> ! {
    let now = time::now();
    let mds: Vec<Value> = listing::names(store)
        .iter()
        .filter_map(|n| listing::md(store, n, now))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(mds)).unwrap_or_default()
        );
        std::process::exit(0)
    }
    if mds.is_empty() {
        println!("no managed domains in {}", store.location());
        std::process::exit(0)
    }
    let rows: Vec<[String; 9]> = mds.iter().map(row).collect();
    let head = [
        "MD",
        "NAMES",
        "KEYS",
        "VALID UNTIL",
        "DAYS",
        "RENEW AT",
        "CA",
        "ACCOUNT",
        "STATE",
    ];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(&head.map(str::to_string)));
    for r in &rows {
        println!("{}", line(r));
    }
    std::process::exit(0)
}

fn row(j: &Value) -> [String; 9] {
    let names = j
        .get("domains")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let keys = j
        .get("cert")
        .and_then(Value::as_object)
        .map(|o| {
            o.keys()
                .filter(|k| *k != "valid")
                .cloned()
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "-".into());
    let until = j
        .get("cert")
        .and_then(Value::as_object)
        .and_then(|o| o.get("valid"))
        .map(|c| text(c, "/until").to_string())
        .unwrap_or_else(|| "-".into());
    let days = j
        .get("days-left")
        .map(|d| d.to_string())
        .unwrap_or_else(|| "-".into());
    let mut state = text(j, "/state-text").to_string();
    if let Some(p) = j.get("problem").and_then(Value::as_str) {
        state = format!("{state}: {p}");
    }
    [
        text(j, "/name").to_string(),
        names,
        keys,
        until,
        days,
        text(j, "/renew-at").to_string(),
        ca_urls(j),
        text(j, "/ca/account").to_string(),
        state,
    ]
}

/// One MD in detail.
pub fn status(store: &Store, md: &str, json: bool) -> ! {
    let Some(j) = listing::md(store, md, time::now()) else {
        fail(format!(
            "no managed domain {md} in {} (a2md list names them)",
            store.location()
        ))
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
        std::process::exit(0)
    }
    let [name, names, keys, until, days, renew_at, ca, account, state] = row(&j);
    println!("MD:          {name}");
    println!("names:       {names}");
    println!("keys:        {keys}");
    println!("valid until: {until} ({days} days left)");
    println!("renew at:    {renew_at}");
    println!("state:       {state}");
    println!("CA:          {ca}");
    println!("account:     {account}");
    std::process::exit(0)
}

fn ca_urls(j: &Value) -> String {
    match j.pointer("/ca/urls").and_then(Value::as_array) {
        Some(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        None => text(j, "/ca/url").to_string(),
    }
}
