#!/usr/bin/env python3
"""Benchmark (issue 29): where the CPU of N first certificates goes.

Ours only, the configuration of bench/time_to_certs.py (N `SSLEngine on`
vhosts, fresh store, pebble validating at once, `User` www-data), the clock
and the profile started at `apache2 -k start` and stopped when all N
certificates are staged. `perf record -a --call-graph dwarf` samples every
process on the machine; each sample of an httpd process is put into one
category by the frames on its stack (the first rule that matches, most
specific first: the module's own Rust functions name what a sample of
libcrypto, libcurl or the kernel was done for), and the CPU-seconds per
certificate of every category are printed, with pebble's and the rest of
the machine's.

Usage: bench/cpu_breakdown.py [N, default 50] [rounds, default 1] [Hz, default 999]
(BENCH_DETAIL=k: also the k largest (module function, leaf) pairs of each category)
Needs `perf` (Debian `linux-perf`; installed when missing) and root.
"""

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from common import OURS, Sandbox, build, fresh_store, wait_for
from time_to_certs import conf, has_cert

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
HZ = int(sys.argv[3]) if len(sys.argv) > 3 else 999
DETAIL = int(os.environ.get("BENCH_DETAIL", "0"))  # the top functions of each category

KEYGEN = re.compile(r"EVP_PKEY_generate|EVP_PKEY_keygen|RSA_generate_key|EC_KEY_generate_key|"
                    r"crypto::Key::generate|generate_in_turn")
# (category, pattern on the demangled frames of a stack), first match wins
RULES = [
    ("JWS signatures (account key)", r"crypto::jws\b|crypto::Key::sign\b"),
    ("CSR and self-signed certificates", r"crypto::csr_der|crypto::self_signed|crypto::fallback_cert"),
    ("TLS with the CA (handshakes, records)", r"\bSSL_|\bssl3_|\btls_|ossl_statem|\bCurl_ossl|ossl_connect"),
    ("HTTP to the CA (libcurl, sockets)", r"\bCurl_|\bcurl_|curl::easy|base::http::"),
    ("JSON (serde_json)", r"serde_json::"),
    ("store reads and writes", r"md_engine::store::|lifecycle::jobfile|lifecycle::install"),
    ("keys and certificates parsed (PEM, X.509)",
     r"PEM_read|PEM_write|d2i_|i2d_|X509_|crypto::Key::from_pem|chain_from_pem"),
    ("configuration passes (httpd, mod_ssl, module)",
     r"ap_read_config|ap_process_config|ap_run_post_config|ssl_init_|post_config|"
     r"md_engine::config::|md_engine::generation::startup"),
    ("renewal scheduling and ACME flow (rest)", r"md_engine::acme::|md_engine::lifecycle::|md_engine::generation::"),
    ("serving (handshakes of clients, status)", r"ap_process_connection|ssl_hook_|md_engine::serving::|md_engine::status::"),
    ("process start, fork, exec, dynamic loading",
     r"_dl_|do_execve|load_elf_binary|dl_open|_do_fork|kernel_clone|copy_process"),
]
RULES = [(c, re.compile(p)) for c, p in RULES]


def ensure_perf():
    if not shutil.which("perf"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "linux-perf"], check=False,
                       capture_output=True)
    if not shutil.which("perf"):
        raise SystemExit("no perf on this machine (Debian package linux-perf)")


