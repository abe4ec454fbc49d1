"""Interoperability with the C module on one store (issue 3, point 8):
the C module installs and serves a set that our engine staged, and our
engine reuses an account that the C module registered itself."""

import json
import os
import subprocess
import time


from responder import Responder
from conftest import drive


def served_cert(sb, servername):
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{sb.https_port}", "-servername", servername],
        input="", capture_output=True, text=True, timeout=20)
    pem = r.stdout[r.stdout.find("-----BEGIN CERTIFICATE-----"):r.stdout.find("-----END CERTIFICATE-----") + 25]
    assert pem.startswith("-----BEGIN"), r.stdout + r.stderr
    return subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True,
                          text=True, check=True).stdout


def ssl_vhost(sb, name):
    return f"""
MDomain {name}
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {name}
  SSLEngine on
</VirtualHost>
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName {name}
</VirtualHost>
"""


def test_c_module_installs_our_staged_set(ca_sb, a2md, c_module):  # noqa: F811
    name = "i.example.org"
    r = Responder(ca_sb.path("md"), http_port=ca_sb.http_port)
    try:
        out = drive(ca_sb, a2md, [name], "--challenges", "http-01")
    finally:
        r.stop()
    assert out["status"] == 0, out
    ca_sb.write_conf(ssl_vhost(ca_sb, name), module=c_module)
    ca_sb.start_httpd()
    log = ca_sb.error_log()
    assert f"AH10068: {name}: staged set activated" in log, log[-3000:]
    live = ca_sb.path("md", "domains", name)
    assert os.path.exists(os.path.join(live, "pubcert.pem"))
    assert open(os.path.join(live, "privkey.pem")).read().startswith("-----BEGIN PRIVATE KEY-----")
    # staging was purged (the C watchdog may have written a fresh job.json since)
    left = set(os.listdir(ca_sb.path("md", "staging", name))) if os.path.isdir(ca_sb.path("md", "staging", name)) else set()
    assert left <= {"job.json"}, left
    # our staged account became a stored one
    accounts = os.listdir(ca_sb.path("md", "accounts"))
    assert accounts == ["ACME-localhost-0000"], accounts
    # and mod_ssl serves the certificate our engine obtained
    text = served_cert(ca_sb, name)
    assert f"DNS:{name}" in text and "Pebble Intermediate" in text


def test_we_reuse_an_account_of_the_c_module(ca_sb, a2md, c_module):  # noqa: F811
    name = "c.example.org"
    body = f"""
MDomain {name}
<VirtualHost 127.0.0.1:{ca_sb.http_port}>
  ServerName {name}
</VirtualHost>
"""
    ca_sb.write_conf(body, module=c_module)
    ca_sb.start_httpd()
    # the C module registers an account and obtains a certificate itself
    staged = ca_sb.path("md", "staging", name, "pubcert.pem")
    end = time.time() + 60
    while time.time() < end and not os.path.exists(staged):
        time.sleep(0.2)
    assert os.path.exists(staged), ca_sb.error_log()[-3000:]
    time.sleep(0.5)
    ca_sb.start_httpd()  # graceful restart: the C module installs it
    end = time.time() + 20
    while time.time() < end and not os.listdir(ca_sb.path("md", "accounts")):
        time.sleep(0.1)
    ca_sb.stop_httpd()
    accounts = os.listdir(ca_sb.path("md", "accounts"))
    assert accounts == ["ACME-localhost-0000"], accounts
    c_acct = json.load(open(ca_sb.path("md", "accounts", accounts[0], "account.json")))
    assert c_acct["status"] == "valid"
    # our engine, on the same store, uses that account for another MD
    r = Responder(ca_sb.path("md"), http_port=ca_sb.http_port)
    try:
        out = drive(ca_sb, a2md, ["o2.example.org"], "--challenges", "http-01")
    finally:
        r.stop()
    assert out["status"] == 0, out
    assert out["account"] == 'Stored("ACME-localhost-0000")', out
    assert not os.path.exists(ca_sb.path("md", "staging", "o2.example.org", "account.json"))
    md = json.load(open(ca_sb.path("md", "staging", "o2.example.org", "md.json")))
    assert md["ca"]["account"] == "ACME-localhost-0000"
