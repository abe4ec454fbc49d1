"""A restart while the CA validates does not fail the order (issue 25): the
challenge data stays answerable until the CA has decided, whichever process
stops, and the resumed run carries the order on. pebble validates with a
delay (PEBBLE_VA_SLEEPTIME); a graceful restart comes while an http-01 and a
tls-alpn-01 validation are in flight; the authorizations pebble set invalid
are counted in its log."""

import os
import re
import time

import pytest

from acme_front import AcmeFront
from cluster import Cluster, md_status as node_status
from helpers import STATUS, md_status
from helpers import wait_for

HTTP, ALPN = "rv-http.example.org", "rv-alpn.example.org"
# no reuse of valid authorizations: each order is validated
SLOW_CA = {"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "6", "PEBBLE_AUTHZREUSE": "0"}


def invalid_authz(ca):
    """Authorizations pebble set invalid (its log says each once)."""
    try:
        with open(ca.path("logs", "pebble.log")) as f:
            return len(re.findall(r"authz \S+ set INVALID", f.read()))
    except OSError:
        return 0


def conf(sb, front):
    return f"""
MDCertificateAuthority {front.url}
MDRetryDelay 2s
Protocols http/1.1 acme-tls/1
<MDomain {HTTP} www.{HTTP}>
  MDCAChallenges http-01
</MDomain>
<MDomain {ALPN} mail.{ALPN}>
  MDCAChallenges tls-alpn-01
</MDomain>
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName {HTTP}
  ServerAlias www.{HTTP}
</VirtualHost>
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {HTTP}
  ServerAlias www.{HTTP}
  SSLEngine on
</VirtualHost>
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {ALPN}
  SSLEngine on
</VirtualHost>
{STATUS}
"""


def staged_in(store, name):
    return os.path.exists(os.path.join(store, "staging", name, "pubcert.pem"))


def no_long_backoff(status_of_md):
    """No MD waits a day (or hours) for its next try."""
    r = status_of_md.get("renewal") or {}
    return r.get("errors", 0) == 0 or "next-run" not in r or \
        time.mktime(time.strptime(r["next-run"], "%a, %d %b %Y %H:%M:%S GMT")) - time.mktime(time.gmtime()) < 600


@pytest.fixture
def slow_sb(sb):
    sb.start_ca(env=SLOW_CA)
    front = AcmeFront(sb, renewal_info=False)
    yield sb, front
    front.stop()


def test_restart_while_the_ca_validates(slow_sb):
    sb, front = slow_sb
    sb.start_httpd(conf(sb, front))
    store = sb.path("md")
    for rnd in range(2):
        # both validations asked for, neither decided yet
        asked = len(front.challenges)
        assert wait_for(lambda: len(front.challenges) >= asked + 2, 60, 0.05), sb.error_log()[-3000:]
        if staged_in(store, HTTP) or staged_in(store, ALPN):
            pytest.skip("pebble validated before the restart came")
        sb.start_httpd()
        restarted = time.time()
        assert wait_for(lambda: staged_in(store, HTTP) and staged_in(store, ALPN), 60), sb.error_log()[-4000:]
        print(f"round {rnd}: staged {time.time() - restarted:.1f} s after the restart")
        assert invalid_authz(sb) == 0, sb.error_log()[-4000:]
        for name in (HTTP, ALPN):
            assert no_long_backoff(md_status(sb, name)), md_status(sb, name)
        if rnd == 0:
            # again, for renewals this time: every MD renews at once
            sb.start_httpd(conf(sb, front).replace("MDRetryDelay 2s", "MDRetryDelay 2s\nMDRenewWindow 3000d"))
            for name in (HTTP, ALPN):
                assert wait_for(lambda: not staged_in(store, name), 20)


def test_restart_of_a_cluster_node_while_the_ca_validates(module):
    c = Cluster(module, nodes=2, ca_env=SLOW_CA)
    try:
        c.start()
        # a node whose renewal waits for the CA's validation
        assert wait_for(lambda: len(c.front.challenges) >= 2, 60, 0.05), c.logs()
        holders = {(c.lease(n) or {}).get("node") for n in ("c0.example.org", "c3.example.org")}
        holder = next((h for h in holders if h), "node0")
        node = c.nodes[int(holder[len("node"):])]
        node.start_httpd()
        restarted = time.time()
        names = [f"c{i}.example.org" for i in range(5)]
        assert wait_for(lambda: all(staged_in(c.store, n) for n in names), 60), c.logs()
        print(f"staged {time.time() - restarted:.1f} s after the restart of {holder}")
        assert invalid_authz(c.ca) == 0, c.logs()
        for n in c.nodes:
            for m in node_status(n)["managed-domains"]:
                assert no_long_backoff(m), m
    finally:
        c.stop()
