//! What processing one MD's renewal job needs (built by the watchdog from
//! what post_config froze), and the HTTP client it talks to the CA with.

use crate::base::http::Client;
use crate::base::time::Micros;
use crate::config::{Global, Md};
use crate::store::Store;

/// Who says a current certificate of an MD is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokedBy {
    Ocsp,
    Crl,
}

/// Everything processing one MD needs; built by the watchdog from what
/// post_config froze.
pub struct JobCtx<'a> {
    pub store: &'a Store,
    pub md: &'a Md,
    pub global: &'a Global,
    pub renew_at: Micros,
    pub warn_at: Option<Micros>,
    /// Whether the MD has complete, valid certificates now.
    pub complete: bool,
    pub challenges: crate::lifecycle::state::Challenges,
    pub user_agent: String,
    /// httpd's `User` (named in hints about permissions).
    pub run_user: String,
    /// The MD staples and its OCSP responder says a certificate is
    /// revoked, or its issuer's CRL lists one.
    pub revoked: Option<RevokedBy>,
    /// The MD's current certificates (leaves), for ARI.
    pub certs: Vec<(String, openssl::x509::X509)>,
    /// The store's leases when several httpd share it (`MDClusterNode`).
    pub leases: Option<crate::store::lease::Leases>,
    /// An operator's pending request for a new certificate (`a2md renew`).
    pub requested: Option<crate::store::request::Request>,
}

/// An HTTP client for the MD's CA: CA file and proxy, per MD or global.
pub(crate) fn ca_client(ctx: &JobCtx<'_>) -> Client {
    let md = ctx.md;
    let mut http = Client::new(ctx.user_agent.clone());
    http.ca_file = md.ca_certs.clone().or_else(|| ctx.global.ca_certs.clone());
    http.proxy = md
        .proxy_url
        .clone()
        .or_else(|| ctx.global.proxy_url.clone());
    http.proxy_ca_file = md
        .proxy_ca_certs
        .clone()
        .or_else(|| ctx.global.proxy_ca_certs.clone());
    http
}
