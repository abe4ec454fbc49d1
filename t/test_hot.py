"""Hot activation (issue 5, points 1, 3, 5; issue 13.1): a renewed, and a
first, certificate reaches new handshakes without a restart, while a client
keeps connecting."""

import ssl
import threading
import time

from helpers import obtain, site, wait_for
from helpers import https_get
from helpers import STATUS, fingerprint, md_status


def watch(sb, name, old, timeout):
    """A client handshaking with `name` every 20 ms until another
    certificate than `old` is served (and 8 s more). Returns (whether it came, [(fingerprint,
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
    # from the first B on, every child serves B (issue 24.7)
    assert all(fp == b for fp, _, t in seen if t >= t_b), \
        [(fp[:8], round(t - t_b, 1)) for fp, _, t in seen if t > t_b and fp != b]
    assert ca_sb.pid() == pid  # no restart happened
    assert "renewed certificate is live for new connections (hot activation" in ca_sb.error_log()
    assert md_status(ca_sb, name)["live"] == "staging"
    # the next restart installs B into domains/ as usual, and B stays live;
    # it drops the 3000-day window, or B would be due at once and a third
    # certificate could be staged and hot before md-status is read
    ca_sb.start_httpd(site(ca_sb, name) + STATUS)
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
    assert all(fp == real for fp, _, t in seen if t >= t_real)  # issue 24.7
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


def served_kind(sb, host):
    """'fallback', 'ca' (a certificate the CA issued) or an error, for one
    new TLS connection with SNI `host` (no request, so the 503 is not
    asked for: what matters is which certificate the handshake got)."""
    import socket
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", sb.https_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as c:
                der = c.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as e:
        return f"error {e!r}"
    return "fallback" if b"Apache Managed Domain Fallback" in der else "ca"


def test_first_certificates_do_not_flap_between_children(sb):
    """Issue 24.7: once any child serves an MD's first certificate, every
    later handshake in every child gets it. Three new MDs, four children,
    a CA that takes up to 2 s to validate; new TLS connections to each MD
    from start-up until 15 s after their certificates are staged."""
    sb.start_ca(env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "2"})
    names = [f"flap{i}.example.org" for i in range(3)]
    body = "".join(site(sb, n) for n in names) + STATUS + \
        "StartServers 4\nMinSpareThreads 100\nMaxSpareThreads 250\nThreadsPerChild 25\n"
    stop = threading.Event()
    seen = {n: [] for n in names}

    def poll(name):
        while not stop.is_set():
            seen[name].append((served_kind(sb, name), time.time()))
            time.sleep(0.01)
    sb.start_httpd(body)
    children = len(__import__("subprocess").run(
        ["pgrep", "-P", str(sb.pid())], capture_output=True, text=True).stdout.split())
    assert children >= 4, children
    threads = [threading.Thread(target=poll, args=(n,)) for n in names]
    for t in threads:
        t.start()
    try:
        from helpers import staged_ok, job
        assert wait_for(lambda: all(staged_ok(sb, n) and job(sb, n).get("notified-renewed")
                                    for n in names), 90), sb.error_log()[-3000:]
        time.sleep(15)
    finally:
        stop.set()
        for t in threads:
            t.join()
    for name in names:
        kinds = [k for k, _ in seen[name]]
        assert not [k for k in kinds if k.startswith("error")], kinds[:5]
        assert kinds[0] == "fallback" and "ca" in kinds, (name, kinds[:3], len(kinds))
        first_ca = kinds.index("ca")
        flaps = kinds[first_ca:].count("fallback")
        assert flaps == 0, f"{name}: {flaps} of {len(kinds) - first_ca} handshakes after the first " \
                           f"CA certificate got the fallback"
