"""ACME profiles (spec §4.10) against pebble, which has none: the front in
acme_front.py lists profiles in the directory's meta and records the
newOrder payloads it passes on to pebble."""

import json
import os

import pytest

from acme_front import AcmeFront
from helpers import wait_for
from helpers import staged_ok

NAME = "prof.example.org"
PROFILES = {"classic": "the usual", "shortLived": "6 days"}


@pytest.fixture
def front_sb(ca_sb):
    f = AcmeFront(ca_sb, renewal_info=False, profiles=PROFILES)
    yield ca_sb, f
    f.stop()


def conf(front, profile="", mandatory=""):
    return f"""
MDCertificateAuthority {front.url}
<MDomain {NAME}>
{profile}
{mandatory}
</MDomain>
<VirtualHost 127.0.0.1:{front.sb.https_port}>
  ServerName {NAME}
  SSLEngine on
</VirtualHost>
"""


def test_the_front_passes_acme_through(front_sb):
    sb, front = front_sb
    d = front.directory()
    assert d["meta"]["profiles"] == PROFILES
    assert d["newOrder"] == f"https://localhost:{front.port}/order-plz"


@pytest.mark.parametrize("module_kind", ["ours", "c"])
def test_profile_is_sent_in_the_cas_spelling(front_sb, c_module, module_kind):
    sb, front = front_sb
    sb.start_httpd(conf(front, "MDProfile SHORTLIVED"),
                   module=c_module if module_kind == "c" else None)
    assert wait_for(lambda: staged_ok(sb, NAME)), sb.error_log()[-3000:]
    assert front.orders and front.orders[0]["profile"] == "shortLived"
    assert front.orders[0]["identifiers"] == [{"type": "dns", "value": NAME}]


def test_profile_not_offered_is_left_out(front_sb):
    sb, front = front_sb
    sb.start_httpd(conf(front, "MDProfile tiny"))
    assert wait_for(lambda: staged_ok(sb, NAME)), sb.error_log()[-3000:]
    assert front.orders and "profile" not in front.orders[0]


def test_mandatory_profile_not_offered_fails_without_an_order(front_sb):
    sb, front = front_sb
    sb.start_httpd(conf(front, "MDProfile tiny", "MDProfileMandatory on"))
    job = sb.path("md", "staging", NAME, "job.json")
    assert wait_for(lambda: os.path.exists(job) and json.load(open(job)).get("errors", 0) > 0), \
        sb.error_log()[-3000:]
    assert "mandatory ACME profile 'tiny' is not offered by CA" in sb.error_log()
    assert front.orders == []
    assert not staged_ok(sb, NAME)


def test_ip_md_asks_for_the_shortlived_profile(ca_sb):
    """Issue 13.4: an MD with an IP address and no MDProfile asks a CA
    that offers `shortlived` for it (Let's Encrypt issues IP certificates
    only under that profile), and says so at info."""
    f = AcmeFront(ca_sb, renewal_info=False, profiles={"classic": "90 days", "shortlived": "6 days"})
    try:
        ip = "127.0.0.1"
        ca_sb.start_httpd(f"""
MDCertificateAuthority {f.url}
MDomain {ip}
<VirtualHost 127.0.0.1:{ca_sb.https_port}>
  ServerName {ip}
  SSLEngine on
</VirtualHost>
<VirtualHost 127.0.0.1:{ca_sb.http_port}>
  ServerName {ip}
</VirtualHost>
""")
        assert wait_for(lambda: os.path.exists(ca_sb.path("md", "staging", ip, "pubcert.pem")), 60), \
            ca_sb.error_log()[-3000:]
        assert f.orders[0]["profile"] == "shortlived"
        assert f.orders[0]["identifiers"] == [{"type": "ip", "value": ip}]
        assert "asking the CA for its 'shortlived' profile" in ca_sb.error_log()
    finally:
        f.stop()


def test_too_many_names_for_a_profile_is_said_at_start_up(sb):
    """Issue 13.4: an MD with more names than its CA's profile allows (Let's
    Encrypt's `shortlived`: 25 identifiers) gets a clear error at start-up,
    before any order is refused. `manual`: nothing contacts the CA here."""
    names = " ".join(f"n{i}.big.example.org" for i in range(26))
    sb.start_httpd(f"""
<MDomain {names}>
  MDCertificateAuthority https://acme-v02.api.letsencrypt.org/directory
  MDProfile shortlived
  MDRenewMode manual
</MDomain>
""")
    line = [x for x in sb.error_log().splitlines()
            if "profile allows at most 25 identifiers" in x]
    assert line and "[md:error]" in line[0] and "26 names" in line[0], sb.error_log()[-2000:]
