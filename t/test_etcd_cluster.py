"""The store on etcd (issue 27): a 3-member etcd cluster on loopback, three
httpd nodes with separate local caches (`MDStoreDir`) and the store in etcd
(`MDStoreBackend etcd`), a round-robin balancer in front of their http and
https ports (where pebble validates), pebble behind a front that counts
orders and accounts, and five MDs (three by http-01, two by tls-alpn-01)."""

import json
import os
import subprocess
import tempfile
import time

import pytest

from cluster import NAMES, all_served, check_store, md_status, order_names, serves_ca_cert
from etcd_cluster import EtcdCluster
from helpers import wait_for


@pytest.fixture
def etcd():
    c = EtcdCluster(3)
    yield c
    c.stop()


def test_etcd_one_order_per_md_and_every_node_serves_all_hot(cluster_factory, etcd, a2md):
    c = cluster_factory(etcd=etcd)
    c.start()
    # when each MD's set appears in etcd, and when every node serves it
    staged_at, served_at = {}, {}
    end = time.time() + 90
    while len(served_at) < len(NAMES) and time.time() < end:
        for name in NAMES:
            if name not in staged_at and staged_in_etcd(etcd, name):
                staged_at[name] = time.time()
            if name in staged_at and name not in served_at \
                    and all(serves_ca_cert(n, name) for n in c.nodes):
                served_at[name] = time.time()
        time.sleep(0.1)
    assert len(served_at) == len(NAMES), c.logs() + etcd.logs()
    # served hot by every node's children within 2 s of the set landing in
    # etcd (the polling here adds up to a few tenths)
    lag = {n: served_at[n] - staged_at[n] for n in NAMES}
    print("staged in etcd -> served by all nodes:", {n: round(v, 2) for n, v in lag.items()})
    assert max(lag.values()) <= 2.5, lag
    assert all_served(c.nodes)
    # one order per MD, one account for the cluster
    assert order_names(c.front) == sorted(NAMES), order_names(c.front)
    assert len(c.front.accounts) == 1, len(c.front.accounts)
    for b in c.balancers:
        assert all(v > 0 for v in b.picked.values()), b.picked
    # served hot: no node restarted
    for n in c.nodes:
        assert n.error_log().count("resuming normal operations") == 1
    renewed = [e for e in c.event_lines() if e[1] == "renewed"]
    assert sorted(e[2] for e in renewed) == sorted(NAMES), renewed
    st = md_status(c.nodes[2])
    for md in st["managed-domains"]:
        assert md["cluster"]["node"] == "node2"
        assert md["cluster"]["lease"] is None, md["cluster"]
        assert md["renewal"]["finished"] is True
    # everything lives in etcd, private keys sealed; the nodes' own
    # directories hold no staged sets
    items = etcd.items()
    for name in NAMES:
        assert f"/mod_md/staging/{name}/pubcert.pem" in items, sorted(items)
    keys = [k for k in items if k.endswith("privkey.pem")]
    assert keys
    for k, v in items.items():
        assert b"PRIVATE KEY" not in v, k
    for n in c.nodes:
        assert not os.path.exists(n.path("md", "staging", NAMES[0], "pubcert.pem"))
    # a restart of one node installs the sets (in etcd) and into its cache;
    # the others notice and restart to load them into theirs
    c.nodes[0].apachectl("-k", "graceful")

    def installed_everywhere():
        return all(os.path.exists(n.path("md", "domains", name, "pubcert.pem"))
                   for n in c.nodes for name in NAMES)

    assert wait_for(installed_everywhere, 60), c.logs()
    items = etcd.items()
    assert len({k.split("/")[3] for k in items if k.startswith("/mod_md/accounts/")}) == 1, \
        sorted(items)
    for name in NAMES:
        assert etcd.file(f"/mod_md/domains/{name}/pubcert.pem"), name
        assert f"/mod_md/staging/{name}/pubcert.pem" not in etcd.items()
    mode = os.stat(c.nodes[1].path("md", "domains", NAMES[0], "privkey.pem")).st_mode & 0o777
    assert mode == 0o600, oct(mode)
    time.sleep(2)
    assert all_served(c.nodes), c.logs()
    assert order_names(c.front) == sorted(NAMES)
    for i in (1, 2):
        assert "another node of the cluster installed renewed certificates" in c.nodes[i].error_log()
    # a2md finds the store in etcd from the server's configuration: lists
    # the MDs, and a renewal it asks for is served within seconds
    confdir = c.ca.path("etc-apache2")
    os.makedirs(confdir, exist_ok=True)
    with open(os.path.join(confdir, "apache2.conf"), "w") as f:
        f.write(f"MDStoreDir {c.ca.path('a2md-cache')}\nMDStoreBackend etcd {etcd.endpoints}\n"
                f"MDStoreEtcdSealKey {c.ca.path('seal.key')}\n")
    env = dict(os.environ, APACHE_CONFDIR=confdir)
    r = subprocess.run([a2md, "list"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r
    for name in NAMES:
        row = next(line for line in r.stdout.splitlines() if line.startswith(name))
        assert row.rstrip().endswith("ok"), r.stdout
    before = issuer_serial(c.nodes[1], NAMES[0])
    r = subprocess.run([a2md, "renew", NAMES[0], "--wait", "60"], capture_output=True, text=True,
                       env=env, timeout=90)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == 0, (r, c.logs())
    assert wait_for(lambda: all(issuer_serial(n, NAMES[0]) != before for n in c.nodes), 5), c.logs()


def issuer_serial(node, name):
    _status, der = node.https_request(name, timeout=5)
    return subprocess.run(["openssl", "x509", "-inform", "der", "-noout", "-serial"], input=der,
                          capture_output=True).stdout


def staged_in_etcd(etcd, name, file="pubcert.pem"):
    return etcd.file(f"/mod_md/staging/{name}/{file}") is not None


def test_etcd_lease_holder_killed_mid_order(cluster_factory, etcd):
    # the CA takes up to 4 s per validation: orders stay open long enough
    c = cluster_factory(etcd=etcd, ca_env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "4"})
    c.start()
    victim = {}

    def holder_mid_order():
        for name in NAMES:
            lease = c.lease(name)
            if lease and staged_in_etcd(etcd, name, "order.json") \
                    and not staged_in_etcd(etcd, name):
                victim.update(lease, md=name)
                return True
        return False

    assert wait_for(holder_mid_order, 60, 0.05), c.logs()
    dead = c.nodes[int(victim["node"][len("node"):])]
    c.kill(dead)
    killed_at = time.time()
    alive = [n for n in c.nodes if n is not dead]
    # etcd expires the dead holder's lease; another node takes over
    assert wait_for(lambda: (c.lease(victim["md"]) or {}).get("node", victim["node"]) != victim["node"]
                    or staged_in_etcd(etcd, victim["md"]), c.lease_time + 5 + 10, 0.2), c.logs()
    took_over = time.time() - killed_at
    assert wait_for(lambda: all_served(alive), 90, 0.5), c.logs()
    print(f"killed {victim['node']} holding {victim['md']}: taken over after {took_over:.1f} s")
    assert took_over <= c.lease_time + 5 + 1 + 3, took_over
    assert len(c.front.accounts) == 1, len(c.front.accounts)
    for n in alive:
        assert "exit signal" not in n.error_log()


def test_etcd_one_member_down_changes_nothing(cluster_factory, etcd):
    c = cluster_factory(etcd=etcd, ca_env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "1"})
    c.start()
    # one member goes while the first orders run: quorum holds
    assert wait_for(lambda: any(c.lease(n) for n in NAMES), 60, 0.05), c.logs()
    etcd.stop_member(0)
    assert wait_for(lambda: all_served(c.nodes), 90, 0.5), c.logs() + etcd.logs()
    assert order_names(c.front) == sorted(NAMES), order_names(c.front)
    assert len(c.front.accounts) == 1
    for n in c.nodes:
        assert n.error_log().count("resuming normal operations") == 1


