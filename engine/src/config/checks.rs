//! Argument words as httpd splits them (`ap_getword_conf`), and the checks
//! that need all MDs (spec §2.2: overlaps, static file counts, protocol).

use crate::config::MatchMode;
use crate::config::Md;
use std::collections::HashMap;

/// httpd's `ap_getword_conf`: the next word of a directive line, in
/// double or single quotes (backslash escapes the quote and itself) or up
/// to the next blank (a doubled backslash is one); and the rest of the line
/// after the blanks that follow.
pub(crate) fn getword_conf(line: &str) -> (String, &str) {
    let s = line.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let b = s.as_bytes();
    let quote = match b.first() {
        Some(&q) if q == b'"' || q == b'\'' => Some(q),
        _ => None,
    };
    let (body, mut end) = match quote {
        Some(q) => {
            let mut i = 1;
            while i < b.len() && b[i] != q {
                i += if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == q || b[i + 1] == b'\\') {
                    2
                } else {
                    1
                };
            }
            (&s[1..i.min(s.len())], if i < b.len() { i + 1 } else { i })
        }
        None => {
            let i = b
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(b.len());
            (&s[..i], i)
        }
    };
    let mut word = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        let escaped = chars
            .peek()
            .copied()
            .filter(|&n| c == '\\' && (n == '\\' || quote.is_some_and(|q| char::from(q) == n)));
        match escaped {
            Some(n) => {
                word.push(n);
                chars.next();
            }
            None => word.push(c),
        }
    }
    while end < b.len() && b[end].is_ascii_whitespace() {
        end += 1;
    }
    (word, &s[end..])
}

/// A directive's argument line split as httpd splits TAKE_ARGV arguments.
pub fn split_conf(mut line: &str) -> Vec<String> {
    let mut out = Vec::new();
    while !line
        .trim_start_matches(|c: char| c.is_ascii_whitespace())
        .is_empty()
    {
        let (w, rest) = getword_conf(line);
        out.push(w);
        line = rest;
    }
    out
}

/// A startup-fatal configuration problem, with its AH code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The checks of §2.2 step 5 that need only the MD list: domain overlap
/// (match mode `all`) and the static file counts; plus the protocol check.
pub(crate) fn check_mds(mds: &[Md], match_mode: MatchMode) -> Result<(), Fatal> {
    if match_mode == MatchMode::All {
        // by name, not every pair: a hosting server has thousands of MDs
        let mut having: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, m) in mds.iter().enumerate() {
            for d in &m.domains {
                having.entry(d.to_ascii_lowercase()).or_default().push(i);
            }
        }
        for (i, a) in mds.iter().enumerate() {
            // the first later MD that shares a name with this one
            let next = a
                .domains
                .iter()
                .filter_map(|d| {
                    let list = &having[&d.to_ascii_lowercase()];
                    list.iter().copied().find(|&j| j > i)
                })
                .min();
            if let Some(b) = next.map(|j| &mds[j]) {
                if let Some(d) = a.domains.iter().find(|d| b.contains(d)) {
                    let loc = |m: &Md| match &m.defn {
                        Some((f, l)) => format!("{f}(line {l})"),
                        None => "unknown(line 0)".to_string(),
                    };
                    return Err(Fatal {
                        code: "AH10038",
                        message: format!(
                            "two Managed Domains have an overlap in domain '{d}', first definition in {}, second in {}",
                            loc(a),
                            loc(b)
                        ),
                    });
                }
            }
        }
    }
    for md in mds {
        if !md.cert_files.is_empty() && md.cert_files.len() != md.key_files.len() {
            return Err(Fatal {
                code: "AH10170",
                message: format!(
                    "The Managed Domain '{}' needs one MDCertificateKeyFile for each MDCertificateFile.",
                    md.name
                ),
            });
        }
        if md.cert_files.is_empty() && !md.key_files.is_empty() {
            return Err(Fatal {
                code: "AH10171",
                message: format!(
                    "The Managed Domain '{}' has MDCertificateKeyFile(s) but no MDCertificateFile.",
                    md.name
                ),
            });
        }
    }
    Ok(())
}

/// `MDCertificateProtocol` must name a protocol this module speaks (AH10172).
pub(crate) fn check_protocol(md: &Md) -> Result<(), Fatal> {
    if md.ca_proto.is_known() {
        return Ok(());
    }
    Err(Fatal {
        code: "AH10172",
        message: format!(
            "md[{}]: error syncing to store ([{}] uses unknown CA protocol '{}'; \
             supported are 'ACME' and 'tailscale')",
            md.name, md.name, md.ca_proto
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MdDef, Settings};

    fn md(domains: &[&str], line: u32) -> Md {
        let mut def = MdDef::new(domains.iter().map(|s| s.to_string()).collect());
        def.defn = Some(("httpd.conf".into(), line));
        Md::from_def(&def, &Settings::default(), None)
    }

    /// Looked up by name instead of pair by pair, the overlap reported is
    /// still the first MD that shares a name with a later one, the first
    /// such later MD, and the first shared name in the first MD's order.
    #[test]
    fn the_first_overlap_in_configuration_order_is_reported() {
        let mds = vec![
            md(&["x.org"], 1),
            md(&["a.org", "b.org", "c.org"], 2),
            md(&["d.org", "C.ORG"], 3),
            md(&["b.org"], 4),
            md(&["x.org"], 5),
        ];
        let e = check_mds(&mds[1..], MatchMode::All).unwrap_err();
        assert_eq!(e.code, "AH10038");
        assert_eq!(
            e.message,
            "two Managed Domains have an overlap in domain 'c.org', first definition in \
             httpd.conf(line 2), second in httpd.conf(line 3)"
        );
        let e = check_mds(&mds, MatchMode::All).unwrap_err();
        assert!(e.message.contains("'x.org'") && e.message.contains("(line 5)"));
        assert!(check_mds(&mds, MatchMode::ServerNames).is_ok());
        assert!(check_mds(&mds[..3], MatchMode::All).is_err());
        assert!(check_mds(&mds[3..4], MatchMode::All).is_ok());
    }
}
