#!/usr/bin/env python3
"""Benchmark (issue 5): httpd start-up time and resident memory of a child
with 1000 managed domains configured, ours vs the C module, alternating,
fresh store each run. Target: ratio <= 1.0 for both.
Usage: bench/startup_1000.py [rounds]"""

import os
import socket
import subprocess
import sys
import time

from common import MODULES, Sandbox, build, fresh_store, report, wait_for

N = 1000


def conf(sb):
    names = [f"s{i}.example.org" for i in range(N)]
    out = [f"MDomain {x}" for x in names]
    out += [f"<VirtualHost 127.0.0.1:{sb.http_port}>\n  ServerName {x}\n</VirtualHost>" for x in names]
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
        with open(f"/proc/{k}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss.append(int(line.split()[1]))
    return max(rss) if rss else 0


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    build()
    times, mem = {"ours": [], "c": []}, {"ours": [], "c": []}
    with Sandbox() as sb:
        body = conf(sb)
        for _ in range(rounds):
            for label, mod in MODULES:
                sb.stop_httpd()
                fresh_store(sb)
                sb.write_conf(body, module=mod, log_level="warn")
                t0 = time.time()
                sb.start_httpd()
                wait_for(lambda: listening(sb.http_port), 120, 0.01)
                times[label].append(time.time() - t0)
                time.sleep(1)
                mem[label].append(child_rss_kb(sb.pid()) / 1024)
        sb.stop_httpd()
    report(f"httpd start-up with {N} MDs (s)", times, "<= 1.0")
    report(f"resident memory of a child with {N} MDs (MiB)", mem, "<= 1.0")


if __name__ == "__main__":
    main()
