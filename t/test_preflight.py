"""Challenge pre-flight (issue 16, point 4): before the CA is asked to
validate an http-01 or tls-alpn-01 challenge, the module asks its own
listener the CA's question. A setup that cannot answer is reported in
md-status and the log, with an `errored` event, and the CA is not asked
(the front counts the challenge validations the module asks pebble for)."""

import os

import pytest

from acme_front import AcmeFront
from sandbox import free_ports
from helpers import events, events_cmd
from helpers import STATUS, md_status
from helpers import job, obtain, wait_for

NAME = "preflight.example.org"


@pytest.fixture
def front_sb(ca_sb):
    f = AcmeFront(ca_sb, renewal_info=False)
    yield ca_sb, f
    f.stop()


def conf(sb, front, port_map, extra="", vhost_extra="", tls_only_port=None):
    """An MD whose http-01 answers are looked for on the port that
    `port_map` names; `tls_only_port` listens with only an SSL vhost."""
    tls_only = ""
    if tls_only_port:
        tls_only = f"""
Listen 127.0.0.1:{tls_only_port}
<VirtualHost 127.0.0.1:{tls_only_port}>
  ServerName {NAME}
  SSLEngine on
</VirtualHost>
"""
    return f"""
MDCertificateAuthority {front.url}
MDPortMap {port_map}
{events_cmd(sb)}MDRetryDelay 2s
{extra}
<MDomain {NAME}>
  MDCAChallenges http-01
</MDomain>
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {NAME}
  SSLEngine on
{vhost_extra}
</VirtualHost>
{tls_only}
{STATUS}
"""


def last_error(sb):
    return (md_status(sb, NAME).get("renewal") or {}).get("last") or {}


def test_http01_to_a_port_that_speaks_tls_never_reaches_the_ca(front_sb):
    sb, front = front_sb
    (tls_port,) = free_ports(1)
    sb.start_httpd(conf(sb, front, f"http:{tls_port} https:{sb.https_port}", tls_only_port=tls_port))
    assert wait_for(lambda: "pre-flight" in last_error(sb).get("detail", ""), 60), \
        (md_status(sb, NAME), sb.error_log()[-3000:])
    err = last_error(sb)
    assert err.get("problem") == "challenge-preflight-failure", err
    detail = err["detail"]
    assert f"http-01 pre-flight for {NAME} failed, the CA was not asked" in detail
    assert f"GET http://{NAME}/.well-known/acme-challenge/" in detail
    assert f"port {tls_port} speaks TLS" in detail, detail
    assert "MDChallengePreflight off" in detail
    # said in the log and by an errored event; retried by the job as any error
    assert "pre-flight for preflight.example.org failed" in sb.error_log()
    assert wait_for(lambda: f"errored {NAME}" in events(sb), 20), events(sb)
    assert wait_for(lambda: job(sb, NAME).get("errors", 0) >= 2, 30), job(sb, NAME)
    # the CA was never asked to validate: no failed authorization at pebble
    assert front.challenges == [], front.challenges
    assert not os.path.exists(sb.path("md", "staging", NAME, "pubcert.pem"))

    # corrected (the port pebble validates on): the check passes, the CA is
    # asked once per authorization, the certificate comes
    sb.stop_httpd()
    sb.start_httpd(conf(sb, front, f"http:{sb.http_port} https:{sb.https_port}"))
    obtain(sb, NAME)
    assert len(front.challenges) == 1, front.challenges
    assert f"http-01 pre-flight for {NAME}: GET http://{NAME}/.well-known/acme-challenge/" in sb.error_log()


def test_preflight_off_asks_the_ca(front_sb):
    sb, front = front_sb
    (tls_port,) = free_ports(1)
    # the same wrong MDPortMap, but pebble validates on the real http port,
    # so without the check the certificate comes
    sb.start_httpd(conf(sb, front, f"http:{tls_port} https:{sb.https_port}",
                        extra="MDChallengePreflight off", tls_only_port=tls_port))
    obtain(sb, NAME)
    assert len(front.challenges) == 1
    assert "pre-flight" not in sb.error_log()


def test_tls_alpn01_to_a_plain_http_port(front_sb):
    sb, front = front_sb
    # MDPortMap names the plain-http port as the local https port (a vhost
    # that does not allow acme-tls/1 is left out before, as in the C module)
    body = conf(sb, front, f"http:{sb.http_port} https:{sb.http_port}",
                vhost_extra="  Protocols http/1.1 acme-tls/1").replace(
        "MDCAChallenges http-01", "MDCAChallenges tls-alpn-01")
    sb.start_httpd(body)
    assert wait_for(lambda: "pre-flight" in last_error(sb).get("detail", ""), 60), \
        (md_status(sb, NAME), sb.error_log()[-3000:])
    detail = last_error(sb)["detail"]
    assert f"tls-alpn-01 pre-flight for {NAME} failed" in detail
    assert f"TLS to 127.0.0.1:{sb.http_port} (MDPortMap https:{sb.http_port})" in detail, detail
    assert "TLS handshake failed" in detail, detail
    assert front.challenges == []
