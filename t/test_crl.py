"""Revocation by CRL (issue 16, point 3): certificates that name a CRL
distribution point are checked against their issuer's real, signed CRL
(`openssl ca`, served over http on loopback). A listed managed certificate
is renewed at once (by pebble) and served without a restart; a listed
static one is reported; a CRL that its issuer did not sign is not
believed."""

import json
import os
import shutil
import subprocess

import pytest

from crl_ca import CrlCa
from helpers import STATUS, fingerprint, md_status
from helpers import obtain, site, wait_for
from helpers import events, events_cmd


@pytest.fixture
def crl_ca(ca_sb):
    ca = CrlCa(ca_sb.path("crl-ca"))
    ca.serve()
    yield ca
    ca.stop()


def crl_of(sb, name):
    return md_status(sb, name).get("crl") or {}


def serial_of(pem):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", pem],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=")[1].upper()


def static_md(sb, name, chain, key):
    return f"""
<MDomain {name}>
  MDCertificateFile {chain}
  MDCertificateKeyFile {key}
</MDomain>
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {name}
  SSLEngine on
</VirtualHost>
"""


def test_listed_managed_certificate_is_renewed_at_once(ca_sb, crl_ca):
    name = "crl.example.org"
    conf = site(ca_sb, name) + STATUS + events_cmd(ca_sb)
    ca_sb.start_httpd(conf)
    obtain(ca_sb, name)
    ca_sb.stop_httpd()
    # the live set is now one of the small CA's, naming its CRL (a store
    # where another CA's certificate was installed)
    chain, key, leaf = crl_ca.issue(name, crl_ca.dir)
    live = ca_sb.path("md", "domains", name)
    shutil.copy(chain, os.path.join(live, "pubcert.pem"))
    shutil.copy(key, os.path.join(live, "privkey.pem"))
    os.chmod(os.path.join(live, "privkey.pem"), 0o600)
    shutil.rmtree(ca_sb.path("md", "staging", name), ignore_errors=True)
    crl_ca.publish(secs=15)
    ca_sb.start_httpd(conf)
    pid = ca_sb.pid()
    test_ca_fp, status = fingerprint(ca_sb, name)
    assert status == 200
    serial = serial_of(leaf)
    # checked: good, with the CRL's next update
    assert wait_for(lambda: (crl_of(ca_sb, name).get("certs") or [{}])[0].get("status") == "good", 30), \
        (crl_of(ca_sb, name), ca_sb.error_log()[-3000:])
    c = crl_of(ca_sb, name)["certs"][0]
    assert c["serial"] == serial and c["url"] == crl_ca.url() and c["file"] == "pubcert.pem"
    assert c["crl-next-update"]
    assert [r[1] for r in crl_ca.requests] == [200], crl_ca.requests
    # asked again conditionally (nextUpdate passed, the CRL did not change)
    assert wait_for(lambda: any(r[1] == 304 for r in crl_ca.requests), 60), crl_ca.requests
    assert all(r[2] for r in crl_ca.requests[1:]), crl_ca.requests  # If-Modified-Since sent
    # cached in the store, as the issuer signed it
    cached = [f for f in os.listdir(ca_sb.path("md", "crl")) if f.endswith(".crl")]
    assert len(cached) == 1

    # revoked at the CA: the next check sees it and renews, no restart
    crl_ca.revoke(leaf, "keyCompromise")
    crl_ca.publish(secs=15)
    assert wait_for(lambda: (crl_of(ca_sb, name).get("certs") or [{}])[0].get("status") == "revoked", 60), \
        (crl_of(ca_sb, name), crl_ca.requests, ca_sb.error_log()[-3000:])
    c = crl_of(ca_sb, name)["certs"][0]
    assert c["reason"] == "keyCompromise" and c["revoked-at"], c
    log = ca_sb.error_log()
    assert (f"md({name}): the certificate pubcert.pem (serial {serial}) is revoked: the CRL at "
            f"{crl_ca.url()} lists it since") in log
    assert "(keyCompromise); renewing it now" in log
    assert wait_for(lambda: f"revoked {name}" in events(ca_sb), 10), events(ca_sb)
    assert wait_for(lambda: fingerprint(ca_sb, name)[0] != test_ca_fp, 60), ca_sb.error_log()[-3000:]
    assert "need to renew, the issuer's CRL lists certificate(s) as revoked" in ca_sb.error_log()
    assert ca_sb.pid() == pid
    # the next check looks at what is served now (the new certificate,
    # served hot; pebble's names no CRL), not at the revoked live set
    assert wait_for(lambda: crl_of(ca_sb, name) == {}, 90), \
        (crl_of(ca_sb, name), ca_sb.error_log()[-3000:])
    assert not os.path.exists(ca_sb.path("md", "crl", f"md-{name}.json"))
    # told once, not at every check
    assert events(ca_sb).count(f"revoked {name}") == 1


