"""Operator control (issue 16, point 1: renew on demand): `a2md renew <md>`
on the store of a running server leads to a new certificate at the next
check, served without a restart; md-status shows the request while it is
pending."""

import json
import subprocess

from helpers import STATUS, fingerprint, md_status
from helpers import obtain, site, wait_for


def renew(a2md, sb, name, *extra):
    r = subprocess.run([a2md, "-d", sb.path("md"), "renew", name, *extra],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr


def test_a2md_renew_on_a_running_server(ca_sb, a2md):  # noqa: F811
    name = "op.example.org"
    # not due for years: only the request renews it; checks every 10 s
    ca_sb.start_httpd(site(ca_sb, name) + STATUS + "MDCheckInterval 10s\n")
    obtain(ca_sb, name)
    ca_sb.start_httpd()  # the first certificate installed
    assert wait_for(lambda: fingerprint(ca_sb, name)[1] == 200, 20)
    first, _ = fingerprint(ca_sb, name)
    pid = ca_sb.pid()
    rc, out, err = renew(a2md, ca_sb, name, "--reason", "CA mass revocation")
    assert rc == 0 and out["status"] == 0, (out, err)
    # pending until the new certificate is staged
    req = md_status(ca_sb, name).get("request")
    assert req and req["action"] == "renew" and req["reason"] == "CA mass revocation", req
    assert wait_for(lambda: fingerprint(ca_sb, name)[0] != first, 60), ca_sb.error_log()[-3000:]
    assert fingerprint(ca_sb, name)[1] == 200
    assert ca_sb.pid() == pid  # no restart
    assert "request" not in md_status(ca_sb, name)
    log = ca_sb.error_log()
    assert "renewing now as requested at" in log and "CA mass revocation" in log
    # answered once: no further order at the following checks
    orders = log.count("renewing now as requested")
    wait_for(lambda: False, 12)
    assert ca_sb.error_log().count("renewing now as requested") == orders


def test_a2md_renew_names_an_unknown_md(sb, a2md):  # noqa: F811
    sb.start_httpd(site(sb, "known.example.org"))
    rc, out, _ = renew(a2md, sb, "unknown.example.org")
    assert rc == 1 and "no managed domain unknown.example.org" in out["detail"]


def test_a2md_revoke_then_a_new_certificate(ca_sb, a2md):  # noqa: F811
    from helpers import mgmt_get
    name = "revoke.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS + "MDCheckInterval 10s\n")
    obtain(ca_sb, name)
    ca_sb.start_httpd()  # installed
    assert wait_for(lambda: fingerprint(ca_sb, name)[1] == 200, 20)
    first, _ = fingerprint(ca_sb, name)
    serial = subprocess.run(
        ["openssl", "x509", "-noout", "-serial", "-in", ca_sb.path("md", "domains", name, "pubcert.pem")],
        capture_output=True, text=True, check=True).stdout.strip().split("=")[1].lower()
    assert json.loads(mgmt_get(ca_sb, f"/cert-status-by-serial/{serial}"))["Status"] == "Valid"
    r = subprocess.run([a2md, "-d", ca_sb.path("md"), "-C", ca_sb.ca_cert, "revoke", name, "superseded"],
                       capture_output=True, text=True, timeout=60)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["revoked"] == ["pubcert.pem"], (out, r.stderr)
    # the CA has it revoked (RFC 8555 §7.6, signed with the MD's account)
    assert json.loads(mgmt_get(ca_sb, f"/cert-status-by-serial/{serial}"))["Status"] == "Revoked"
    assert md_status(ca_sb, name)["request"]["reason"] == "revoked (superseded)"
    # and the server renews and serves a new certificate, no restart
    pid = ca_sb.pid()
    assert wait_for(lambda: fingerprint(ca_sb, name)[0] != first, 60), ca_sb.error_log()[-3000:]
    assert ca_sb.pid() == pid
    # a reason that does not exist is refused before anything is sent
    r = subprocess.run([a2md, "-d", ca_sb.path("md"), "revoke", name, "because"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown reason because" in r.stderr


def test_a2md_account_rollover(ca_sb, a2md):  # noqa: F811
    import os
    import shutil
    name = "roll.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS + "MDCheckInterval 10s\n")
    obtain(ca_sb, name)
    ca_sb.start_httpd()  # installed, with its account in accounts/
    assert wait_for(lambda: fingerprint(ca_sb, name)[1] == 200, 20)
    first, _ = fingerprint(ca_sb, name)
    (acct,) = os.listdir(ca_sb.path("md", "accounts"))
    pem = ca_sb.path("md", "accounts", acct, "account.pem")
    before, st = open(pem, "rb").read(), os.stat(pem)
    shutil.copytree(ca_sb.path("md"), ca_sb.path("old-md"))  # the old key, for later
    r = subprocess.run([a2md, "-d", ca_sb.path("md"), "-C", ca_sb.ca_cert, "account-rollover", acct],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == 0, r.stdout + r.stderr
    after = os.stat(pem)
    assert open(pem, "rb").read() != before
    # kept as it was: the renewal job's user owns it, nobody else reads it
    assert (after.st_uid, after.st_gid, after.st_mode & 0o777) == (st.st_uid, st.st_gid, 0o600)
    # renewals use the new key: a renewal on request goes through
    rc, out, err = renew(a2md, ca_sb, name)
    assert rc == 0, (out, err)
    assert wait_for(lambda: fingerprint(ca_sb, name)[0] != first, 60), ca_sb.error_log()[-3000:]
    assert os.listdir(ca_sb.path("md", "accounts")) == [acct]
    # the CA refuses the old key (no contact given: nothing new is registered)
    r = subprocess.run([a2md, "-d", ca_sb.path("old-md"), "-a", ca_sb.ca_url, "-C", ca_sb.ca_cert,
                        "drive", "--account", acct, name], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "is no longer usable" in r.stderr, r.stdout + r.stderr


def test_a2md_account_export_and_import(ca_sb, a2md):  # noqa: F811
    """An account kept across servers (issue 16, point 2): exported from one
    store, imported into a fresh one by lookup (onlyReturnExisting) and by
    URL, used there without a new registration; keys the CA does not know
    and wrong URLs are refused and store nothing."""
    import os
    import shutil
    name = "export.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS)
    obtain(ca_sb, name)
    ca_sb.start_httpd()  # installed: the account is in accounts/
    assert wait_for(lambda: fingerprint(ca_sb, name)[1] == 200, 20)
    (acct,) = os.listdir(ca_sb.path("md", "accounts"))
    stored = json.load(open(ca_sb.path("md", "accounts", acct, "account.json")))

    def run(store, *args):
        r = subprocess.run([a2md, "-d", store, "-a", ca_sb.ca_url, "-C", ca_sb.ca_cert, *args],
                           capture_output=True, text=True, timeout=120)
        return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr

    keyfile = ca_sb.path("exported.pem")
    rc, out, err = run(ca_sb.path("md"), "account-export", acct, keyfile)
    assert rc == 0 and out["url"] == stored["url"], (out, err)
    assert os.stat(keyfile).st_mode & 0o777 == 0o600
    assert open(keyfile).read().startswith("-----BEGIN PRIVATE KEY-----")
    rc, out, _ = run(ca_sb.path("md"), "account-export", acct, keyfile)
    assert rc == 1 and "File exists" in out["detail"]  # never over a file

    # a fresh store on "another server": found by its key alone
    new = ca_sb.path("md-new")
    rc, out, err = run(new, "account-import", keyfile)
    assert rc == 0 and out["url"] == stored["url"], (out, err)
    imported = out["account"]
    j = json.load(open(os.path.join(new, "accounts", imported, "account.json")))
    assert j["url"] == stored["url"] and j["status"] == "valid" and j["ca-url"] == ca_sb.ca_url
    key = os.stat(os.path.join(new, "accounts", imported, "account.pem"))
    assert key.st_mode & 0o077 == 0
    import pwd
    assert key.st_uid == pwd.getpwnam("www-data").pw_uid  # httpd's User reads it (C module too)
    assert b"ENCRYPTED" in open(os.path.join(new, "accounts", imported, "account.pem"), "rb").read()
    rc, out, _ = run(new, "account-import", keyfile)
    assert rc == 1 and f"stored already, as {imported}" in out["detail"]
    # by its URL, into a third store; a wrong URL is refused
    other = ca_sb.path("md-other")
    rc, out, err = run(other, "account-import", keyfile, "--url", stored["url"] + "0")
    assert rc == 1 and "does not confirm" in out["detail"], (out, err)
    assert not os.listdir(os.path.join(other, "accounts"))
    rc, out, err = run(other, "account-import", keyfile, "--url", stored["url"])
    assert rc == 0 and out["url"] == stored["url"], (out, err)
    # a key the CA has never seen: nothing registered, nothing stored
    stranger = ca_sb.path("stranger.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", stranger], check=True, capture_output=True)
    rc, out, err = run(other, "account-import", stranger)
    assert rc == 1 and "knows no account with this key" in out["detail"], (out, err)
    assert len(os.listdir(os.path.join(other, "accounts"))) == 1

    # the new server uses the imported account for its first certificate
    ca_sb.stop_httpd()
    shutil.move(ca_sb.path("md"), ca_sb.path("md-first"))
    shutil.move(new, ca_sb.path("md"))
    ca_sb.clear_log()
    second = "import.example.org"
    ca_sb.start_httpd(site(ca_sb, second) + STATUS)
    obtain(ca_sb, second)
    md = json.load(open(ca_sb.path("md", "staging", second, "md.json")))
    assert md["ca"]["account"] == imported, md
    assert "registered new account" not in ca_sb.error_log()
    assert not os.path.exists(ca_sb.path("md", "staging", second, "account.json"))


def test_c_module_uses_an_imported_account(ca_sb, a2md, c_module):  # noqa: F811
    """The store stays the C module's: an account imported by a2md is the
    one the C module orders with (no registration of its own)."""
    import os
    import shutil
    name = "c-export.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS)
    obtain(ca_sb, name)
    ca_sb.start_httpd()  # installed: the account is in accounts/
    assert wait_for(lambda: os.listdir(ca_sb.path("md", "accounts")), 20)
    (acct,) = os.listdir(ca_sb.path("md", "accounts"))
    keyfile = ca_sb.path("c-exported.pem")
    r = subprocess.run([a2md, "-d", ca_sb.path("md"), "account-export", acct, keyfile],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    url = json.loads(r.stdout)["url"]
    ca_sb.stop_httpd()
    shutil.move(ca_sb.path("md"), ca_sb.path("md-before"))
    r = subprocess.run([a2md, "-d", ca_sb.path("md"), "-a", ca_sb.ca_url, "-C", ca_sb.ca_cert,
                        "account-import", keyfile], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    imported = json.loads(r.stdout)["account"]
    second = "c-import.example.org"
    ca_sb.write_conf(site(ca_sb, second), module=c_module)
    ca_sb.clear_log()
    ca_sb.start_httpd()
    assert wait_for(lambda: os.path.exists(ca_sb.path("md", "staging", second, "pubcert.pem")), 60), \
        ca_sb.error_log()[-3000:]
    md = json.load(open(ca_sb.path("md", "staging", second, "md.json")))
    assert md["ca"]["account"] == imported, md
    assert not os.path.exists(ca_sb.path("md", "staging", second, "account.json"))
    assert json.load(open(ca_sb.path("md", "accounts", imported, "account.json")))["url"] == url


def test_a2md_renew_wait_with_the_default_check_interval(ca_sb, a2md):  # noqa: F811
    """Issue 28: on demand means now. With the default MDCheckInterval
    (12 h) the request is picked up within seconds; `--wait` returns once
    the new certificate is served, and says how long it took."""
    import time
    name = "now.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + STATUS)
    obtain(ca_sb, name)
    ca_sb.start_httpd()  # the first certificate installed
    assert wait_for(lambda: fingerprint(ca_sb, name)[1] == 200, 20)
    first, _ = fingerprint(ca_sb, name)
    pid = ca_sb.pid()
    t0 = time.time()
    rc, out, err = renew(a2md, ca_sb, name, "--wait", "60")
    took = time.time() - t0
    assert rc == 0 and out["status"] == 0, (out, err, ca_sb.error_log()[-3000:])
    print(f"a2md renew --wait: {out['seconds']:.1f} s ({took:.1f} s with the tool's start)")
    assert took < 15, (took, out)
    assert "renewed in" in out["detail"] and out["seconds"] <= took, out
    # served now, by the same server
    assert fingerprint(ca_sb, name)[0] != first
    assert fingerprint(ca_sb, name)[1] == 200
    assert ca_sb.pid() == pid
