//! ACME challenge types (RFC 8555 §8, RFC 8737): what `MDCAChallenges`
//! names, what a CA offers in an authorization, what the module answers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One challenge type, spelled on the wire and in md.json as the RFCs do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChallengeType {
    /// `http-01`: a file under `/.well-known/acme-challenge/`.
    Http01,
    /// `tls-alpn-01`: a certificate on the `acme-tls/1` protocol.
    TlsAlpn01,
    /// `dns-01`: a TXT record set up by `MDChallengeDns01`.
    Dns01,
    /// Any other type a CA offers or a configuration names (kept as
    /// spelled; never answered).
    Other(String),
}

impl ChallengeType {
    pub fn as_str(&self) -> &str {
        match self {
            ChallengeType::Http01 => "http-01",
            ChallengeType::TlsAlpn01 => "tls-alpn-01",
            ChallengeType::Dns01 => "dns-01",
            ChallengeType::Other(s) => s,
        }
    }
}

impl From<&str> for ChallengeType {
    fn from(s: &str) -> Self {
        match s {
            "http-01" => ChallengeType::Http01,
            "tls-alpn-01" => ChallengeType::TlsAlpn01,
            "dns-01" => ChallengeType::Dns01,
            other => ChallengeType::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for ChallengeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ChallengeType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ChallengeType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(String::deserialize(d)?.as_str().into())
    }
}

/// The types of a list, spelled as `MDCAChallenges` and error texts do
/// (`"http-01 dns-01"`).
pub fn join(types: &[ChallengeType]) -> String {
    types
        .iter()
        .map(ChallengeType::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_as_the_rfcs_and_unknown_kept() {
        for s in ["http-01", "tls-alpn-01", "dns-01", "dns-account-01"] {
            let t = ChallengeType::from(s);
            assert_eq!(t.as_str(), s);
            assert_eq!(serde_json::to_value(&t).unwrap(), s);
            let back: ChallengeType = serde_json::from_value(serde_json::json!(s)).unwrap();
            assert_eq!(back, t);
        }
        assert_eq!(ChallengeType::from("dns-01"), ChallengeType::Dns01);
        assert!(matches!(ChallengeType::from("x"), ChallengeType::Other(_)));
        assert_eq!(
            join(&[ChallengeType::Http01, ChallengeType::Dns01]),
            "http-01 dns-01"
        );
    }
}
