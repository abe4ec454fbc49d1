#!/usr/bin/env python3
"""Benchmark: md-status with 50 managed domains under load, ours vs the C
module, in the same run (issue 6, point 7; target: ours >= 2x the C module);
with `server-status` as third argument, mod_status's `?auto` page with
`MDServerStatus on` instead (issue 11; target: ours >= 1x).

Each module gets the same sandbox configuration (50 MDs, an SSL and a plain vhost each,
`/md-status` and `/server-status` on the http port, the CA stopped so no
renewal runs while measuring). wrk drives GET for DURATION seconds per
round; the modules alternate for ROUNDS rounds; medians and the ratio
ours/C are printed.
Usage: bench/md_status.py [rounds] [duration-seconds] [md-status|server-status] [MDs] [certs]
"""

import os
import re
import shutil
import statistics
import subprocess
import sys

from common import C_MODULE, OURS, Sandbox, build, ssl_vhosts

N = int(sys.argv[4]) if len(sys.argv) > 4 else 50


def config(sb):
    parts = [f"MDomain md{i}.example.org" for i in range(N)]
    # as users configure it: an SSL vhost per MD (served by the MD's
    # certificate, or its fallback) and the plain one for http-01
    parts.append(ssl_vhosts(sb, [f"md{i}.example.org" for i in range(N)]))
    parts.append("<Location /md-status>\n  SetHandler md-status\n</Location>")
    parts.append("<Location /server-status>\n  SetHandler server-status\n</Location>")
    parts.append("MDServerStatus on")
    parts.append("MDInitialDelay 1h")  # measure the handler, not a renewal
    return "\n".join(parts)


PATHS = {"md-status": "/md-status", "server-status": "/server-status?auto"}
CERTS = len(sys.argv) > 5 and sys.argv[5] == "certs"


def obtain_all(sb, module, body):
    """Certificates for every MD from pebble (ours obtains them, a restart
    installs them); the CA is stopped again before measuring."""
    import time
    sb.start_ca()
    sb.write_conf(body.replace("MDInitialDelay 1h", ""), module=module, log_level="warn")
    sb.start_httpd()
    end = time.time() + 300
    done = lambda: all(os.path.exists(sb.path("md", "staging", f"md{i}.example.org", "pubcert.pem"))
                       for i in range(N))
    while time.time() < end and not done():
        time.sleep(0.5)
    sb.stop_httpd()
    sb.start_httpd()  # installs
    sb.stop_httpd()
    sb.stop_ca()
PAGE = sys.argv[3] if len(sys.argv) > 3 else "md-status"


def wrk(sb, seconds):
    r = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{sb.http_port}{PATHS[PAGE]}"],
                       capture_output=True, text=True, check=True)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if non2xx:
        raise SystemExit(f"errors during the benchmark: {r.stdout}")
    return float(m.group(1))


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    ours = OURS
    build()
    modules = [("ours", ours), ("c", C_MODULE)]
    if os.environ.get("BENCH_BEFORE"):
        # an earlier build of ours, measured in the same run (see common.py)
        modules.append(("before", os.environ["BENCH_BEFORE"]))
    results = {label: [] for label, _ in modules}
    with Sandbox(module=ours) as sb:
        body = config(sb)
        if CERTS:
            obtain_all(sb, ours, body)
        for _ in range(rounds):
            for label, mod in modules:
                sb.stop_httpd()
                sb.write_conf(body, module=mod, log_level="warn")
                sb.start_httpd()
                wrk(sb, 1)  # warm up
                results[label].append(wrk(sb, seconds))
        sb.stop_httpd()
    o, c = statistics.median(results["ours"]), statistics.median(results["c"])
    print(f"{PATHS[PAGE]}, {N} MDs{' with certificates' if CERTS else ''}, wrk -t2 -c16, "
          f"{rounds} rounds x {seconds}s")
    print(f"  ours: median {o:.0f} req/s  {results['ours']}")
    print(f"  C:    median {c:.0f} req/s  {results['c']}")
    print(f"  ratio ours/C: {o / c:.2f}  (target >= {2.0 if PAGE == 'md-status' else 1.0})")
    if results.get("before"):
        b = statistics.median(results["before"])
        print(f"  before: median {b:.0f} req/s  {results['before']}")
        print(f"  ratio ours/before: {o / b:.2f}")


if __name__ == "__main__":
    main()
