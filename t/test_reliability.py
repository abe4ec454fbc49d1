"""Reliability across whole lifecycles (issue 11): one ACME account for
life, no secrets in logs, renewal state that heals itself."""

import json
import os
import pwd
import stat
import time
import urllib.request

import pytest

from helpers import job, site, wait_for
from helpers import staged_done

HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_one_account_across_activation_and_renewals(sb):
    """Certificate obtained by the child, activated by the parent, renewed
    again by the child as User, activated again: the CA sees one account,
    the account key stays usable by the child and closed to others."""
    sb.start_ca(validity=120)
    name = "acct.example.org"
    # 2-minute certificates renewed when less than 99 % is left: the child
    # renews right after each activation. The activations are this test's
    # restarts: hot activation would install a served set that is due by a
    # restart of its own (test_lifecycle.py covers that), racing the reads
    # of staging/ below.
    sb.start_httpd(site(sb, name) + "MDRenewWindow 99%\nMDHotActivation off\n")
    assert wait_for(lambda: staged_done(sb, name), 60), sb.error_log()[-3000:]
    with open(sb.path("md", "staging", name, "account.json")) as f:
        url = json.load(f)["url"]
    www = pwd.getpwnam("www-data").pw_uid
    live = sb.path("md", "domains", name, "pubcert.pem")

    def live_cert():
        try:
            with open(live) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def staged_cert():
        try:
            with open(sb.path("md", "staging", name, "pubcert.pem")) as f:
                return f.read()
        except FileNotFoundError:
            return None

    for round_ in range(2):
        before = live_cert()
        sb.start_httpd()  # graceful restart: the parent installs the staged set
        # installed: the live certificate is the staged one now (in the second
        # round the first one is there already, and the staging of the run
        # before looks finished until the parent has moved it)
        assert wait_for(lambda: live_cert() not in (None, before), 20), sb.error_log()[-3000:]
        ids = os.listdir(sb.path("md", "accounts"))
        assert len(ids) == 1, ids
        acct_dir = sb.path("md", "accounts", ids[0])
        with open(os.path.join(acct_dir, "account.json")) as f:
            assert json.load(f)["url"] == url
        with open(sb.path("md", "domains", name, "md.json")) as f:
            assert json.load(f)["ca"]["account"] == ids[0]
        key = os.path.join(acct_dir, "account.pem")
        # readable by the renewal job (User), by nobody else
        assert os.stat(key).st_uid == www and mode(key) == 0o600, (os.stat(key), oct(mode(key)))
        # the C module's modes after staging and installation
        assert mode(sb.path("md", "accounts")) == 0o755
        assert mode(sb.path("md", "domains")) == 0o700
        assert mode(sb.path("md", "staging")) == 0o755
        assert mode(sb.path("md", "challenges")) == 0o755
        # the child renews with the stored account: nothing new is staged
        # (a new set: its job finished, its certificate is not the live one;
        # the parent removes the installed staging only after the live set
        # changed)
        assert wait_for(lambda: staged_done(sb, name) and staged_cert() not in (None, live_cert()),
                        60), sb.error_log()[-3000:]
        assert not os.path.exists(sb.path("md", "staging", name, "account.json"))
        with open(sb.path("md", "staging", name, "md.json")) as f:
            assert json.load(f)["ca"]["account"] == ids[0]
    log = sb.error_log()
    assert log.count("registered new account") == 1, log[-3000:]
    assert "cannot use the stored ACME account" not in log


def test_unreadable_account_is_reported(sb):
    """An account the renewal job cannot read is reported with its path,
    not silently replaced."""
    sb.start_ca(validity=120)
    name = "unread.example.org"
    sb.start_httpd(site(sb, name) + "MDRenewWindow 99%\n")
    assert wait_for(lambda: staged_done(sb, name), 60), sb.error_log()[-3000:]
    sb.start_httpd()
    assert wait_for(lambda: os.path.exists(sb.path("md", "domains", name, "pubcert.pem")), 20)
    acct = sb.path("md", "accounts", os.listdir(sb.path("md", "accounts"))[0])
    sb.stop_httpd()
    sb.clear_log()
    # an admin's mistake: the key file given to root only, and kept so
    os.chown(os.path.join(acct, "account.pem"), 0, 0)
    os.chmod(acct, 0o700)
    sb.start_httpd()
    assert wait_for(lambda: "cannot use the stored ACME account" in sb.error_log(), 30), \
        sb.error_log()[-3000:]
    line = [x for x in sb.error_log().splitlines() if "cannot use the stored ACME account" in x][0]
    assert "[md:warn]" in line and acct in line, line


