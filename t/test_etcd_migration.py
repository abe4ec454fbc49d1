"""Moving a store to etcd and back (issue 27): `a2md store-export` copies a
file store into etcd, `a2md store-import` copies it back into a directory;
what comes out is the file store as it went in, byte for byte, with the
same modes and owners, and the C module serves from it."""

import json
import os
import shutil
import subprocess

import pytest

from etcd_cluster import EtcdCluster, seal_key
from helpers import obtain, site, wait_for

NAME = "move.example.org"


@pytest.fixture
def etcd():
    c = EtcdCluster(1)
    yield c
    c.stop()


def files(root):
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if ".tmp." in n:
                continue
            st = os.lstat(p)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = (f.read(), st.st_mode & 0o777, st.st_uid)
    return out


def run(a2md, *argv):
    r = subprocess.run([a2md, *argv], capture_output=True, text=True, timeout=60)
    out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    return r.returncode, out, r.stderr


def served_fingerprint(sb, name):
    _status, der = sb.https_request(name)
    return subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-fingerprint"],
                          input=der, capture_output=True, check=True).stdout


def test_file_store_to_etcd_and_back_is_the_c_modules(sb, c_module, a2md, etcd):
    sb.start_ca()
    conf = site(sb, NAME)
    sb.start_httpd(conf)
    obtain(sb, NAME)
    sb.apachectl("-k", "graceful")
    assert wait_for(lambda: os.path.exists(sb.path("md", "domains", NAME, "pubcert.pem")), 30)
    fp = served_fingerprint(sb, NAME)
    sb.stop_httpd()
    before = files(sb.path("md"))
    key = seal_key(sb.path("seal.key"))
    rc, out, err = run(a2md, "-d", sb.path("md"), "store-export", etcd.endpoints,
                       "--seal-key", key)
    assert rc == 0 and out["status"] == 0, (out, err)
    assert out["files"] >= len([p for p in before if not p.startswith("leases")]) - 1, out
    # in etcd, and no private key readable there
    items = etcd.items()
    assert f"/mod_md/domains/{NAME}/pubcert.pem" in items
    for k, v in items.items():
        assert b"PRIVATE KEY" not in v, k
        if "privkey" in k or k.endswith("md_store.json") or k.endswith("account.pem"):
            assert v[:4] == b"md1\0" and v[4] & 1, k
    # a second export over it is refused, nothing changed
    rc, out, _ = run(a2md, "-d", sb.path("md"), "store-export", etcd.endpoints, "--seal-key", key)
    assert rc == 1 and "holds a store already" in out["detail"], out
    # back into a new directory: byte for byte, modes and owners as before
    back = sb.path("md-back")
    rc, out, err = run(a2md, "-d", back, "store-import", etcd.endpoints, "--seal-key", key)
    assert rc == 0, (out, err)
    after = files(back)
    assert sorted(after) == sorted(before), set(after) ^ set(before)
    for p in before:
        assert after[p][0] == before[p][0], p
        assert after[p][1:] == before[p][1:], (p, after[p][1:], before[p][1:])
    # a wrong seal key cannot read the keys
    other = seal_key(sb.path("other.key"))
    rc, out, _ = run(a2md, "-d", sb.path("md-other"), "store-import", etcd.endpoints,
                     "--seal-key", other)
    assert rc == 1 and "sealed with another key" in out["detail"], out
    # the C module takes the imported store and serves its certificate
    shutil.move(sb.path("md"), sb.path("md-orig"))
    shutil.move(back, sb.path("md"))
    sb.start_httpd(conf, module=c_module)
    assert served_fingerprint(sb, NAME) == fp
    assert "AH10046" not in sb.error_log()
