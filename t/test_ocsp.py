"""OCSP stapling (spec §8) against real components: pebble names an OCSP
responder in the certificates it issues, `openssl ocsp` answers for them
with pebble's intermediate key, httpd staples what the module fetched, and
`openssl s_client -status` reads the staple. The C module is the oracle
for the store file: it staples a response our module stored."""

import glob
import json
import os
import subprocess
import time
import urllib.request

import pytest

from sandbox import free_ports
from helpers import wait_for
from helpers import OcspResponder

NAME = "ocsp.example.org"


@pytest.fixture
def ocsp_sb(module):
    from sandbox import Sandbox
    s = Sandbox(module=module)
    port = free_ports(1)[0]
    s.start_ca(ocsp_url=f"http://127.0.0.1:{port}/")
    r = OcspResponder(s, port)
    yield s, r
    r.stop()
    s.stop()


def conf(sb, stapling="MDStapling on"):
    return f"""
{stapling}
MDServerStatus on
<Location /md-status>
  SetHandler md-status
</Location>
<Location /server-status>
  SetHandler server-status
</Location>
MDomain {NAME}
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {NAME}
  SSLEngine on
</VirtualHost>
"""


def staple(sb, name=NAME):
    """`openssl s_client -status`: the stapled response as openssl prints it."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{sb.https_port}",
                        "-servername", name, "-status"],
                       input="", capture_output=True, text=True, timeout=20)
    return r.stdout


def get(sb, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{sb.http_port}{path}", timeout=10) as r:
        return r.read().decode()


def obtain(sb, body):
    """Gets a certificate (staged), then restarts so it is live."""
    sb.start_httpd(body)
    staged = sb.path("md", "staging", NAME, "pubcert.pem")
    assert wait_for(lambda: os.path.exists(staged), 60), sb.error_log()[-3000:]
    time.sleep(0.5)
    return staged


def stapled(sb, resp, body):
    """A certificate the responder knows, live; returns the path of the
    response file once the module has fetched it."""
    resp.add(obtain(sb, body))
    resp.start()
    sb.start_httpd(body)  # graceful: installs the certificate, mod_ssl primes it
    files = lambda: glob.glob(sb.path("md", "ocsp", NAME, "ocsp-*.json"))  # noqa: E731
    assert wait_for(files, 30), sb.error_log()[-3000:]
    return files()[0]


def test_stapling_serves_a_fetched_response(ocsp_sb):
    sb, resp = ocsp_sb
    body = conf(sb)
    staged = obtain(sb, body)
    out = subprocess.run(["openssl", "x509", "-in", staged, "-noout", "-ocsp_uri"],
                         capture_output=True, text=True).stdout.strip()
    assert out == f"http://127.0.0.1:{resp.port}/"
    resp.add(staged)
    resp.start()
    sb.start_httpd(body)  # graceful: installs the certificate, mod_ssl primes it
    files = lambda: glob.glob(sb.path("md", "ocsp", NAME, "ocsp-*.json"))  # noqa: E731
    assert wait_for(lambda: files(), 30), sb.error_log()[-3000:]
    # the file: C module format, id = SHA-1 of the certificate's DER
    der = subprocess.run(["openssl", "x509", "-in", sb.path("md", "domains", NAME, "pubcert.pem"),
                          "-outform", "DER"], capture_output=True, check=True).stdout
    import hashlib
    sha1 = hashlib.sha1(der).hexdigest()
    path = sb.path("md", "ocsp", NAME, f"ocsp-{sha1}.json")
    assert files() == [path]
    j = json.load(open(path))
    assert set(j) == {"response", "status", "valid"}
    assert j["status"] == "good"
    assert set(j["valid"]) == {"from", "until"}
    assert os.stat(path).st_mode & 0o777 == 0o644
    job = json.load(open(sb.path("md", "ocsp", NAME, "job.json")))
    assert job["name"] == NAME and job["finished"] is True
    # every child staples it (several connections)
    for _ in range(4):
        out = wait_for(lambda: "Cert Status: good" in staple(sb), 15)
        assert out, staple(sb)
    text = staple(sb)
    assert "OCSP Response Status: successful (0x0)" in text
    # md-status shows it with the certificate, server-status in its section
    st = json.loads(get(sb, f"/md-status/{NAME}"))
    ocsp = st["cert"]["rsa"]["ocsp"]
    assert ocsp["status"] == "good" and set(ocsp["valid"]) == {"from", "until"}
    auto = get(sb, "/server-status?auto")
    assert "ManagedStaplingsTotal: 1\nManagedStaplingsOK: 1\n" in auto
    assert f"ManagedStapling[0]Domain: {NAME}\nManagedStapling[0]CertificateID: {sha1}\n" in auto
    assert "ManagedStapling[0]OCSPStatus: good\n" in auto
    assert f"ManagedStapling[0]ResponderURL: http://127.0.0.1:{resp.port}/\n" in auto
    html = get(sb, "/server-status")
    assert "<h3>Managed Staplings</h3>" in html and f"<td>{sha1}</td><td>good</td>" in html


def test_no_stapling_without_md_stapling(ocsp_sb):
    sb, resp = ocsp_sb
    body = conf(sb, stapling="")
    staged = obtain(sb, body)
    resp.add(staged)
    resp.start()
    sb.start_httpd(body)
    time.sleep(2)
    assert "OCSP response: no response sent" in staple(sb)
    assert not glob.glob(sb.path("md", "ocsp", "*", "ocsp-*.json"))


def test_c_module_staples_the_response_we_stored(ocsp_sb, c_module):
    sb, resp = ocsp_sb
    body = conf(sb)
    stored = json.load(open(stapled(sb, resp, body)))
    assert wait_for(lambda: "ocsp" in json.loads(get(sb, f"/md-status/{NAME}"))["cert"]["rsa"], 15)
    ours = json.loads(get(sb, f"/md-status/{NAME}"))["cert"]["rsa"]["ocsp"]
    sb.stop_httpd()
    resp.stop()  # the C module can only staple what it finds in the store
    sb.start_httpd(body, module=c_module)
    text = staple(sb)
    assert "Cert Status: good" in text, text + sb.error_log()[-2000:]
    theirs = json.loads(get(sb, f"/md-status/{NAME}"))["cert"]["rsa"]["ocsp"]
    assert ours["status"] == theirs["status"] == "good"
    assert ours["valid"] == theirs["valid"]
    assert list(ours) == list(theirs), (ours, theirs)
    assert list(ours["renewal"]) == list(theirs["renewal"]), (ours, theirs)
    # and it did not replace our file (its own fetch fails: responder down)
    again = json.load(open(glob.glob(sb.path("md", "ocsp", NAME, "ocsp-*.json"))[0]))
    assert again["response"] == stored["response"]


def test_responder_errors_are_logged_and_retried(ocsp_sb):
    sb, resp = ocsp_sb
    body = conf(sb)
    obtain(sb, body)
    # no responder running: the fetch fails, is logged, nothing is stapled
    sb.start_httpd(body)
    assert wait_for(lambda: "could not be renewed" in sb.error_log(), 30), sb.error_log()[-2000:]
    assert "OCSP response: no response sent" in staple(sb)
    job = json.load(open(sb.path("md", "ocsp", NAME, "job.json")))
    assert job["errors"] >= 1 and job["finished"] is True
    assert job["log"]["entries"][0]["type"] == "ocsp-error"
    line = [x for x in sb.error_log().splitlines() if "could not be renewed" in x][0]
    assert "[md:error]" in line and f"md[{NAME}]: OCSP response for certificate" in line
    assert f"127.0.0.1:{resp.port}" in line and "retrying in" in line


def test_we_staple_the_response_the_c_module_stored(ocsp_sb, c_module):
    sb, resp = ocsp_sb
    body = conf(sb)
    staged = obtain(sb, body)
    resp.add(staged)
    resp.start()
    sb.stop_httpd()
    sb.start_httpd(body, module=c_module)
    assert wait_for(lambda: glob.glob(sb.path("md", "ocsp", NAME, "ocsp-*.json")), 30), \
        sb.error_log()[-2000:]
    assert wait_for(lambda: "Cert Status: good" in staple(sb), 15)
    sb.stop_httpd()
    resp.stop()
    asked = resp.requests
    sb.start_httpd(body)
    text = staple(sb)
    assert "Cert Status: good" in text, text + sb.error_log()[-2000:]
    assert resp.requests == asked


def test_revoked_certificate_is_stapled_and_renewed(ocsp_sb):
    sb, resp = ocsp_sb
    body = conf(sb)
    staged = obtain(sb, body)
    first = open(staged).read()
    resp.add(staged, status="R")
    resp.start()
    sb.start_httpd(body)
    path = lambda: glob.glob(sb.path("md", "ocsp", NAME, "ocsp-*.json"))  # noqa: E731
    assert wait_for(lambda: path() and json.load(open(path()[0]))["status"] == "revoked", 30), \
        sb.error_log()[-2000:]
    assert "Cert Status: revoked" in staple(sb)  # stapled all the same
    assert "is REVOKED; the MD will be renewed" in sb.error_log()
    # the next renewal run (here: after a restart) renews the MD
    sb.start_httpd(body)
    new = sb.path("md", "staging", NAME, "pubcert.pem")
    assert wait_for(lambda: os.path.exists(new) and open(new).read() != first, 60), \
        sb.error_log()[-3000:]
    assert f"AH10500: md({NAME}): need to renew, OCSP reports revoked certificate(s)" in sb.error_log()


def test_other_certificates_staple_unless_staple_others_off(ocsp_sb):
    sb, resp = ocsp_sb
    other = "static.example.org"
    vhost = lambda n, extra="": f"""
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {n}
  SSLEngine on
{extra}
</VirtualHost>
"""  # noqa: E731
    sb.start_httpd(conf(sb) + f"MDomain {other}\n" + vhost(other))
    for n in (NAME, other):
        p = sb.path("md", "staging", n, "pubcert.pem")
        assert wait_for(lambda: os.path.exists(p), 60), sb.error_log()[-3000:]
        resp.add(p)
    time.sleep(0.5)
    sb.start_httpd()  # installs both
    assert wait_for(lambda: os.path.exists(sb.path("md", "domains", other, "pubcert.pem")), 20)
    time.sleep(0.5)
    crt, key = sb.path("ca", "static.pem"), sb.path("ca", "static.key")
    with open(crt, "w") as f:
        f.write(open(sb.path("md", "domains", other, "pubcert.pem")).read())
    with open(key, "w") as f:
        f.write(open(sb.path("md", "domains", other, "privkey.pem")).read())
    resp.start()
    static = vhost(other, f"  SSLCertificateFile {crt}\n  SSLCertificateKeyFile {key}")
    sb.stop_httpd()
    sb.start_httpd(conf(sb, "MDStapling on\nMDStapleOthers off") + static)
    assert wait_for(lambda: glob.glob(sb.path("md", "ocsp", NAME, "ocsp-*.json")), 30)
    time.sleep(1)
    assert not glob.glob(sb.path("md", "ocsp", "other", "ocsp-*.json"))
    sb.stop_httpd()
    sb.start_httpd(conf(sb) + static)
    assert wait_for(lambda: glob.glob(sb.path("md", "ocsp", "other", "ocsp-*.json")), 30), \
        sb.error_log()[-2000:]
    assert "Cert Status: good" in staple(sb, other)


def test_corrupt_response_file_is_reported_and_replaced(ocsp_sb):
    sb, resp = ocsp_sb
    body = conf(sb)
    path = stapled(sb, resp, body)
    sb.stop_httpd()
    with open(path, "w") as f:
        f.write('{"response": "MIIB')  # cut short
    sb.clear_log()
    sb.start_httpd(body)
    assert wait_for(lambda: json.load(open(path)).get("status") == "good"
                    if os.path.getsize(path) > 30 else False, 30), sb.error_log()[-2000:]
    log = sb.error_log()
    assert "[md:warn]" in log and "ignoring the stored OCSP response of certificate" in log
    assert "is not valid JSON" in log
    assert wait_for(lambda: "Cert Status: good" in staple(sb), 15)


def test_stapling_on_without_responder_in_certificate(ca_sb):
    """Certificates without an OCSP URL (pebble by default, Let's Encrypt
    today) are skipped without noise."""
    sb = ca_sb
    body = conf(sb)
    obtain(sb, body)
    sb.clear_log()
    sb.start_httpd(body)
    time.sleep(2)
    assert "OCSP response: no response sent" in staple(sb)
    assert not glob.glob(sb.path("md", "ocsp", "*", "ocsp-*.json"))
    log = sb.error_log()
    assert "_md_ocsp_" not in log and "[md:error]" not in log and "[md:warn]" not in log
    # one debug line, as the C module says it (issue 10.13), serial in whole bytes
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in",
                             sb.path("md", "domains", NAME, "pubcert.pem")],
                            capture_output=True, text=True, check=True).stdout.strip().split("=")[1]
    assert "[md:debug]" in log and \
        f"md[{NAME}]: certificate with serial {serial} has no OCSP responder URL" in log, log[-2000:]
    st = json.loads(get(sb, f"/md-status/{NAME}"))
    # md-status says why nothing is stapled (issue 13.6)
    assert st["stapling"] is True
    # (in an MD-level member of ours: the C module has no `ocsp` object there)
    assert "ocsp" not in st["cert"]["rsa"]
    assert st["stapling-reason"] == {"rsa": "the certificate names no OCSP responder: nothing to staple"}
