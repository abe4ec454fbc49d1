//! Directive arguments applied to the model (spec §1.1, §1.2): parsing and
//! validating each value with the C module's error texts, and where it
//! lands (a server, an MD section, the module).

use crate::base::keyspec::{self};
use crate::base::time::{self, Micros, TimeSlice};
use crate::base::uri;
use crate::config::check_tailscale_urls;
use crate::config::split_conf;
use crate::config::CaProtocol;
use crate::config::Class;
use crate::config::Directive;
use crate::config::Eab;
use crate::config::Global;
use crate::config::MatchMode;
use crate::config::MdDef;
use crate::config::RenewMode;
use crate::config::RequireHttps;
use crate::config::Settings;
use crate::config::DEFAULT_STORE_LOCK_WAIT;
use crate::config::KEEP_NORM;
use crate::config::KNOWN_CAS;
use crate::config::LIFE_NORM;
use crate::config::SECTION_NAME;
use serde_json::Value;

/// Context of one directive invocation, supplied by the glue.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// httpd's ServerRoot, for server-root relative paths.
    pub server_root: String,
    /// Running with `-DDUMP_CONFIG` (file checks skipped).
    pub dump_config: bool,
    /// Config file and line of the directive.
    pub file: Option<(String, u32)>,
}

impl Ctx {
    /// `ap_server_root_relative`.
    pub(crate) fn root_relative(&self, path: &str) -> String {
        if path.starts_with('/') || self.server_root.is_empty() {
            path.to_string()
        } else {
            format!("{}/{}", self.server_root.trim_end_matches('/'), path)
        }
    }
}

/// Everything the directives produce for one configuration generation.
#[derive(Debug, Clone, Default)]
pub struct ModConfig {
    pub global: Global,
    pub mds: Vec<MdDef>,
    /// The section being read (between `<MDomain ...>` and its end).
    pub current: Option<MdDef>,
}

fn on_off(v: &str) -> Result<bool, String> {
    if v.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(format!(
            "unknown '{v}', supported parameter values are 'on' and 'off'"
        ))
    }
}

/// `auto` / `manual` member-mode keyword.
fn transitive_kw(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("auto") {
        Some(true)
    } else if v.eq_ignore_ascii_case("manual") {
        Some(false)
    } else {
        None
    }
}

fn add_domain(domains: &mut Vec<String>, name: &str) {
    let lower = name.to_ascii_lowercase();
    if !domains.iter().any(|d| d.eq_ignore_ascii_case(&lower)) {
        domains.push(lower);
    }
}

fn duration(v: &str, def_unit: &str) -> Result<Micros, String> {
    time::parse_duration(v, def_unit).map_err(|_| "unrecognized duration format".to_string())
}

/// C `atoi`: leading whitespace, sign, digits; 0 when none.
fn atoi(v: &str) -> i64 {
    let t = v.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    // strtol saturates at the limits of a long
    let n: i64 = match digits.parse::<i64>() {
        Ok(n) => n,
        Err(_) if digits.is_empty() => 0,
        Err(_) => return if neg { i64::MIN } else { i64::MAX },
    };
    if neg {
        -n
    } else {
        n
    }
}

/// Resolves a `MDCertificateAuthority` value: known name or absolute URL.
pub(crate) fn resolve_ca(value: &str) -> Result<String, String> {
    if let Some((_, url)) = KNOWN_CAS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(value))
    {
        return Ok((*url).to_string());
    }
    uri::check_absolute(value).map_err(|reason| {
        let names: Vec<&str> = KNOWN_CAS.iter().map(|(n, _)| *n).collect();
        format!(
            "The CA name '{value}' is not known and it is not a URL either ({reason}). \
             Known CA names are: {}.",
            names.join(" ")
        )
    })?;
    Ok(value.to_string())
}

