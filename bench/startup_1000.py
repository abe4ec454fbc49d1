#!/usr/bin/env python3
"""Benchmark (issues 5 and 14): httpd start-up time and resident memory of
a child with 1000 managed domains, ours vs the C module, alternating,
configured as users write it: an `SSLEngine on` vhost per MD beside the
plain one. Each round starts each module twice: on a fresh store (every MD
needs its fallback certificate for mod_ssl) and again on the store that
start left (warm). The clock runs from `apache2 -k start` until httpd
answers on its https port. Target: ratio <= 1.0 for all four figures.
Usage: bench/startup_1000.py [rounds] [N]

The first figures (issue 5) configured plain http vhosts only, which
spares both modules the fallback certificates."""

import os
import socket
import subprocess
import sys
import time

from common import MODULES, Sandbox, build, fresh_store, report, wait_for

N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


def conf(sb):
    names = [f"s{i}.example.org" for i in range(N)]
    out = [f"MDomain {x}" for x in names]
    out += [f"""<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {x}
  SSLEngine on
</VirtualHost>
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName {x}
</VirtualHost>""" for x in names]
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


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    build()
    kinds = ("fresh", "warm")
    times = {k: {"ours": [], "c": []} for k in kinds}
    mem = {k: {"ours": [], "c": []} for k in kinds}
    with Sandbox() as sb:
        body = conf(sb)
        for _ in range(rounds):
            for label, mod in MODULES:
                sb.stop_httpd()
                fresh_store(sb)
                sb.write_conf(body, module=mod, log_level="warn")
                for kind in kinds:
                    start(sb, label, times, mem, kind)
    for kind in kinds:
        report(f"httpd start-up with {N} MDs, SSL vhosts, {kind} store (s)", times[kind], "<= 1.0")
        report(f"resident memory of a child with {N} MDs, SSL vhosts, {kind} store (MiB)",
               mem[kind], "<= 1.0")


if __name__ == "__main__":
    main()
