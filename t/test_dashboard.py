"""The certificate dashboard (issue 28) in a real browser: Debian's
chromium, headless, loads md-status from a sandbox httpd whose MDs stand
differently (ok, due soon, error, renewing); the DOM has a row per MD with
its state in words and an SVG timeline, and the screenshot is not blank
(kept in target/test-artifacts/dashboard.png). JSON stays what curl gets."""

import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import urllib.request
import zlib

from conftest import TOP
from helpers import STATUS, md_status, obtain, site, wait_for
from sandbox import free_ports

CHROMIUM = shutil.which("chromium")
ARTIFACTS = os.path.join(TOP, "target", "test-artifacts")


def hanging_ca():
    """A 'CA' that accepts connections and never answers: an MD there stays
    in the middle of its renewal."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", free_ports(1)[0]))
    srv.listen(16)
    held = []

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)

    threading.Thread(target=accept, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.getsockname()[1]}/dir"


def png_pixels_vary(path):
    """Whether a PNG's decoded scanlines hold more than one value."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw = zlib.decompress(idat)
    return len(set(raw[1:4096])) > 2 and len(set(raw)) > 8


def test_dashboard_in_a_browser(ca_sb):
    assert CHROMIUM, "chromium is not installed (test-httpd/prereqs.sh installs it)"
    hang, hang_url = hanging_ca()
    ok, soon, bad, busy = ("ok.example.org", "soon.example.org", "bad.example.org",
                           "busy.example.org")
    conf = (site(ca_sb, ok)
            # certificates of pebble live 5 years: this window opens in 3 days
            + site(ca_sb, soon, md_body="MDRenewWindow 1822d")
            + site(ca_sb, bad, md_body="MDCertificateAuthority https://127.0.0.1:1/dir")
            + site(ca_sb, busy, md_body=f"MDCertificateAuthority {hang_url}")
            + STATUS)
    try:
        ca_sb.start_httpd(conf)
        obtain(ca_sb, ok)
        obtain(ca_sb, soon)
        ca_sb.start_httpd()  # installed
        assert wait_for(lambda: md_status(ca_sb, bad).get("renewal", {}).get("errors", 0) > 0, 60)
        assert md_status(ca_sb, busy).get("renew") is True, md_status(ca_sb, busy)
        url = f"http://127.0.0.1:{ca_sb.http_port}/md-status"
        # curl and monitoring get JSON, as before
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.headers["Content-Type"] == "application/json"
            assert "Accept" in r.headers.get("Vary", "")
            json.loads(r.read())
        with urllib.request.urlopen(url + "?html", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/html")
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "dashboard.png")
        if os.path.exists(shot):
            os.unlink(shot)
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--user-data-dir={ca_sb.path('chromium')}"]
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True,
                             timeout=120).stdout
        subprocess.run(flags + ["--window-size=1280,900", f"--screenshot={shot}", url],
                       capture_output=True, timeout=120)
        # a phone's width renders too
        phone = os.path.join(ARTIFACTS, "dashboard-phone.png")
        subprocess.run(flags + ["--window-size=390,844", f"--screenshot={phone}", url],
                       capture_output=True, timeout=120)
    finally:
        hang.close()
    rows = dom.count('<tr class="md ')
    assert rows == 4, dom[:3000]
    assert dom.count('<svg class="timeline"') == 4
    assert '<line class="now"' in dom and '<rect class="window"' in dom
    def state_of(name):
        i = dom.index(f'data-md="{name}"')
        return dom[i:dom.index("</tr>", i)]
    assert ">ok<" in state_of(ok)
    assert ">due soon<" in state_of(soon)
    assert ">error (" in state_of(bad) and 'class="error-text"' in state_of(bad)
    assert ">renewing<" in state_of(busy)
    assert "<script" not in dom
    for p in (shot, phone):
        assert os.path.getsize(p) > 10_000, p
        assert png_pixels_vary(p), p
