#!/usr/bin/env python3
"""Benchmark (issues 5 and 14): httpd start-up time and resident memory of
a child with 1000 managed domains, ours vs the C module, alternating,
configured as users write it: an `SSLEngine on` vhost per MD beside the
plain one. Each round starts each module twice: on a fresh store (every MD
needs its fallback certificate for mod_ssl) and again on the store that
start left (warm). The clock runs from `apache2 -k start` until httpd
answers on its https port. Target: ratio <= 1.0 for all four figures.
Usage: bench/startup_1000.py [rounds] [N]

A third start (`certified`, issue 25) is on a store where every MD has
an installed certificate and key (one local CA, made once per run): the
store as it is on a server in use, where start-up checks every live set
before mod_ssl gets it. With BENCH_BEFORE=<an earlier build> that build runs
in the same rounds, and the ratios ours/before show what a change costs.

The first figures (issue 5) configured plain http vhosts only, which
spares both modules the fallback certificates."""

import os
import shutil
import socket
import subprocess
import sys
import time

from common import MODULES, Sandbox, build, fresh_store, report, ssl_vhosts, wait_for

N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


def conf(sb):
    names = [f"s{i}.example.org" for i in range(N)]
    out = [f"MDomain {x}" for x in names]
    out.append(ssl_vhosts(sb, names))
    out.append("MDInitialDelay 1h")  # measure start-up, not renewals
    return "\n".join(out)


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def child_rss_kb(parent):
    kids = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    rss = []
    for k in kids:
        try:
            with open(f"/proc/{k}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss.append(int(line.split()[1]))
        except OSError:
            pass
    return max(rss) if rss else 0


def start(sb, label, times, mem, kind):
    t0 = time.time()
    # a fresh start of the C module makes one RSA key per MD before httpd
    # detaches: minutes with 1000 MDs
    r = sb.apachectl("-k", "start", timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{label}: httpd did not start: {r.stderr}")
    # listening, and the pid file written (httpd listens a moment before)
    if not wait_for(lambda: listening(sb.https_port) and sb.pid(), 900, 0.01):
        raise SystemExit(f"{label}: no https listener after 900 s ({kind} store)")
    times[kind][label].append(time.time() - t0)
    time.sleep(1)
    mem[kind][label].append(child_rss_kb(sb.pid()) / 1024)
    sb.stop_httpd()
    # children serving 1000 vhosts take a while to let go of the ports
    ports = (sb.http_port, sb.https_port)
    if not wait_for(lambda: not any(listening(p) for p in ports), 120, 0.1):
        raise SystemExit(f"{label}: httpd still listening 120 s after stop")


def certified_store(sb):
    """A store template in which every MD has a live certificate (RSA 2048,
    as most sites have; one key for all, signed by a local CA, leaf and CA
    in pubcert.pem), made once: (path, seconds it took)."""
    t0 = time.time()
    d = sb.path("certified")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    ca_key, ca, key = (os.path.join(d, x) for x in ("ca.key", "ca.pem", "key.pem"))
    run = lambda *a, **kw: subprocess.run(a, check=True, capture_output=True, **kw)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "30", "-subj", "/CN=Bench CA")
    run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    with open(ca, "rb") as f:
        ca_pem = f.read()
    with open(key, "rb") as f:
        key_pem = f.read()
    store = os.path.join(d, "md")
    for i in range(N):
        name = f"s{i}.example.org"
        md = os.path.join(store, "domains", name)
        os.makedirs(md)
        csr = run("openssl", "req", "-new", "-key", key, "-subj", f"/CN={name}").stdout
        ext = os.path.join(d, "ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:{name}\n")
        leaf = run("openssl", "x509", "-req", "-CA", ca, "-CAkey", ca_key, "-days", "30",
                   "-extfile", ext, input=csr).stdout
        with open(os.path.join(md, "pubcert.pem"), "wb") as f:
            f.write(leaf + ca_pem)
        with open(os.path.join(md, "privkey.pem"), "wb") as f:
            f.write(key_pem)
        os.chmod(os.path.join(md, "privkey.pem"), 0o600)
    return store, time.time() - t0


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    build()
    kinds = ("fresh", "warm", "certified")
    labels = [label for label, _ in MODULES]
    times = {k: {label: [] for label in labels} for k in kinds}
    mem = {k: {label: [] for label in labels} for k in kinds}
    with Sandbox() as sb:
        body = conf(sb)
        template, took = certified_store(sb)
        print(f"(a store with {N} certificates made in {took:.0f} s)")
        for _ in range(rounds):
            for label, mod in MODULES:
                sb.stop_httpd()
                fresh_store(sb)
                sb.write_conf(body, module=mod, log_level="warn")
                for kind in kinds[:2]:
                    start(sb, label, times, mem, kind)
                # the certified store: one start writes what start-up
                # writes once (md.json), the next one is measured
                sb.stop_httpd()
                fresh_store(sb)
                shutil.copytree(template, sb.path("md"), symlinks=True)
                start(sb, label, {"certified": {label: []}}, {"certified": {label: []}}, "certified")
                start(sb, label, times, mem, "certified")
    for kind in kinds:
        report(f"httpd start-up with {N} MDs, SSL vhosts, {kind} store (s)", times[kind], "<= 1.0")
        report(f"resident memory of a child with {N} MDs, SSL vhosts, {kind} store (MiB)",
               mem[kind], "<= 1.0")


if __name__ == "__main__":
    main()