def test_eab_hmac_never_logged(sb):
    """MDExternalAccountBinding with LogLevel trace8: the HMAC appears in
    neither the error log nor md-status; the certificate is obtained."""
    sb.start_ca(eab={"kid-1": HMAC})
    name = "eab.example.org"
    body = site(sb, name) + f"""MDExternalAccountBinding kid-1 {HMAC}
<Location /md-status>
  SetHandler md-status
</Location>
"""
    sb.start_httpd(body, log_level="trace8")
    assert wait_for(lambda: staged_done(sb, name), 60), sb.error_log()[-3000:]
    with urllib.request.urlopen(f"http://127.0.0.1:{sb.http_port}/md-status/{name}",
                                timeout=10) as r:
        status = r.read().decode()
    assert "kid-1" in status and HMAC not in status
    log = sb.error_log()
    assert "effective configuration" in log and "kid-1" in log
    assert HMAC not in log


def test_eab_new_account_is_checked_by_the_ca(sb):
    """A registration with a wrong EAB HMAC fails at the CA even when an
    account of the same CA is stored: its key is not reused (that would let
    the CA return the existing account without checking the binding)."""
    sb.start_ca(eab={"kid-1": HMAC, "kid-2": HMAC[::-1]})
    name = "eab2.example.org"
    sb.start_httpd(site(sb, name) + f"MDExternalAccountBinding kid-1 {HMAC}\n")
    assert wait_for(lambda: staged_done(sb, name), 60), sb.error_log()[-3000:]
    sb.start_httpd()
    assert wait_for(lambda: os.path.exists(sb.path("md", "domains", name, "pubcert.pem")), 20)
    other = "eab3.example.org"
    # kid-2 with kid-1's HMAC: the binding does not verify
    sb.start_httpd(site(sb, name) + site(sb, other, md=f"""<MDomain {other}>
  MDExternalAccountBinding kid-2 {HMAC}
</MDomain>""") + f"MDExternalAccountBinding kid-1 {HMAC}\n")
    assert wait_for(lambda: job(sb, other).get("errors", 0) > 0, 60), sb.error_log()[-3000:]
    assert not os.path.exists(sb.path("md", "staging", other, "pubcert.pem"))
    assert "unauthorized" in json.dumps(job(sb, other)).lower() or \
        "externalaccount" in json.dumps(job(sb, other)).lower(), job(sb, other)


def test_eab_not_bypassed_by_a_ca_that_knows_the_key(sb):
    """Issue 10.12 against a CA that returns the existing account for a
    known key without checking the new binding (as RFC 8555 allows): a new
    registration uses a new key, so a wrong EAB HMAC still fails. (Reusing
    the stored account's key, as earlier versions did, got that account
    back and the renewal succeeded.)"""
    from acme_front import AcmeFront
    sb.start_ca(eab={"kid-1": HMAC, "kid-2": HMAC[::-1]})
    front = AcmeFront(sb, renewal_info=False, known_keys=True)
    try:
        name, other = "eab4.example.org", "eab5.example.org"
        ca = f"MDCertificateAuthority {front.url}\n"
        sb.start_httpd(site(sb, name) + ca + f"MDExternalAccountBinding kid-1 {HMAC}\n")
        assert wait_for(lambda: staged_done(sb, name), 60), sb.error_log()[-3000:]
        assert len(front.accounts) == 1
        sb.start_httpd(site(sb, name) + site(sb, other, md=f"""<MDomain {other}>
  MDExternalAccountBinding kid-2 {HMAC}
</MDomain>""") + ca + f"MDExternalAccountBinding kid-1 {HMAC}\n")
        assert wait_for(lambda: job(sb, other).get("errors", 0) > 0, 60), sb.error_log()[-3000:]
        assert front.returned_known == 0
        assert not os.path.exists(sb.path("md", "staging", other, "pubcert.pem"))
    finally:
        front.stop()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "unreadable", "symlink"])
def test_broken_job_json_is_set_aside(sb, kind):
    """A staging job.json that cannot be used is set aside (one warn with
    its path) and the renewal goes on; no manual rm is needed."""
    sb.start_ca()
    name = f"{kind}.example.org"
    d = sb.path("md", "staging", name)
    os.makedirs(d)
    www = pwd.getpwnam("www-data").pw_uid
    os.chown(sb.path("md"), 0, 0)
    f = os.path.join(d, "job.json")
    if kind == "garbage":
        with open(f, "wb") as fh:
            fh.write(os.urandom(300))
    elif kind == "truncated":
        with open(f, "w") as fh:
            fh.write('{"name": "x", "finished": true, "notified-ren')
    elif kind == "unreadable":
        with open(f, "w") as fh:
            fh.write('{"name": "x"}')
        os.chmod(f, 0o600)  # root's, the renewal job runs as www-data
    else:
        os.symlink("/etc/hostname", f)
    for p in (sb.path("md", "staging"), d):
        os.chown(p, www, -1)
    sb.start_httpd(site(sb, name))
    assert wait_for(lambda: staged_done(sb, name), 60), sb.error_log()[-3000:]
    warns = [x for x in sb.error_log().splitlines() if "set aside as" in x]
    assert len(warns) == 1 and "[md:warn]" in warns[0] and f in warns[0], warns
    assert os.path.lexists(f + ".broken")