/// Parses one `MDPortMap` argument into (public port, local port or None).
fn port_map_arg(v: &str) -> Result<(u16, Option<u16>), String> {
    let (net, rest) = if let Some(r) = v.strip_prefix("http:") {
        (80i64, Some(r))
    } else if let Some(r) = v.strip_prefix("https:") {
        (443, Some(r))
    } else {
        let digits_end = v
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))))
            .map_or(v.len(), |(i, _)| i);
        let num = &v[..digits_end];
        let n = if num.is_empty() || num == "-" || num == "+" {
            0
        } else {
            num.parse::<i64>()
                .map_err(|_| "unable to parse first port number".to_string())?
        };
        (n, v[digits_end..].strip_prefix(':'))
    };
    let rest = rest.ok_or_else(|| "no ':' after first port number".to_string())?;
    let local = if rest.starts_with('-') {
        None
    } else {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let n: i64 = if digits.is_empty() {
            0
        } else {
            digits
                .parse()
                .map_err(|_| "unable to parse second port number".to_string())?
        };
        if n <= 0 || n > 65535 {
            return Err("invalid number for port map, must be in ]0,65535]".into());
        }
        Some(n as u16)
    };
    match net {
        80 => Ok((80, local)),
        443 => Ok((443, local)),
        _ => Err("mapped port number must be 80 or 443".into()),
    }
}

fn read_eab_file(path: &str) -> Result<Eab, String> {
    let text = std::fs::read_to_string(path).map_err(|_| {
        if std::path::Path::new(path).exists() {
            format!("MDExternalAccountBinding: error reading JSON file {path}")
        } else {
            format!("MDExternalAccountBinding: file not found: {path}")
        }
    })?;
    let j: Value = serde_json::from_str(&text)
        .map_err(|_| format!("MDExternalAccountBinding: error reading JSON file {path}"))?;
    let get =
        |k: &str| {
            j.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
            format!("MDExternalAccountBinding: JSON does not contain '{k}' element in file {path}")
        })
        };
    Ok(Eab {
        kid: get("kid")?,
        hmac: Some(get("hmac")?),
    })
}

impl ModConfig {
    /// Settings to write to: the open section, else the server's own.
    fn target<'a>(&'a mut self, srv: &'a mut Settings) -> &'a mut Settings {
        match self.current.as_mut() {
            Some(md) => &mut md.settings,
            None => srv,
        }
    }

    /// Checks the MD-section class of a directive (§1.1).
    pub(crate) fn check_class(d: Directive, in_section: bool, nargs: usize) -> Result<(), String> {
        match d.class() {
            Class::NotMd if in_section => Err(format!(
                "{} is not allowed inside an '{SECTION_NAME}' context",
                d.name()
            )),
            Class::MdOnly if !in_section => Err(format!(
                "{} is only valid inside a '{SECTION_NAME}' context, not here",
                d.name()
            )),
            Class::Members if !in_section && nargs != 1 => Err(format!(
                "{} is only valid inside a '{SECTION_NAME}' context, not here",
                d.name()
            )),
            _ => Ok(()),
        }
    }

