"""A CA that misbehaves in every way (t/bad_ca.py) beside a good one: the
renewals against the bad one fail with an error each, the good MD gets its
certificate meanwhile, and the child that runs them stays within bounded
memory and threads and does not crash (issue 11)."""

import os

from bad_ca import MODES, BadCa
from helpers import job, site, wait_for


def children(sb):
    """(pid, RSS kB, threads) of httpd's children."""
    out = []
    parent = sb.pid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                st = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if int(st.get("PPid", "0").strip()) == parent:
            out.append((int(pid), int(st["VmRSS"].split()[0]), int(st["Threads"].strip())))
    return out


def test_misbehaving_ca(ca_sb):
    bad = BadCa(ca_sb)
    try:
        good = "good.example.org"
        conf = site(ca_sb, good)
        for m in MODES:
            name = f"{m}.bad.example.org"
            conf += site(ca_sb, name, md_body=f"  MDCertificateAuthority {bad.url(m)}")
        ca_sb.start_httpd(conf + "MDRetryDelay 2s\n")
        assert wait_for(lambda: job(ca_sb, good).get("notified-renewed") is True, 60), \
            ca_sb.error_log()[-3000:]
        quick = [m for m in MODES if m not in ("hang", "drip")]
        assert wait_for(lambda: all(job(ca_sb, f"{m}.bad.example.org").get("errors", 0) > 0
                                    for m in quick), 60), \
            {m: job(ca_sb, f"{m}.bad.example.org") for m in quick}
        for m in quick:
            last = job(ca_sb, f"{m}.bad.example.org")["last"]
            assert last["status"] != 0 and last.get("detail"), (m, last)
        assert "exceeds the limit" in job(ca_sb, "huge.bad.example.org")["last"]["detail"]
        # bounded: a 50 MB body, hanging and dripping connections
        for pid, rss_kb, threads in children(ca_sb):
            assert rss_kb < 200 * 1024, (pid, rss_kb)
            assert threads < 80, (pid, threads)
        log = ca_sb.error_log()
        assert "exit signal" not in log and "internal error" not in log
        assert "panicked" not in log
    finally:
        bad.stop()
