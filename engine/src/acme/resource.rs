//! ACME resources as a CA sends them (RFC 8555 §7.1), typed.
//!
//! Unknown fields are ignored and a status this module does not know
//! becomes `Unknown`, so that a CA's extension never breaks a parse; a
//! document that does not have the shape RFC 8555 gives it is an error that
//! names the resource ([`parse`]).

use super::{AResult, AcmeError, Kind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Reads a resource of type `T` from a CA's JSON answer.
pub fn parse<T: DeserializeOwned>(what: &str, url: &str, j: &Value) -> AResult<T> {
    T::deserialize(j).map_err(|e| {
        AcmeError::new(
            Kind::Invalid,
            format!("the CA's {what} at {url} is not what RFC 8555 describes: {e}"),
        )
    })
}

/// The status of an order (RFC 8555 §7.1.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    #[default]
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
    #[serde(other)]
    Unknown,
}

impl OrderStatus {
    /// Past the authorizations: the order can be (or has been) finalized.
    pub(crate) fn is_ready(self) -> bool {
        matches!(self, Self::Ready | Self::Processing | Self::Valid)
    }
}

/// The status of an authorization (RFC 8555 §7.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthzStatus {
    Pending,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
    #[serde(other)]
    Unknown,
}

impl AuthzStatus {
    /// The authorization can no longer become valid.
    pub(crate) fn is_failed(self) -> bool {
        matches!(
            self,
            Self::Invalid | Self::Deactivated | Self::Expired | Self::Revoked
        )
    }
}

/// The status of a challenge (RFC 8555 §7.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStatus {
    Pending,
    Processing,
    Valid,
    Invalid,
    #[serde(other)]
    Unknown,
}

/// The status of an account (RFC 8555 §7.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Valid,
    Deactivated,
    Revoked,
    #[serde(other)]
    Unknown,
}

/// A problem document (RFC 7807, RFC 8555 §6.7).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub detail: String,
    /// Kept as the CA sent it: job.json and md-status show it unchanged.
    #[serde(default)]
    pub subproblems: Option<Vec<Value>>,
}

/// `{"type": "dns", "value": "example.org"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: crate::base::challenge::ChallengeType,
    pub value: String,
}

/// What the CA says about an order (RFC 8555 §7.1.3). Every field is
/// optional: an answer updates what it carries.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OrderResource {
    pub status: Option<OrderStatus>,
    pub authorizations: Option<Vec<String>>,
    pub finalize: Option<String>,
    pub certificate: Option<String>,
}

/// An authorization (RFC 8555 §7.1.4).
#[derive(Debug, Clone, Deserialize)]
pub struct Authorization {
    pub identifier: Identifier,
    pub status: AuthzStatus,
    #[serde(default)]
    pub challenges: Vec<Challenge>,
    #[serde(default)]
    pub wildcard: bool,
}

impl Authorization {
    /// The name the authorization is for, with `*.` when it is a wildcard's.
    pub fn name(&self) -> String {
        if self.wildcard {
            format!("*.{}", self.identifier.value)
        } else {
            self.identifier.value.clone()
        }
    }

    /// The first error a challenge reports.
    pub fn error(&self) -> Option<&Problem> {
        self.challenges.iter().find_map(|c| c.error.as_ref())
    }

    /// "type detail" of the first challenge error, for the admin.
    pub(crate) fn error_detail(&self) -> String {
        self.error()
            .map(|e| format!("{} {}", e.kind, e.detail).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "no error given".to_string())
    }
}

/// A challenge (RFC 8555 §7.1.5, §8).
#[derive(Debug, Clone, Deserialize)]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: crate::base::challenge::ChallengeType,
    pub url: String,
    #[serde(default)]
    pub token: String,
    pub status: Option<ChallengeStatus>,
    pub error: Option<Problem>,
}

/// `meta` of a directory (RFC 8555 §7.1.1, profiles from
/// draft-ietf-acme-profiles).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryMeta {
    pub terms_of_service: Option<String>,
    #[serde(default)]
    pub external_account_required: bool,
    #[serde(default)]
    pub profiles: serde_json::Map<String, Value>,
}

/// A directory (RFC 8555 §7.1.1, `renewalInfo` from RFC 9773).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryResource {
    pub new_account: String,
    pub new_order: String,
    pub new_nonce: String,
    pub revoke_cert: Option<String>,
    pub key_change: Option<String>,
    pub renewal_info: Option<String>,
    #[serde(default)]
    pub meta: Option<DirectoryMeta>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn authorization_with_unknown_status_and_fields() {
        let a: Authorization = parse(
            "authorization",
            "u",
            &json!({
                "identifier": {"type": "dns", "value": "example.org"},
                "status": "someday", "wildcard": true, "x-extra": 1,
                "challenges": [
                    {"type": "dns-01", "url": "c1", "token": "t", "status": "invalid",
                     "error": {"type": "urn:ietf:params:acme:error:dns", "detail": "no TXT"}},
                    {"type": "http-01", "url": "c2", "token": "t"}
                ]
            }),
        )
        .unwrap();
        assert_eq!(a.status, AuthzStatus::Unknown);
        assert_eq!(a.name(), "*.example.org");
        assert_eq!(
            a.error_detail(),
            "urn:ietf:params:acme:error:dns no TXT".to_string()
        );
        assert_eq!(a.challenges[1].status, None);
    }

    #[test]
    fn bad_shapes_are_errors_that_name_the_resource() {
        let e = parse::<Authorization>("authorization", "https://ca/a/1", &json!({"status": 3}))
            .unwrap_err();
        assert_eq!(e.kind, Kind::Invalid);
        assert!(e.detail.contains("authorization at https://ca/a/1"), "{e}");
        let o: OrderResource = parse("order", "u", &json!({"status": "ready"})).unwrap();
        assert!(o.status.unwrap().is_ready());
        assert!(o.authorizations.is_none());
    }
}