def test_etcd_away_for_30s_during_renewals(cluster_factory, etcd):
    c = cluster_factory(etcd=etcd, ca_env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "2"})
    c.start()
    assert wait_for(lambda: any(staged_in_etcd(etcd, n, "order.json") for n in NAMES), 60, 0.05), \
        c.logs()
    etcd.stop_all()
    gone = time.time()
    handshakes, failures = 0, []
    while time.time() - gone < 30:
        for n in c.nodes:
            for name in NAMES:
                try:
                    n.https_request(name, timeout=5)
                    handshakes += 1
                except OSError as e:
                    failures.append(f"{name}: {e}")
        time.sleep(0.5)
    # httpd served all along (its fallbacks or what it had), and md-status
    # says why nothing is renewed
    assert not failures, failures[:5]
    st = md_status(c.nodes[0])
    for md in st["managed-domains"]:
        assert any("etcd cannot be reached" in p for p in md["store"]["problems"]), md.get("store")
    assert handshakes > 100
    for n in c.nodes:
        assert n.pid() and "exit signal" not in n.error_log()
    etcd.start_all()
    assert wait_for(lambda: all_served(c.nodes), 120, 0.5), c.logs() + etcd.logs()
    assert len(c.front.accounts) == 1, len(c.front.accounts)
    assert wait_for(lambda: all("store" not in md for md in md_status(c.nodes[0])["managed-domains"]),
                    10, 0.5)
    # it said what was wrong, and not on every request
    log = "\n".join(n.error_log() for n in c.nodes)
    assert "etcd cannot be reached" in log
    assert log.count("etcd cannot be reached") < 200, log.count("etcd cannot be reached")