    /// Applies one directive (not the section start, see
    /// [`ModConfig::begin_section`]). `srv` is the settings of the server the
    /// directive appears in; `in_section` whether it is inside an MD section.
    pub fn apply(
        &mut self,
        srv: &mut Settings,
        d: Directive,
        args: &[&str],
        in_section: bool,
        ctx: &Ctx,
    ) -> Result<(), String> {
        use Directive as D;
        Self::check_class(d, in_section, args.len())?;
        let arg = args.first().copied().unwrap_or("");
        let g = &mut self.global;
        match d {
            D::CertificateAuthority => {
                let urls = args
                    .iter()
                    .map(|a| resolve_ca(a))
                    .collect::<Result<Vec<_>, _>>()?;
                self.target(srv).ca_urls = Some(urls);
            }
            D::CertificateAgreement => self.target(srv).ca_agreement = Some(arg.into()),
            D::CaChallenges => {
                self.target(srv).ca_challenges = Some(args.iter().map(|s| (*s).into()).collect())
            }
            D::CertificateProtocol => self.target(srv).ca_proto = Some(CaProtocol::new(arg)),
            D::ContactEmail => self.target(srv).contact = Some(arg.into()),
            D::DriveMode | D::RenewMode => {
                let m = match arg.to_ascii_lowercase().as_str() {
                    "auto" | "automatic" => RenewMode::Auto,
                    "always" => RenewMode::Always,
                    "manual" | "stick" => RenewMode::Manual,
                    _ => return Err(format!("unknown MDDriveMode {arg}")),
                };
                self.target(srv).renew_mode = Some(m);
            }
            D::MDomain => {
                let mut domains = Vec::new();
                let mut transitive = None;
                for a in args {
                    match transitive_kw(a) {
                        Some(t) => transitive = Some(t),
                        None => add_domain(&mut domains, a),
                    }
                }
                if domains.is_empty() {
                    return Err("needs at least one domain name".into());
                }
                self.mds.push(MdDef {
                    domains,
                    transitive,
                    settings: Settings::default(),
                    cert_files: Vec::new(),
                    key_files: Vec::new(),
                    defn: ctx.file.clone(),
                });
            }
            D::SectionSet | D::Section => {
                return Err(format!("{} must be applied with begin_section", d.name()));
            }
            D::Member | D::Members => match self.current.as_mut() {
                Some(md) => {
                    for a in args {
                        match transitive_kw(a) {
                            Some(t) => md.settings.transitive = Some(t),
                            None => add_domain(&mut md.domains, a),
                        }
                    }
                }
                None => {
                    let t = transitive_kw(arg)
                        .ok_or_else(|| "unknown value, use \"auto|manual\"".to_string())?;
                    srv.transitive = Some(t);
                }
            },
            D::MustStaple => self.target(srv).must_staple = Some(on_off(arg)?),
            D::PortMap => {
                for a in args {
                    match port_map_arg(a)? {
                        (80, local) => self.global.local_80 = local,
                        (_, local) => self.global.local_443 = local,
                    }
                }
            }
            D::PrivateKeys => self.target(srv).pkey_specs = Some(keyspec::parse_specs(args)?),
            D::HttpProxy => {
                uri::check_absolute_http(arg).map_err(str::to_string)?;
                if in_section {
                    self.target(srv).proxy_url = Some(arg.into());
                } else {
                    g.proxy_url = Some(arg.into());
                }
            }
            D::StoreDir => g.store_dir = Some(ctx.root_relative(arg)),
            D::RenewWindow | D::WarnWindow | D::StaplingRenewWindow => {
                let ts =
                    TimeSlice::parse(arg, LIFE_NORM).map_err(|e| format!("{} {e}", d.name()))?;
                if ts.len >= LIFE_NORM && ts.norm > 0 {
                    let with = if d == D::StaplingRenewWindow {
                        "with "
                    } else {
                        ""
                    };
                    return Err(format!(
                        "{} {with}a length of 100% or more is not allowed.",
                        d.name()
                    ));
                }
                match d {
                    D::RenewWindow => self.target(srv).renew_window = Some(ts),
                    D::WarnWindow => self.target(srv).warn_window = Some(ts),
                    _ => g.stapling_renew_window = ts,
                }
            }
            D::StaplingKeepResponse => {
                g.stapling_keep_response =
                    TimeSlice::parse(arg, KEEP_NORM).map_err(|e| format!("{} {e}", d.name()))?;
            }
            D::RequireHttps => {
                let v = if arg.eq_ignore_ascii_case("off") {
                    RequireHttps::Off
                } else if arg.eq_ignore_ascii_case("temporary") {
                    RequireHttps::Temporary
                } else if arg.eq_ignore_ascii_case("permanent") {
                    RequireHttps::Permanent
                } else {
                    return Err(format!(
                        "unknown '{arg}', supported parameter values are 'temporary' and 'permanent'"
                    ));
                };
                self.target(srv).require_https = Some(v);
            }
            D::NotifyCmd => g.notify_cmd = Some(arg.trim().into()),
            D::MessageCmd => g.message_cmd = Some(arg.trim().into()),
            D::BaseServer => g.base_server = on_off(arg)?,
            D::ChallengeDns01 => {
                let cmd = arg.trim().to_string();
                if in_section {
                    self.target(srv).dns01_cmd = Some(cmd);
                } else {
                    g.dns01_cmd = Some(cmd);
                }
            }
            D::ChallengeDns01Version => {
                g.dns01_version = match arg {
                    "1" => 1,
                    "2" => 2,
                    _ => return Err("Only versions `1` and `2` are supported".into()),
                }
            }
            D::CertificateFile | D::CertificateKeyFile => {
                let path = ctx.root_relative(arg);
                if let Some(md) = self.current.as_mut() {
                    if d == D::CertificateFile {
                        md.cert_files.push(path);
                    } else {
                        md.key_files.push(path);
                    }
                }
            }
            D::ServerStatus => g.server_status = on_off(arg)?,
            D::CertificateStatus => g.certificate_status = on_off(arg)?,
            D::Stapling => self.target(srv).stapling = Some(on_off(arg)?),
            D::StapleOthers => self.target(srv).staple_others = Some(on_off(arg)?),
            D::CertificateCheck | D::CertificateMonitor => {
                g.cert_check_name = arg.into();
                g.cert_check_url = args.get(1).copied().unwrap_or("").into();
            }
            D::ActivationDelay => g.activation_delay = duration(arg, "d")?,
            D::CaCertificateFile | D::HttpProxyCaCertificateFile => {
                let v = Some(ctx.root_relative(arg));
                let is_ca = d == D::CaCertificateFile;
                if in_section {
                    let t = self.target(srv);
                    if is_ca {
                        t.ca_certs = v;
                    } else {
                        t.proxy_ca_certs = v;
                    }
                } else {
                    let v = if arg.eq_ignore_ascii_case("none") {
                        None
                    } else {
                        v
                    };
                    if is_ca {
                        g.ca_certs = v;
                    } else {
                        g.proxy_ca_certs = v;
                    }
                }
            }
            D::ExternalAccountBinding => {
                let eab = if args.len() >= 2 {
                    Eab {
                        kid: arg.into(),
                        hmac: Some(args[1].into()),
                    }
                } else if arg.eq_ignore_ascii_case("none") {
                    Eab {
                        kid: "none".into(),
                        hmac: None,
                    }
                } else {
                    let path = ctx.root_relative(arg);
                    if ctx.dump_config {
                        Eab {
                            kid: "none".into(),
                            hmac: None,
                        }
                    } else {
                        read_eab_file(&path)?
                    }
                };
                self.target(srv).eab = Some(eab);
            }
            D::RetryDelay => {
                let v = duration(arg, "s")?;
                if v <= 0 {
                    return Err("minimum delay must be greater than 0".into());
                }
                g.retry_delay = v;
            }
            D::RetryFailover => {
                // C's atoi: strtol, then truncated to an int
                let n = atoi(arg) as i32;
                if n <= 0 {
                    return Err("invalid argument, must be a number > 0".into());
                }
                g.retry_failover = n;
            }
            D::StoreLocks => {
                g.store_locks = if arg.eq_ignore_ascii_case("on") {
                    Some(DEFAULT_STORE_LOCK_WAIT)
                } else if arg.eq_ignore_ascii_case("off") {
                    None
                } else {
                    match time::parse_duration(arg, "s") {
                        Ok(0) => None,
                        Ok(v) => Some(v),
                        Err(_) => return Err("neither 'on', 'off' or a duration specified".into()),
                    }
                };
            }
            D::MatchNames => {
                g.match_mode = if arg.eq_ignore_ascii_case("all") {
                    MatchMode::All
                } else if arg.eq_ignore_ascii_case("servernames") {
                    MatchMode::ServerNames
                } else {
                    return Err("invalid argument, must be a 'all' or 'servernames'".into());
                }
            }
            D::InitialDelay => {
                let v = duration(arg, "s")?;
                if v < 0 {
                    return Err("initial delay must not be negative".into());
                }
                g.initial_delay = v;
            }
            D::CheckInterval => {
                let v = duration(arg, "s")?;
                if v < time::USEC_PER_SEC {
                    return Err("check interval cannot be less than one second".into());
                }
                g.check_interval = v;
            }
            D::ParallelRenewals => {
                let n = atoi(arg);
                if n <= 0 || n > 1024 || !arg.trim().chars().all(|c| c.is_ascii_digit()) {
                    return Err("MDParallelRenewals needs a number between 1 and 1024".into());
                }
                g.parallel_renewals = n as usize;
            }
            D::HotActivation => g.hot_activation = on_off(arg)?,
            D::GracefulRestart => g.graceful_restart = on_off(arg)?,
            D::ChallengePreflight => g.challenge_preflight = on_off(arg)?,
            D::CrlCheck => g.crl_check = on_off(arg)?,
            D::ClusterNode => {
                let ok = !arg.is_empty()
                    && arg.len() <= 64
                    && arg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
                if !ok {
                    return Err(
                        "MDClusterNode needs a name of up to 64 letters, digits, '-', '_', '.' or ':'"
                            .into(),
                    );
                }
                g.cluster_node = Some(arg.to_string());
            }
            D::ClusterLease => {
                let v = duration(arg, "s")?;
                if v < 5 * time::USEC_PER_SEC {
                    return Err("MDClusterLease cannot be less than 5 seconds".into());
                }
                g.cluster_lease = v;
            }
            D::StoreBackend => g.etcd.endpoints = store_backend(args)?,
            D::StoreEtcdPrefix => {
                if !arg.starts_with('/') || arg.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(
                        "MDStoreEtcdPrefix needs a key prefix starting with '/', e.g. /mod_md/"
                            .into(),
                    );
                }
                g.etcd.prefix = arg.to_string();
            }
            D::StoreEtcdSealKey => g.etcd.seal_key = Some(ctx.root_relative(arg)),
            D::StoreEtcdCa => g.etcd.ca_file = Some(ctx.root_relative(arg)),
            D::StoreEtcdClientCert => {
                g.etcd.client_cert = Some((
                    ctx.root_relative(arg),
                    ctx.root_relative(args.get(1).copied().unwrap_or("")),
                ))
            }
            D::StoreEtcdUser => {
                g.etcd.user = Some((
                    arg.to_string(),
                    args.get(1).copied().unwrap_or("").to_string(),
                ))
            }
            D::Profile => self.target(srv).profile = Some(arg.into()),
            D::ProfileMandatory => self.target(srv).profile_mandatory = Some(on_off(arg)?),
            D::RenewViaAri => self.target(srv).ari = Some(on_off(arg)?),
        }
        Ok(())
    }

    /// Starts an `<MDomain ...>` / `<MDomainSet ...>` section. `raw` is the
    /// rest of the opening line including the closing `>`.
    pub fn begin_section(
        &mut self,
        d: Directive,
        raw: &str,
        in_section: bool,
        ctx: &Ctx,
    ) -> Result<(), String> {
        Self::check_class(d, in_section, 1)?;
        let end = raw
            .rfind('>')
            .ok_or_else(|| format!("{SECTION_NAME}> directive missing closing '>'"))?;
        let inner = raw[..end].trim();
        if inner.is_empty() {
            return Err(format!(
                "{SECTION_NAME} > section must specify a unique domain name"
            ));
        }
        let words = split_conf(inner);
        let mut words = words.iter().map(String::as_str);
        let mut domains = Vec::new();
        let mut transitive = None;
        if let Some(first) = words.next() {
            add_domain(&mut domains, first);
        }
        for w in words {
            match transitive_kw(w) {
                Some(t) => transitive = Some(t),
                None => add_domain(&mut domains, w),
            }
        }
        self.current = Some(MdDef {
            domains,
            transitive,
            settings: Settings::default(),
            cert_files: Vec::new(),
            key_files: Vec::new(),
            defn: ctx.file.clone(),
        });
        Ok(())
    }

    /// Ends the open section; the MD is kept only when its body was fine.
    /// A tailscale MD must name the daemon's socket (§9).
    pub fn end_section(&mut self, ok: bool) -> Result<(), String> {
        if let Some(mut md) = self.current.take() {
            let tailscale = md
                .settings
                .ca_proto
                .as_ref()
                .is_some_and(CaProtocol::is_tailscale);
            if ok && tailscale {
                if let Some(urls) = &md.settings.ca_urls {
                    check_tailscale_urls(urls)?;
                }
            }
            if ok {
                if let Some(t) = md.settings.transitive.take() {
                    md.transitive = Some(t);
                }
                self.mds.push(md);
            }
        }
        Ok(())
    }
}

