"""Issue 13.3: short-lived certificates (pebble's certificateValidityPeriod)
renew inside their window whatever MDCheckInterval says, and a certificate
of under 10 days renews at half its lifetime at the latest."""

import calendar
import os
import subprocess
import time

from helpers import obtain, site, wait_for


def cert_times(path):
    """(notBefore, notAfter) of a PEM certificate, as unix times."""
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-startdate", "-enddate"],
                         capture_output=True, text=True, check=True).stdout

    def field(k):
        v = [x for x in out.splitlines() if x.startswith(k + "=")][0].split("=", 1)[1]
        return calendar.timegm(time.strptime(v, "%b %d %H:%M:%S %Y %Z"))
    return field("notBefore"), field("notAfter")


def renewed_at(sb, name, window):
    """Obtains and installs a 90-second certificate with `window`; returns
    (its notBefore, notAfter, the time its renewal was staged)."""
    sb.start_ca(validity=90)
    sb.start_httpd(site(sb, name) + f"MDCheckInterval 12h\nMDRenewWindow {window}\n")
    obtain(sb, name)
    sb.start_httpd()  # graceful: installs it
    live = sb.path("md", "domains", name, "pubcert.pem")
    assert wait_for(lambda: os.path.exists(live), 20)
    nb, na = cert_times(live)
    staged = sb.path("md", "staging", name, "pubcert.pem")
    assert wait_for(lambda: os.path.exists(staged), max(na - time.time(), 0) + 30, step=0.5), \
        sb.error_log()[-3000:]
    return nb, na, time.time()


def test_short_lived_certificate_renews_inside_its_window(sb):
    nb, na, t = renewed_at(sb, "short.example.org", "70%")
    start = na - (na - nb) * 70 // 100
    # in the window of the real lifetime (not at the next 12-hourly check,
    # not at a window of the 90-day norm)
    assert start - 2 <= t < nb + (na - nb) // 2, (nb, na, t)


def test_under_ten_days_renews_at_half_its_lifetime_and_again(sb):
    """With a window of 5 s, a 90-second certificate renews half-way; the
    renewed one, served by hot activation, is installed by a graceful
    restart the module asks for once it is due itself, and renewed again
    before it expires: nobody restarts httpd."""
    name = "half.example.org"
    nb, na, t = renewed_at(sb, name, "5s")
    half = nb + (na - nb) // 2
    assert half - 2 <= t < na - 20, (nb, na, t)
    staged = sb.path("md", "staging", name, "pubcert.pem")
    live = sb.path("md", "domains", name, "pubcert.pem")
    b = open(staged).read()
    b_nb, b_na = cert_times(staged)
    # B goes live hot; once due, the module restarts httpd to install it
    assert wait_for(lambda: os.path.exists(live) and open(live).read() == b,
                    b_na - time.time(), step=0.5), sb.error_log()[-3000:]
    assert ("the certificates that hot activation serves are due for renewal; restarting "
            "the server gracefully") in sb.error_log()
    # ... and C is staged while B is still valid
    assert wait_for(lambda: os.path.exists(staged) and open(staged).read() != b,
                    b_na - time.time(), step=0.5), sb.error_log()[-3000:]
    assert time.time() < b_na


def test_must_staple_without_ocsp_warns_once_and_does_not_loop(ca_sb):
    """Issue 13.6: MDMustStaple on with a CA whose certificates name no OCSP
    responder (pebble here, Let's Encrypt since 2025): one warning at
    start-up, no renewal loop; with MDStapling on, md-status says why
    nothing is stapled."""
    import json
    import urllib.request
    name = "staple.example.org"
    body = (site(ca_sb, name, md_body="  MDMustStaple on\n  MDStapling on")
            + "<Location /md-status>\n  SetHandler md-status\n</Location>\n")
    ca_sb.start_httpd(body)
    obtain(ca_sb, name)
    ca_sb.clear_log()
    ca_sb.start_httpd()  # installs it
    live = ca_sb.path("md", "domains", name, "pubcert.pem")
    assert wait_for(lambda: os.path.exists(live), 20)
    time.sleep(3)
    log = ca_sb.error_log()
    warning = "MDMustStaple is on, but the MD's certificate names no OCSP responder"
    assert log.count(warning) == 1, log[-3000:]
    assert "[md:warn]" in [x for x in log.splitlines() if warning in x][0]
    # complete: nothing is renewed again
    assert not os.path.exists(ca_sb.path("md", "staging", name, "pubcert.pem")), ca_sb.error_log()[-3000:]
    with urllib.request.urlopen(f"http://127.0.0.1:{ca_sb.http_port}/md-status/{name}",
                                timeout=5) as r:
        st = json.load(r)
    assert "ocsp" not in st["cert"]["rsa"], st["cert"]
    assert "no OCSP responder" in st["stapling-reason"]["rsa"], st
