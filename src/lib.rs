//! mod_md in Rust: the httpd glue.
//!
//! This crate is the only place with `unsafe`: it exports `md_module`, turns
//! httpd's callbacks (directives, hooks) into calls of the `md_engine` crate
//! and hands results back. Every `extern "C"` entry point runs its body under
//! [`guard::guard`], which stops panics at the C boundary.
//!
//! Lifetimes: configuration objects are Rust boxes whose ownership is handed
//! to the APR pool they were created for (`pconf`); a pool cleanup drops them.
//! Pointers into httpd structures (`server_rec`, `cmd_parms`) are only used
//! during the callback that received them, or, for `server_rec`, while the
//! configuration pool that owns both them and our state is alive.
#![deny(unsafe_op_in_unsafe_fn)]

#[allow(warnings, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod ffi {
    include!(concat!(env!("OUT_DIR"), "/httpd_bindings.rs"));
}

mod apr;
mod challenge;
mod cmds;
mod conf;
mod guard;
mod hooks;
mod hot;
mod https;
mod log;
mod module;
mod ocsp;
mod status;
mod tls;
mod watchdog;

pub use module::md_module;
