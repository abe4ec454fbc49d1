"""Shared helpers of the benchmarks: build, sandbox, alternate modules."""

import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "test-httpd"))

import sandbox  # noqa: E402
from sandbox import C_MODULE, Sandbox  # noqa: E402,F401

OURS = os.path.join(TOP, "target", "release", "libmod_md.so")
MODULES = (("ours", OURS), ("c", C_MODULE))
# BENCH_BEFORE=<an earlier build of ours>: measured in the same run as a
# third module ("before"), to show what a change costs
if os.environ.get("BENCH_BEFORE"):
    MODULES = MODULES + (("before", os.environ["BENCH_BEFORE"]),)
    # BENCH_BEFORE_ONLY=1: ours and the earlier build alone (the C module's
    # fresh start with 1000 MDs takes minutes)
    if os.environ.get("BENCH_BEFORE_ONLY"):
        MODULES = tuple(m for m in MODULES if m[0] != "c")


def build():
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=TOP, check=True)


def fresh_store(sb):
    shutil.rmtree(sb.path("md"), ignore_errors=True)


def wait_for(pred, timeout, step=0.05):
    return sandbox.wait_for(pred, timeout, step)


def report(title, results, target):
    o = statistics.median(results["ours"])
    print(f"{title}")
    print(f"  ours: median {o:.3f}  {[round(x, 3) for x in results['ours']]}")
    c = None
    if results.get("c"):
        c = statistics.median(results["c"])
        print(f"  C:    median {c:.3f}  {[round(x, 3) for x in results['c']]}")
        print(f"  ratio ours/C: {o / c:.2f}  (target {target})")
    if results.get("before"):
        b = statistics.median(results["before"])
        print(f"  before: median {b:.3f}  {[round(x, 3) for x in results['before']]}")
        print(f"  ratio ours/before: {o / b:.2f}")
    return o / c if c else None


def children(parent):
    return subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()


def cpu_seconds(pid, with_children=True):
    """utime+stime of a process, its live children and the children it reaped."""
    tck = os.sysconf("SC_CLK_TCK")

    def stat(p, reaped):
        try:
            with open(f"/proc/{p}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0
        # fields after the name: state=0 ... utime=11 stime=12 cutime=13 cstime=14
        return int(v[11]) + int(v[12]) + (int(v[13]) + int(v[14]) if reaped else 0)

    kids = children(pid) if with_children else []
    return (stat(pid, with_children) + sum(stat(k, False) for k in kids)) / tck


def children_cpu():
    """CPU seconds of this script's reaped children (apachectl's process that
    does the first configuration pass before httpd detaches)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ssl_vhosts(sb, names):
    """The configuration users write for MDs `names`: an `SSLEngine on` vhost
    per MD (served by its certificate, or the fallback until then) and the
    plain one on the http port that answers http-01."""
    return "\n".join(f"""<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {x}
  SSLEngine on
</VirtualHost>
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName {x}
</VirtualHost>""" for x in names)
