"""md-status (spec §6.1), also side by side with the C module on one store."""

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from sandbox import free_ports
from helpers import obtain, site, wait_for
from helpers import shape


def get(sb, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{sb.http_port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


STATUS = """
<Location /md-status>
  SetHandler md-status
</Location>
"""


def test_md_status_views(ca_sb):
    name = "st.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS)
    obtain(ca_sb, name)
    st, ctype, body = get(ca_sb, "/md-status")
    assert st == 200 and ctype == "application/json"
    j = json.loads(body)
    assert j["version"] == "2.6.10"
    assert j["module"].startswith("mod_md in Rust ")
    md = j["managed-domains"][0]
    assert md["name"] == name and md["watched"] is True and md["renew"] is True
    assert md["cert"] == {}  # nothing live yet
    assert md["renewal"]["finished"] is True and "log" not in md["renewal"]
    assert md["renewal"]["cert"]["rsa"]["issuer-name"].startswith("/CN=Pebble Intermediate CA")
    # the single view has the job log, by name or by domain
    single = json.loads(get(ca_sb, f"/md-status/{name}")[2])
    assert single["renewal"]["log"]["entries"]
    # anything else: the overview, as from the C module
    for path in ("/md-status/nothing.example.org", f"/md-status/{name}/extra"):
        st, _, body = get(ca_sb, path)
        assert st == 200 and "managed-domains" in json.loads(body), (path, st)
    assert get(ca_sb, "/md-status", method="POST")[0] == 501
    # after activation: the live certificate
    ca_sb.start_httpd()
    assert wait_for(lambda: "rsa" in json.loads(get(ca_sb, "/md-status")[2])["managed-domains"][0]["cert"], 20)
    md = json.loads(get(ca_sb, "/md-status")[2])["managed-domains"][0]
    c = md["cert"]["rsa"]
    assert len(c["sha256-fingerprint"]) == 64 and c["serial"] == c["serial"].upper()
    # whole bytes, as BN_bn2hex and openssl print it (leading zero bytes kept)
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in",
                          ca_sb.path("md", "domains", name, "pubcert.pem")],
                         capture_output=True, text=True, check=True).stdout
    assert c["serial"] == out.strip().split("=")[1]
    assert len(c["serial"]) % 2 == 0
    assert md["cert"]["valid"]["until"].endswith(" GMT")
    assert "renewal" not in md and "renew" not in md


HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


@pytest.fixture
def eab_sb(module):
    from sandbox import Sandbox
    with Sandbox(module=module) as sb:
        sb.start_ca(eab={"kid-1": HMAC})
        yield sb


def test_md_status_same_shape_as_c_module(eab_sb, c_module):
    ca_sb = eab_sb
    name = "cmp.example.org"
    body = site(ca_sb, name, md_body=f"  MDExternalAccountBinding kid-1 {HMAC}") + STATUS
    ca_sb.start_httpd(body)
    obtain(ca_sb, name)
    ca_sb.start_httpd()  # activate
    time.sleep(1)
    ours = json.loads(get(ca_sb, "/md-status")[2])
    ca_sb.stop_httpd()
    ca_sb.write_conf(body, module=c_module)
    ca_sb.start_httpd()
    time.sleep(1)
    theirs = json.loads(get(ca_sb, "/md-status")[2])
    ca_sb.stop_httpd()
    o, t = ours["managed-domains"][0], theirs["managed-domains"][0]
    # our documented addition: which certificate is live
    assert o.pop("live") == "domains"
    assert o.pop("next-run") == o["renew-at"]  # our addition: when the job looks next
    assert o["eab"] == t["eab"] == {"kid": "kid-1", "hmac": "***"}
    assert list(o.keys()) == list(t.keys()), (list(o.keys()), list(t.keys()))
    assert shape(o) == shape(t), json.dumps({"ours": shape(o), "c": shape(t)}, indent=1)
    assert o["cert"]["rsa"]["sha256-fingerprint"] == t["cert"]["rsa"]["sha256-fingerprint"]
    assert o["renew-at"] == t["renew-at"]


SERVER_STATUS = """
<Location /server-status>
  SetHandler server-status
</Location>
<Location /md-metrics>
  SetHandler md-metrics
</Location>
"""


def req(sb, host, path, method="GET"):
    from helpers import http_req
    return http_req(sb, host, path, method=method)


def md_status_of(sb, name):
    return json.loads(get(sb, f"/md-status/{name}")[2])


def test_certificate_status(ca_sb):
    name = "cs.example.org"
    ca_sb.start_httpd(site(ca_sb, name, md_body="  MDPrivateKeys RSA secp384r1") + STATUS)
    st, h, body = req(ca_sb, name, "/.httpd/certificate-status")
    assert st == 200 and h["Content-Type"] == "application/json"
    j = json.loads(body)
    assert j["rsa"] == {} and j["secp384r1"] == {} and "valid" not in j
    obtain(ca_sb, name, f="pubcert.secp384r1.pem")
    j = json.loads(req(ca_sb, name, "/.httpd/certificate-status")[2])
    staged = j["renewal"]["cert"]
    assert set(staged) == {"valid", "rsa", "secp384r1"}
    # as md-status's renewal.cert, as the C module answers (issue 24.2)
    assert set(staged["rsa"]) == {"issuer-name", "valid", "serial", "sha256-fingerprint", "ari-cert-id"}
    assert staged == md_status_of(ca_sb, name)["renewal"]["cert"]
    ca_sb.start_httpd()
    j = json.loads(req(ca_sb, name, "/.httpd/certificate-status")[2])
    assert set(j) == {"valid", "rsa", "secp384r1"} and "renewal" not in j
    assert req(ca_sb, name, "/.httpd/certificate-status", method="POST")[0] == 501
    assert req(ca_sb, "other.example.org", "/.httpd/certificate-status")[0] == 404
    ca_sb.start_httpd(site(ca_sb, name, md_body="  MDPrivateKeys RSA secp384r1") + "\nMDCertificateStatus off\n")
    assert req(ca_sb, name, "/.httpd/certificate-status")[0] == 404


