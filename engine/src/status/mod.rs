//! Status rendering (spec §6): md-status and the certificate status, the
//! mod_status sections and metrics, and what the request path answers.

pub mod dashboard;
pub mod listing;
pub mod mdstatus;
pub mod server;
pub mod staplings;
