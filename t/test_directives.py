"""Every directive of spec §1 through `apache2 -t` on the real httpd.

Each case is checked against our module and, where the C module (2.6.10)
knows the directive, against the C module too: the expected texts below are
therefore the C module's own, not our guesses.
"""

import json
import os
import re
import subprocess

import pytest

from conftest import syntax

MD = "a.example.org"


def section(*lines, names=MD, tag="MDomain"):
    return f"<{tag} {names}>\n" + "\n".join(lines) + f"\n</{tag}>"


CA_HINT = "Known CA names are: LetsEncrypt LetsEncrypt-Test Buypass Buypass-Test."
ONOFF = ["MDMustStaple", "MDBaseServer", "MDServerStatus", "MDCertificateStatus", "MDStapling",
         "MDStapleOthers", "MDProfileMandatory", "MDRenewViaARI"]

# Configurations that must pass `apache2 -t`.
GOOD = [
    # not RSA<bits>: a curve name (checked when a key is made), as the C module
    "MDPrivateKeys RSAé",
    "MDPrivateKeys R€x",
    # huge durations wrap as in md_duration_parse; these the C module accepts
    "MDRenewWindow 9223372036854775807s",
    "MDWarnWindow 9223372036854775807s",
    "MDActivationDelay 9223372036854775807s",
    "MDStaplingKeepResponse 9223372036854775807s",
    "MDStoreLocks 9223372036854775807s",
    "MDHttpProxy http://127.0.0.1:99999",
    "MDCertificateAuthority LetsEncrypt",
    "MDCertificateAuthority letsencrypt-test buypass Buypass-Test",
    "MDCertificateAuthority https://acme.example.org/directory https://127.0.0.1:14000/dir",
    "MDCertificateAuthority",  # an empty list: the default CA applies
    "MDCertificateAgreement accepted",
    "MDCertificateAgreement https://acme.example.org/tos.pdf",
    "MDCAChallenges http-01 tls-alpn-01 dns-01",
    "MDCAChallenges whatever-01",
    "MDCertificateProtocol ACME",
    "MDContactEmail admin@example.org",
    "MDContactEmail mailto:admin@example.org",
    "MDDriveMode auto", "MDDriveMode always", "MDDriveMode manual", "MDDriveMode stick",
    "MDRenewMode automatic", "MDRenewMode Always", "MDRenewMode MANUAL",
    f"MDomain {MD}",
    f"MDomain {MD} www.{MD} auto",
    f"MDomain manual {MD} WWW.{MD.upper()}",
    section("MDMember www.a.example.org", "MDMembers x.a.example.org manual"),
    section("", tag="MDomainSet"),
    section("", names=f"{MD} auto", tag="MDomainSet"),
    "MDMember auto", "MDMembers manual",
    "MDMustStaple on", "MDMustStaple OFF",
    "MDPortMap http:8080", "MDPortMap http:8080 https:8443", "MDPortMap 80:- 443:4443",
    "MDPortMap https:-",
    "MDPrivateKeys Default", "MDPrivateKeys RSA", "MDPrivateKeys RSA 4096",
    "MDPrivateKeys rsa3072 secp384r1", "MDPrivateKeys P-256 RSA 3072", "MDPrivateKeys RSA 4096x",
    "MDHttpProxy http://proxy.example.org:3128", "MDHttpProxy https://127.0.0.1:8443/",
    "MDStoreDir md", "MDStoreDir /var/lib/apache2/md",
    "MDRenewWindow 33%", "MDRenewWindow 99%", "MDRenewWindow 30", "MDRenewWindow 30days",
    "MDRenewWindow 12h", "MDRenewWindow 90mi", "MDRenewWindow 33%x",
    "MDWarnWindow 10%", "MDWarnWindow 7d",
    "MDRequireHttps off", "MDRequireHttps temporary", "MDRequireHttps Permanent",
    "<Files x>\nMDRequireHttps off\n</Files>",
    "MDNotifyCmd /usr/bin/true", "MDNotifyCmd /usr/bin/logger -t md-notify",
    "MDMessageCmd /usr/bin/logger -t md-message",
    "MDChallengeDns01 /usr/local/bin/dns01 --zone example.org",
    section("MDChallengeDns01 /usr/local/bin/dns01-for-a"),
    "MDChallengeDns01Version 1", "MDChallengeDns01Version 2",
    section("MDCertificateFile /etc/ssl/a.pem", "MDCertificateKeyFile /etc/ssl/a.key"),
    section("MDCertificateFile a.pem", "MDCertificateKeyFile a.key",
            "MDCertificateFile b.pem", "MDCertificateKeyFile b.key"),
    "MDStaplingKeepResponse 7d", "MDStaplingKeepResponse 50%", "MDStaplingKeepResponse 2",
    "MDStaplingRenewWindow 33%", "MDStaplingRenewWindow 2d",
    "MDCertificateCheck crt.sh https://crt.sh?q=",
    "MDActivationDelay 0", "MDActivationDelay 1d", "MDActivationDelay -1", "MDActivationDelay 12h",
    "MDCACertificateFile /etc/ssl/certs/ca-certificates.crt", "MDCACertificateFile none",
    "MDHttpProxyCACertificateFile none", "MDHttpProxyCACertificateFile /etc/ssl/proxy-ca.pem",
    section("MDCACertificateFile ca.pem", "MDHttpProxyCACertificateFile pca.pem",
            "MDHttpProxy http://proxy.example.org:3128"),
    "MDExternalAccountBinding kid-1 zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
    "MDExternalAccountBinding none", "MDExternalAccountBinding NONE",
    "MDRetryDelay 30", "MDRetryDelay 5s", "MDRetryDelay 1mi", "MDRetryDelay 250ms",
    "MDRetryFailover 13", "MDRetryFailover 3x",
    "MDStoreLocks on", "MDStoreLocks off", "MDStoreLocks 10", "MDStoreLocks 0", "MDStoreLocks 2s",
    "MDMatchNames all", "MDMatchNames servernames", "MDMatchNames ServerNames",
    "MDInitialDelay 0", "MDInitialDelay 10s", "MDInitialDelay 1h",
    "MDCheckInterval 1", "MDCheckInterval 12h", "MDCheckInterval 1s",
    "MDProfile shortlived",
    section("MDProfile tlsserver", "MDProfileMandatory on", "MDRenewViaARI off"),
    section("MDCertificateAuthority LetsEncrypt", "MDCertificateAgreement accepted",
            "MDCAChallenges dns-01", "MDCertificateProtocol ACME", "MDContactEmail x@example.org",
            "MDRenewMode always", "MDRenewWindow 10d", "MDWarnWindow 5d",
            "MDPrivateKeys secp256r1", "MDMustStaple on", "MDRequireHttps permanent",
            "MDStapling on", "MDExternalAccountBinding none"),
    "<VirtualHost *:80>\nServerName v.example.org\nMDomain v.example.org\n"
    "MDStoreDir /tmp/md-elsewhere\nMDRequireHttps permanent\n</VirtualHost>",
    "<VirtualHost *:80>\n" + section("MDMember w.b.example.org", names="b.example.org") + "\n</VirtualHost>",
] + [f"{d} on" for d in ONOFF] + [f"{d} Off" for d in ONOFF]

