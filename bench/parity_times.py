#!/usr/bin/env python3
"""Benchmark (issue 10): time from start or restart to a staged certificate
in each scenario of the side-by-side harness (t/test_parity.py), ours vs
the C module, alternating, fresh sandbox each run. Target: no scenario
slower than with the C module (ratio of medians <= 1.0 overall).

Usage: bench/parity_times.py [rounds] [scenario,...]

The scenarios are the harness's own (SSL vhosts, User www-data, the clock
started before `apache2 -k start`/graceful); a step that waits for nothing
is not timed."""

import os
import statistics
import sys

from common import MODULES, TOP, build

sys.path.insert(0, os.path.join(TOP, "t"))

import test_parity as tp  # noqa: E402


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else sorted(tp.CA_SCENARIOS)
    build()
    totals = {"ours": [], "c": []}
    print(f"{'scenario':<16} {'ours (median s)':>16} {'C (median s)':>14} {'ratio':>7}")
    for name in names:
        steps, ca = tp.CA_SCENARIOS[name], None
        if isinstance(steps, tuple):
            steps, ca = steps
        if not any(s[1] for s in steps):
            continue
        times = {"ours": [], "c": []}
        for _ in range(rounds):
            for label, mod in MODULES:
                _, t = tp.run_with_ca(mod, steps, ca)
                times[label].append(sum(t))
        o, c = statistics.median(times["ours"]), statistics.median(times["c"])
        totals["ours"].append(o)
        totals["c"].append(c)
        print(f"{name:<16} {o:>16.2f} {c:>14.2f} {o / c:>7.2f}", flush=True)
    o, c = sum(totals["ours"]), sum(totals["c"])
    print(f"{'all':<16} {o:>16.2f} {c:>14.2f} {o / c:>7.2f}  (target <= 1.0)")


if __name__ == "__main__":
    main()
