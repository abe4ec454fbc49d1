"""Certificates for mod_ssl (spec §2.4) and activation of staged sets
(§3.6) with our module in a real httpd."""

import json
import os
import subprocess

from responder import Responder
from conftest import drive
from helpers import http_req, https_get


def ssl_md(sb, name, extra=""):
    return f"""
MDomain {name}
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {name}
  SSLEngine on
{extra}
</VirtualHost>
"""


def test_fallback_until_a_certificate_exists(sb):
    sb.start_httpd(ssl_md(sb, "f.example.org", "  ServerAlias www.f.example.org"))
    status, text = https_get(sb, "f.example.org")
    assert status == 503
    assert "Subject: CN = Apache Managed Domain Fallback" in text
    assert "DNS:f.example.org" in text
    log = sb.error_log()
    # hot activation (default): the fallback comes through the ordinary
    # certificate hook, the 503 is the module's, not mod_ssl's for the
    # whole generation
    assert "AH10085" not in log
    assert "f.example.org: answers 503 with the fallback certificate of f.example.org" in log
    md = os.path.join(sb.path("md"), "domains", "f.example.org")
    assert os.stat(os.path.join(md, "fallback-privkey.pem")).st_mode & 0o077 == 0
    # the alias joined the MD (member mode auto) and the MD needs a certificate
    j = json.load(open(os.path.join(md, "md.json")))
    assert j["domains"] == ["f.example.org", "www.f.example.org"]
    assert j["state"] == 1 and j["state-descr"] == "certificate(rsa) is missing"


def test_fallback_without_hot_activation_is_mod_ssls(sb):
    sb.start_httpd(ssl_md(sb, "g.example.org") + "MDHotActivation off\n")
    status, text = https_get(sb, "g.example.org")
    assert status == 503
    assert "Subject: CN = Apache Managed Domain Fallback" in text
    assert "AH10085" in sb.error_log()  # mod_ssl: will respond with 503 for now


def test_manual_members_warn(sb):
    body = ssl_md(sb, "g.example.org", "  ServerAlias www.g.example.org")
    sb.start_httpd(body.replace("MDomain g.example.org", "MDomain g.example.org manual"))
    assert ("AH10040: Virtual Host g.example.org:0 matches Managed Domain 'g.example.org', but the "
            "name/alias www.g.example.org itself is not managed.") in sb.error_log()
    j = json.load(open(sb.path("md", "domains", "g.example.org", "md.json")))
    assert j["domains"] == ["g.example.org"]


def test_two_key_types_get_two_fallbacks(sb):
    body = ssl_md(sb, "k.example.org").replace("MDomain k.example.org",
                                               "<MDomain k.example.org>\n MDPrivateKeys RSA P-256\n</MDomain>")
    sb.start_httpd(body)
    d = sb.path("md", "domains", "k.example.org")
    assert os.path.exists(os.path.join(d, "fallback-pubcert.pem"))
    assert os.path.exists(os.path.join(d, "fallback-pubcert.p-256.pem"))