# Configurations that must fail with exactly this last line.
BAD = [
    ("MDCertificateAuthority foo",
     f"The CA name 'foo' is not known and it is not a URL either (missing uri scheme). {CA_HINT}"),
    ("MDCertificateAuthority LetsEncrypt ftp:",
     f"The CA name 'ftp:' is not known and it is not a URL either (missing uri identifier). {CA_HINT}"),
    ("MDCertificateAuthority mailto:x",
     f"The CA name 'mailto:x' is not known and it is not a URL either (missing @). {CA_HINT}"),
    ("MDCertificateAuthority http://a..b/",
     f"The CA name 'http://a..b/' is not known and it is not a URL either (invalid hostname). {CA_HINT}"),
    ("MDCertificateAgreement",
     "MDCertificateAgreement takes one argument, either 'accepted' or the URL of CA Terms-of-Service agreement you accept"),
    ("MDCertificateProtocol a b", "MDCertificateProtocol takes one argument, Protocol used to obtain/renew certificates"),
    ("MDContactEmail", "MDContactEmail takes one argument, Email address used for account registration"),
    ("MDRenewMode x", "unknown MDDriveMode x"),
    ("MDDriveMode sometimes", "unknown MDDriveMode sometimes"),
    ("MDomain", "needs at least one domain name"),
    ("MDomain auto", "needs at least one domain name"),
    (section("MDomain b.example.org"), "MDomain is not allowed inside an '<MDomainSet' context"),
    (section(section("", names="b.example.org")), "<MDomain is not allowed inside an '<MDomainSet' context"),
    (section(section("", names="b.example.org", tag="MDomainSet")),
     "<MDomainSet is not allowed inside an '<MDomainSet' context"),
    ("<MDomain >\n</MDomain>", "<MDomainSet > section must specify a unique domain name"),
    ("MDMember foo", 'unknown value, use "auto|manual"'),
    ("MDMember a b", "MDMember is only valid inside a '<MDomainSet' context, not here"),
    ("MDMembers", "MDMembers is only valid inside a '<MDomainSet' context, not here"),
    ("MDMustStaple x", "unknown 'x', supported parameter values are 'on' and 'off'"),
    ("MDPortMap foo:80", "no ':' after first port number"),
    ("MDPortMap HTTP:80", "no ':' after first port number"),
    ("MDPortMap 8080", "no ':' after first port number"),
    ("MDPortMap http:abc", "invalid number for port map, must be in ]0,65535]"),
    ("MDPortMap http:70000", "invalid number for port map, must be in ]0,65535]"),
    ("MDPortMap http:8080 81:80", "mapped port number must be 80 or 443"),
    ("MDPortMap 99999999999999999999:1", "unable to parse first port number"),
    ("MDPortMap http:99999999999999999999", "unable to parse second port number"),
    ("MDPortMap a b c", "MDPortMap takes 1-2 arguments, Declare the mapped ports 80 and 443 on the local server. "
     "E.g. 80:8000 to indicate that the server port 8000 is reachable as port 80 from the internet. "
     "Use 80:- to indicate that port 80 is not reachable from the outside."),
    (section("MDPortMap http:80"), "MDPortMap is not allowed inside an '<MDomainSet' context"),
    ("MDPrivateKeys", "needs to specify the private key type"),
    ("MDPrivateKeys Default RSA", "'Default' allows no other parameter"),
    ("MDPrivateKeys RSA 1024", "must be 2048 or higher in order to be considered safe."),
    ("MDPrivateKeys rsa1000", "must be 2048 or higher in order to be considered safe."),
    ("MDPrivateKeys RSA 2147483647", "is too large for an RSA key length."),
    ("MDPrivateKeys RSA rsa3072", "two keys of type 'RSA' are not possible."),
    ("MDPrivateKeys P-256 p-256", "two keys of type 'p-256' are not possible."),
    ("MDHttpProxy ftp://x", "uri scheme must be http or https"),
    ("MDHttpProxy foo", "missing uri scheme"),
    ("MDHttpProxy http://a_b", "invalid hostname"),
    ("MDHttpProxy http://a:0", "invalid port"),
    ("MDRetryFailover 99999999999999999999", "invalid argument, must be a number > 0"),
    ("MDRetryFailover 2147483648", "invalid argument, must be a number > 0"),
    ("MDCheckInterval 9223372036854775807s", "check interval cannot be less than one second"),
    ("MDRetryDelay 9223372036854775807s", "minimum delay must be greater than 0"),
    ("MDInitialDelay 9223372036854775807s", "initial delay must not be negative"),
    ("MDHttpProxy https://127.0.0.1:-443", "invalid port"),
    ("MDHttpProxy https://127.0.0.1:+443", "invalid port"),
    ("MDHttpProxy http://a:65536", "invalid port"),
    ("MDHttpProxy http://a:99999999999999999999", "invalid port"),
    ("MDHttpProxy http://a:x", "not an uri"),
    ('MDHttpProxy "http://a b"', "whitespace in uri"),
    ("MDStoreDir a b", "MDStoreDir takes one argument, the directory for file system storage of managed domain data."),
    (section("MDStoreDir x"), "MDStoreDir is not allowed inside an '<MDomainSet' context"),
    ("MDRenewWindow 100%", "MDRenewWindow a length of 100% or more is not allowed."),
    ("MDRenewWindow -5%", "MDRenewWindow percent must be less than 100"),
    ("MDRenewWindow abc", "MDRenewWindow has unrecognized format"),
    ("MDRenewWindow 5m", "MDRenewWindow has unrecognized format"),
    ("MDWarnWindow 150%", "MDWarnWindow a length of 100% or more is not allowed."),
    ("MDWarnWindow x", "MDWarnWindow has unrecognized format"),
    ("MDRequireHttps x", "unknown 'x', supported parameter values are 'temporary' and 'permanent'"),
    ("<Directory /x>\nMDRequireHttps off\n</Directory>", "MDRequireHttps cannot occur within <Directory> section"),
    ("<Location /x>\nMDStoreDir x\n</Location>", "MDStoreDir not allowed in <Location> context"),
    ("<Location /x>\nMDRequireHttps off\n</Location>", "MDRequireHttps cannot occur within <Location> section"),
    ("<DirectoryMatch /x>\nMDRequireHttps off\n</DirectoryMatch>",
     "MDRequireHttps cannot occur within <DirectoryMatch> section"),
    ("<Directory /x>\n<Limit GET>\nMDRequireHttps off\n</Limit>\n</Directory>",
     "MDRequireHttps cannot occur within <Limit> or <LimitExcept> section"),
    (section("MDNotifyCmd /bin/true"), "MDNotifyCmd is not allowed inside an '<MDomainSet' context"),
    (section("MDMessageCmd /bin/true"), "MDMessageCmd is not allowed inside an '<MDomainSet' context"),
    ("MDBaseServer x", "unknown 'x', supported parameter values are 'on' and 'off'"),
    ("MDChallengeDns01Version 3", "Only versions `1` and `2` are supported"),
    (section("MDChallengeDns01Version 2"), "MDChallengeDns01Version is not allowed inside an '<MDomainSet' context"),
    ("MDCertificateFile /x.pem", "MDCertificateFile is only valid inside a '<MDomainSet' context, not here"),
    ("MDCertificateKeyFile /x.key", "MDCertificateKeyFile is only valid inside a '<MDomainSet' context, not here"),
    ("MDServerStatus yes", "unknown 'yes', supported parameter values are 'on' and 'off'"),
    ("MDCertificateStatus 1", "unknown '1', supported parameter values are 'on' and 'off'"),
    ("MDStapling x", "unknown 'x', supported parameter values are 'on' and 'off'"),
    ("MDStapleOthers x", "unknown 'x', supported parameter values are 'on' and 'off'"),
    ("MDStaplingKeepResponse xx", "MDStaplingKeepResponse has unrecognized format"),
    ("MDStaplingRenewWindow 100%", "MDStaplingRenewWindow with a length of 100% or more is not allowed."),
    ("MDStaplingRenewWindow abc", "MDStaplingRenewWindow has unrecognized format"),
    ("MDCertificateCheck a", "MDCertificateCheck takes two arguments, Set name and URL pattern for a certificate monitoring site."),
    ("MDActivationDelay x", "unrecognized duration format"),
    (section("MDActivationDelay 1d"), "MDActivationDelay is not allowed inside an '<MDomainSet' context"),
    ("MDExternalAccountBinding /nonexistent/eab.json", "MDExternalAccountBinding: file not found: /nonexistent/eab.json"),
    ("MDExternalAccountBinding a b c", "MDExternalAccountBinding takes 1-2 arguments, Set the external account binding keyid and hmac values to use at CA"),
    ("MDRetryDelay 0", "minimum delay must be greater than 0"),
    ("MDRetryDelay -5", "minimum delay must be greater than 0"),
    ("MDRetryDelay 5m", "unrecognized duration format"),
    ('MDRetryDelay "  "', "unrecognized duration format"),
    ("MDRetryFailover 0", "invalid argument, must be a number > 0"),
    ("MDRetryFailover x", "invalid argument, must be a number > 0"),
    ("MDStoreLocks x", "neither 'on', 'off' or a duration specified"),
    ("MDMatchNames x", "invalid argument, must be a 'all' or 'servernames'"),
    ("MDInitialDelay -1", "initial delay must not be negative"),
    ("MDInitialDelay x", "unrecognized duration format"),
    ("MDCheckInterval 0", "check interval cannot be less than one second"),
    ("MDCheckInterval 500ms", "check interval cannot be less than one second"),
    ("MDCheckInterval x", "unrecognized duration format"),
    ("MDProfileMandatory x", "unknown 'x', supported parameter values are 'on' and 'off'"),
    ("MDRenewViaARI x", "unknown 'x', supported parameter values are 'on' and 'off'"),
    (section("MDRetryDelay 5s"), "MDRetryDelay is not allowed inside an '<MDomainSet' context"),
    (section("MDRetryFailover 2"), "MDRetryFailover is not allowed inside an '<MDomainSet' context"),
    (section("MDStoreLocks on"), "MDStoreLocks is not allowed inside an '<MDomainSet' context"),
    (section("MDMatchNames all"), "MDMatchNames is not allowed inside an '<MDomainSet' context"),
    (section("MDInitialDelay 1"), "MDInitialDelay is not allowed inside an '<MDomainSet' context"),
    (section("MDCheckInterval 1h"), "MDCheckInterval is not allowed inside an '<MDomainSet' context"),
    (section("MDBaseServer on"), "MDBaseServer is not allowed inside an '<MDomainSet' context"),
]