def test_static_certificate_listed_and_a_forged_crl(ca_sb, crl_ca):
    listed, forged = "static.example.org", "forged.example.org"
    chain_l, key_l, leaf_l = crl_ca.issue(listed, crl_ca.dir)
    chain_f, key_f, leaf_f = crl_ca.issue(forged, crl_ca.dir, crl="forged.crl")
    crl_ca.revoke(leaf_l, "superseded")
    crl_ca.publish(secs=3600)
    # a CRL with the issuer's name that lists the other certificate, signed
    # by another key
    impostor = CrlCa(ca_sb.path("impostor"))
    impostor.revoke(leaf_f)
    impostor.publish(secs=3600)
    shutil.copy(os.path.join(impostor.serve_dir, "ca.crl"), os.path.join(crl_ca.serve_dir, "forged.crl"))
    for f in (key_l, key_f):
        os.chmod(f, 0o644)
    body = events_cmd(ca_sb) + STATUS
    for name, chain, key in ((listed, chain_l, key_l), (forged, chain_f, key_f)):
        body += static_md(ca_sb, name, chain, key)
    ca_sb.start_httpd(body)
    assert wait_for(lambda: crl_of(ca_sb, listed).get("certs") and crl_of(ca_sb, forged).get("certs"), 30), \
        ca_sb.error_log()[-3000:]
    c = crl_of(ca_sb, listed)
    assert c["static"] is True and c["certs"][0]["status"] == "revoked", c
    assert c["certs"][0]["reason"] == "superseded" and c["certs"][0]["file"] == chain_l
    log = ca_sb.error_log()
    assert "It is a static certificate (MDCertificateFile) and cannot be renewed by the module: replace it" in log
    assert wait_for(lambda: f"revoked {listed}" in events(ca_sb), 10)
    # the forged CRL is not believed: unknown, with the reason, no event
    f = crl_of(ca_sb, forged)["certs"][0]
    assert f["status"] == "unknown" and "signature does not verify with the issuer's key" in f["error"], f
    assert f"revoked {forged}" not in events(ca_sb)
    assert not [n for n in os.listdir(ca_sb.path("md", "crl")) if n.endswith(".crl")
                and open(ca_sb.path("md", "crl", n), "rb").read()
                == open(os.path.join(crl_ca.serve_dir, "forged.crl"), "rb").read()]
    # nothing is ordered for static certificates
    assert "renewing" not in events(ca_sb)


def test_crl_check_off(ca_sb, crl_ca):
    name = "off.example.org"
    chain, key, leaf = crl_ca.issue(name, crl_ca.dir)
    crl_ca.revoke(leaf)
    crl_ca.publish(secs=3600)
    os.chmod(key, 0o644)
    ca_sb.start_httpd(STATUS + "MDCRLCheck off\n" + static_md(ca_sb, name, chain, key))
    assert wait_for(lambda: "AH10055" in ca_sb.error_log(), 20)
    wait_for(lambda: False, 3)
    assert crl_ca.requests == []
    assert "crl" not in md_status(ca_sb, name)
    assert not os.path.exists(ca_sb.path("md", "crl"))
    json.dumps(md_status(ca_sb, name))
