"""Tailscale certificates (spec §9) from a fake tailscaled."""

import json
import os
import subprocess

from conftest import syntax
from fake_tailscaled import FakeTailscaled
from helpers import job, wait_for
from helpers import https_get

NAME = "host.tail1234.ts.net"


def pair(sb):
    key, crt = sb.path("ca", "ts.key"), sb.path("ca", "ts.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "90", "-keyout", key, "-out", crt, "-subj", f"/CN={NAME}",
                    "-addext", f"subjectAltName=DNS:{NAME}"], check=True, capture_output=True)
    return open(key, "rb").read(), open(crt, "rb").read()


def conf(sb, sock):
    return f"""
<MDomain {NAME}>
  MDCertificateProtocol tailscale
  MDCertificateAuthority file://localhost{sock}
</MDomain>
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {NAME}
  SSLEngine on
</VirtualHost>
"""


def test_config_needs_a_socket_url(cfg, module):
    ok, out = syntax(cfg, f"<MDomain {NAME}>\n MDCertificateProtocol tailscale\n"
                          f" MDCertificateAuthority https://ca.example/dir\n</MDomain>", module)
    assert not ok
    assert out.startswith("MDCertificateAuthority for MDCertificateProtocol tailscale must be "
                          "file://localhost/<path of tailscaled's socket>"), out


def test_certificate_from_tailscaled(sb):
    key, crt = pair(sb)
    sock = sb.path("run", "tailscaled.sock")
    daemon = FakeTailscaled(sock, {NAME: (key, crt)})
    try:
        sb.start_httpd(conf(sb, sock))
        assert wait_for(lambda: job(sb, NAME).get("finished") is True, 30), sb.error_log()[-3000:]
        path, headers = daemon.seen[0]
        assert path == f"/localapi/v0/cert/{NAME}?type=pair"
        assert headers.get("Sec-Tailscale") == "localapi" and "Origin" not in headers
        assert headers.get("Host") == "local-tailscaled.sock"
        # hot activation presents it at once; mod_ssl keeps answering 503 on a
        # vhost that started with the fallback until the next restart
        assert wait_for(lambda: f"CN = {NAME}" in https_get(sb, NAME)[1], 20)
        sb.start_httpd()
        assert wait_for(lambda: https_get(sb, NAME)[0] == 200, 20)
        assert wait_for(lambda: os.path.exists(sb.path("md", "domains", NAME, "pubcert.pem")), 20)
        md = json.load(open(sb.path("md", "domains", NAME, "md.json")))
        assert md["ca"]["proto"] == "tailscale" and md["ca"]["url"] == f"file://localhost{sock}"
    finally:
        daemon.stop()


def test_unreadable_socket_says_what_to_do(sb):
    key, crt = pair(sb)
    sock = sb.path("run", "tailscaled.sock")
    daemon = FakeTailscaled(sock, {NAME: (key, crt)}, mode=0o600)
    try:
        sb.start_httpd(conf(sb, sock))
        assert wait_for(lambda: job(sb, NAME).get("errors", 0) >= 1, 30), sb.error_log()[-3000:]
        detail = job(sb, NAME)["last"]["detail"]
        assert f"cannot connect to tailscaled at {sock}" in detail
        assert "tailscale set --operator=www-data" in detail
        assert "tailscale set --operator=www-data" in sb.error_log()
    finally:
        daemon.stop()