def samples(data):
    """(comm, pid, [frames leaf first]) of every sample in a perf.data file."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,ip,sym,dso"],
                         capture_output=True, text=True, errors="replace").stdout
    comm, pid, frames = None, None, []
    for line in out.splitlines() + [""]:
        if not line.strip():
            if comm is not None:
                yield comm, pid, frames
            comm, pid, frames = None, None, []
        elif comm is None:
            m = re.match(r"\s*(.+?)\s+(\d+)\s*$", line)
            if m:
                comm, pid = m.group(1), int(m.group(2))
        else:
            frames.append(line.strip())


def inner(frames):
    """The innermost function of the module on a stack, and the leaf."""
    sym = lambda f: re.sub(r"\+0x[0-9a-f]+", "", f.split(None, 1)[1] if " " in f else f)  # noqa: E731
    own = [sym(f) for f in frames if "md_engine::" in f or "mod_md::" in f]
    if os.environ.get("BENCH_DETAIL_CALLERS"):
        return " <- ".join(x.split(" (")[0].replace("md_engine::", "")[:50] for x in own[:4]) or "-"
    return f"{own[0][:60] if own else '-'} <- {sym(frames[0])[:50]}" if frames else "?"


def categorize(frames):
    stack = "\n".join(frames)
    if KEYGEN.search(stack):
        if "account::" in stack:
            return "account key generation (RSA-3072, once)"
        if "KeyCache" in stack:
            return "fallback certificates' key (one per key type)"
        return "domain key generation (RSA-2048)"
    for c, rx in RULES:
        if rx.search(stack):
            return c
    leaf = frames[0].split(None, 1)[1] if frames and " " in frames[0] else "?"
    return "other: " + re.sub(r"\+0x[0-9a-f]+", "", leaf)[:70]


def one_round(sb, body, names, data):
    sb.stop_httpd()
    fresh_store(sb)
    sb.write_conf(body, module=OURS, log_level="warn")
    perf = subprocess.Popen(["perf", "record", "-a", "-F", str(HZ), "--call-graph", "dwarf,16384",
                             "-o", data, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # perf is recording
    t0 = time.time()
    sb.start_httpd()
    ok = wait_for(lambda: all(has_cert(sb, x) for x in names), 900)
    took = time.time() - t0
    perf.send_signal(signal.SIGINT)
    perf.wait()
    if not ok:
        raise SystemExit(f"not all {len(names)} certificates after 900 s")
    return took


def profile(data):
    """(categories, leaves, pebble samples, other samples) of one recording."""
    cats, leaves, pebble, rest = collections.Counter(), collections.defaultdict(collections.Counter), 0, 0
    for comm, _pid, frames in samples(data):
        stack = "\n".join(frames)
        if "pebble" in comm:
            pebble += 1
        elif comm in ("apache2", "md-renew") or "apache2" in stack or "libmod_md" in stack:
            c = categorize(frames)
            cats[c] += 1
            leaves[c][inner(frames)] += 1
        else:
            rest += 1
    return cats, leaves, pebble, rest


def main():
    ensure_perf()
    build()
    totals, leaves, pebble, rest, wall = collections.Counter(), collections.defaultdict(collections.Counter), 0, 0, []
    with Sandbox() as sb:
        sb.start_ca()
        body, names = conf(sb, N)
        for i in range(ROUNDS):
            for attempt in range(5):
                data = sb.path(f"perf-{i}.data")
                took = one_round(sb, body, names, data)
                cats, lv, pb, rs = profile(data)
                if not os.environ.get("BENCH_KEEP"):
                    os.remove(data)
                n = sum(cats.values())
                lost = sum(k for c, k in cats.items() if c.startswith("other")) / max(n, 1)
                print(f"(round {i + 1}: {N} certificates in {took:.2f} s, {n} samples of httpd, "
                      f"{100 * lost:.1f} % without a known caller)", flush=True)
                # perf's DWARF unwinding now and then gives up on every stack of
                # a recording (leaf frames only): such a round is run again
                if lost < 0.1:
                    break
            else:
                raise SystemExit("perf could not unwind the stacks of httpd in 5 recordings")
            wall.append(took)
            totals.update(cats)
            for c, x in lv.items():
                leaves[c].update(x)
            pebble, rest = pebble + pb, rest + rs
        sb.stop_httpd()
    httpd_total = sum(totals.values())
    per = 1 / HZ / N / ROUNDS  # CPU-seconds per certificate of one sample
    print(f"bench/cpu_breakdown.py {N} {ROUNDS} {HZ}: where the CPU of {N} first certificates goes "
          f"(ours, {os.cpu_count()} cores, wall {sum(wall) / len(wall):.2f} s per round)")
    print(f"  httpd, all processes: {httpd_total * per:.3f} CPU-s per certificate")
    shown = 0
    for c, k in totals.most_common():
        if k * per >= 0.0005 or not c.startswith("other"):
            print(f"    {k * per:.4f}  {100 * k / max(httpd_total, 1):5.1f} %  {c}")
            shown += k
            if DETAIL and not c.startswith("other"):
                for leaf, m in leaves[c].most_common(DETAIL):
                    print(f"             {m * per:.4f}  {leaf}")
    print(f"    {(httpd_total - shown) * per:.4f}  {100 * (httpd_total - shown) / max(httpd_total, 1):5.1f} %"
          f"  other (each below 0.0005)")
    print(f"  pebble: {pebble * per:.3f} CPU-s per certificate; the rest of the machine "
          f"(perf, this script, the kernel's own threads): {rest * per:.3f}")


if __name__ == "__main__":
    main()
