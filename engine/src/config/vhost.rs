//! Matching MDs to virtual hosts (spec §2.3), on plain data extracted from
//! httpd's `server_rec`s by the glue.

use crate::base::log::{Level, Note, Notes};
use crate::config::{MatchMode, Md};
use std::collections::HashMap;

/// What the matching needs to know of one `server_rec`.
#[derive(Debug, Clone, Default)]
pub struct VHost {
    /// `ServerName` (server_hostname).
    pub name: String,
    pub port: u16,
    /// Exact `ServerAlias` names.
    pub aliases: Vec<String>,
    /// `ServerAlias` names with wildcards.
    pub wild_aliases: Vec<String>,
    /// `<VirtualHost host:port>` addresses.
    pub addrs: Vec<(String, u16)>,
    /// The main server (outside any `<VirtualHost>`).
    pub is_base: bool,
}

/// `ap_strcasecmp_match`: `*` and `?` wildcards, case-insensitive.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<u8> = pattern.bytes().map(|b| b.to_ascii_lowercase()).collect();
    let t: Vec<u8> = text.bytes().map(|b| b.to_ascii_lowercase()).collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether a (possibly wildcard) MD domain covers a host name: exact, or
/// `*.example.org` for exactly one extra label.
pub(crate) fn domain_matches(domain: &str, name: &str) -> bool {
    if domain.eq_ignore_ascii_case(name) {
        return true;
    }
    if let Some(base) = domain.strip_prefix("*.") {
        if let Some(dot) = name.find('.') {
            return dot > 0 && name[dot + 1..].eq_ignore_ascii_case(base);
        }
    }
    false
}

impl VHost {
    /// `ap_matches_request_vhost(r, host, port)` with `r->server` = self and
    /// `port` = self's port.
    pub(crate) fn matches_host(&self, host: &str) -> bool {
        if self
            .addrs
            .iter()
            .any(|(h, p)| (*p == 0 || *p == self.port) && h.eq_ignore_ascii_case(host))
        {
            return true;
        }
        self.name.eq_ignore_ascii_case(host)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(host))
            || self.wild_aliases.iter().any(|w| glob_match(w, host))
    }

    /// All names of this vhost: ServerName, then aliases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str())
            .chain(self.aliases.iter().map(String::as_str))
            .chain(self.wild_aliases.iter().map(String::as_str))
            .filter(|n| !n.is_empty())
    }
}

/// Assigns MDs to vhosts. Returns, per vhost, the indices of its MDs.
/// The base server takes part only with `MDBaseServer on`.
pub(crate) fn assign(
    mds: &[Md],
    vhosts: &[VHost],
    mode: MatchMode,
    base_server: bool,
    notes: &mut dyn Notes,
) -> Vec<Vec<usize>> {
    let index = DomainIndex::new(mds);
    assign_among(mds, vhosts, mode, base_server, notes, |vh| {
        index.candidates(vh)
    })
}

/// [`assign`] looking at the MDs `candidates` gives for each vhost.
fn assign_among(
    mds: &[Md],
    vhosts: &[VHost],
    mode: MatchMode,
    base_server: bool,
    notes: &mut dyn Notes,
    candidates: impl Fn(&VHost) -> Vec<usize>,
) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); vhosts.len()];
    for (vi, vh) in vhosts.iter().enumerate() {
        if vh.is_base && !base_server {
            continue;
        }
        for mi in candidates(vh) {
            let md = &mds[mi];
            let mut hit: Option<(&str, bool)> = None;
            for d in &md.domains {
                let wildcard = d.starts_with("*.");
                let ok = if mode == MatchMode::ServerNames || wildcard {
                    domain_matches(d, &vh.name)
                } else {
                    vh.matches_host(d)
                };
                if ok {
                    hit = Some((d.as_str(), wildcard));
                    break;
                }
            }
            let Some((domain, wildcard)) = hit else {
                continue;
            };
            let assigned = &mut out[vi];
            if mode == MatchMode::ServerNames && !assigned.is_empty() {
                let prev_wild = assigned.iter().all(|&i| {
                    mds[i]
                        .domains
                        .iter()
                        .any(|d| d.starts_with("*.") && domain_matches(d, &vh.name))
                });
                if wildcard || !prev_wild {
                    continue;
                }
                assigned.clear();
            }
            if !assigned.contains(&mi) {
                assigned.push(mi);
            }
            notes.push(Note::new(
                Level::Debug,
                format!(
                    "AH10041: Server {}:{} matches md {} (match-mode={}) for domain {}, has now {} MDs",
                    vh.name,
                    vh.port,
                    md.name,
                    i32::from(mode == MatchMode::ServerNames),
                    domain,
                    assigned.len()
                ),
            ));
        }
    }
    out
}