/// `MDStoreBackend file` or `MDStoreBackend etcd <endpoint>[,<endpoint>…]`:
/// the etcd endpoints (none for the file store).
fn store_backend(args: &[&str]) -> Result<Vec<String>, String> {
    const USE: &str = "MDStoreBackend is 'file' or 'etcd <endpoint>[,<endpoint>...]', e.g. \
                       'etcd https://10.0.0.5:2379,https://10.0.0.6:2379'";
    match args {
        [kind] if kind.eq_ignore_ascii_case("file") => Ok(Vec::new()),
        [kind, list] if kind.eq_ignore_ascii_case("etcd") => {
            let mut out = Vec::new();
            for e in list.split(',').map(str::trim) {
                let rest = e
                    .strip_prefix("http://")
                    .or_else(|| e.strip_prefix("https://"));
                let ok = rest.is_some_and(|r| !r.trim_end_matches('/').contains('/'))
                    && uri::parse(e)
                        .ok()
                        .is_some_and(|u| u.hostname.is_some() && u.port_str.is_some());
                if !ok {
                    return Err(format!(
                        "MDStoreBackend etcd: '{e}' is not an etcd endpoint (http(s)://host:port)"
                    ));
                }
                out.push(e.trim_end_matches('/').to_string());
            }
            Ok(out)
        }
        _ => Err(USE.into()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::apply::keyspec::KeySpec;
    use crate::config::check_mds;
    use crate::config::schemify_contact;
    use crate::config::ArgForm;
    use crate::config::Md;
    use crate::config::NO_SERVER_ADMIN;
    #[test]
    fn getword_conf_as_httpd() {
        use super::split_conf;
        assert_eq!(
            split_conf(r#""a.org" 'b.org'  c.org"#),
            ["a.org", "b.org", "c.org"]
        );
        assert_eq!(
            split_conf(r#""w\"q.org" 'it\'s' x\\y"#),
            [r#"w"q.org"#, "it's", r"x\y"]
        );
        assert_eq!(
            split_conf(r#""a b" "unterminated"#),
            ["a b", "unterminated"]
        );
        assert_eq!(split_conf("  "), Vec::<String>::new());
        assert_eq!(split_conf(r#""" x"#), ["", "x"]);
        assert_eq!(split_conf("é.org \"\""), ["é.org", ""]);
    }

    use super::*;

    fn apply(
        mc: &mut ModConfig,
        srv: &mut Settings,
        line: &str,
        in_section: bool,
    ) -> Result<(), String> {
        let mut words = line.split_whitespace();
        let d = Directive::from_name(words.next().unwrap()).unwrap();
        let args: Vec<&str> = words.collect();
        mc.apply(
            srv,
            d,
            &args,
            in_section,
            &Ctx {
                server_root: "/srv".into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn table() {
        assert_eq!(Directive::ALL.len(), 61);
        assert_eq!(
            Directive::from_name("mdstoredir"),
            Some(Directive::StoreDir)
        );
        assert_eq!(
            Directive::from_name("<MDomainSet"),
            Some(Directive::SectionSet)
        );
        assert_eq!(Directive::RequireHttps.class(), Class::All);
        assert_eq!(Directive::CertificateFile.class(), Class::MdOnly);
        assert_eq!(Directive::PortMap.form(), ArgForm::Take12);
    }

    #[test]
    fn global_defaults() {
        let g = Global::default();
        assert_eq!(g.retry_delay, time::from_secs(30));
        assert_eq!(g.retry_failover, 13);
        assert_eq!(g.check_interval, time::from_secs(12 * 3600));
        assert_eq!(g.initial_delay, 0);
        assert_eq!((g.local_80, g.local_443), (Some(80), Some(443)));
        assert!(!g.server_status && g.certificate_status && !g.base_server);
        assert_eq!(g.store_locks, None);
        assert_eq!(g.dns01_version, 1);
        assert_eq!(g.stapling_keep_response.format(), "7d");
        assert_eq!(g.stapling_renew_window.format(), "33%");
        assert_eq!(
            (g.cert_check_name.as_str(), g.cert_check_url.as_str()),
            ("crt.sh", "https://crt.sh?q=")
        );
    }

    #[test]
    fn port_map() {
        assert_eq!(port_map_arg("http:8080"), Ok((80, Some(8080))));
        assert_eq!(port_map_arg("443:-"), Ok((443, None)));
        assert_eq!(port_map_arg("https:8443"), Ok((443, Some(8443))));
        assert_eq!(
            port_map_arg("HTTP:80").unwrap_err(),
            "no ':' after first port number"
        );
        assert_eq!(
            port_map_arg("81:80").unwrap_err(),
            "mapped port number must be 80 or 443"
        );
        assert_eq!(
            port_map_arg("http:0").unwrap_err(),
            "invalid number for port map, must be in ]0,65535]"
        );
        assert_eq!(
            port_map_arg("99999999999999999999:1").unwrap_err(),
            "unable to parse first port number"
        );
    }

    #[test]
    fn directives_land_where_the_spec_says() {
        let mut mc = ModConfig::default();
        let mut srv = Settings::default();
        for line in [
            "MDStoreDir store",
            "MDPortMap http:8080 https:-",
            "MDRetryDelay 5",
            "MDRetryFailover 3x",
            "MDStoreLocks on",
            "MDCheckInterval 1h",
            "MDActivationDelay 2",
            "MDHttpProxy http://proxy:3128",
            "MDCACertificateFile none",
            "MDChallengeDns01Version 2",
            "MDRenewWindow 20%",
            "MDMembers manual",
            "MDCertificateMonitor mon https://mon.example/?fp=",
        ] {
            apply(&mut mc, &mut srv, line, false).unwrap();
        }
        let g = &mc.global;
        assert_eq!(g.store_dir.as_deref(), Some("/srv/store"));
        assert_eq!((g.local_80, g.local_443), (Some(8080), None));
        assert_eq!(g.retry_delay, time::from_secs(5));
        assert_eq!(g.retry_failover, 3);
        assert_eq!(g.store_locks, Some(DEFAULT_STORE_LOCK_WAIT));
        assert_eq!(g.check_interval, time::from_secs(3600));
        assert_eq!(g.activation_delay, time::from_secs(2 * 86400));
        assert_eq!(g.proxy_url.as_deref(), Some("http://proxy:3128"));
        assert_eq!(g.ca_certs, None);
        assert_eq!(g.dns01_version, 2);
        assert_eq!(g.cert_check_name, "mon");
        assert_eq!(srv.renew_window.unwrap().format(), "20%");
        assert_eq!(srv.transitive, Some(false));
        assert!(
            srv.proxy_url.is_none(),
            "a proxy outside a section is global"
        );
    }

    #[test]
    fn sections_and_merge() {
        let mut mc = ModConfig::default();
        let mut main = Settings::default();
        let ctx = Ctx::default();
        apply(&mut mc, &mut main, "MDPrivateKeys secp384r1", false).unwrap();
        apply(&mut mc, &mut main, "MDRequireHttps temporary", false).unwrap();
        apply(
            &mut mc,
            &mut main,
            "MDomain A.org www.a.org a.org auto",
            false,
        )
        .unwrap();
        mc.begin_section(Directive::Section, "b.org manual>", false, &ctx)
            .unwrap();
        apply(&mut mc, &mut main, "MDMember www.b.org", true).unwrap();
        apply(&mut mc, &mut main, "MDRenewWindow 10d", true).unwrap();
        apply(&mut mc, &mut main, "MDHttpProxy http://p:1", true).unwrap();
        apply(&mut mc, &mut main, "MDCertificateFile b.pem", true).unwrap();
        assert_eq!(
            apply(&mut mc, &mut main, "MDStoreDir x", true).unwrap_err(),
            "MDStoreDir is not allowed inside an '<MDomainSet' context"
        );
        mc.end_section(true).unwrap();
        // a section whose body failed is dropped
        mc.begin_section(Directive::Section, "c.org>", false, &ctx)
            .unwrap();
        mc.end_section(false).unwrap();
        assert_eq!(mc.mds.len(), 2);
        let a = Md::from_def(&mc.mds[0], &main, Some(NO_SERVER_ADMIN));
        let b = Md::from_def(&mc.mds[1], &main, Some("webmaster@b.org"));
        assert_eq!(a.domains, ["a.org", "www.a.org"]);
        assert!(a.transitive);
        assert_eq!(a.pkey_specs, [KeySpec::Ec("secp384r1".into())]);
        assert_eq!(a.require_https, RequireHttps::Temporary);
        assert_eq!(a.renew_window.format(), "33%");
        assert!(
            a.contacts.is_empty(),
            "httpd's default ServerAdmin is no contact"
        );
        assert_eq!(b.domains, ["b.org", "www.b.org"]);
        assert!(!b.transitive);
        assert_eq!(b.renew_window.format(), "10d");
        assert_eq!(b.proxy_url.as_deref(), Some("http://p:1"));
        assert_eq!(b.cert_files, ["/srv/b.pem"]);
        assert_eq!(b.contacts, ["mailto:webmaster@b.org"]);
        assert_eq!(
            check_mds(&[a.clone(), b.clone()], MatchMode::All)
                .unwrap_err()
                .code,
            "AH10170"
        );
        let mut b2 = b.clone();
        b2.key_files.push("b.key".into());
        b2.domains.push("www.a.org".into());
        let e = check_mds(&[a.clone(), b2.clone()], MatchMode::All).unwrap_err();
        assert_eq!(e.code, "AH10038");
        assert!(e.message.contains("overlap in domain 'www.a.org'"));
        assert!(check_mds(&[a, b2], MatchMode::ServerNames).is_ok());
    }

    #[test]
    fn section_errors() {
        let mut mc = ModConfig::default();
        let ctx = Ctx::default();
        assert_eq!(
            mc.begin_section(Directive::Section, "a.org", false, &ctx)
                .unwrap_err(),
            "<MDomainSet> directive missing closing '>'"
        );
        assert_eq!(
            mc.begin_section(Directive::Section, " >", false, &ctx)
                .unwrap_err(),
            "<MDomainSet > section must specify a unique domain name"
        );
        assert_eq!(
            mc.begin_section(Directive::SectionSet, "a.org>", true, &ctx)
                .unwrap_err(),
            "<MDomainSet is not allowed inside an '<MDomainSet' context"
        );
    }

    #[test]
    fn contacts_and_cas() {
        assert_eq!(schemify_contact("a@b.org"), "mailto:a@b.org");
        assert_eq!(schemify_contact("mailto:a@b.org"), "mailto:a@b.org");
        assert_eq!(schemify_contact("tel:+123"), "tel:+123");
        assert_eq!(resolve_ca("letsencrypt-test").unwrap(), KNOWN_CAS[1].1);
        assert!(resolve_ca("nope")
            .unwrap_err()
            .contains("(missing uri scheme)"));
    }

    #[test]
    fn md_json_shape() {
        let def = MdDef::new(vec!["a.org".into()]);
        let md = Md::from_def(&def, &Settings::default(), None);
        let keys: Vec<String> = md.to_json().as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "name",
                "domains",
                "contacts",
                "transitive",
                "ca",
                "state",
                "renew-mode",
                "renew-window",
                "warn-window",
                "must-staple",
                "proto",
                "stapling",
                "profile-mandatory",
                "ari-renewals"
            ]
        );
    }
}
