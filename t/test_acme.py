"""The ACME engine against the real pebble (default settings: it rejects 5%
of nonces and reuses authorizations), driven by the a2md tool; challenges
are really validated by pebble connecting back to a responder on loopback.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import TOP
from responder import Responder
from conftest import drive
from helpers import staged_path

A2MD = os.path.join(TOP, "target", "release", "a2md")
DNS01 = os.path.join(TOP, "t", "dns01_challtestsrv.py")


def dns01_cmd(sb):
    return f"{sys.executable} {DNS01} 127.0.0.1:{sb.chall_mgmt}"


def openssl_text(pem_path):
    return subprocess.run(["openssl", "x509", "-noout", "-text", "-in", pem_path],
                          capture_output=True, text=True, check=True).stdout


def chain_len(path):
    return open(path).read().count("BEGIN CERTIFICATE")


def key_matches(key_path, cert_path, store_key=None):
    """The staged key is encrypted with the store key: compare public keys."""
    cert_pub = subprocess.run(["openssl", "x509", "-noout", "-pubkey", "-in", cert_path],
                              capture_output=True, text=True, check=True).stdout
    return cert_pub


@pytest.fixture
def resp(ca_sb):
    r = Responder(ca_sb.path("md"), http_port=ca_sb.http_port, https_port=ca_sb.https_port)
    yield r
    r.stop()


def assert_staged_cert(sb, name, domains, suffix="", keytype="RSA"):
    cert = staged_path(sb, name, f"pubcert{suffix}.pem")
    key = staged_path(sb, name, f"privkey{suffix}.pem")
    assert os.path.exists(cert) and os.path.exists(key)
    text = openssl_text(cert)
    for d in domains:
        if d.replace(".", "").isdigit():
            assert f"IP Address:{d}" in text, text
        else:
            assert f"DNS:{d}" in text, text
    assert "Pebble Intermediate" in text
    assert chain_len(cert) >= 2  # leaf + issuer, via Link: rel="up" or in one response
    assert (keytype == "RSA") == ("rsaEncryption" in text)
    # private keys: encrypted with the store key and never readable by others
    assert open(key).read().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert os.stat(key).st_mode & 0o077 == 0
    # nothing is left that answers challenges
    left = os.listdir(sb.path("md", "challenges"))
    assert left == [], left
    assert not os.path.exists(staged_path(sb, name, "order.json"))


def test_http01(ca_sb, a2md, resp):
    out = drive(ca_sb, a2md, ["a.example.org", "www.a.example.org"], "--challenges", "http-01")
    assert out["status"] == 0, out
    assert out["staged"] == ["rsa"]
    assert_staged_cert(ca_sb, "a.example.org", ["a.example.org", "www.a.example.org"])
    # the event hook point, once per pending authorization (pebble may reuse some)
    events = [l for l in out["_stderr"].splitlines() if l.startswith("[event] challenge-setup:")]
    assert set(events) <= {"[event] challenge-setup:http-01:a.example.org",
                           "[event] challenge-setup:http-01:www.a.example.org"}, events
    assert events
    assert any(s[0] == "http-01" and s[1] == "a.example.org" for s in resp.seen)
    md = json.load(open(staged_path(ca_sb, "a.example.org", "md.json")))
    assert md["ca"]["url"] == ca_sb.ca_url
    acct = json.load(open(staged_path(ca_sb, "a.example.org", "account.json")))
    assert acct["status"] == "valid" and acct["ca-url"] == ca_sb.ca_url
    assert acct["contact"] == ["mailto:admin@example.org"]
    assert open(staged_path(ca_sb, "a.example.org", "account.pem")).read().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_tls_alpn01(ca_sb, a2md, resp):
    out = drive(ca_sb, a2md, ["t.example.org"], "--challenges", "tls-alpn-01")
    assert out["status"] == 0, out
    assert_staged_cert(ca_sb, "t.example.org", ["t.example.org"])
    assert any(s[0] == "tls-alpn-01" and s[1] == "t.example.org" for s in resp.seen)
    assert not any(s[0] == "http-01" for s in resp.seen)


def test_dns01_and_wildcard(ca_sb, a2md, tmp_path):
    log = tmp_path / "dns01.log"
    os.environ["DNS01_LOG"] = str(log)
    try:
        out = drive(ca_sb, a2md, ["w.example.org", "*.w.example.org"], "--challenges", "dns-01",
                    "--dns01", dns01_cmd(ca_sb), "--dns01-version", "2")
    finally:
        del os.environ["DNS01_LOG"]
    assert out["status"] == 0, out
    assert_staged_cert(ca_sb, "w.example.org", ["w.example.org", "*.w.example.org"])
    calls = log.read_text().splitlines()
    setups = [c for c in calls if c.startswith("setup ")]
    teardowns = [c for c in calls if c.startswith("teardown ")]
    # the wildcard is validated on its base name; version 2 teardown gets the value
    assert all(c.split()[1] == "w.example.org" for c in setups), calls
    assert all(len(c.split()[2]) == 43 for c in setups)
    assert sorted(teardowns) == sorted("teardown " + c.split(" ", 1)[1] for c in setups)


def test_ip_address_http01(ca_sb, a2md, resp):
    out = drive(ca_sb, a2md, ["127.0.0.1"], "--challenges", "http-01")
    assert out["status"] == 0, out
    assert_staged_cert(ca_sb, "127.0.0.1", ["127.0.0.1"])
    assert any(s[0] == "http-01" and s[1] == "127.0.0.1" for s in resp.seen)


def test_two_key_types(ca_sb, a2md, resp):
    out = drive(ca_sb, a2md, ["k.example.org"], "--challenges", "http-01", "--keys", "RSA 3072 P-256")
    assert out["status"] == 0, out
    assert out["staged"] == ["rsa", "P-256"]
    assert_staged_cert(ca_sb, "k.example.org", ["k.example.org"])
    assert_staged_cert(ca_sb, "k.example.org", ["k.example.org"], suffix=".p-256", keytype="EC")
    assert "Public-Key: (3072 bit)" in openssl_text(staged_path(ca_sb, "k.example.org", "pubcert.pem"))
    # a second run finds everything staged and orders nothing
    out = drive(ca_sb, a2md, ["k.example.org"], "--challenges", "http-01", "--keys", "RSA 3072 P-256")
    assert out["status"] == 0 and out["staged"] == []


def test_account_is_reused(ca_sb, a2md, resp):
    assert drive(ca_sb, a2md, ["r1.example.org"])["status"] == 0
    acct1 = json.load(open(staged_path(ca_sb, "r1.example.org", "account.json")))
    out = drive(ca_sb, a2md, ["r2.example.org"])
    assert out["status"] == 0
    # the second MD uses the account staged for the first one
    assert out["account"] == 'Staged("r1.example.org")'
    # and stages a copy of it, so that installing r2 records the account's
    # id in its md.json (issue 10.6): the same account, not a new one
    acct2 = json.load(open(staged_path(ca_sb, "r2.example.org", "account.json")))
    assert acct1["url"] and acct2["url"] == acct1["url"]


def test_must_staple(ca_sb, a2md, resp):
    """pebble accepts the CSR with the TLS Feature extension (pebble 2.4 does
    not copy it into the certificate; the CSR itself is checked by the
    engine's unit test crypto::tests::csr_contents)."""
    out = drive(ca_sb, a2md, ["m.example.org"], "--must-staple")
    assert out["status"] == 0, out
    assert_staged_cert(ca_sb, "m.example.org", ["m.example.org"])


def test_ca_unreachable(ca_sb, a2md):
    out = drive(ca_sb, a2md, ["u.example.org"], ca_url=f"https://localhost:{ca_sb.dns_port + 0}/nothing-here",
                timeout=60)
    assert out["_rc"] == 1
    assert out["status"] in (111, 20014), out
    assert "Unsuccessful in contacting ACME server at <https://localhost" in out["detail"]
    assert "Apache will continue retrying this. (" in out["detail"]  # + curl's reason


def test_invalid_challenge_leaves_nothing(ca_sb, a2md):
    # no responder runs: pebble cannot validate
    out = drive(ca_sb, a2md, ["v.example.org"], "--challenges", "http-01")
    assert out["_rc"] == 1, out
    assert "domain authorization for v.example.org failed" in out["detail"], out
    assert out["problem"] and "connection" in out["problem"], out
    assert os.listdir(ca_sb.path("md", "challenges")) == []
    assert not os.path.exists(staged_path(ca_sb, "v.example.org", "pubcert.pem"))


def test_rejected_identifier(ca_sb, a2md, resp):
    out = drive(ca_sb, a2md, ["bad_name.example.org"], "--challenges", "http-01")
    assert out["_rc"] == 1, out
    assert out["problem"] in ("urn:ietf:params:acme:error:rejectedIdentifier",
                              "urn:ietf:params:acme:error:malformed"), out
    assert os.listdir(ca_sb.path("md", "challenges")) == []


def test_no_agreement_no_account(ca_sb, a2md):
    argv = [a2md, "-d", ca_sb.path("md"), "-a", ca_sb.ca_url, "-C", ca_sb.ca_cert, "drive",
            "--contact", "a@example.org", "n.example.org"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    out = json.loads(r.stdout)
    assert r.returncode == 1
    assert "MDCertificateAgreement accepted" in out["detail"]


def test_resumed_order(ca_sb, a2md, tmp_path):
    """An interrupted run leaves order.json; the next run resumes that order."""
    gate = tmp_path / "gate"
    blocker = tmp_path / "block.sh"
    blocker.write_text(f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.1; done\nexit 1\n")
    blocker.chmod(0o755)
    argv = [a2md, "-d", ca_sb.path("md"), "-a", ca_sb.ca_url, "-C", ca_sb.ca_cert, "drive",
            "--contact", "a@example.org", "--agreement", "accepted", "--challenges", "dns-01",
            "--dns01", str(blocker), "o.example.org"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    order_file = staged_path(ca_sb, "o.example.org", "order.json")
    end = time.time() + 60
    while time.time() < end and not os.path.exists(order_file):
        time.sleep(0.05)
    assert os.path.exists(order_file)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    gate.touch()
    first = json.load(open(order_file))
    log = tmp_path / "dns01.log"
    os.environ["DNS01_LOG"] = str(log)
    try:
        out = drive(ca_sb, a2md, ["o.example.org"], "--challenges", "dns-01", "--dns01", dns01_cmd(ca_sb))
    finally:
        del os.environ["DNS01_LOG"]
    assert out["status"] == 0, out
    # MDChallengeDns01Version 1: teardown gets the domain only
    assert "teardown o.example.org" in log.read_text().splitlines(), log.read_text()
    assert f"Resuming order {first['url']}" in out["_stderr"], out["_stderr"]


def test_eab(module, a2md):
    from sandbox import Sandbox
    hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    with Sandbox(module=module) as sb:
        sb.start_ca(eab={"kid-1": hmac})
        r = Responder(sb.path("md"), http_port=sb.http_port)
        try:
            out = drive(sb, a2md, ["e.example.org"])
            assert out["_rc"] == 1
            assert out["problem"] == "urn:ietf:params:acme:error:externalAccountRequired", out
            out = drive(sb, a2md, ["e.example.org"], "--eab", "kid-1", "bm90IHRoZSBrZXk")
            assert out["_rc"] == 1, out
            out = drive(sb, a2md, ["e.example.org"], "--eab", "kid-1", hmac)
            assert out["status"] == 0, out
            acct = json.load(open(staged_path(sb, "e.example.org", "account.json")))
            assert acct["eab"] == {"kid": "kid-1", "hmac": hmac}
        finally:
            r.stop()


def test_eab_new_registration_uses_a_new_key(module, a2md):
    """Issue 10.12: a CA may return the existing account for a known key
    without checking a new binding (RFC 8555 §7.3.1; the ACME front does
    so). A registration with a wrong EAB HMAC must still fail: the new
    account gets a new key, not the stored account's."""
    from acme_front import AcmeFront
    from sandbox import Sandbox
    hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    with Sandbox(module=module) as sb:
        sb.start_ca(eab={"kid-1": hmac, "kid-2": hmac[::-1]})
        front = AcmeFront(sb, renewal_info=False, known_keys=True)
        r = Responder(sb.path("md"), http_port=sb.http_port)
        try:
            out = drive(sb, a2md, ["k1.example.org"], "--eab", "kid-1", hmac, ca_url=front.url)
            assert out["status"] == 0, out
            # the account as a restart installs it: accounts/<id>/
            acct = sb.path("md", "accounts", "ACME-localhost-0000")
            os.makedirs(acct, exist_ok=True)
            for f in ("account.json", "account.pem"):
                shutil.copy(staged_path(sb, "k1.example.org", f), os.path.join(acct, f))
            # kid-2 with kid-1's HMAC: the binding does not verify
            out = drive(sb, a2md, ["k2.example.org"], "--eab", "kid-2", hmac, ca_url=front.url)
            assert out["_rc"] == 1, out
            assert front.returned_known == 0
        finally:
            r.stop()
            front.stop()


def test_ip_address_tls_alpn01(ca_sb, a2md, resp):
    """RFC 8738: the CA sends the reverse-DNS name as SNI for an IP."""
    out = drive(ca_sb, a2md, ["127.0.0.1"], "--challenges", "tls-alpn-01")
    assert out["status"] == 0, out
    assert_staged_cert(ca_sb, "127.0.0.1", ["127.0.0.1"])
    assert any(s[0] == "tls-alpn-01" and s[1] == "1.0.0.127.in-addr.arpa" for s in resp.seen), resp.seen


def test_through_http_proxy(ca_sb, a2md, resp):
    from proxy import ConnectProxy
    p = ConnectProxy()
    try:
        out = drive(ca_sb, a2md, ["p.example.org"], proxy=p.url)
    finally:
        p.stop()
    assert out["status"] == 0, out
    assert f"localhost:{ca_sb.pebble_port}" in p.seen
    # every request went through it: the proxy saw the directory and more
    assert len(p.seen) >= 1


def test_through_https_proxy_with_its_ca_file(ca_sb, a2md, resp):
    """MDHttpProxyCACertificateFile: the proxy's certificate is verified with it."""
    from proxy import ConnectProxy
    p = ConnectProxy(tls=(ca_sb.ca_cert, ca_sb.path("ca", "pebble-tls.key")))
    try:
        bad = drive(ca_sb, a2md, ["hp.example.org"], proxy=p.url, timeout=60)
        assert bad["_rc"] == 1 and "Unsuccessful in contacting" in bad["detail"], bad
        assert p.seen == []  # the client refused the unverified proxy
        out = drive(ca_sb, a2md, ["hp.example.org"], proxy=p.url, proxy_ca=ca_sb.ca_cert)
    finally:
        p.stop()
    assert out["status"] == 0, out
    assert f"localhost:{ca_sb.pebble_port}" in p.seen


def test_bad_nonces_are_retried(module, a2md):
    """pebble rejecting 40% of nonces: every request still gets through."""
    from sandbox import Sandbox
    with Sandbox(module=module) as sb:
        sb.start_ca(env={"PEBBLE_WFE_NONCEREJECT": "40"})
        r = Responder(sb.path("md"), http_port=sb.http_port)
        try:
            for n in range(2):
                out = drive(sb, a2md, [f"n{n}.example.org"])
                assert out["status"] == 0, out
        finally:
            r.stop()