def test_staged_set_is_activated_and_served(ca_sb, a2md):  # noqa: F811
    name = "s.example.org"
    r = Responder(ca_sb.path("md"), http_port=ca_sb.http_port)
    try:
        assert drive(ca_sb, a2md, [name], "--challenges", "http-01")["status"] == 0
    finally:
        r.stop()
    ca_sb.start_httpd(ssl_md(ca_sb, name))
    assert f"AH10068: {name}: staged set activated" in ca_sb.error_log()
    status, text = https_get(ca_sb, name)
    assert status == 200
    assert "Pebble Intermediate" in text and f"DNS:{name}" in text
    live = ca_sb.path("md", "domains", name)
    j = json.load(open(os.path.join(live, "md.json")))
    assert j["state"] == 2 and "state-descr" not in j
    assert j["ca"]["account"] == "ACME-localhost-0000" and j["ca"]["url"] == ca_sb.ca_url
    assert open(os.path.join(live, "privkey.pem")).read().startswith("-----BEGIN PRIVATE KEY-----")
    assert os.stat(os.path.join(live, "privkey.pem")).st_mode & 0o077 == 0
    assert sorted(os.listdir(ca_sb.path("md", "accounts"))) == ["ACME-localhost-0000"]
    acct_key = ca_sb.path("md", "accounts", "ACME-localhost-0000", "account.pem")
    assert open(acct_key).read().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_broken_staged_set_is_purged(sb):
    name = "b.example.org"
    d = sb.path("md", "staging", name)
    os.makedirs(d)
    with open(os.path.join(d, "md.json"), "w") as f:
        json.dump({"name": name, "domains": [name], "ca": {"url": "https://ca.example/dir"}}, f)
    with open(os.path.join(d, "pubcert.pem"), "w") as f:
        f.write("not a certificate")
    with open(os.path.join(d, "privkey.pem"), "w") as f:
        f.write("not a key")
    sb.start_httpd(ssl_md(sb, name))
    assert f"AH10069: {name}: error loading staged set, purging it" in sb.error_log()
    # the broken set is gone (the renewal job, starting right away, may
    # already have begun a new staging directory: no CA runs here, so it
    # holds no certificate or key)
    assert not os.path.exists(os.path.join(d, "pubcert.pem"))
    assert not os.path.exists(os.path.join(d, "privkey.pem"))
    assert https_get(sb, name)[0] == 503  # still the fallback, nothing lost


def http_vhost(sb, name, md_body):
    return f"""
<MDomain {name}>
{md_body}
</MDomain>
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName {name}
</VirtualHost>
"""


def test_require_https_redirects(sb):
    sb.start_httpd(http_vhost(sb, "p.example.org", "  MDRequireHttps permanent")
                   + http_vhost(sb, "t.example.org", "  MDRequireHttps temporary"))
    assert "AH10105: MD p.example.org does not match any VirtualHost with 'SSLEngine on'" in sb.error_log()
    st, h, _ = http_req(sb, "p.example.org", "/a/b?x=1")
    assert st == 301 and h["Location"] == "https://p.example.org/a/b?x=1"
    st, h, _ = http_req(sb, "p.example.org", "/a", method="POST")
    assert st == 308 and h["Location"] == "https://p.example.org/a"
    st, h, _ = http_req(sb, "t.example.org", "/")
    assert st == 302 and h["Location"] == "https://t.example.org/"
    st, h, _ = http_req(sb, "t.example.org", "/", method="DELETE")
    assert st == 307
    # the CA must reach challenges over http
    st, h, _ = http_req(sb, "p.example.org", "/.well-known/acme-challenge/x")
    assert st == 404 and "Location" not in h


def test_static_files_and_hsts(sb):
    name = "st.example.org"
    crt, key = sb.path("ca", "st.pem"), sb.path("ca", "st.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", key, "-out", crt, "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True)
    sb.start_httpd(f"""
<MDomain {name}>
  MDCertificateFile {crt}
  MDCertificateKeyFile {key}
  MDRequireHttps permanent
</MDomain>
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {name}
  SSLEngine on
</VirtualHost>
""")
    status, text = https_get(sb, name)
    assert status == 200 and f"CN = {name}" in text and "Fallback" not in text
    st, h, _ = http_req(sb, name, "/index.html", https=True)
    assert st == 200 and h.get("Strict-Transport-Security") == "max-age=15768000"
    j = json.load(open(sb.path("md", "domains", name, "md.json")))
    assert j["state"] == 2 and j["cert-files"] == [crt] and j["renew-mode"] == 0


def test_http01_answer_and_hostile_requests(sb):
    name = "c.example.org"
    sb.start_httpd(http_vhost(sb, name, ""))
    d = sb.path("md", "challenges", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "acme-http-01.txt"), "w") as f:
        f.write("token123.thumbprint")
    os.chmod(d, 0o755)
    with open(sb.path("md", "secret.txt"), "w") as f:
        f.write("SECRET")
    st, h, body = http_req(sb, name, "/.well-known/acme-challenge/token123")
    assert st == 200 and body == b"token123.thumbprint"
    assert h["Content-Length"] == str(len(body))
    st, _, _ = http_req(sb, name, "/.well-known/acme-challenge/token123", method="POST")
    assert st == 501
    hostile = [
        (name, "/.well-known/acme-challenge/../../secret.txt"),
        (name, "/.well-known/acme-challenge/a/b"),
        (name, "/.well-known/acme-challenge/"),
        ("..", "/.well-known/acme-challenge/x"),
        ("c.example.org/../..", "/.well-known/acme-challenge/x"),
        ("md_store.json", "/.well-known/acme-challenge/x"),
        ("unknown.example.org", "/.well-known/acme-challenge/x"),
    ]
    for host, path in hostile:
        st, _, body = http_req(sb, host, path)
        assert b"SECRET" not in body and b"key" not in body and st in (400, 404), (host, path, st)


