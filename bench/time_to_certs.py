#!/usr/bin/env python3
"""Benchmark (issues 5 and 14): time from `apache2 -k start` until N
managed domains all have certificates (staged), ours vs the C module
against the same pebble, alternating, fresh store each run, configured as
users write it: an `SSLEngine on` vhost per MD (served by the MD's
certificate, or its fallback until then) beside the plain one that
answers http-01.

Usage: bench/time_to_certs.py [rounds] [sizes, default 1,10,50,200] [fast|latency] [MDPrivateKeys spec]

Each run measures this machine's RSA-2048 key generation (median of 20
`openssl genrsa`) and prints the floor N x keygen / cores beside both
modules, the CPU-seconds per certificate of httpd (all its processes) and
of pebble, and (ours, md:debug, once at the largest N) how many HTTP
requests and new connections to the CA a certificate took. It draws time
vs N for both modules and the floor into bench/time_to_certs_<mode>.png
(gnuplot).

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
import re
import shutil
import statistics
import subprocess
import sys
import time

from common import (HERE, MODULES, OURS, Sandbox, build, children_cpu, cpu_seconds, fresh_store,
                    report, ssl_vhosts, wait_for)


def conf(sb, n, keys=None):
    names = [f"t{i}.example.org" for i in range(n)]
    out = [f"MDPrivateKeys {keys}"] if keys else []
    out += [f"MDomain {x}" for x in names]
    out.append(ssl_vhosts(sb, names))
    return "\n".join(out), names


TARGETS = {"fast": {10: "<= 0.4", 50: "<= 0.25"}, "latency": {10: "<= 0.2", 50: "<= 0.1"}}


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


def keygen_times(n=20):
    """This machine's RSA-2048 key generation: wall times of n `openssl
    genrsa 2048` (their median is the floor's unit)."""
    times = []
    for _ in range(n):
        t0 = time.time()
        subprocess.run(["openssl", "genrsa", "-out", "/dev/null", "2048"], check=True,
                       capture_output=True)
        times.append(time.time() - t0)
    return times



def traffic(sb):
    """(requests, new connections) the renewal child logged last (ours, md:debug)."""
    m = re.findall(r"made (\d+) HTTP requests over (\d+) new connections", sb.error_log())
    return tuple(int(x) for x in m[-1]) if m else None


def plot(rows, mode):
    """Draws time vs N for both modules and the floor (gnuplot, PNG)."""
    dat = os.path.join(HERE, f"time_to_certs_{mode}.dat")
    png = os.path.join(HERE, f"time_to_certs_{mode}.png")
    batch = os.path.join(HERE, "scale_batch.dat")
    with open(dat, "w") as f:
        f.write("# N ours_s c_s floor_s (median; bench/time_to_certs.py)\n")
        for n, o, c, fl in rows:
            f.write(f"{n} {o:.3f} {c:.3f} {fl:.3f}\n")
    if not shutil.which("gnuplot"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "gnuplot-nox"], check=False,
                       capture_output=True)
    if not shutil.which("gnuplot"):
        print(f"  (no gnuplot: data in {dat}, no picture)")
        return
    script = f"""set terminal pngcairo size 900,560 noenhanced font ',10'
set output '{png}'
set title 'Time from apache2 -k start until N MDs have certificates ({os.cpu_count()} cores)'
set xlabel 'N (managed domains, SSL vhosts)'
set ylabel 'seconds'
set logscale xy
set xrange [0.8:2000]
set key bottom right box opaque
set grid
set datafile missing '?'
plot '{dat}' using 1:3 with linespoints lc 1 pt 7 title 'C mod_md 2.6.10, CA {mode}', \\
     '{dat}' using 1:2 with linespoints lc 2 pt 7 title 'mod_md in Rust, CA {mode}', \\
     '{dat}' using 1:4 with lines lc 0 dashtype 2 title 'floor: N x RSA keygen / cores'"""
    if os.path.exists(batch):
        # bench/scale.py batch: N of 10,000 configured MDs due at once, EC
        # keys, a CA with up to 3 s validation latency
        script += f""", \\
     '{batch}' using 1:3 with points lc 1 pt 5 ps 1.5 title 'C, batch due among 10,000 MDs (CA latency 3 s)', \\
     '{batch}' using 1:4 with lines lc 1 dashtype 3 title 'C, batch: scaled (one MD after the other)', \\
     '{batch}' using 1:2 with linespoints lc 2 pt 5 ps 1.5 title 'ours, batch due among 10,000 MDs (CA latency 3 s)'"""
    script += "\n"
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print(f"  picture: {png}")


def replot(mode):
    """`bench/time_to_certs.py plot <mode>`: the picture again from the data file."""
    with open(os.path.join(HERE, f"time_to_certs_{mode}.dat")) as f:
        rows = [tuple(float(x) for x in line.split()) for line in f if not line.startswith("#")]
    plot([(int(r[0]), r[1], r[2], r[3]) for r in rows], mode)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "plot":
        return replot(sys.argv[2])
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    sizes = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1, 10, 50, 200]
    mode = sys.argv[3] if len(sys.argv) > 3 else "fast"
    keys = sys.argv[4] if len(sys.argv) > 4 else None
    cores = os.cpu_count()
    build()
    times = keygen_times()
    keygen, mean = statistics.median(times), statistics.mean(times)
    print(f"RSA-2048 key generation on this machine: median {keygen * 1000:.0f} ms of 20 `openssl genrsa` "
          f"(mean {mean * 1000:.0f} ms: the prime search has a long tail, and N keys cost N times the mean)")
    rows = []
    with Sandbox() as sb:
        if mode == "latency":
            sb.start_ca(env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "3"})
        else:
            sb.start_ca()
        pebble = sb.procs["pebble"].pid
        for n in sizes:
            body, names = conf(sb, n, keys)
            results = {label: [] for label, _ in MODULES}
            cpu = {label: [] for label, _ in MODULES}
            httpd_cpu = {label: [] for label, _ in MODULES}
            ca_cpu = {label: [] for label, _ in MODULES}
            for _ in range(rounds):
                for label, mod in MODULES:
                    sb.stop_httpd()
                    fresh_store(sb)
                    sb.write_conf(body, module=mod, log_level="warn")
                    b0, t0 = busy_seconds(), time.time()
                    r0, p0 = children_cpu(), cpu_seconds(pebble, with_children=False)
                    sb.start_httpd()
                    r1 = children_cpu()
                    ok = wait_for(lambda: all(has_cert(sb, x) for x in names), 900)
                    if not ok:
                        raise SystemExit(f"{label}: not all {n} certificates after 900 s")
                    results[label].append(time.time() - t0)
                    cpu[label].append(busy_seconds() - b0)
                    httpd_cpu[label].append(r1 - r0 + cpu_seconds(sb.pid()))
                    ca_cpu[label].append(cpu_seconds(pebble, with_children=False) - p0)
            title = f"time from apache2 -k start until {n} MDs (SSL vhosts) have certificates (s), CA {mode}, {rounds} rounds"
            report(title + (f", MDPrivateKeys {keys}" if keys else ""), results,
                   TARGETS.get(mode, {}).get(n, "-"))
            floor = n * keygen / cores
            o, c = statistics.median(results["ours"]), statistics.median(results["c"])
            print(f"  floor N x keygen / cores = {floor:.2f} s: ours {o / floor:.2f}x the floor, C {c / floor:.2f}x"
                  f" (with the mean key: {n * mean / cores:.2f} s, ours {o / (n * mean / cores):.2f}x)")
            for label in ("ours", "c"):
                cm, t = statistics.median(cpu[label]), statistics.median(results[label])
                h, p = statistics.median(httpd_cpu[label]), statistics.median(ca_cpu[label])
                print(f"  {label + ':':5} machine CPU {cm:.2f} CPU-s, {cm / t:.2f} of {cores} cores busy; "
                      f"per certificate: httpd {h / n:.3f} CPU-s, pebble {p / n:.3f} CPU-s")
            rows.append((n, o, c, floor))
        # where the requests go: ours once more at the largest N with md:debug
        n = sizes[-1]
        body, names = conf(sb, n, keys)
        sb.stop_httpd()
        fresh_store(sb)
        sb.write_conf(body, module=OURS, log_level="warn md:debug")
        sb.start_httpd()
        wait_for(lambda: all(has_cert(sb, x) for x in names), 900)
        wait_for(lambda: traffic(sb) is not None, 30)
        t = traffic(sb)
        if t:
            print(f"  ours, N = {n}: {t[0]} HTTP requests over {t[1]} new connections "
                  f"({t[0] / n:.1f} requests and {t[1] / n:.2f} connections per certificate)")
        sb.stop_httpd()
    plot(rows, mode + (f"_{keys}" if keys else ""))


if __name__ == "__main__":
    main()
