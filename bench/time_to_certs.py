#!/usr/bin/env python3
"""Benchmark (issues 5 and 14): time from `apache2 -k start` until N
managed domains all have certificates (staged), ours vs the C module
against the same pebble, alternating, fresh store each run, configured as
users write it: an `SSLEngine on` vhost per MD (served by the MD's
certificate, or its fallback until then) beside the plain one that
answers http-01.

Usage: bench/time_to_certs.py [rounds] [sizes, e.g. 10,50] [fast|latency] [MDPrivateKeys spec]

`fast`: pebble validates at once (PEBBLE_VA_NOSLEEP); targets (issue 14)
ratio <= 0.4 for N = 10 and <= 0.3 for N = 50. `latency`: pebble sleeps up
to 3 s before each validation, as real CAs take time; targets <= 0.2 for
N = 10 and <= 0.1 for N = 50.

The first figures of this benchmark (issue 5) configured plain http vhosts
only (no `SSLEngine`), which spares both modules the fallback certificates
that mod_ssl needs for SSL vhosts at start-up.

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
    out += [f"""<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {x}
  SSLEngine on
</VirtualHost>
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName {x}
</VirtualHost>""" for x in names]
    return "\n".join(out), names


TARGETS = {"fast": {10: "<= 0.4", 50: "<= 0.3"}, "latency": {10: "<= 0.2", 50: "<= 0.1"}}


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
    sizes = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [10, 50]
    mode = sys.argv[3] if len(sys.argv) > 3 else "fast"
    keys = sys.argv[4] if len(sys.argv) > 4 else None
    cores = os.cpu_count()
    build()
    with Sandbox() as sb:
        if mode == "latency":
            sb.start_ca(env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "3"})
        else:
            sb.start_ca()
        for n in sizes:
            body, names = conf(sb, n, keys)
            results = {label: [] for label, _ in MODULES}
            cpu = {label: [] for label, _ in MODULES}
            for _ in range(rounds):
                for label, mod in MODULES:
                    sb.stop_httpd()
                    fresh_store(sb)
                    sb.write_conf(body, module=mod, log_level="warn")
                    b0, t0 = busy_seconds(), time.time()
                    sb.start_httpd()
                    ok = wait_for(lambda: all(has_cert(sb, x) for x in names), 900)
                    if not ok:
                        raise SystemExit(f"{label}: not all {n} certificates after 900 s")
                    results[label].append(time.time() - t0)
                    cpu[label].append(busy_seconds() - b0)
            title = f"time from apache2 -k start until {n} MDs (SSL vhosts) have certificates (s), CA {mode}, {rounds} rounds"
            report(title + (f", MDPrivateKeys {keys}" if keys else ""), results,
                   TARGETS.get(mode, {}).get(n, "-"))
            for label in ("ours", "c"):
                c, t = statistics.median(cpu[label]), statistics.median(results[label])
                print(f"  {label + ':':5} machine CPU {c:.2f} CPU-s, {c / t:.2f} of {cores} cores busy")
            floor = statistics.median(cpu["c"]) / cores / statistics.median(results["c"])
            print(f"  lowest ratio {cores} cores allow for the C module's CPU work: {floor:.2f}")
        sb.stop_httpd()


if __name__ == "__main__":
    main()