def test_store_lock_held_elsewhere(ca_sb, a2md):  # noqa: F811
    """MDStoreLocks: while another process holds store.lock, staged sets are
    not installed (AH10398); once it is free, they are."""
    import fcntl
    name = "lk.example.org"
    r = Responder(ca_sb.path("md"), http_port=ca_sb.http_port)
    try:
        assert drive(ca_sb, a2md, [name], "--challenges", "http-01")["status"] == 0
    finally:
        r.stop()
    body = ssl_md(ca_sb, name) + "\nMDStoreLocks 1s\n"
    with open(ca_sb.path("md", "store.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        ca_sb.start_httpd(body)
        assert "AH10398: unable to obtain global registry lock" in ca_sb.error_log()
        assert not os.path.exists(ca_sb.path("md", "domains", name, "pubcert.pem"))
        assert os.path.exists(ca_sb.path("md", "staging", name, "pubcert.pem"))
    ca_sb.start_httpd()  # lock released: the graceful restart installs it
    from helpers import wait_for
    assert wait_for(lambda: https_get(ca_sb, name)[0] == 200, 20)
    assert f"AH10068: {name}: staged set activated" in ca_sb.error_log()


def test_acme_tls_handshake_offers_only_the_challenge_certificate(sb):
    """Issue 13.5: an SSL vhost with an ECDSA and an RSA certificate; on an
    `acme-tls/1` handshake a client that prefers ECDSA (as some ACME
    servers' validators do) gets the challenge certificate, not the vhost's
    ECDSA one (the C module offers both, and the ECDSA one wins)."""
    import subprocess
    name = "alpnk.example.org"
    body = ssl_md(sb, name, "  Protocols acme-tls/1 http/1.1").replace(
        f"MDomain {name}", f"<MDomain {name}>\n MDPrivateKeys secp256r1 rsa2048\n"
                           f" MDCAChallenges tls-alpn-01\n</MDomain>")
    sb.start_httpd(body)
    # the challenge data as a renewal would leave it (an RSA certificate)
    d = sb.path("md", "challenges", name)
    os.makedirs(d, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=acme-challenge-test", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", os.path.join(d, "acme-tls-alpn-01-privkey.pem"),
                    "-out", os.path.join(d, "acme-tls-alpn-01-pubcert.pem")],
                   check=True, capture_output=True)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{sb.https_port}",
                        "-servername", name, "-alpn", "acme-tls/1",
                        "-sigalgs", "ECDSA+SHA256:RSA-PSS+SHA256:RSA+SHA256"],
                       input="", capture_output=True, text=True, timeout=20)
    assert "ALPN protocol: acme-tls/1" in r.stdout, r.stdout[-2000:]
    assert "CN=acme-challenge-test" in r.stdout or "CN = acme-challenge-test" in r.stdout, \
        r.stdout[:2000]
