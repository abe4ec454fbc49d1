"""The per-MD merge of spec §1.3 and the start-up fatal checks of §2.2/§11,
on a really started httpd (the C module is run on the same configurations
to show that it fails the same way)."""

import json
import re

import pytest

from conftest import openssl_selfsigned
from helpers import start_must_fail


def effective(sb):
    """The MDs as the module merged them (its trace1 line), by name."""
    mds = {}
    for line in sb.error_log().splitlines():
        m = re.search(r"md\[([^\]]+)\]: effective configuration (\{.*\})$", line)
        if m:
            mds[m.group(1)] = json.loads(m.group(2))
    return mds


def test_merge_section_main_default(sb):
    sb.start_httpd(f"""
MDRenewWindow 20%
MDPrivateKeys secp384r1
MDRequireHttps temporary
MDMustStaple on
MDCAChallenges http-01
MDomain a.example.org www.a.example.org
<MDomain b.example.org manual>
  MDRenewWindow 10d
  MDWarnWindow 3d
  MDRequireHttps permanent
  MDPrivateKeys RSA 3072 P-256
  MDContactEmail sec@example.org
  MDCertificateAuthority LetsEncrypt
  MDRenewMode always
  MDProfile shortlived
  MDRenewViaARI off
  MDStapling on
  MDChallengeDns01 /usr/local/bin/dns-b
</MDomain>
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName a.example.org
  # per-MD settings in a vhost have no effect on any MD
  MDRenewWindow 5d
  MDRequireHttps off
  MDCertificateAuthority Buypass
</VirtualHost>
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName b.example.org
</VirtualHost>
""", log_level="warn md:trace1")
    mds = effective(sb)
    a, b = mds["a.example.org"], mds["b.example.org"]
    # a: main server values, else built-in defaults
    assert a["domains"] == ["a.example.org", "www.a.example.org"]
    assert a["renew-window"] == "20%"
    assert a["warn-window"] == "10%"
    assert a["privkey"] == {"type": "EC", "curve": "secp384r1"}
    assert a["require-https"] == "temporary"
    assert a["must-staple"] is True
    assert a["ca"]["challenges"] == ["http-01"]
    assert a["ca"]["urls"] == [sb.ca_url]
    assert a["contacts"] == ["mailto:admin@example.org"]
    assert a["transitive"] == 1 and a["renew-mode"] == 1
    assert a["stapling"] is False and a["ari-renewals"] is True and "profile" not in a
    # b: section values first
    assert b["transitive"] == 0
    assert b["renew-window"] == "10d" and b["warn-window"] == "3d"
    assert b["require-https"] == "permanent"
    assert b["privkey"] == [{"type": "RSA", "bits": 3072}, {"type": "EC", "curve": "P-256"}]
    assert b["contacts"] == ["mailto:sec@example.org"]
    assert b["ca"]["urls"] == ["https://acme-v02.api.letsencrypt.org/directory"]
    assert b["renew-mode"] == 2 and b["profile"] == "shortlived" and b["ari-renewals"] is False
    assert b["stapling"] is True and b["cmd-dns-01"] == "/usr/local/bin/dns-b"
    assert b["must-staple"] is True and b["ca"]["challenges"] == ["http-01"]


def test_contact_falls_back_to_server_admin(sb):
    body = f"""
ServerAdmin root-admin@example.org
MDomain a.example.org
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName a.example.org
</VirtualHost>
"""
    # the sandbox's base config sets MDContactEmail: use a config without it
    conf = sb.base_conf(log_level="warn md:trace1").replace("MDContactEmail admin@example.org\n", "")
    sb.write_conf(conf + body, base=False)
    sb.start_httpd()
    assert effective(sb)["a.example.org"]["contacts"] == ["mailto:root-admin@example.org"]


def test_contact_from_vhost(sb):
    conf = sb.base_conf(log_level="warn md:trace1").replace("MDContactEmail admin@example.org\n", "")
    sb.write_conf(conf + f"""
MDomain a.example.org
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName a.example.org
  ServerAdmin vhost-admin@example.org
</VirtualHost>
""", base=False)
    sb.start_httpd()
    assert effective(sb)["a.example.org"]["contacts"] == ["mailto:vhost-admin@example.org"]
    assert "AH10044: a.example.org: added contact mailto:vhost-admin@example.org" in sb.error_log()




def fatal_cases(sb):
    crt, key = openssl_selfsigned(sb, "static")
    ssl_vhost = f"""<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName a.example.org
  ServerAlias b.example.org
  SSLEngine on
  SSLCertificateFile {crt}
  SSLCertificateKeyFile {key}
</VirtualHost>"""
    return [
        ("MDomain a.example.org www.a.example.org\nMDomain b.example.org WWW.A.example.org",
         "AH10038: two Managed Domains have an overlap in domain 'www.a.example.org'"),
        ("<MDomain a.example.org>\n MDCertificateFile a.pem\n MDCertificateFile b.pem\n"
         " MDCertificateKeyFile a.key\n</MDomain>",
         "AH10170: The Managed Domain 'a.example.org' needs one MDCertificateKeyFile for each MDCertificateFile."),
        ("<MDomain a.example.org>\n MDCertificateKeyFile a.key\n</MDomain>",
         "AH10171: The Managed Domain 'a.example.org' has MDCertificateKeyFile(s) but no MDCertificateFile."),
        ("MDomain a.example.org\nMDomain b.example.org\n" + ssl_vhost,
         "AH10042: conflict: 2 MDs match to SSL VirtualHost a.example.org, there can at most be one."),
        ("<MDomain a.example.org>\n MDCertificateProtocol foo\n</MDomain>",
         "AH10172: md[a.example.org]: error syncing to store"),
    ]


@pytest.mark.parametrize("case", range(5), ids=["overlap", "10170", "10171", "ssl-conflict", "protocol"])
def test_fatal_start(sb, c_module, case):
    body, expected = fatal_cases(sb)[case]
    out = start_must_fail(sb, body)
    assert expected in out, out[-2000:]
    code = expected.split(":")[0]
    c_out = start_must_fail(sb, body, module=c_module)
    assert code in c_out, c_out[-2000:]


def test_overlap_names_the_definitions(sb):
    out = start_must_fail(sb, "MDomain a.example.org\nMDomain A.example.org")
    assert re.search(r"AH10038: .*first definition in \S+httpd.conf\(line \d+\), second in \S+httpd.conf\(line \d+\)", out), out


def test_servernames_mode_allows_overlap(sb):
    sb.start_httpd("MDMatchNames servernames\nMDomain a.example.org x.example.org\nMDomain b.example.org x.example.org")
    assert "AH10038" not in sb.error_log()


def test_tailscale_protocol_is_accepted(sb):
    sb.start_httpd("""<MDomain host.tail1234.ts.net>
  MDCertificateProtocol tailscale
  MDCertificateAuthority file://localhost/var/run/tailscale/tailscaled.sock
</MDomain>""")
    assert "AH10172" not in sb.error_log()


def test_unused_md_warns(sb):
    sb.start_httpd("MDomain lonely.example.org")
    assert "AH10045: No VirtualHost matches Managed Domain lonely.example.org" in sb.error_log()
