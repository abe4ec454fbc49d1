"""Renewal inside httpd (issue 4) with the real httpd and pebble: pebble's
validation connects back to httpd, which answers the challenges itself."""

import json
import os
import subprocess
import time

import pytest

from helpers import https_get
from helpers import DNS01, SYSTEM_PYTHON, job, obtain, site, staged_ok, wait_for

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# hooks run as httpd's User: use the system interpreter, not the caller's


def test_first_certificate_http01(ca_sb):
    name = "h.example.org"
    ca_sb.start_httpd(site(ca_sb, name, aliases=f"www.{name}"))
    assert https_get(ca_sb, name)[0] == 503
    obtain(ca_sb, name)
    j = job(ca_sb, name)
    assert j["finished"] is True and j["errors"] == 0
    assert [e["type"] for e in j["log"]["entries"]][-1] == "starting"
    assert "AH10059: The Managed Domain h.example.org has been setup" in ca_sb.error_log()
    # staged: live within seconds without a restart (hot activation), and
    # installed into domains/ by the next graceful restart
    assert wait_for(lambda: https_get(ca_sb, name)[0] == 200, 20)
    assert not os.path.exists(ca_sb.path("md", "domains", name, "pubcert.pem"))
    ca_sb.start_httpd()  # graceful
    assert wait_for(lambda: https_get(ca_sb, name)[0] == 200, 20)
    status, text = https_get(ca_sb, name)
    assert "Pebble Intermediate" in text
    assert f"DNS:{name}" in text and f"DNS:www.{name}" in text  # the alias was added
    # nothing left to answer challenges with
    assert os.listdir(ca_sb.path("md", "challenges")) == []


def test_first_certificate_tls_alpn01(ca_sb):
    name = "alpn.example.org"
    body = site(ca_sb, name, ssl_extra="  Protocols acme-tls/1 http/1.1",
                md_body="  MDCAChallenges tls-alpn-01")
    ca_sb.start_httpd(body)
    obtain(ca_sb, name)
    entries = [e.get("detail", "") for e in job(ca_sb, name)["log"]["entries"]]
    assert any("tls-alpn-01" in d for d in entries), entries


def test_tls_alpn01_with_rsa_and_ecdsa_keys(ca_sb):
    """Issue 13.5: with an ECDSA and an RSA key, the CA's acme-tls/1
    handshake is offered only the challenge certificate (not the vhost's
    ECDSA fallback, which a client preferring ECDSA would get), and pebble
    validates both orders."""
    name = "alpn2.example.org"
    body = site(ca_sb, name, ssl_extra="  Protocols acme-tls/1 http/1.1",
                md_body="  MDCAChallenges tls-alpn-01\n  MDPrivateKeys secp256r1 rsa2048")
    ca_sb.start_httpd(body)
    obtain(ca_sb, name, f="pubcert.secp256r1.pem")
    assert os.path.exists(ca_sb.path("md", "staging", name, "pubcert.pem"))
    entries = [e.get("detail", "") for e in job(ca_sb, name)["log"]["entries"]]
    assert any("tls-alpn-01" in d for d in entries), entries
    assert not any("http-01" in d for d in entries), entries


def test_tls_alpn01_skipped_where_protocols_forbid_it(ca_sb):
    """MDCAChallenges tls-alpn-01 http-01 on an SSL vhost without
    `Protocols acme-tls/1`: tls-alpn-01 is skipped for its domains and
    http-01 answers, as with the C module (issue 10.8)."""
    name = "noalpn.example.org"
    ca_sb.start_httpd(site(ca_sb, name, md_body="  MDCAChallenges tls-alpn-01 http-01"))
    obtain(ca_sb, name)
    entries = [e.get("detail", "") for e in job(ca_sb, name)["log"]["entries"]]
    assert any("http-01" in d for d in entries), entries
    assert not any("tls-alpn-01" in d for d in entries), entries