# Directives that the C 2.6.10 build does not have (this project adds them).
OURS_ONLY_GOOD = [
    "MDCertificateMonitor crt.sh https://crt.sh?q=",
    "MDParallelRenewals 1", "MDParallelRenewals 32",
    "MDHotActivation on", "MDHotActivation off",
    "MDGracefulRestart on", "MDGracefulRestart off",
    "MDClusterNode web-1", "MDClusterNode node2.example.org:8443",
    "MDClusterLease 30s", "MDClusterLease 2mi",
    "MDChallengePreflight on", "MDChallengePreflight off",
    "MDCRLCheck on", "MDCRLCheck off",
    "MDStoreBackend file", "MDStoreBackend etcd https://10.0.0.5:2379,http://127.0.0.1:2379/",
    "MDStoreEtcdPrefix /sites/md/", "MDStoreEtcdSealKey md-seal.key", "MDStoreEtcdCA etcd-ca.pem",
    "MDStoreEtcdClientCert etcd-client.pem etcd-client.key", "MDStoreEtcdUser md secret",
    section("MDCertificateProtocol tailscale",
            "MDCertificateAuthority file://localhost/var/run/tailscale/tailscaled.sock",
            names="host.tail1234.ts.net"),
]
OURS_ONLY_BAD = [
    ("MDParallelRenewals 0", "MDParallelRenewals needs a number between 1 and 1024"),
    ("MDHotActivation x", "unknown 'x', supported parameter values are 'on' and 'off'"),
    (section("MDHotActivation on"), "MDHotActivation is not allowed inside an '<MDomainSet' context"),
    ("MDGracefulRestart maybe", "unknown 'maybe', supported parameter values are 'on' and 'off'"),
    ("MDParallelRenewals x", "MDParallelRenewals needs a number between 1 and 1024"),
    (section("MDParallelRenewals 2"), "MDParallelRenewals is not allowed inside an '<MDomainSet' context"),
    ("MDClusterNode a/b", "MDClusterNode needs a name of up to 64 letters, digits, '-', '_', '.' or ':'"),
    (section("MDClusterNode a"), "MDClusterNode is not allowed inside an '<MDomainSet' context"),
    ("MDClusterLease 2", "MDClusterLease cannot be less than 5 seconds"),
    ("MDClusterLease x", "unrecognized duration format"),
    ("MDChallengePreflight 1", "unknown '1', supported parameter values are 'on' and 'off'"),
    (section("MDChallengePreflight off"), "MDChallengePreflight is not allowed inside an '<MDomainSet' context"),
    ("MDCRLCheck yes", "unknown 'yes', supported parameter values are 'on' and 'off'"),
    ("MDStoreBackend nfs", "MDStoreBackend is 'file' or 'etcd <endpoint>[,<endpoint>...]', e.g. "
     "'etcd https://10.0.0.5:2379,https://10.0.0.6:2379'"),
    ("MDStoreBackend etcd", "MDStoreBackend is 'file' or 'etcd <endpoint>[,<endpoint>...]', e.g. "
     "'etcd https://10.0.0.5:2379,https://10.0.0.6:2379'"),
    ("MDStoreBackend etcd https://a:2379,10.0.0.6",
     "MDStoreBackend etcd: '10.0.0.6' is not an etcd endpoint (http(s)://host:port)"),
    ("MDStoreBackend etcd https://a:2379/v3",
     "MDStoreBackend etcd: 'https://a:2379/v3' is not an etcd endpoint (http(s)://host:port)"),
    ("MDStoreEtcdPrefix mod_md", "MDStoreEtcdPrefix needs a key prefix starting with '/', e.g. /mod_md/"),
    (section("MDStoreEtcdPrefix /x/"), "MDStoreEtcdPrefix is not allowed inside an '<MDomainSet' context"),
    ("MDStoreEtcdUser md", "MDStoreEtcdUser takes two arguments, User and password for etcd's authentication."),
    ("MDCertificateMonitor a",
     "MDCertificateMonitor takes two arguments, Set name and URL pattern for a certificate monitoring "
     "site (same as MDCertificateCheck)."),
]