def auto_names(text):
    import re
    return sorted({re.sub(r"\[\d+\]", "[i]", line.split(":", 1)[0]) for line in text.splitlines()
                   if line.startswith("Managed")})


def test_server_status_section(ca_sb, c_module):
    name = "ss.example.org"
    body = site(ca_sb, name) + SERVER_STATUS
    ca_sb.start_httpd(body)
    # default off, as in httpd 2.4.71
    assert b"Managed" not in req(ca_sb, "localhost", "/server-status?auto")[2]
    ca_sb.start_httpd(body + "MDServerStatus on\n")
    obtain(ca_sb, name)
    ca_sb.start_httpd()
    time.sleep(0.5)
    text = req(ca_sb, "localhost", "/server-status?auto")[2].decode()
    assert "ManagedCertificatesTotal: 1" in text and f"ManagedDomain[0]Domain: {name}" in text
    assert "ManagedDomain[0]Status: good" in text and "ManagedDomain[0]CheckAtName: crt.sh" in text
    html = req(ca_sb, "localhost", "/server-status")[2].decode()
    assert "<h3>Managed Certificates</h3>" in html and f"<td>{name}</td>" in html
    ours = auto_names(text)
    ca_sb.stop_httpd()
    ca_sb.write_conf(body + "MDServerStatus on\n", module=c_module)
    ca_sb.start_httpd()
    time.sleep(0.5)
    theirs = auto_names(req(ca_sb, "localhost", "/server-status?auto")[2].decode())
    assert ours == theirs, (ours, theirs)


def test_metrics_parse(ca_sb):
    from prometheus_client.parser import text_string_to_metric_families
    name = "m.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + site(ca_sb, "m2.example.org") + SERVER_STATUS)
    obtain(ca_sb, name)
    ca_sb.start_httpd()
    time.sleep(0.5)
    st, h, body = req(ca_sb, "localhost", "/md-metrics")
    assert st == 200 and h["Content-Type"].startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    assert samples[("md_domain_state", (("md", name),))] == 2
    expiry = samples[("md_certificate_expiry_timestamp_seconds", (("key", "rsa"), ("md", name)))]
    assert expiry > time.time() + 86400
    assert samples[("md_domains", (("state", "complete"),))] >= 1
    assert samples[("md_domain_last_renewal_timestamp_seconds", (("md", name),))] > time.time() - 600
    assert ("md_domain_renewal_errors", (("md", "m2.example.org"),)) in samples


def test_broken_job_json_is_an_md_error(ca_sb):
    name = "bj.example.org"
    ca_sb.stop_ca()  # keep the job from rewriting the file
    ca_sb.start_httpd(site(ca_sb, name) + STATUS + "\nMDInitialDelay 1h\n")
    d = ca_sb.path("md", "staging", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "job.json"), "w") as f:
        f.write('{"name": "bj.exa')
    st, _, body = get(ca_sb, "/md-status")
    assert st == 200
    md = json.loads(body)["managed-domains"][0]
    assert md["error"] == 22 and "job.json is not valid JSON" in md["error-description"]


def test_md_status_of_a_failing_renewal_same_shape_as_c_module(sb, c_module):
    name = "fail.example.org"
    dead = free_ports(1)[0]  # nothing listens there: every run fails
    body = site(sb, name) + STATUS + f"MDCertificateAuthority https://localhost:{dead}/dir\n"
    job = sb.path("md", "staging", name, "job.json")
    views = {}
    for label, mod in (("ours", None), ("c", c_module)):
        sb.stop_httpd()
        shutil.rmtree(sb.path("md"), ignore_errors=True)
        sb.write_conf(body, module=mod)
        sb.start_httpd()
        assert wait_for(lambda: os.path.exists(job) and json.load(open(job)).get("errors", 0) > 0, 30), \
            sb.error_log()[-2000:]
        views[label] = json.loads(get(sb, f"/md-status/{name}")[2])
    sb.stop_httpd()
    o, t = views["ours"], views["c"]
    assert o.pop("live") == "none"
    assert o.pop("next-run")  # our addition: the job's back-off
    assert list(o.keys()) == list(t.keys()), (list(o.keys()), list(t.keys()))
    ro, rt = o["renewal"], t["renewal"]
    assert list(ro.keys()) == list(rt.keys()), (list(ro.keys()), list(rt.keys()))
    assert list(ro["last"].keys()) == list(rt["last"].keys()), (ro["last"], rt["last"])
    assert ro["last"]["status"] == rt["last"]["status"]
    assert ro["last"]["activity"] == rt["last"]["activity"]
    # the C module's text; ours adds curl's reason at the end
    assert ro["last"]["detail"].startswith(rt["last"]["detail"] + " (")
    assert ro["errors"] == rt["errors"] == 1
    assert ro["finished"] is rt["finished"] is False


def test_md_status_by_domain_of_a_wildcard_md(sb):
    """/md-status/<domain> finds the MD whose wildcard covers the domain."""
    sb.start_httpd("""
MDomain *.wild.example.org
MDRenewMode always
MDBaseServer on
""" + STATUS)
    st, _, body = get(sb, "/md-status/www.wild.example.org")
    assert st == 200 and json.loads(body)["name"] == "*.wild.example.org", body
