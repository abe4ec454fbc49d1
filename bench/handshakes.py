#!/usr/bin/env python3
"""Benchmark (issue 5): new TLS handshakes per second on a managed vhost
(openssl s_time -new), ours vs the C module on the same store and the same
certificate, alternating. Target: ratio >= 1.0 (the hot-activation
certificate callback costs nothing measurable).
Usage: bench/handshakes.py [rounds] [seconds]"""

import os
import re
import subprocess
import sys

from common import MODULES, OURS, Sandbox, build, report, ssl_vhosts, wait_for

NAME = "hs.example.org"


def conf(sb):
    return f"MDomain {NAME}\n{ssl_vhosts(sb, [NAME])}\n"


def s_time(sb, seconds):
    r = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{sb.https_port}", "-new",
                        "-time", str(seconds)], capture_output=True, text=True)
    m = re.search(r"(\d+) connections in ([\d.]+)s", r.stdout)
    return int(m.group(1)) / float(m.group(2))


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    build()
    with Sandbox() as sb:
        sb.start_ca()
        sb.start_httpd(conf(sb), module=OURS, log_level="warn")
        wait_for(lambda: os.path.exists(sb.path("md", "staging", NAME, "pubcert.pem")), 60)
        sb.stop_httpd()
        sb.stop_ca()
        results = {label: [] for label, _ in MODULES}
        for _ in range(rounds):
            for label, mod in MODULES:
                sb.stop_httpd()
                sb.write_conf(conf(sb), module=mod, log_level="warn")
                sb.start_httpd()  # installs the staged set the first time
                s_time(sb, 1)
                results[label].append(s_time(sb, seconds))
        sb.stop_httpd()
    report(f"new TLS handshakes per second on {NAME} (openssl s_time -new, {seconds}s x {rounds})",
           results, ">= 1.0")


if __name__ == "__main__":
    main()
