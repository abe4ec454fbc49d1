"""Several httpd nodes on one shared store behind a balancer (issue 15,
`MDClusterNode`), and what the cluster tests look at."""

from acme_front import AcmeFront
from balancer import Balancer
from helpers import wait_for
from sandbox import Sandbox
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import threading


NAMES = [f"c{i}.example.org" for i in range(5)]


ALPN = set(NAMES[3:])  # validated with tls-alpn-01, the others with http-01


class Cluster:
    def __init__(self, module, nodes=3, lease=10, ca_env=None, validity=None, extra="",
                 etcd=None):
        self.ca = Sandbox(module=module)
        # the store in etcd (issue 27): each node with a cache of its own
        self.etcd = etcd
        self.nodes = []
        self.balancers = []
        self.front = None
        self.lease_time = lease
        self.extra = extra
        try:
            self.ca.start_ca(env=ca_env, validity=validity)
            self.front = AcmeFront(self.ca, renewal_info=False)
            self.store = self.ca.path("shared-md")
            self.events = self.ca.path("events.log")
            open(self.events, "w").close()
            os.chmod(self.events, 0o666)
            self.nodes = [Sandbox(module=module) for _ in range(nodes)]
            self.balancers = [
                Balancer(self.ca.http_port, [n.http_port for n in self.nodes]),
                Balancer(self.ca.https_port, [n.https_port for n in self.nodes]),
            ]
            for i, n in enumerate(self.nodes):
                n.write_conf(self.conf(i, n), base=False)
        except BaseException:
            self.stop()
            raise

    def conf(self, i, node):
        script = self.ca.path(f"event-node{i}.sh")
        with open(script, "w") as f:
            f.write(f'#!/bin/sh\necho "node{i} $*" >> {self.events}\n')
        os.chmod(script, 0o755)
        base = (node.base_conf()
                .replace(node.ca_url, self.front.url)
                .replace(node.ca_cert, self.ca.ca_cert))
        if self.etcd:
            from etcd_cluster import seal_key
            key = self.ca.path("seal.key")
            if not os.path.exists(key):
                seal_key(key)
            base += (f"\nMDStoreBackend etcd {self.etcd.endpoints}\n"
                     f"MDStoreEtcdSealKey {key}\n")
        else:
            base = base.replace(f"MDStoreDir {node.path('md')}", f"MDStoreDir {self.store}")
        out = [base,
               f"MDClusterNode node{i}",
               f"MDClusterLease {self.lease_time}",
               "MDRetryDelay 2s",
               f"MDMessageCmd {script}",
               "Protocols http/1.1 acme-tls/1",
               "<Location /md-status>\n  SetHandler md-status\n</Location>",
               self.extra]
        for name in NAMES:
            if name in ALPN:
                out.append(f"<MDomain {name}>\n  MDCAChallenges tls-alpn-01\n</MDomain>")
            else:
                out.append(f"<MDomain {name}>\n  MDCAChallenges http-01\n</MDomain>")
            out.append(f"<VirtualHost 127.0.0.1:{node.http_port}>\n  ServerName {name}\n"
                       "</VirtualHost>")
            out.append(f"<VirtualHost 127.0.0.1:{node.https_port}>\n  ServerName {name}\n"
                       "  SSLEngine on\n</VirtualHost>")
        return "\n".join(out) + "\n"

    def start(self, nodes=None):
        nodes = self.nodes if nodes is None else nodes
        errors = []

        def one(n):
            try:
                n.start_httpd()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        ts = [threading.Thread(target=one, args=(n,)) for n in nodes]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors

    def graceful_all(self):
        ts = [threading.Thread(target=n.apachectl, args=("-k", "graceful")) for n in self.nodes]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def kill(self, node):
        pid = node.pid()
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        wait_for(lambda: not Sandbox._alive(pid), 10, 0.05)

    def lease(self, name):
        if self.etcd:
            return self.etcd.json(f"/mod_md/leases/md@{name}.json")
        try:
            with open(os.path.join(self.store, "leases", f"md@{name}.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def event_lines(self):
        with open(self.events) as f:
            return [line.split() for line in f if line.strip()]

    def logs(self):
        return "\n".join(f"--- node{i}\n{n.error_log()[-3000:]}" for i, n in enumerate(self.nodes))

    def stop(self):
        for b in self.balancers:
            b.stop()
        for n in self.nodes:
            n.stop()
        if self.front:
            self.front.stop()
        self.ca.stop()




def issuer(der):
    r = subprocess.run(["openssl", "x509", "-inform", "der", "-noout", "-issuer"],
                       input=der, capture_output=True)
    return r.stdout.decode()


def serves_ca_cert(node, name):
    """The node answers `name` over TLS with a certificate from pebble and a 200."""
    try:
        status, der = node.https_request(name, timeout=5)
    except OSError:
        return False
    return status == 200 and "Pebble" in issuer(der)


def all_served(nodes):
    return all(serves_ca_cert(n, name) for n in nodes for name in NAMES)


def md_status(node):
    with socket.create_connection(("127.0.0.1", node.http_port), timeout=10) as s:
        s.sendall(b"GET /md-status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def order_names(front):
    return sorted(i["value"] for o in front.orders for i in o["identifiers"])


def check_store(store):
    """Every JSON file parses, every key matches its certificate (the
    staged keys are encrypted with the store's key, as the C module does)."""
    with open(os.path.join(store, "md_store.json")) as f:
        k = json.load(f)["key"]
    passphrase = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))
    problems = []
    for dirpath, _dirs, files in os.walk(store):
        for f in files:
            p = os.path.join(dirpath, f)
            if f.endswith(".json") and ".tmp." not in f:
                try:
                    with open(p) as fh:
                        json.load(fh)
                except ValueError as e:
                    problems.append(f"{p}: {e}")
        if os.path.basename(os.path.dirname(dirpath)) in ("domains", "staging") \
                and os.path.exists(os.path.join(dirpath, "pubcert.pem")):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                ctx.load_cert_chain(os.path.join(dirpath, "pubcert.pem"),
                                    os.path.join(dirpath, "privkey.pem"), password=passphrase)
            except (OSError, ssl.SSLError) as e:
                problems.append(f"{dirpath}: {e}")
    return problems
