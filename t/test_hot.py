"""Hot activation (issue 5, points 1, 3, 5; issue 13.1): a renewed, and a
first, certificate reaches new handshakes without a restart, while a client
keeps connecting."""

import json
import ssl
import threading
import time
import urllib.request

from test_renewal import obtain, site, wait_for
from test_serving import https_get

STATUS = "<Location /md-status>\n  SetHandler md-status\n</Location>\n"


def fingerprint(sb, host):
    """(SHA-256 of the served certificate, HTTP status)."""
    import hashlib
    status, der = sb.https_request(host, timeout=5)
    return hashlib.sha256(der).hexdigest(), status


def watch(sb, name, old, timeout):
    """A client handshaking with `name` every 20 ms until another
    certificate than `old` is served (and 8 s more: every child process
    looks again within 5 s). Returns (whether it came, [(fingerprint,
    status, time)], [handshake failures])."""
    seen, failures, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                fp, st = fingerprint(sb, name)
                seen.append((fp, st, time.time()))
            except (OSError, ssl.SSLError) as e:
                failures.append(repr(e))
            time.sleep(0.02)
    t = threading.Thread(target=client)
    t.start()
    try:
        ok = wait_for(lambda: any(fp != old for fp, _, _ in seen), timeout)
        time.sleep(8)
    finally:
        stop.set()
        t.join()
    return ok, seen, failures


def md_status(sb, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{sb.http_port}/md-status/{name}", timeout=5) as r:
        return json.load(r)


def test_renewed_certificate_goes_live_without_restart(ca_sb):
    name = "hot.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS)
    obtain(ca_sb, name)
    ca_sb.start_httpd()  # certificate A installed
    assert wait_for(lambda: fingerprint(ca_sb, name)[1] == 200, 20)
    a, _ = fingerprint(ca_sb, name)
    pid = ca_sb.pid()
    # renewal becomes due with this configuration (the restart keeps A live)
    ca_sb.start_httpd(site(ca_sb, name, md_body="  MDRenewWindow 3000d") + STATUS)
    assert wait_for(lambda: fingerprint(ca_sb, name)[1] == 200, 20)
    assert fingerprint(ca_sb, name)[0] == a
    ok, seen, failures = watch(ca_sb, name, a, 60)
    assert ok, ca_sb.error_log()[-3000:]
    assert failures == [], failures[:3]
    assert all(st == 200 for _, st, _ in seen)
    b, _, t_b = next(x for x in seen if x[0] != a)
    assert {fp for fp, _, _ in seen} == {a, b}
    # within a few seconds of the first B every child serves B
    assert all(fp == b for fp, _, t in seen if t > t_b + 6), \
        [(fp[:8], round(t - t_b, 1)) for fp, _, t in seen if t > t_b and fp != b]
    assert ca_sb.pid() == pid  # no restart happened
    assert "renewed certificate is live for new connections (hot activation" in ca_sb.error_log()
    assert md_status(ca_sb, name)["live"] == "staging"
    # the next restart installs B into domains/ as usual, and B stays live
    ca_sb.start_httpd()
    assert wait_for(lambda: fingerprint(ca_sb, name)[0] == b, 20)
    assert md_status(ca_sb, name)["live"] == "domains"


def test_first_certificate_goes_live_without_restart(ca_sb):
    """Issue 13.1: a new MD answers 503 with its fallback, and its first
    certificate is served with 200 within seconds of being staged, with no
    restart; a client connecting all along never sees a failed handshake,
    nor the fallback with 200 or the real certificate with 503."""
    name = "first.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS)
    pid = ca_sb.pid()
    fallback, st = fingerprint(ca_sb, name)
    assert st == 503
    ok, seen, failures = watch(ca_sb, name, fallback, 90)
    assert ok, ca_sb.error_log()[-3000:]
    assert failures == [], failures[:3]
    assert all((fp == fallback) == (st == 503) for fp, st, _ in seen), \
        {(fp == fallback, st) for fp, st, _ in seen}
    real, _, t_real = next(x for x in seen if x[0] != fallback)
    assert {fp for fp, _, _ in seen} == {fallback, real}
    assert all(fp == real for fp, _, t in seen if t > t_real + 6)
    assert ca_sb.pid() == pid  # no restart happened
    status, text = https_get(ca_sb, name)
    assert status == 200 and "Pebble Intermediate" in text
    assert md_status(ca_sb, name)["live"] == "staging"
    # the next restart installs it into domains/; it stays live
    ca_sb.start_httpd()
    assert wait_for(lambda: fingerprint(ca_sb, name) == (real, 200), 20)
    assert md_status(ca_sb, name)["live"] == "domains"


def test_hot_activation_off_keeps_the_c_behaviour(ca_sb):
    name = "cold.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS + "MDHotActivation off\n")
    obtain(ca_sb, name)
    time.sleep(6)  # longer than the hot check interval
    assert https_get(ca_sb, name)[0] == 503  # still the fallback until a restart
    assert md_status(ca_sb, name)["live"] == "none"
    ca_sb.start_httpd()
    assert wait_for(lambda: https_get(ca_sb, name)[0] == 200, 20)


def test_module_restarts_gracefully_when_asked(ca_sb):
    name = "auto.example.org"
    body = site(ca_sb, name) + STATUS + "MDHotActivation off\nMDGracefulRestart on\n"
    ca_sb.start_httpd(body)
    pid = ca_sb.pid()
    assert https_get(ca_sb, name)[0] == 503
    # nobody restarts httpd here: the module does, once the certificate is staged
    assert wait_for(lambda: https_get(ca_sb, name)[0] == 200, 60), ca_sb.error_log()[-3000:]
    log = ca_sb.error_log()
    assert f"{name}: renewed certificates are ready, restarting the server gracefully" in log
    assert "SIGUSR1 received.  Doing graceful restart" in log
    assert f"AH10068: {name}: staged set activated" in log
    assert ca_sb.pid() == pid
    assert md_status(ca_sb, name)["live"] == "domains"