def test_rsa_and_ec_side_by_side(ca_sb):
    name = "ec.example.org"
    ca_sb.start_httpd(site(ca_sb, name, md_body="  MDPrivateKeys RSA P-256"))
    obtain(ca_sb, name, f="pubcert.p-256.pem")
    ca_sb.start_httpd()
    assert wait_for(lambda: https_get(ca_sb, name)[0] == 200, 20)
    # a client that only accepts ECDSA gets the EC certificate, others RSA
    def served(sigalgs):
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{ca_sb.https_port}",
                            "-servername", name, "-sigalgs", sigalgs, "-tls1_2"],
                           input="", capture_output=True, text=True, timeout=20)
        pem = r.stdout[r.stdout.find("-----BEGIN CERTIFICATE"):r.stdout.find("-----END CERTIFICATE-----") + 25]
        return subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True,
                              text=True).stdout
    assert "id-ecPublicKey" in served("ECDSA+SHA256")
    assert "rsaEncryption" in served("RSA+SHA256")


def test_wildcard_via_dns01(ca_sb):
    name = "wc.example.org"
    cmd = f"{SYSTEM_PYTHON} {DNS01} 127.0.0.1:{ca_sb.chall_mgmt}"
    body = site(ca_sb, name, md=f"MDomain {name} *.{name}\nMDChallengeDns01 {cmd}")
    ca_sb.start_httpd(body)
    obtain(ca_sb, name)
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in",
                           ca_sb.path("md", "staging", name, "pubcert.pem")], capture_output=True,
                          text=True).stdout
    assert f"DNS:*.{name}" in text


def test_events_recorded_by_message_cmd(ca_sb, tmp_path):
    name = "ev.example.org"
    rec = ca_sb.path("events.log")
    script = ca_sb.path("record.sh")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\necho \"$(id -un) $*\" >> {rec}\n")
    os.chmod(script, 0o755)
    open(rec, "w").close()
    os.chmod(rec, 0o666)
    body = site(ca_sb, name) + f"\nMDMessageCmd {script} extra-arg\nMDNotifyCmd {script} notify\n"
    ca_sb.start_httpd(body)
    obtain(ca_sb, name)
    lines = open(rec).read().splitlines()
    assert lines[0] == f"www-data extra-arg renewing {name}", lines
    assert any(l.startswith(f"www-data extra-arg challenge-setup:http-01:{name} {name}") for l in lines), lines
    assert lines[-2:] == [f"www-data notify {name}", f"www-data extra-arg renewed {name}"], lines
    # activation at the next restart runs as root
    ca_sb.start_httpd()
    assert wait_for(lambda: f"root extra-arg installed {name}" in open(rec).read(), 20), open(rec).read()


@pytest.mark.parametrize("directive,problem", [
    ("MDNotifyCmd /bin/false", "urn:org:apache:httpd:log:AH10108:"),
    ("MDMessageCmd /bin/false", "urn:org:apache:httpd:log:AH10109:"),
])
def test_failing_command_is_the_jobs_last_problem(ca_sb, directive, problem):
    """A failing MDNotifyCmd/MDMessageCmd is recorded in the job's `last`
    with the C module's log id as problem type (issue 10.14)."""
    name = "cmdfail.example.org"
    ca_sb.start_httpd(site(ca_sb, name) + directive + "\n")
    assert wait_for(lambda: (job(ca_sb, name).get("last") or {}).get("problem") == problem, 60), \
        (job(ca_sb, name), ca_sb.error_log()[-2000:])
    assert "/bin/false failed with exit code 1." in job(ca_sb, name)["last"]["detail"]


