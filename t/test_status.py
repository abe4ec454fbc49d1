"""md-status (spec §6.1), also side by side with the C module on one store."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest

from test_renewal import obtain, site, wait_for


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


def shape(v):
    """Keys, nesting and value types of a JSON value."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


def test_md_status_views(ca_sb):
    name = "st.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS)
    obtain(ca_sb, name)
    st, ctype, body = get(ca_sb, "/md-status")
    assert st == 200 and ctype == "application/json"
    j = json.loads(body)
    assert j["version"] == "2.6.10"
    md = j["managed-domains"][0]
    assert md["name"] == name and md["watched"] is True and md["renew"] is True
    assert md["cert"] == {}  # nothing live yet
    assert md["renewal"]["finished"] is True and "log" not in md["renewal"]
    assert md["renewal"]["cert"]["rsa"]["issuer-name"].startswith("/CN=Pebble Intermediate CA")
    # the single view has the job log, by name or by domain
    single = json.loads(get(ca_sb, f"/md-status/{name}")[2])
    assert single["renewal"]["log"]["entries"]
    assert get(ca_sb, "/md-status/nothing.example.org")[0] == 404
    assert get(ca_sb, "/md-status", method="POST")[0] == 501
    # after activation: the live certificate
    ca_sb.start_httpd()
    assert wait_for(lambda: "rsa" in json.loads(get(ca_sb, "/md-status")[2])["managed-domains"][0]["cert"], 20)
    md = json.loads(get(ca_sb, "/md-status")[2])["managed-domains"][0]
    c = md["cert"]["rsa"]
    assert len(c["sha256-fingerprint"]) == 64 and c["serial"] == c["serial"].upper()
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
    assert o["eab"] == t["eab"] == {"kid": "kid-1", "hmac": "***"}
    assert list(o.keys()) == list(t.keys()), (list(o.keys()), list(t.keys()))
    assert shape(o) == shape(t), json.dumps({"ours": shape(o), "c": shape(t)}, indent=1)
    assert o["cert"]["rsa"]["sha256-fingerprint"] == t["cert"]["rsa"]["sha256-fingerprint"]
    assert o["renew-at"] == t["renew-at"]
