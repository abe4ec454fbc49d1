//! `MDPrivateKeys`: key specifications (§4.8).

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// `Default`: RSA 2048.
    Default,
    Rsa(u32),
    /// An EC curve, spelled as configured.
    Ec(String),
}

pub const DEFAULT_RSA_BITS: u32 = 2048;

impl KeySpec {
    /// Name used in JSON and status: `rsa` or the curve as configured.
    pub fn name(&self) -> String {
        match self {
            KeySpec::Default | KeySpec::Rsa(_) => "rsa".to_string(),
            KeySpec::Ec(c) => c.clone(),
        }
    }

    /// File name suffix: empty for RSA, `.<curve lower-cased>` otherwise.
    pub(crate) fn file_suffix(&self) -> String {
        match self {
            KeySpec::Default | KeySpec::Rsa(_) => String::new(),
            KeySpec::Ec(c) => format!(".{}", c.to_ascii_lowercase()),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        match self {
            KeySpec::Default => json!({"type": "Default"}),
            KeySpec::Rsa(b) => json!({"type": "RSA", "bits": b}),
            KeySpec::Ec(c) => json!({"type": "EC", "curve": c}),
        }
    }

    pub fn from_json(v: &Value) -> Option<KeySpec> {
        let t = v.get("type")?.as_str()?;
        if t.eq_ignore_ascii_case("Default") {
            Some(KeySpec::Default)
        } else if t.eq_ignore_ascii_case("RSA") {
            let bits = v
                .get("bits")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_RSA_BITS, |b| {
                    u32::try_from(b).unwrap_or(DEFAULT_RSA_BITS)
                });
            Some(KeySpec::Rsa(bits))
        } else if t.eq_ignore_ascii_case("EC") {
            Some(KeySpec::Ec(v.get("curve")?.as_str()?.to_string()))
        } else {
            None
        }
    }
}

/// JSON form of a list of specs: one spec → object, several → array.
pub(crate) fn specs_to_json(specs: &[KeySpec]) -> Value {
    if specs.len() == 1 {
        specs[0].to_json()
    } else {
        Value::Array(specs.iter().map(KeySpec::to_json).collect())
    }
}

#[cfg(test)]
pub(crate) fn specs_from_json(v: &Value) -> Vec<KeySpec> {
    match v {
        Value::Array(a) => a.iter().filter_map(KeySpec::from_json).collect(),
        Value::Object(_) => KeySpec::from_json(v).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn parse_bits(s: &str) -> Result<u32, String> {
    // atoi semantics: leading digits, 0 when none
    let digits: String = s
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let bits: u64 = digits.parse().unwrap_or(0);
    if bits < u64::from(DEFAULT_RSA_BITS) {
        return Err("must be 2048 or higher in order to be considered safe.".into());
    }
    if bits >= u64::from(i32::MAX as u32) {
        return Err("is too large for an RSA key length.".into());
    }
    Ok(bits as u32)
}

/// Parses the arguments of `MDPrivateKeys`. Error texts are the C module's
/// (the directive handler prefixes what the C module prefixes).
pub fn parse_specs(args: &[&str]) -> Result<Vec<KeySpec>, String> {
    if args.is_empty() {
        return Err("needs to specify the private key type".into());
    }
    let mut specs: Vec<KeySpec> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a.eq_ignore_ascii_case("Default") {
            if args.len() > 1 {
                return Err("'Default' allows no other parameter".into());
            }
            specs.push(KeySpec::Default);
        } else if a.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("RSA"))
            && (a.len() == 3 || a.as_bytes()[3].is_ascii_digit())
        {
            // "RSA" or "RSA<bits>"; anything else is taken for a curve name,
            // as by the C module
            let spec = if a.len() == 3 {
                match args.get(i + 1) {
                    Some(next) if next.starts_with(|c: char| c.is_ascii_digit()) => {
                        i += 1;
                        KeySpec::Rsa(parse_bits(next)?)
                    }
                    _ => KeySpec::Rsa(DEFAULT_RSA_BITS),
                }
            } else {
                KeySpec::Rsa(parse_bits(&a[3..])?)
            };
            if specs
                .iter()
                .any(|s| matches!(s, KeySpec::Rsa(_) | KeySpec::Default))
            {
                return Err("two keys of type 'RSA' are not possible.".into());
            }
            specs.push(spec);
        } else {
            if specs
                .iter()
                .any(|s| matches!(s, KeySpec::Ec(c) if c.eq_ignore_ascii_case(a)))
            {
                return Err(format!("two keys of type '{a}' are not possible."));
            }
            specs.push(KeySpec::Ec(a.to_string()));
        }
        i += 1;
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(parse_specs(&["Default"]), Ok(vec![KeySpec::Default]));
        assert_eq!(parse_specs(&["rsa"]), Ok(vec![KeySpec::Rsa(2048)]));
        assert_eq!(parse_specs(&["RSA", "3072"]), Ok(vec![KeySpec::Rsa(3072)]));
        assert_eq!(parse_specs(&["rsa4096"]), Ok(vec![KeySpec::Rsa(4096)]));
        assert_eq!(
            parse_specs(&["secp384r1", "RSA"]),
            Ok(vec![KeySpec::Ec("secp384r1".into()), KeySpec::Rsa(2048)])
        );
        assert_eq!(
            parse_specs(&["RSA", "1024"]).unwrap_err(),
            "must be 2048 or higher in order to be considered safe."
        );
        assert_eq!(
            parse_specs(&["RSA", "2147483647"]).unwrap_err(),
            "is too large for an RSA key length."
        );
        assert_eq!(
            parse_specs(&["Default", "RSA"]).unwrap_err(),
            "'Default' allows no other parameter"
        );
        assert_eq!(
            parse_specs(&["RSA", "rsa3072"]).unwrap_err(),
            "two keys of type 'RSA' are not possible."
        );
        assert_eq!(
            parse_specs(&["P-256", "p-256"]).unwrap_err(),
            "two keys of type 'p-256' are not possible."
        );
    }

    #[test]
    fn names_and_json() {
        let specs = parse_specs(&["RSA", "3072", "P-256"]).unwrap();
        assert_eq!(specs[1].file_suffix(), ".p-256");
        assert_eq!(specs[0].file_suffix(), "");
        assert_eq!(specs[1].name(), "P-256");
        let j = specs_to_json(&specs);
        assert_eq!(
            j.to_string(),
            r#"[{"type":"RSA","bits":3072},{"type":"EC","curve":"P-256"}]"#
        );
        assert_eq!(specs_from_json(&j), specs);
        assert_eq!(
            specs_to_json(&[KeySpec::Default]).to_string(),
            r#"{"type":"Default"}"#
        );
    }
}