/// The MDs by their exact domain names, so that matching thousands of
/// vhosts against thousands of MDs (hosting: 10,000 of each) looks at the
/// few MDs that can match a vhost instead of all of them.
struct DomainIndex {
    /// Lower-cased exact domain → MDs with it, ascending.
    exact: HashMap<String, Vec<usize>>,
    /// MDs with a wildcard domain: they may match any vhost.
    wild: Vec<usize>,
    all: usize,
}

impl DomainIndex {
    fn new(mds: &[Md]) -> DomainIndex {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wild = Vec::new();
        for (mi, md) in mds.iter().enumerate() {
            for d in &md.domains {
                if d.contains('*') {
                    if wild.last() != Some(&mi) {
                        wild.push(mi);
                    }
                } else {
                    let list = exact.entry(d.to_ascii_lowercase()).or_default();
                    if list.last() != Some(&mi) {
                        list.push(mi);
                    }
                }
            }
        }
        DomainIndex {
            exact,
            wild,
            all: mds.len(),
        }
    }

    /// Every MD that may match `vh`, ascending (the order of the
    /// configuration decides between MDs): those with one of its names
    /// or addresses as a domain and those with wildcards; all MDs for a
    /// vhost with a wildcard alias.
    fn candidates(&self, vh: &VHost) -> Vec<usize> {
        if !vh.wild_aliases.is_empty() {
            return (0..self.all).collect();
        }
        let mut out = self.wild.clone();
        let names = std::iter::once(vh.name.as_str())
            .chain(vh.aliases.iter().map(String::as_str))
            .chain(vh.addrs.iter().map(|(h, _)| h.as_str()));
        for n in names {
            if let Some(list) = self.exact.get(&n.to_ascii_lowercase()) {
                out.extend_from_slice(list);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Names of an SSL vhost that an MD in member mode `auto` takes over
/// (§2.3): ServerName and aliases not yet covered.
pub(crate) fn uncovered_names<'a>(md: &Md, vh: &'a VHost) -> Vec<&'a str> {
    vh.names()
        .filter(|n| !md.domains.iter().any(|d| domain_matches(d, n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MdDef, Settings};

    fn md(domains: &[&str]) -> Md {
        let def = MdDef::new(domains.iter().map(|s| s.to_string()).collect());
        Md::from_def(&def, &Settings::default(), None)
    }

    fn vh(name: &str, aliases: &[&str]) -> VHost {
        VHost {
            name: name.into(),
            port: 443,
            aliases: aliases
                .iter()
                .filter(|a| !a.contains('*'))
                .map(|s| s.to_string())
                .collect(),
            wild_aliases: aliases
                .iter()
                .filter(|a| a.contains('*'))
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn globbing() {
        assert!(glob_match("*.example.org", "www.Example.org"));
        assert!(glob_match("*.example.org", "a.b.example.org"));
        assert!(!glob_match("*.example.org", "example.org"));
        assert!(glob_match("w?w.example.org", "www.example.org"));
        assert!(domain_matches("*.example.org", "www.example.org"));
        assert!(!domain_matches("*.example.org", "a.b.example.org"));
        assert!(!domain_matches("*.example.org", ".example.org"));
    }

    #[test]
    fn match_all_mode() {
        let mds = vec![md(&["a.org", "www.a.org"]), md(&["b.org"])];
        let vhosts = vec![
            VHost {
                is_base: true,
                name: "a.org".into(),
                ..Default::default()
            },
            vh("www.a.org", &[]),
            vh("x.org", &["b.org"]),
            vh("y.org", &["*.a.org"]),
            vh("z.org", &[]),
        ];
        let mut notes = vec![];
        let a = assign(&mds, &vhosts, MatchMode::All, false, &mut notes);
        assert_eq!(a, vec![vec![], vec![0], vec![1], vec![0], vec![]]);
        let a = assign(&mds, &vhosts, MatchMode::All, true, &mut notes);
        assert_eq!(a[0], vec![0]);
        assert!(notes[0]
            .msg
            .starts_with("AH10041: Server www.a.org:443 matches md a.org"));
    }

    #[test]
    fn servernames_mode_and_wildcards() {
        let mds = vec![md(&["*.a.org"]), md(&["www.a.org"]), md(&["b.org"])];
        let vhosts = vec![
            vh("www.a.org", &[]),
            vh("c.org", &["b.org"]),
            vh("x.a.org", &[]),
        ];
        let a = assign(&mds, &vhosts, MatchMode::ServerNames, false, &mut vec![]);
        // the non-wildcard MD displaces the wildcard one; aliases do not count
        assert_eq!(a, vec![vec![1], vec![], vec![0]]);
        // in mode all both match www.a.org: a conflict for an SSL vhost
        let a = assign(&mds, &vhosts, MatchMode::All, false, &mut vec![]);
        assert_eq!(a[0], vec![0, 1]);
    }

    /// The index only narrows which MDs are looked at: on a mix of exact
    /// names, aliases, addresses, wildcard domains and wildcard aliases,
    /// in both modes, it assigns what looking at every MD assigns, in the
    /// same order, with the same notes.
    #[test]
    fn the_domain_index_assigns_what_a_full_scan_assigns() {
        let mds = vec![
            md(&["a.org", "www.a.org"]),
            md(&["*.a.org"]),
            md(&["B.org"]),
            md(&["c.org", "b.org"]),
            md(&["10.0.0.1"]),
            md(&["*.d.org", "d.org"]),
            md(&["e.org"]),
        ];
        let mut addr = vh("addr.org", &[]);
        addr.addrs = vec![("10.0.0.1".into(), 0), ("10.0.0.2".into(), 443)];
        let vhosts = vec![
            VHost {
                is_base: true,
                name: "a.org".into(),
                ..Default::default()
            },
            vh("www.a.org", &[]),
            vh("x.a.org", &["b.org"]),
            vh("c.org", &["E.ORG"]),
            vh("y.d.org", &[]),
            vh("z.org", &["*.org"]),
            vh("B.org", &[]),
            addr,
            vh("none.net", &[]),
        ];
        for mode in [MatchMode::All, MatchMode::ServerNames] {
            for base in [false, true] {
                let (mut n1, mut n2) = (vec![], vec![]);
                let fast = assign(&mds, &vhosts, mode, base, &mut n1);
                let scan = assign_among(&mds, &vhosts, mode, base, &mut n2, |_| {
                    (0..mds.len()).collect()
                });
                assert_eq!(fast, scan, "{mode:?} base={base}");
                let msgs = |n: &Vec<Note>| n.iter().map(|x| x.msg.clone()).collect::<Vec<_>>();
                assert_eq!(msgs(&n1), msgs(&n2));
            }
        }
        let fast = assign(&mds, &vhosts, MatchMode::All, false, &mut vec![]);
        assert_eq!(fast[3], vec![3, 6]);
        assert_eq!(fast[5], vec![0, 2, 3, 5, 6]);
        assert_eq!(fast[7], vec![4]);
    }

    #[test]
    fn auto_add() {
        let m = md(&["a.org"]);
        let v = vh("a.org", &["www.a.org", "A.org"]);
        assert_eq!(uncovered_names(&m, &v), vec!["www.a.org"]);
    }
}