def _id(case):
    text = case if isinstance(case, str) else case[0]
    return re.sub(r"\s+", " ", text)[:70]


@pytest.mark.parametrize("conf", GOOD, ids=_id)
def test_good_values(cfg, module, c_module, conf):
    ok, out = syntax(cfg, conf, module)
    assert ok and out == "Syntax OK", out
    ok, out = syntax(cfg, conf, c_module)
    assert ok and out == "Syntax OK", f"the C module rejects it: {out}"


@pytest.mark.parametrize("conf,expected", BAD, ids=_id)
def test_bad_values(cfg, module, c_module, conf, expected):
    ok, out = syntax(cfg, conf, module)
    assert not ok
    assert out == expected
    ok, c_out = syntax(cfg, conf, c_module)
    assert not ok and c_out == expected, f"the C module says: {c_out}"


@pytest.mark.parametrize("conf", OURS_ONLY_GOOD, ids=_id)
def test_ours_only_good(cfg, module, conf):
    ok, out = syntax(cfg, conf, module)
    assert ok and out == "Syntax OK", out


@pytest.mark.parametrize("conf,expected", OURS_ONLY_BAD, ids=_id)
def test_ours_only_bad(cfg, module, conf, expected):
    ok, out = syntax(cfg, conf, module)
    assert not ok and out == expected


