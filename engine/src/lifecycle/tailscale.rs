//! Certificates from the local tailscale daemon (spec §9): the C module
//! dropped this in 2.6.0; this module speaks the current LocalAPI.

use crate::acme::{AcmeError, Kind};
use crate::base::crypto::{self, Key};
use crate::base::http::{Client, HttpError};
use crate::config::{tailscale_socket_path as socket_path, Md, TAILSCALE_DEFAULT_URL};
use crate::store::{Group, Store};

/// Whether an MD gets its certificates from tailscale.
pub(crate) fn is_tailscale(md: &Md) -> bool {
    md.ca_proto.is_tailscale()
}

/// Fetches key and certificate chain of `md` from tailscaled and stages
/// them as a renewal would (`staging/<md>/privkey.pem`, `pubcert.pem`,
/// `md.json`). Returns the notBefore of the certificate. `run_user` is
/// named in the error when the socket is not accessible.
pub(crate) fn fetch(
    store: &Store,
    md: &Md,
    user_agent: &str,
    run_user: &str,
) -> Result<i64, AcmeError> {
    let url = md
        .ca_urls
        .first()
        .map_or(TAILSCALE_DEFAULT_URL, String::as_str);
    let sock = socket_path(url).map_err(|e| AcmeError::new(Kind::Invalid, e))?;
    if let Err(e) = std::os::unix::net::UnixStream::connect(&sock) {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                " The renewal runs as '{run_user}': allow it with 'tailscale set --operator={run_user}' \
                 (or make the socket accessible to that user)."
            )
        } else {
            " Is tailscaled running?".to_string()
        };
        return Err(AcmeError::new(
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Kind::Denied
            } else {
                Kind::Refused
            },
            format!("cannot connect to tailscaled at {sock}: {e}.{hint}"),
        ));
    }
    let mut http = Client::new(user_agent);
    http.unix_socket = Some(sock.clone());
    http.extra_headers = vec!["Sec-Tailscale: localapi".into()];
    let domain = &md.name;
    let r = http
        .get(&format!(
            "http://local-tailscaled.sock/localapi/v0/cert/{domain}?type=pair"
        ))
        .map_err(|e| {
            let msg = match e {
                HttpError::Transport(_, m) => m,
                other => other.to_string(),
            };
            AcmeError::new(Kind::Refused, format!("tailscaled at {sock}: {msg}"))
        })?;
    if r.status != 200 {
        return Err(AcmeError::new(
            Kind::General,
            format!(
                "tailscaled refused the certificate for {domain} (HTTP {}): {}",
                r.status,
                String::from_utf8_lossy(&r.body).trim()
            ),
        ));
    }
    let bad = |what: &str| {
        AcmeError::new(
            Kind::Invalid,
            format!("tailscaled answered for {domain} without a usable {what}"),
        )
    };
    let key = Key::from_pem(&r.body, None).map_err(|_| bad("private key"))?;
    let chain = crypto::chain_from_pem(&r.body).map_err(|_| bad("certificate"))?;
    let leaf = chain.first().ok_or_else(|| bad("certificate"))?;
    if !key.matches(leaf) {
        return Err(AcmeError::new(
            Kind::Invalid,
            format!("tailscaled's key and certificate for {domain} do not match"),
        ));
    }
    let serr = |e: crate::store::StoreError| AcmeError::new(Kind::General, e.msg);
    let pem = crypto::chain_to_pem(&chain).map_err(|e| AcmeError::new(Kind::General, e.0))?;
    store
        .save_key(Group::Staging, &md.name, "privkey.pem", &key)
        .map_err(serr)?;
    store
        .save_bytes(Group::Staging, &md.name, "pubcert.pem", &pem, false)
        .map_err(serr)?;
    let mut staged = md.clone();
    staged.found.ca_url = Some(url.to_string());
    store
        .save_json(Group::Staging, &md.name, "md.json", &staged.to_json())
        .map_err(serr)?;
    Ok(crypto::asn1_micros(leaf.not_before()))
}
