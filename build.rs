//! Generates the httpd/APR bindings with bindgen over `include/md_httpd.h`.
//!
//! Header locations are asked from the installed httpd/APR tool chain:
//! `apxs -q INCLUDEDIR` and `apr-1-config --includedir` (env overrides:
//! `MD_HTTPD_INCLUDE`, `MD_APR_INCLUDE`).
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn query(var: &str, cmd: &str, args: &[&str], fallback: &str) -> String {
    if let Ok(v) = env::var(var) {
        return v;
    }
    match Command::new(cmd).args(args).output() {
        Ok(out) if out.status.success() => {
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !s.is_empty() {
                return s;
            }
            fallback.to_string()
        }
        _ => {
            println!(
                "cargo:warning={cmd} not found or failed; falling back to {fallback} \
                 (install apache2-dev / libapr1-dev)"
            );
            fallback.to_string()
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=include/md_httpd.h");
    println!("cargo:rerun-if-env-changed=MD_HTTPD_INCLUDE");
    println!("cargo:rerun-if-env-changed=MD_APR_INCLUDE");
    let httpd_inc = query(
        "MD_HTTPD_INCLUDE",
        "apxs",
        &["-q", "INCLUDEDIR"],
        "/usr/include/apache2",
    );
    let apr_inc = query(
        "MD_APR_INCLUDE",
        "apr-1-config",
        &["--includedir"],
        "/usr/include/apr-1.0",
    );
    let mut builder = bindgen::Builder::default()
        .header("include/md_httpd.h")
        .clang_arg(format!("-I{httpd_inc}"))
        .clang_arg(format!("-I{apr_inc}"))
        .allowlist_function("ap_.*|apr_.*|unixd_.*")
        .allowlist_type("module_struct|module|command_rec|cmd_parms.*|server_rec|request_rec|conn_rec|ap_.*|apr_.*|ap_watchdog.*|process_rec|unixd_config_rec|core_server_config|core_dir_config")
        .allowlist_var("ap_.*|MODULE_MAGIC_.*|APR_.*|AP_.*|APLOG_.*|OK|DECLINED|DONE|HTTP_.*|M_GET|M_POST|RSRC_CONF|OR_.*|ACCESS_CONF|NOT_IN_.*|GLOBAL_ONLY|AP_WATCHDOG_.*|APLOGNO.*|PROXY_.*|AP_STATUS_.*")
        .blocklist_item("IPPORT_RESERVED")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for inc in [&httpd_inc, &apr_inc] {
        println!("cargo:rerun-if-changed={inc}");
    }
    builder = builder.size_t_is_usize(true);
    let bindings = builder.generate().expect(
        "bindgen failed on include/md_httpd.h: are apache2-dev and libclang-dev installed?",
    );
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR set by cargo"));
    bindings
        .write_to_file(out.join("httpd_bindings.rs"))
        .expect("write bindings");
}
