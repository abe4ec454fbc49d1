#!/usr/bin/env python3
"""Benchmark (issue 5): time from httpd start until N managed domains all
have certificates (staged), N = 1, 10, 50; ours vs the C module against the
same pebble, alternating, fresh store each run. Targets: ratio <= 0.6 for
N = 1 and <= 0.25 for N = 50.

Usage: bench/time_to_certs.py [rounds] [1,10,50] [MDPrivateKeys spec]

Besides the wall time it prints the CPU time the whole machine spent
(/proc/stat, all processes: httpd, pebble, ...) and how many cores that
kept busy: with RSA keys (the default) both modules are bound by key
generation, and `CPU-s / cores` is the floor no scheduling goes below."""

import os
import statistics
import sys
import time

from common import MODULES, Sandbox, build, fresh_store, report, wait_for


def conf(sb, n, keys=None):
    names = [f"t{i}.example.org" for i in range(n)]
    out = [f"MDPrivateKeys {keys}"] if keys else []
    out += [f"MDomain {x}" for x in names]
    out += [f"<VirtualHost 127.0.0.1:{sb.http_port}>\n  ServerName {x}\n</VirtualHost>" for x in names]
    return "\n".join(out), names


def has_cert(sb, name):
    """A staged certificate of any key type (pubcert.pem, pubcert.<spec>.pem)."""
    try:
        return any(f.startswith("pubcert") for f in os.listdir(sb.path("md", "staging", name)))
    except OSError:
        return False


def busy_seconds():
    """CPU seconds the whole machine spent outside idle so far."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    sizes = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1, 10, 50]
    keys = sys.argv[3] if len(sys.argv) > 3 else None
    cores = os.cpu_count()
    build()
    with Sandbox() as sb:
        sb.start_ca()
        for n in sizes:
            body, names = conf(sb, n, keys)
            results = {"ours": [], "c": []}
            cpu = {"ours": [], "c": []}
            for _ in range(rounds):
                for label, mod in MODULES:
                    sb.stop_httpd()
                    fresh_store(sb)
                    sb.write_conf(body, module=mod, log_level="warn")
                    b0, t0 = busy_seconds(), time.time()
                    sb.start_httpd()
                    ok = wait_for(lambda: all(has_cert(sb, x) for x in names), 300)
                    if not ok:
                        raise SystemExit(f"{label}: not all {n} certificates after 300 s")
                    results[label].append(time.time() - t0)
                    cpu[label].append(busy_seconds() - b0)
            title = f"time until {n} MDs have certificates (s), {rounds} rounds"
            report(title + (f", MDPrivateKeys {keys}" if keys else ""), results,
                   "<= 0.6" if n == 1 else ("<= 0.25" if n == 50 else "-"))
            for label in ("ours", "c"):
                c, t = statistics.median(cpu[label]), statistics.median(results[label])
                print(f"  {label + ':':5} machine CPU {c:.2f} CPU-s, {c / t:.2f} of {cores} cores busy")
            floor = statistics.median(cpu["c"]) / cores / statistics.median(results["c"])
            print(f"  lowest ratio {cores} cores allow for the C module's CPU work: {floor:.2f}")
        sb.stop_httpd()


if __name__ == "__main__":
    main()