@pytest.mark.parametrize("which", ["ours", "c"])
def test_challenge_setup_is_asked_again_after_a_veto(ca_sb, c_module, which):
    """A vetoed challenge-setup event (its MDMessageCmd failed) is fired
    again when the retry sets up the same challenge, and only then does
    the CA validate (issue 24.6; issue 10.15 had it fire once, which let
    the retry ask the CA without the command's consent). The C module does
    the same: both modules run here."""
    name = "once.example.org"
    rec = ca_sb.path("events.log")
    mark = ca_sb.path("vetoed-once")
    script = ca_sb.path("veto-once.sh")
    with open(script, "w") as f:
        f.write(f"""#!/bin/sh
echo "$*" >> {rec}
case "$1" in challenge-setup*)
  [ -e {mark} ] || {{ touch {mark}; exit 1; }} ;;
esac
exit 0
""")
    os.chmod(script, 0o755)
    os.chmod(ca_sb.root, 0o777)
    module = c_module if which == "c" else None
    ca_sb.start_httpd(site(ca_sb, name) + f"MDMessageCmd {script}\nMDRetryDelay 1s\n", module=module)
    obtain(ca_sb, name)
    events = open(rec).read().splitlines()
    setups = [e for e in events if e.startswith("challenge-setup")]
    assert len(setups) == 2, events
    kinds = [e.split()[0].split(":")[0] for e in events]
    assert kinds[:5] == ["renewing", "challenge-setup", "errored", "challenge-setup", "renewed"], events


def test_backoff_when_ca_is_down_and_recovery(ca_sb):
    name = "down.example.org"
    ca_sb.stop_ca()
    body = site(ca_sb, name) + "\nMDRetryDelay 1s\n"
    ca_sb.start_httpd(body)
    assert wait_for(lambda: job(ca_sb, name).get("errors", 0) >= 2, 30), ca_sb.error_log()[-3000:]
    j = job(ca_sb, name)
    assert j["last"]["status"] in (111, 20014)
    assert "Unsuccessful in contacting ACME server" in j["last"]["detail"]
    assert "AH10056: processing down.example.org" in ca_sb.error_log()
    assert "AH10057: down.example.org: encountered error for the" in ca_sb.error_log()
    # the CA comes back on the same port: the next try succeeds
    ca_sb.start_ca()
    obtain(ca_sb, name, timeout=90)
    assert job(ca_sb, name)["errors"] == 0


def test_renewal_when_window_says_due(ca_sb):
    name = "ren.example.org"
    ca_sb.start_httpd(site(ca_sb, name))
    obtain(ca_sb, name)
    ca_sb.start_httpd()  # activate the first certificate
    assert wait_for(lambda: https_get(ca_sb, name)[0] == 200, 20)
    first = https_get(ca_sb, name)[1]
    # a renew window longer than the certificate's life makes renewal due now
    ca_sb.start_httpd(site(ca_sb, name, md_body="  MDRenewWindow 3000d"))
    obtain(ca_sb, name)
    ca_sb.start_httpd()
    assert wait_for(lambda: https_get(ca_sb, name)[1] != first, 20)
    assert os.path.isdir(ca_sb.path("md", "archive", f"{name}.1"))


def test_failover_to_the_next_ca(ca_sb):
    name = "fo.example.org"
    dead = f"https://localhost:{ca_sb.dns_port}/no-acme-here"
    body = site(ca_sb, name, md_body=f"  MDCertificateAuthority {dead} {ca_sb.ca_url}") \
        + "\nMDRetryDelay 1s\nMDRetryFailover 1\n"
    ca_sb.start_httpd(body)
    obtain(ca_sb, name, timeout=90)
    md = json.load(open(ca_sb.path("md", "staging", name, "md.json")))
    assert md["ca"]["url"] == ca_sb.ca_url
    assert "failing over to CA " + ca_sb.ca_url in ca_sb.error_log()


def test_renewing_event_vetoes(ca_sb):
    name = "veto.example.org"
    script = ca_sb.path("veto.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n[ \"$1\" = renewing ] && { echo 'not now' >&2; exit 3; }\nexit 0\n")
    os.chmod(script, 0o755)
    ca_sb.start_httpd(site(ca_sb, name) + f"\nMDMessageCmd {script}\n", log_level="warn md:info")
    assert wait_for(lambda: "AH10060" in ca_sb.error_log(), 20), ca_sb.error_log()[-2000:]
    log = ca_sb.error_log()
    assert f"AH10060: {name}: event-handler for 'renewing' returned" in log
    assert f"cmd({script}) stderr: not now" in log
    time.sleep(1)
    assert not staged_ok(ca_sb, name)
