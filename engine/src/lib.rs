//! The engine of mod_md in Rust: everything that does not need httpd.
//!
//! This crate is plain safe Rust (`#![forbid(unsafe_code)]`); it never sees
//! an APR pool or an httpd structure. The `mod_md` glue crate turns httpd's
//! callbacks into calls of this API.
#![forbid(unsafe_code)]

pub mod acme;
pub mod base;
pub mod config;
pub mod generation;
pub mod lifecycle;
pub mod serving;
pub mod status;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;

/// The version this module reports (that of the C module it replaces).
pub const MOD_MD_VERSION: &str = "2.6.10";

/// What this module calls itself in the log at start-up and in md-status
/// (`module`): the C module's `version` stays the mod_md it is compatible
/// with, so that tools reading md-status see no difference.
pub const MODULE_NAME: &str = concat!("mod_md in Rust ", env!("CARGO_PKG_VERSION"));

/// Certificates cross the crate boundary as OpenSSL objects.
pub use openssl::x509::X509;
/// Re-exported for the glue (JSON values cross the crate boundary).
pub use serde_json;