def test_c_module_lacks_monitor(cfg, c_module):
    ok, out = syntax(cfg, "MDCertificateMonitor crt.sh https://crt.sh?q=", c_module)
    assert not ok and "Invalid command 'MDCertificateMonitor'" in out


def test_syntax_error_names_the_line(cfg, module):
    rc, out = cfg.config_test("MDStoreDir md\nMDRenewWindow 100%", module=module)
    assert rc != 0
    assert re.search(r"AH00526: Syntax error on line \d+ of .*test.conf:", out), out


def _eab_cases(cfg):
    d = cfg.path("eab")
    os.makedirs(d, exist_ok=True)
    files = {
        "good.json": json.dumps({"kid": "kid-1", "hmac": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajV"}),
        "nokid.json": json.dumps({"hmac": "x"}),
        "nohmac.json": json.dumps({"kid": "x"}),
        "broken.json": "{ this is not json",
    }
    for n, c in files.items():
        with open(os.path.join(d, n), "w") as f:
            f.write(c)
    return d


def test_eab_files(cfg, module, c_module):
    d = _eab_cases(cfg)
    cases = [
        ("good.json", None),
        ("nokid.json", f"MDExternalAccountBinding: JSON does not contain 'kid' element in file {d}/nokid.json"),
        ("nohmac.json", f"MDExternalAccountBinding: JSON does not contain 'hmac' element in file {d}/nohmac.json"),
        ("broken.json", f"MDExternalAccountBinding: error reading JSON file {d}/broken.json"),
    ]
    for name, expected in cases:
        for mod in (module, c_module):
            # a relative path is relative to ServerRoot
            ok, out = syntax(cfg, f"MDExternalAccountBinding eab/{name}", mod)
            if expected is None:
                assert ok, out
            else:
                assert not ok and out == expected, (mod, out)


def _directive_list(cfg, module):
    conf = cfg.write_conf("", module=module, name="list.conf")
    out = subprocess.run(["apache2", "-L", "-f", conf], capture_output=True, text=True).stdout
    entries, cur = [], None
    for line in out.splitlines():
        if not line.startswith("\t"):
            name = line.split(" (")[0]
            cur = [name] if name.startswith(("MD", "<MD")) else None
            if cur:
                entries.append(cur)
        elif cur is not None:
            cur.append(line.strip())
    return entries


def test_directive_table_matches_c_module(cfg, module, c_module):
    """Names, order, help texts and allowed contexts as `apache2 -L` shows them."""
    ours = _directive_list(cfg, module)
    theirs = _directive_list(cfg, c_module)
    assert len(theirs) == 47
    ours_only = ["MDCertificateMonitor", "MDParallelRenewals", "MDHotActivation", "MDGracefulRestart",
                 "MDClusterNode", "MDClusterLease", "MDChallengePreflight",
                 "MDCRLCheck", "MDStoreBackend", "MDStoreEtcdPrefix", "MDStoreEtcdSealKey",
                 "MDStoreEtcdCA", "MDStoreEtcdClientCert", "MDStoreEtcdUser"]
    assert [e for e in ours if e[0] not in ours_only] == theirs
    assert [e[0] for e in ours[-len(ours_only):]] == ours_only


def test_every_directive_is_covered(cfg, module):
    names = {e[0] for e in _directive_list(cfg, module)}
    text = "\n".join(GOOD + OURS_ONLY_GOOD)
    missing = [n for n in names if not re.search(rf"(^|\n|<){re.escape(n.lstrip('<'))}[ >]", text)]
    assert not missing, missing