def test_etcd_nodes_restarted_together_while_renewing(cluster_factory, etcd):
    # 5-minute certificates renewed when less than 99% is left
    c = cluster_factory(etcd=etcd, ca_env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "1"},
                        validity=300, extra="MDRenewWindow 99%")
    c.start()
    for i in range(30):
        c.graceful_all()
        time.sleep(1.5)
        if i >= 9 and len(c.front.orders) > len(NAMES) + 2:
            break
    assert wait_for(lambda: all_served(c.nodes), 90, 0.5), c.logs()
    assert len(c.front.orders) > len(NAMES), "no renewal ran during the restarts"
    assert len(c.front.accounts) == 1, len(c.front.accounts)
    # every record parses, every key matches its certificate: in etcd, and
    # in each node's cache
    with tempfile.TemporaryDirectory() as d:
        etcd.export(d, c.ca.path("seal.key"))
        assert check_store(d) == []
    for n in c.nodes:
        assert check_store(n.path("md")) == [], n.path("md")


def test_etcd_away_at_start_serves_from_the_local_cache(cluster_factory, etcd):
    c = cluster_factory(etcd=etcd)
    c.start()
    assert wait_for(lambda: all_served(c.nodes), 90, 0.5), c.logs()
    c.graceful_all()
    assert wait_for(lambda: all(os.path.exists(n.path("md", "domains", name, "pubcert.pem"))
                                for n in c.nodes for name in NAMES), 60), c.logs()
    etcd.stop_all()
    n = c.nodes[0]
    n.stop_httpd()
    n.start_httpd()
    # it starts, says why it renews nothing, and serves what it had
    assert wait_for(lambda: all(serves_ca_cert(n, name) for name in NAMES), 30, 0.5), n.error_log()
    assert "from its local cache" in n.error_log() or "in its local cache" in n.error_log()
    etcd.start_all()
    time.sleep(3)
    assert all_served(c.nodes), c.logs()
    assert order_names(c.front) == sorted(NAMES)
