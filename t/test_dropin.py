"""Drop-in residue (issue 24): behaviours that differ from the C module on
configurations that work with it, followed through their whole lifecycle
with ours. The side-by-side comparisons with the C module are scenarios of
`test_parity.py` (own-certificate, certificate-status,
alpn-name-without-vhost, eab-two-kids, stapling-no-responder,
challenge-setup-vetoed); the flapping of first certificates between
children is `test_hot.py::test_first_certificates_do_not_flap_between_children`."""

import os
import subprocess

import pytest

from acme_front import AcmeFront
from helpers import STATUS, fingerprint, md_status
from helpers import job, obtain, site, wait_for
from helpers import http_req

NAME = "own.example.org"


def own_cert(sb):
    key, crt = sb.path("own.key"), sb.path("own.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-keyout", key, "-out", crt, "-subj", f"/CN={NAME}",
                    "-addext", f"subjectAltName=DNS:{NAME}"], check=True, capture_output=True)
    return crt, key


def issuer(sb, host):
    status, der = sb.https_request(host)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-issuer"],
                          input=der, capture_output=True).stdout.decode()
    return status, text.strip()


def test_own_certificate_is_served_until_the_md_has_one(ca_sb):
    """24.1: a vhost with SSLCertificateFile (a bought certificate) that an
    MDomain now covers keeps serving it, 200 and trusted, until the MD's
    certificate is obtained; then the MD's goes live without a restart, and
    the next restart installs it."""
    crt, key = own_cert(ca_sb)
    own = f"  SSLCertificateFile {crt}\n  SSLCertificateKeyFile {key}"
    # first as an admin migrating would: nothing renewed yet
    ca_sb.start_httpd(site(ca_sb, NAME, ssl_extra=own, md_body="  MDRenewMode manual") + STATUS)
    assert issuer(ca_sb, NAME) == (200, f"issuer=CN = {NAME}")
    # curl trusts it (as it did before MDomain was added): exit 0, not 60
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--cacert", crt,
                        "--resolve", f"{NAME}:{ca_sb.https_port}:127.0.0.1",
                        f"https://{NAME}:{ca_sb.https_port}/"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{NAME}: serves its own certificate files until Managed Domain {NAME}" in ca_sb.error_log()
    # renewal on: the own certificate is served while the CA validates,
    # the MD's from the moment it is staged (hot), installed at the restart
    ca_sb.start_httpd(site(ca_sb, NAME, ssl_extra=own) + STATUS)
    assert issuer(ca_sb, NAME) == (200, f"issuer=CN = {NAME}")
    obtain(ca_sb, NAME)
    assert wait_for(lambda: "Pebble" in issuer(ca_sb, NAME)[1], 10)
    assert issuer(ca_sb, NAME)[0] == 200
    assert md_status(ca_sb, NAME)["live"] == "staging"
    served = fingerprint(ca_sb, NAME)
    ca_sb.start_httpd()
    assert os.path.exists(ca_sb.path("md", "domains", NAME, "pubcert.pem"))
    assert fingerprint(ca_sb, NAME) == served
    assert md_status(ca_sb, NAME)["live"] == "domains"


def test_certificate_status_answers_on_the_fallback(ca_sb):
    """24.2: the certificate status answers on a connection handed the
    fallback (the site itself answers 503 there), with the C module's
    meaning: the top level is what is installed, `renewal` what is staged,
    whether hot activation serves it or not; no key object is invented."""
    name = "csf.example.org"
    ca_sb.start_httpd(site(ca_sb, name, md_body="  MDRenewMode manual") + STATUS)
    assert http_req(ca_sb, name, "/", https=True)[0] == 503
    st, h, body = http_req(ca_sb, name, "/.httpd/certificate-status", https=True)
    assert (st, h["Content-Type"]) == (200, "application/json")
    assert __import__("json").loads(body) == {"rsa": {}}
    ca_sb.start_httpd(site(ca_sb, name) + STATUS)
    obtain(ca_sb, name)
    assert wait_for(lambda: md_status(ca_sb, name)["live"] == "staging", 10)
    j = __import__("json").loads(http_req(ca_sb, name, "/.httpd/certificate-status", https=True)[2])
    staged = md_status(ca_sb, name)["renewal"]["cert"]
    assert j == {"rsa": {}, "renewal": {"cert": staged}}
    ca_sb.start_httpd()
    j = __import__("json").loads(http_req(ca_sb, name, "/.httpd/certificate-status", https=True)[2])
    assert set(j) == {"valid", "rsa"}
    assert j["rsa"]["sha256-fingerprint"] == staged["rsa"]["sha256-fingerprint"]


def test_tls_alpn01_not_possible_says_why(ca_sb):
    """24.3: when tls-alpn-01 cannot be used for a name, the error says
    which type was dropped and why, instead of contradicting itself."""
    name = "noalpn.example.org"
    ca_sb.start_httpd(site(ca_sb, name, md_body="  MDCAChallenges tls-alpn-01")
                      + STATUS + "MDRetryDelay 2s\n")
    assert wait_for(lambda: (md_status(ca_sb, name).get("renewal") or {}).get("last", {}).get("detail"),
                    30), ca_sb.error_log()[-3000:]
    detail = md_status(ca_sb, name)["renewal"]["last"]["detail"]
    assert f"tls-alpn-01 for {name}: protocol 'acme-tls/1' seems not enabled" in detail, detail
    assert "None of offered challenge types" not in detail


@pytest.fixture
def front_sb(ca_sb):
    f = AcmeFront(ca_sb, renewal_info=False)
    yield ca_sb, f
    f.stop()


def test_failed_challenge_setup_command_keeps_the_ca_from_validating(front_sb):
    """24.6: a failing MDMessageCmd for challenge-setup (a cluster's copy of
    the challenge data to the other nodes failed): the CA is not asked to
    validate, in the run or in the retries, the run ends errored; once the
    command succeeds the certificate comes with one validation."""
    sb, front = front_sb
    name = "veto.example.org"
    script, flag = sb.path("veto.sh"), sb.path("veto.on")
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\necho "$@" >> {sb.path("logs", "veto.log")}\n'
                f'case "$1" in challenge-setup*) [ -e {flag} ] && exit 3;; esac\nexit 0\n')
    os.chmod(script, 0o755)
    os.chmod(sb.path("logs"), 0o777)
    open(flag, "w").close()
    body = site(sb, name) + STATUS + \
        f"MDCertificateAuthority {front.url}\nMDMessageCmd {script}\nMDRetryDelay 1s\n"
    sb.start_httpd(body)

    def calls():
        try:
            return open(sb.path("logs", "veto.log")).read().splitlines()
        except FileNotFoundError:
            return []
    assert wait_for(lambda: calls().count(f"challenge-setup:http-01:{name} {name}") >= 3, 60), calls()
    assert f"errored {name}" in calls()
    assert front.challenges == [], front.challenges
    assert not os.path.exists(sb.path("md", "staging", name, "pubcert.pem"))
    last = md_status(sb, name)["renewal"]["last"]
    assert last["problem"] == "challenge-setup-failure" and "exit code 3" in last["detail"], last
    assert job(sb, name)["errors"] >= 3
    os.remove(flag)
    obtain(sb, name, timeout=90)
    assert len(front.challenges) == 1, front.challenges