def test_garbage_md_json_is_reported_and_rewritten(sb):
    name = "mdjson.example.org"
    os.makedirs(sb.path("md", "domains", name))
    with open(sb.path("md", "domains", name, "md.json"), "w") as fh:
        fh.write("{garbage")
    sb.start_httpd(site(sb, name) + "MDRenewMode manual\n")
    assert wait_for(lambda: "set aside as" in sb.error_log(), 10), sb.error_log()[-3000:]
    with open(sb.path("md", "domains", name, "md.json")) as fh:
        assert json.load(fh)["name"] == name


def test_stale_finished_job_does_not_block_renewal(sb):
    """A staging job.json marked finished and notified, without the staged
    set it speaks of, is started over (issue 10.9)."""
    sb.start_ca()
    name = "stale.example.org"
    d = sb.path("md", "staging", name)
    os.makedirs(d)
    with open(os.path.join(d, "job.json"), "w") as fh:
        json.dump({"name": name, "finished": True, "notified": True, "notified-renewed": True,
                   "valid-from": "Wed, 01 Jan 2025 00:00:00 GMT"}, fh)
    www = pwd.getpwnam("www-data").pw_uid
    for p in (sb.path("md", "staging"), d, os.path.join(d, "job.json")):
        os.chown(p, www, -1)
    sb.start_httpd(site(sb, name))
    assert wait_for(lambda: os.path.exists(os.path.join(d, "pubcert.pem")), 60), \
        sb.error_log()[-3000:]


def test_log_lines_appear_while_the_job_runs(sb):
    """A renewal stuck on a CA that never answers shows its steps in the
    error log as they happen, not when the job gives up (issue 11.6)."""
    from helpers import black_hole
    hole, _ = black_hole()
    sb._tls_cert()  # the CA file the configuration names
    try:
        name = "slowca.example.org"
        sb.start_httpd(site(sb, name, md_body=f"  MDCertificateAuthority "
                                              f"https://localhost:{hole.getsockname()[1]}/dir"))
        assert wait_for(lambda: f"AH10512: md({name}): need to renew now" in sb.error_log(), 10), \
            sb.error_log()[-2000:]
        # the job is still waiting for the CA
        assert f"AH10056: processing {name}" not in sb.error_log()
    finally:
        hole.close()


def test_idle_md_does_not_poll_the_ca(ca_sb):
    """An MD with its certificate installed and nothing due is processed at
    MDCheckInterval, not at every watchdog run: no request to the CA while
    it idles (every watchdog run queued every MD and fetched the CA's
    directory once a second)."""
    name = "idle.example.org"
    ca_sb.start_httpd(site(ca_sb, name))
    assert wait_for(lambda: staged_done(ca_sb, name), 60), ca_sb.error_log()[-3000:]
    ca_sb.start_httpd()  # activation
    assert wait_for(lambda: os.path.exists(ca_sb.path("md", "domains", name, "pubcert.pem")), 20)

    def dir_requests():
        with open(ca_sb.path("logs", "pebble.log")) as f:
            return f.read().count("GET /dir")
    time.sleep(2)
    before = dir_requests()
    time.sleep(8)
    assert dir_requests() == before


def test_unwritable_store_backs_off(sb):
    """A staging directory the renewal job cannot write: an error with the
    path, then the back-off (MDRetryDelay doubling), not a retry every
    second (issue 11.3)."""
    sb.start_ca()
    name = "ro.example.org"
    d = sb.path("md", "staging", name)
    os.makedirs(d)
    os.chown(sb.path("md", "staging"), pwd.getpwnam("www-data").pw_uid, -1)
    os.chmod(d, 0o755)  # root's: www-data cannot write job.json or keys here
    sb.start_httpd(site(sb, name) + "MDRetryDelay 2s\n")
    assert wait_for(lambda: "AH10056: processing ro.example.org" in sb.error_log(), 20), \
        sb.error_log()[-3000:]
    time.sleep(6)
    errors = [x for x in sb.error_log().splitlines() if "AH10056: processing ro.example.org" in x]
    assert d in errors[0], errors[0]
    # each try ends with the glue's back-off line: 2 s, then 4 s (±50 %),
    # so at most 4 tries in those ~6-8 s, not one a second
    tries = [x for x in errors if "renewal job:" in x]
    assert 1 <= len(tries) <= 4, tries
    assert "next run in" in tries[0]
