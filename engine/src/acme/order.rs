//! Orders (spec §4.4, §4.7): the order resource as `order.json` keeps it,
//! new orders, and the certificate chain download.

use super::resource::{self, Authorization, OrderResource, OrderStatus};
use super::{json_body, AResult, Acme, AcmeError, Kind};
use crate::base::crypto::{self};
use crate::config::Md;
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Polling limits (§4.2).
pub const AUTHZ_TIMEOUT: Duration = Duration::from_secs(300);
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// `staging/<md>/order.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Order {
    pub url: String,
    #[serde(default)]
    pub status: OrderStatus,
    #[serde(default)]
    pub authorizations: Vec<String>,
    #[serde(default)]
    pub challenge_setups: Vec<String>,
    /// The challenges the CA took to validate (ours; the C module does not
    /// write it and ignores it): a run that resumes the order after a
    /// restart waits for the CA's verdict instead of asking again (a CA
    /// may validate twice and judge on the second, when the first run's
    /// data is gone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub challenges_asked: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finalize: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

impl Order {
    pub(crate) fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// None when the file does not hold an order (it is then discarded and
    /// a new order made).
    pub fn from_json(j: &Value) -> Option<Order> {
        let mut o = Order::deserialize(j).ok()?;
        if o.status == OrderStatus::Unknown {
            o.status = OrderStatus::Pending;
        }
        Some(o)
    }

    /// Takes over what the CA says about the order.
    pub(crate) fn update(&mut self, r: OrderResource) {
        if let Some(s) = r.status {
            self.status = s;
        }
        if let Some(a) = r.authorizations {
            self.authorizations = a;
        }
        if r.finalize.is_some() {
            self.finalize = r.finalize;
        }
        if r.certificate.is_some() {
            self.certificate = r.certificate;
        }
    }

    /// Takes over the CA's answer about the order, if it sent one.
    pub(crate) fn update_from(&mut self, r: &crate::base::http::Response) -> AResult<()> {
        if let Some(j) = json_body(r) {
            self.update(resource::parse("order", &self.url, &j)?);
        }
        Ok(())
    }
}

/// The identifiers to order: MD names minus those a wildcard in the list
/// covers, in order of first appearance.
pub(crate) fn order_identifiers(domains: &[String]) -> Vec<String> {
    domains
        .iter()
        .filter(|d| {
            !domains.iter().any(|w| {
                w.strip_prefix("*.").is_some_and(|base| {
                    *d != w
                        && d.split_once('.')
                            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(base))
                })
            })
        })
        .cloned()
        .collect()
}

/// The error of an authorization that can no longer become valid.
pub(crate) fn authz_failed(authz: &Authorization) -> AcmeError {
    AcmeError::new(
        Kind::Invalid,
        format!(
            "domain authorization for {} failed, CA considers answer to challenge invalid, {}.",
            authz.identifier.value,
            authz.error_detail()
        ),
    )
}

pub(crate) fn new_order(
    acme: &mut Acme,
    md: &Md,
    replaces: Option<&str>,
    profile: Option<&str>,
) -> AResult<Order> {
    let idents: Vec<Value> = order_identifiers(&md.domains)
        .iter()
        .map(|d| json!({"type": crypto::ident_type(d), "value": d}))
        .collect();
    let mut payload = Map::new();
    payload.insert("identifiers".into(), Value::Array(idents));
    if let Some(id) = replaces {
        payload.insert("replaces".into(), json!(id));
    }
    if let Some(p) = profile {
        match acme.dir.profiles.iter().find(|x| x.eq_ignore_ascii_case(p)) {
            Some(offered) => {
                payload.insert("profile".into(), json!(offered));
            }
            None if md.profile_mandatory => {
                return Err(AcmeError::new(
                    Kind::Invalid,
                    format!("mandatory ACME profile '{p}' is not offered by CA"),
                ));
            }
            None => {}
        }
    }
    let url = acme.dir.new_order.clone();
    let r = acme.post(&url, Some(&Value::Object(payload)), false)?;
    let loc = r
        .header("location")
        .map(str::to_string)
        .ok_or_else(|| AcmeError::new(Kind::Invalid, "new order without Location header"))?;
    let mut o = Order {
        url: loc,
        ..Default::default()
    };
    o.update_from(&r)?;
    Ok(o)
}

pub(crate) fn link_up(r: &crate::base::http::Response) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "link")
        .flat_map(|(_, v)| v.split(','))
        .find(|l| l.contains("rel=\"up\"") || l.contains("rel=up"))
        .and_then(|l| Some(l[l.find('<')? + 1..l.find('>')?].to_string()))
}

pub(crate) fn parse_certs(r: &crate::base::http::Response) -> AResult<Vec<X509>> {
    let ct = r.content_type().unwrap_or_default();
    let res = if ct == "application/pkix-cert" {
        X509::from_der(&r.body).map(|c| vec![c])
    } else {
        X509::stack_from_pem(&r.body)
    };
    res.map_err(|e| {
        AcmeError::new(
            Kind::Invalid,
            format!("cannot parse certificate ({ct}): {e}"),
        )
    })
}

/// Downloads the chain at `url`, following `Link: rel="up"` (§4.7).
pub(crate) fn download_chain(acme: &mut Acme, url: &str) -> AResult<Vec<X509>> {
    let r = acme.post_as_get(url)?;
    let mut chain = parse_certs(&r)?;
    let mut next = link_up(&r);
    if chain.len() == 1 && next.is_none() {
        return Err(AcmeError::new(
            Kind::Invalid,
            "no link header 'up' for new certificate, unable to retrieve chain",
        ));
    }
    let mut seen = vec![url.to_string()];
    while chain.len() == 1 && chain.len() < 10 {
        let Some(u) = next.take().filter(|u| !seen.contains(u)) else {
            break;
        };
        seen.push(u.clone());
        let r = acme.post_as_get(&u)?;
        chain.extend(parse_certs(&r)?);
        next = link_up(&r);
    }
    if chain.is_empty() {
        return Err(AcmeError::new(
            Kind::Invalid,
            "no certificate in the CA's response",
        ));
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_without_covered_names() {
        let d = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            order_identifiers(&d(&["a.org", "*.a.org", "www.a.org", "x.y.a.org"])),
            d(&["a.org", "*.a.org", "x.y.a.org"])
        );
        assert_eq!(
            order_identifiers(&d(&["a.org", "127.0.0.1"])),
            d(&["a.org", "127.0.0.1"])
        );
    }

    #[test]
    fn order_json() {
        let o = Order {
            url: "u".into(),
            status: OrderStatus::Pending,
            authorizations: vec!["a1".into()],
            challenge_setups: vec!["http-01:a.org".into()],
            challenges_asked: vec![],
            finalize: Some("f".into()),
            certificate: None,
        };
        let j = o.to_json();
        // as the C module writes it
        assert_eq!(
            j.to_string(),
            r#"{"url":"u","status":"pending","authorizations":["a1"],"challenge-setups":["http-01:a.org"],"finalize":"f"}"#
        );
        assert_eq!(Order::from_json(&j).unwrap(), o);
        // with the challenges the CA took (ours), read back
        let asked = Order {
            challenges_asked: vec!["c1".into()],
            ..o.clone()
        };
        let j = asked.to_json();
        assert_eq!(j["challenges-asked"], json!(["c1"]));
        assert_eq!(Order::from_json(&j).unwrap(), asked);
        let odd = Order::from_json(&json!({"url": "u", "status": "weird"})).unwrap();
        assert_eq!(odd.status, OrderStatus::Pending);
    }
}
