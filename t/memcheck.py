#!/usr/bin/env python3
"""One renewal cycle of the module inside httpd under valgrind's memcheck:
certificate obtained (http-01 answered by httpd), activated by a graceful
restart, stop. Fails (exit 1) on any invalid read, write or free in any
process; prints the counts. Too slow for .ci/run (minutes): run by hand,
after `cargo build --release`:

    python3 t/memcheck.py            # installs valgrind when missing
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test-httpd"))
sys.path.insert(0, HERE)

from sandbox import HTTPD, Sandbox  # noqa: E402
from helpers import job, site, wait_for

BAD = re.compile(r"Invalid (read|write|free)|Mismatched free|Source and destination overlap|"
                 r"Jump to the invalid address|Process terminating with default action")


def main():
    if not shutil.which("valgrind"):
        subprocess.run(["apt-get", "install", "-y", "-q", "valgrind"], check=True)
    sb = Sandbox()
    try:
        sb.start_ca()
        name = "memcheck.example.org"
        sb.write_conf(site(sb, name) + "MDPrivateKeys secp256r1\n")
        logs = sb.path("logs", "vg.%p.log")
        # -X: one process, so that valgrind sees the renewal job too
        cmd = ["valgrind", "--tool=memcheck", "--trace-children=yes", f"--log-file={logs}",
               "--num-callers=30", HTTPD, "-X", "-f", sb.httpd_conf]
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        ok = wait_for(lambda: job(sb, name).get("notified-renewed") is True, 900, 1)
        print(f"staged: {ok} after {time.time() - t0:.0f} s")
        proc.terminate()
        proc.wait(300)
        # the parent activates the staged set at the next start
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        active = wait_for(lambda: glob.glob(sb.path("md", "domains", name, "pubcert*.pem")), 300, 1)
        print(f"activated: {active}")
        time.sleep(5)
        proc.terminate()
        proc.wait(300)
        bad = 0
        for f in sorted(glob.glob(sb.path("logs", "vg.*.log"))):
            text = open(f, errors="replace").read()
            hits = BAD.findall(text)
            summary = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
            print(f"{os.path.basename(f)}: invalid accesses {len(hits)}, error summary {summary}")
            bad += len(hits)
            if hits:
                print(text[:6000])
        if not (ok and active) or bad:
            print("memcheck: FAILED", "" if ok and active else "(no certificate)")
            return 1
        print("memcheck: no invalid access")
        return 0
    finally:
        sb.stop()


if __name__ == "__main__":
    sys.exit(main())
