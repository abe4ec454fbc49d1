"""Several httpd nodes on one shared store (issue 15, `MDClusterNode`):
three httpd instances on loopback with their own ports and configurations
and one `MDStoreDir`, a round-robin TCP balancer in front of their http and
https ports (which is where pebble validates), pebble behind a front that
counts orders and account registrations, and five MDs (three validated by
http-01, two by tls-alpn-01)."""

import os
import random
import socket
import ssl
import threading
import time


from helpers import wait_for
from cluster import NAMES, all_served, check_store, md_status, order_names


def test_cluster_one_order_per_md_and_every_node_serves_all(cluster_factory):
    c = cluster_factory()
    c.start()
    assert wait_for(lambda: all_served(c.nodes), 90, 0.5), c.logs()
    # exactly one order per MD at the CA, one account for the cluster
    assert order_names(c.front) == sorted(NAMES), order_names(c.front)
    assert len(c.front.accounts) == 1, len(c.front.accounts)
    # the challenges reached every node through the balancer, and every
    # node answered (one order each, so no validation failed)
    for b in c.balancers:
        assert all(v > 0 for v in b.picked.values()), b.picked
    # no node restarted for it (httpd logs this line at every (re)start)
    for n in c.nodes:
        assert n.error_log().count("resuming normal operations") == 1
    # events: `renewed` once per MD in the cluster, on the node that renewed
    renewed = [e for e in c.event_lines() if e[1] == "renewed"]
    assert sorted(e[2] for e in renewed) == sorted(NAMES), renewed
    # md-status names the node, and no lease is left once all is done
    st = md_status(c.nodes[1])
    for md in st["managed-domains"]:
        assert md["cluster"]["node"] == "node1"
        assert md["cluster"]["lease"] is None, md["cluster"]
        assert md["renewal"]["finished"] is True
    # A restart of one node installs the staged sets into domains/; the
    # others notice, fire `installed` (as root, in their parent) and pick
    # the sets up from domains/ for their new processes.
    c.nodes[0].apachectl("-k", "graceful")
    assert wait_for(lambda: all(os.path.exists(os.path.join(c.store, "domains", n, "pubcert.pem"))
                                for n in NAMES), 30), c.logs()

    def installed_on_each():
        inst = [(e[0], e[2]) for e in c.event_lines() if e[1] == "installed"]
        return sorted(inst) == sorted((f"node{i}", n) for i in range(3) for n in NAMES)

    assert wait_for(installed_on_each, 30), (
        [" ".join(e) for e in c.event_lines() if e[1] == "installed"],
        [line[line.find("] ", 40):][:160] for n in c.nodes for line in n.error_log().splitlines()
         if "installed renewed" in line or "AH00489" in line or "AH10068" in line])
    time.sleep(2)
    assert all_served(c.nodes), c.logs()
    assert order_names(c.front) == sorted(NAMES)
    for i in (1, 2):
        assert "another node of the cluster installed renewed certificates" in c.nodes[i].error_log()


def test_cluster_lease_holder_killed_mid_order(cluster_factory):
    # the CA takes up to 4 s per validation: orders stay open long enough
    c = cluster_factory(ca_env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "4"})
    c.start()
    victim = {}

    def holder_mid_order():
        for name in NAMES:
            lease = c.lease(name)
            if lease and os.path.exists(os.path.join(c.store, "staging", name, "order.json")) \
                    and not os.path.exists(os.path.join(c.store, "staging", name, "pubcert.pem")):
                victim.update(lease, md=name)
                return True
        return False

    assert wait_for(holder_mid_order, 60, 0.05), c.logs()
    dead = c.nodes[int(victim["node"][len("node"):])]
    c.kill(dead)
    killed_at = time.time()
    alive = [n for n in c.nodes if n is not dead]
    # another node takes the lease over once it ran out and finishes
    assert wait_for(lambda: (c.lease(victim["md"]) or {}).get("node", victim["node"]) != victim["node"]
                    or os.path.exists(os.path.join(c.store, "staging", victim["md"], "pubcert.pem")),
                    c.lease_time + 5 + 10, 0.2), c.logs()
    took_over = time.time() - killed_at
    assert wait_for(lambda: all_served(alive), 90, 0.5), c.logs()
    done = time.time() - killed_at
    # lease time + skew + one check (1 s) is when the others look again
    assert took_over <= c.lease_time + 5 + 1 + 3, took_over
    print(f"killed {victim['node']} holding {victim['md']}: taken over after {took_over:.1f} s, "
          f"all served after {done:.1f} s")
    # no MD without a certificate, one account
    assert len(c.front.accounts) == 1, len(c.front.accounts)
    for n in alive:
        assert "exit signal" not in n.error_log()


def test_cluster_restarted_together_while_renewing(cluster_factory):
    # 5-minute certificates renewed when less than 99% is left: renewals run
    # all the time, and every restart finds staged sets to install
    c = cluster_factory(ca_env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "1"},
                        validity=300, extra="MDRenewWindow 99%")
    c.start()
    failures, done, count = [], threading.Event(), [0]

    def client():
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        while not done.is_set():
            name = random.choice(NAMES)
            try:
                with socket.create_connection(("127.0.0.1", c.ca.https_port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname=name):
                        count[0] += 1
            except OSError as e:
                failures.append(f"{name}: {e}")
            time.sleep(0.05)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    try:
        # ten rounds at least, and on until renewals have been ordered again
        # (beyond the first certificates) while the nodes restart
        for i in range(30):
            c.graceful_all()
            time.sleep(1.5)
            if i >= 9 and len(c.front.orders) > len(NAMES) + 2:
                break
    finally:
        time.sleep(1)
        done.set()
        t.join(30)
    assert not failures, (failures[:5], count[0])
    assert count[0] > 50
    # renewals went on during the restarts
    assert len(c.front.orders) > len(NAMES), order_names(c.front)
    assert wait_for(lambda: all_served(c.nodes), 120, 0.5), c.logs()
    assert check_store(c.store) == []
    assert len(c.front.accounts) == 1, len(c.front.accounts)
    accounts = os.path.join(c.store, "accounts")
    assert len(os.listdir(accounts)) <= 1 if os.path.isdir(accounts) else True
    for n in c.nodes:
        log = n.error_log()
        assert "exit signal" not in log
        assert "internal error" not in log
