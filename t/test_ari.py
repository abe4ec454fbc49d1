"""ACME Renewal Information (spec §4.9, RFC 9773) against pebble, which has
none: the front in acme_front.py adds a `renewalInfo` resource to pebble's
directory and answers ARI requests with a window the test sets. The C
module is the oracle for the certificate id it asks about."""

import base64
import json
import os
import subprocess
import time

import pytest

from acme_front import AcmeFront
from helpers import wait_for

NAME = "ari.example.org"


@pytest.fixture
def ari_sb(ca_sb):
    f = AcmeFront(ca_sb)
    yield ca_sb, f
    f.stop()


def conf(front):
    return f"""
MDCertificateAuthority {front.url}
MDomain {NAME}
<VirtualHost 127.0.0.1:{front.sb.https_port}>
  ServerName {NAME}
  SSLEngine on
</VirtualHost>
"""


def cert_id(pem_file):
    """RFC 9773 id as the C module computes it: base64url(AKI keyid) "."
    base64url(serial without the DER sign byte)."""
    text = subprocess.run(["openssl", "x509", "-in", pem_file, "-noout", "-text", "-serial"],
                          capture_output=True, text=True, check=True).stdout
    lines = text.splitlines()
    i = [k for k, x in enumerate(lines) if "Authority Key Identifier" in x][0]
    aki = bytes.fromhex(lines[i + 1].strip().replace("keyid:", "").replace(":", ""))
    serial = [x for x in lines if x.startswith("serial=")][0].split("=")[1]
    sb = bytes.fromhex(serial if len(serial) % 2 == 0 else "0" + serial).lstrip(b"\0")
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return f"{b64(aki)}.{b64(sb)}"


def installed(sb, front):
    """Obtains a certificate through the front and installs it."""
    sb.start_httpd(conf(front))
    staged = sb.path("md", "staging", NAME, "pubcert.pem")
    assert wait_for(lambda: os.path.exists(staged), 60), sb.error_log()[-3000:]
    time.sleep(0.5)
    sb.stop_httpd()
    sb.clear_log()
    return staged


def test_ca_advising_renewal_now_renews(ari_sb):
    sb, front = ari_sb
    installed(sb, front)
    now = time.time()
    front.window = (now - 7200, now - 3600)
    sb.start_httpd(conf(front))  # installs; the job asks the CA via ARI
    live = sb.path("md", "domains", NAME, "pubcert.pem")
    assert wait_for(lambda: front.asked, 30), sb.error_log()[-3000:]
    assert front.asked[0] == cert_id(live)
    new = sb.path("md", "staging", NAME, "pubcert.pem")
    assert wait_for(lambda: os.path.exists(new), 60), sb.error_log()[-3000:]
    assert open(new).read() != open(live).read()
    log = sb.error_log()
    assert (f"AH10517: md({NAME}): CA advises renew via ARI now, for explanation see "
            f"{front.explanation}") in log


def renew_now(sb, front):
    """Installs a certificate, then has the CA advise its renewal now;
    returns (the live certificate's ARI id, the renewed staged file)."""
    installed(sb, front)
    live = sb.path("md", "domains", NAME, "pubcert.pem")
    front.orders.clear()
    now = time.time()
    front.window = (now - 7200, now - 3600)
    sb.start_httpd(conf(front))
    old = cert_id(live)
    new = sb.path("md", "staging", NAME, "pubcert.pem")
    assert wait_for(lambda: os.path.exists(new), 60), sb.error_log()[-3000:]
    return old, new


def test_renewal_names_the_certificate_it_replaces(ari_sb):
    """Issue 13.2: the renewal's order carries `replaces` with the ARI id
    of the certificate it replaces; job.json remembers it."""
    sb, front = ari_sb
    old, new = renew_now(sb, front)
    assert [o.get("replaces") for o in front.orders] == [old]
    assert cert_id(new) != old
    job = json.load(open(sb.path("md", "staging", NAME, "job.json")))
    assert job["ari-replaced"] == [old]


def test_rejected_replaces_is_retried_without_it(ari_sb):
    """Issue 13.2: a CA that rejects `replaces` (alreadyReplaced) gets the
    order once more without it, and the certificate is not named again."""
    sb, front = ari_sb
    front.reject_replaces = 1
    old, new = renew_now(sb, front)
    assert [o.get("replaces") for o in front.orders] == [old, None]
    assert "the CA rejected the order replacing certificate" in sb.error_log()
    # a later run of the same MD (e.g. the staged set lost) does not name it
    sb.stop_httpd()
    for f in os.listdir(sb.path("md", "staging", NAME)):
        if f != "job.json":
            os.remove(sb.path("md", "staging", NAME, f))
    job_file = sb.path("md", "staging", NAME, "job.json")
    job = json.load(open(job_file))
    assert job["ari-replaced"] == [old]
    job["finished"] = False
    job.pop("next-run", None)
    json.dump(job, open(job_file, "w"))
    front.orders.clear()
    sb.start_httpd(conf(front))
    assert wait_for(lambda: os.path.exists(new), 60), sb.error_log()[-3000:]
    assert [o.get("replaces") for o in front.orders] == [None]


def test_ari_time_ahead_waits(ari_sb):
    sb, front = ari_sb
    installed(sb, front)
    now = time.time()
    front.window = (now + 7200, now + 10800)
    sb.start_httpd(conf(front))
    assert wait_for(lambda: f"AH10515: md({NAME}): CA advises renew via ARI at" in sb.error_log(), 30), \
        sb.error_log()[-3000:]
    time.sleep(1)
    assert not os.path.exists(sb.path("md", "staging", NAME, "pubcert.pem"))
    job = json.load(open(sb.path("md", "staging", NAME, "job.json")))
    assert "next-run" in job  # within 24 h: the job comes back then


def test_c_module_asks_for_the_same_certificate_id(ari_sb, c_module):
    sb, front = ari_sb
    installed(sb, front)
    now = time.time()
    front.window = (now + 7200, now + 10800)
    sb.start_httpd(conf(front))
    assert wait_for(lambda: front.asked, 30)
    ours = front.asked[0]
    # our job.json says: come back at the ARI time (written just after the
    # answer); the C module would wait too
    job = sb.path("md", "staging", NAME, "job.json")
    assert wait_for(lambda: os.path.exists(job), 10), sb.error_log()[-3000:]
    sb.stop_httpd()
    front.asked.clear()
    os.remove(job)
    sb.start_httpd(conf(front), module=c_module)
    assert wait_for(lambda: front.asked, 30), sb.error_log()[-3000:]
    assert front.asked[0] == ours
