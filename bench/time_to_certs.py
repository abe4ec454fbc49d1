#!/usr/bin/env python3
"""Benchmark (issue 5): time from httpd start until N managed domains all
have certificates (staged), N = 1, 10, 50; ours vs the C module against the
same pebble, alternating, fresh store each run. Targets: ratio <= 0.6 for
N = 1 and <= 0.25 for N = 50. Usage: bench/time_to_certs.py [rounds] [1,10,50]"""

import os
import sys
import time

from common import MODULES, Sandbox, build, fresh_store, report, wait_for


def conf(sb, n):
    names = [f"t{i}.example.org" for i in range(n)]
    out = [f"MDomain {x}" for x in names]
    out += [f"<VirtualHost 127.0.0.1:{sb.http_port}>\n  ServerName {x}\n</VirtualHost>" for x in names]
    return "\n".join(out), names


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    sizes = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1, 10, 50]
    build()
    with Sandbox() as sb:
        sb.start_ca()
        for n in sizes:
            body, names = conf(sb, n)
            results = {"ours": [], "c": []}
            for _ in range(rounds):
                for label, mod in MODULES:
                    sb.stop_httpd()
                    fresh_store(sb)
                    sb.write_conf(body, module=mod, log_level="warn")
                    t0 = time.time()
                    sb.start_httpd()
                    ok = wait_for(lambda: all(os.path.exists(sb.path("md", "staging", x, "pubcert.pem"))
                                              for x in names), 300)
                    if not ok:
                        raise SystemExit(f"{label}: not all {n} certificates after 300 s")
                    results[label].append(time.time() - t0)
            report(f"time until {n} MDs have certificates (s), {rounds} rounds", results,
                   "<= 0.6" if n == 1 else ("<= 0.25" if n == 50 else "-"))
        sb.stop_httpd()


if __name__ == "__main__":
    main()
