"""a2md as an admin meets it (issue 28): help on the tool and on every
command, its version, usage errors with exit code 2, the store found
without -d, and `list`/`status` on a store this module made and on one the
C module made, with `list --json` giving md-status's values."""

import json
import os
import subprocess

import pytest

from helpers import STATUS, md_status, obtain, site, wait_for

COMMANDS = ["list", "status", "renew", "revoke", "drive", "account-rollover", "account-export",
            "account-import", "store-export", "store-import"]


def a2(a2md, *argv, env=None):
    return subprocess.run([a2md, *argv], capture_output=True, text=True, timeout=60, env=env)


def test_help_version_and_usage_errors(a2md):
    for flag in ("--help", "-h"):
        r = a2(a2md, flag)
        assert r.returncode == 0, r
        for c in COMMANDS:
            assert f"\n  {c} " in r.stdout, (c, r.stdout)
        assert "Exit codes: 0 done, 1 failed" in r.stdout
    for c in COMMANDS:
        r = a2(a2md, c, "--help")
        assert r.returncode == 0 and "Usage: a2md " + c in r.stdout, (c, r.stdout, r.stderr)
    r = a2(a2md, "--version")
    assert r.returncode == 0 and "compatible with mod_md 2.6.10" in r.stdout, r.stdout
    # bad usage: exit 2, and what was expected
    for argv, said in ((["--bogus"], "unexpected argument '--bogus'"),
                       (["bogus"], "unrecognized subcommand 'bogus'"),
                       (["renew"], "<MD>"),
                       (["revoke", "a.org", "b", "c"], "unexpected argument 'c'"),
                       (["renew", "a.org", "--wait", "soon"], "invalid value 'soon'")):
        r = a2(a2md, *argv)
        assert r.returncode == 2, (argv, r)
        assert said in r.stderr, (argv, r.stderr)
    # a man page and completions from the same definition
    assert ".TH a2md 8" in a2(a2md, "generate", "man").stdout
    assert "complete -F" in a2(a2md, "generate", "bash").stdout
    assert "#compdef a2md" in a2(a2md, "generate", "zsh").stdout


def test_store_found_without_dir(sb, a2md):
    """The MDStoreDir of the server's configuration, else <conf>/md."""
    conf = sb.path("etc-apache2")
    os.makedirs(os.path.join(conf, "sites-enabled"))
    with open(os.path.join(conf, "apache2.conf"), "w") as f:
        f.write("ServerRoot /etc/apache2\n")
    env = dict(os.environ, APACHE_CONFDIR=conf)
    r = a2(a2md, "list", env=env)
    assert r.returncode == 1 and f"there is no store at {conf}/md" in r.stdout, r
    os.makedirs(os.path.join(conf, "md"))
    r = a2(a2md, "list", env=env)
    assert r.returncode == 0 and f"no managed domains in {conf}/md" in r.stdout, r
    with open(os.path.join(conf, "sites-enabled", "md.conf"), "w") as f:
        f.write(f"MDStoreDir {sb.path('other-md')}\n")
    r = a2(a2md, "list", env=env)
    assert r.returncode == 1 and f"there is no store at {sb.path('other-md')}" in r.stdout, r


def test_a_store_it_cannot_read_says_so(sb, a2md):
    os.makedirs(sb.path("md"))
    with open(sb.path("md", "md_store.json"), "w") as f:
        f.write("{}")
    os.chmod(sb.path("md", "md_store.json"), 0o600)
    r = subprocess.run(["setpriv", "--reuid=www-data", "--regid=www-data", "--clear-groups",
                        a2md, "-d", sb.path("md"), "list"], capture_output=True, text=True)
    assert r.returncode == 1, r
    out = json.loads(r.stdout)
    assert "run a2md as root (sudo a2md ...)" in out["detail"], out
    assert r.stderr == ""


def _row(out, name):
    return next(line for line in out.splitlines() if line.startswith(name))


def test_list_and_status_on_our_store(ca_sb, a2md):
    names = ["list1.example.org", "list2.example.org"]
    ca_sb.start_httpd("".join(site(ca_sb, n) for n in names) + STATUS)
    for n in names:
        obtain(ca_sb, n)
    ca_sb.start_httpd()  # installed
    assert wait_for(lambda: all(md_status(ca_sb, n).get("cert") for n in names), 20)
    r = a2(a2md, "-d", ca_sb.path("md"), "list")
    assert r.returncode == 0, r
    head = r.stdout.splitlines()[0].split()
    assert head[:3] == ["MD", "NAMES", "KEYS"] and "CA" in head and "ACCOUNT" in head, r.stdout
    for n in names:
        row = _row(r.stdout, n)
        assert " rsa " in row and row.rstrip().endswith("ok"), row
        assert ca_sb.ca_url in row and "ACME-" in row, row
    r = a2(a2md, "-d", ca_sb.path("md"), "list", "--json")
    listed = {m["name"]: m for m in json.loads(r.stdout)}
    for n in names:
        st = md_status(ca_sb, n)
        mine = listed[n]
        for k in ("name", "domains", "contacts", "ca", "cert", "renew-at", "state", "renew-mode",
                  "renew-window", "warn-window", "must-staple", "privkey"):
            if k in st or k in mine:
                assert mine.get(k) == st.get(k), (n, k, mine.get(k), st.get(k))
        assert mine["state-text"] == "ok" and mine["days-left"] >= 0
    r = a2(a2md, "-d", ca_sb.path("md"), "status", names[0])
    assert r.returncode == 0 and "state:       ok" in r.stdout, r.stdout
    assert "CA:          " + ca_sb.ca_url in r.stdout, r.stdout
    r = a2(a2md, "-d", ca_sb.path("md"), "status", "nope.example.org")
    assert r.returncode == 1 and "no managed domain nope.example.org" in json.loads(r.stdout)["detail"]


def test_list_on_the_c_modules_store(ca_sb, a2md, c_module):
    name = "clist.example.org"
    ca_sb.start_httpd(site(ca_sb, name), module=c_module)
    assert wait_for(lambda: os.path.exists(ca_sb.path("md", "staging", name, "pubcert.pem")), 60), \
        ca_sb.error_log()[-3000:]
    r = a2(a2md, "-d", ca_sb.path("md"), "list")
    assert r.returncode == 0 and "installed at its next restart" in _row(r.stdout, name), r.stdout
    ca_sb.start_httpd(module=c_module)  # the C module installs it at its restart
    assert wait_for(lambda: os.path.exists(ca_sb.path("md", "domains", name, "pubcert.pem")), 30)
    r = a2(a2md, "-d", ca_sb.path("md"), "list")
    row = _row(r.stdout, name)
    assert " rsa " in row and row.rstrip().endswith("ok"), r.stdout
    j = json.loads(a2(a2md, "-d", ca_sb.path("md"), "list", "--json").stdout)
    assert j[0]["name"] == name and j[0]["cert"]["rsa"]["valid"]["until"], j


@pytest.mark.parametrize("cmd", ["renew", "revoke"])
def test_renew_and_revoke_need_no_ca_url(sb, a2md, cmd):
    sb.start_httpd(site(sb, "known.example.org"))
    r = a2(a2md, "-d", sb.path("md"), cmd, "unknown.example.org")
    assert r.returncode == 1 and "CA_URL" not in r.stdout + r.stderr, r
