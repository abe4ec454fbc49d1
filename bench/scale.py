#!/usr/bin/env python3
"""Benchmark (issue 29): hosting scale, N managed domains on one httpd
(default 10,000), ours vs the C module in the same run.

Configured as a hosting provider writes it: per MD an `SSLEngine on` vhost
beside the plain one, `MDPrivateKeys secp256r1`, `/md-status` and
`/server-status` with `MDServerStatus on`. The store is warm and realistic:
every MD has its own EC key and a certificate from a local CA (made up
front with python-cryptography, written as if obtained), valid for 89 more
days, so nothing is due.

Usage: bench/scale.py [phases] [N] [rounds]
phases (comma separated, default all but `batch`):
  start    start-up until the https port answers, child RSS (max over children)
  status   wrk on /md-status (all MDs), /md-status/<one MD>, /server-status?auto
  restart  a graceful restart: from `-k graceful` until the new generation answers
  idle     CPU seconds of all httpd processes (parent, children, reaped children)
           over IDLE seconds (env BENCH_IDLE, default 600) while nothing is due;
           both modules run at the same time in two sandboxes
  fresh    ours only: start-up on an empty store (every MD needs a fallback)
  batch    batches (env BENCH_BATCH, default 100,1000) of the N MDs fall due at
           once, pebble with validation latency (PEBBLE_VA_SLEEPTIME=3): time until
           all are staged; the C module renews one after the other, so it runs for
           BATCH_C (env BENCH_BATCH_C, default 100) and its time is scaled, said so;
           the points go to bench/scale_batch.dat for time_to_certs.py's picture
"""

import datetime
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

from common import HERE, MODULES, Sandbox, build, children, cpu_seconds, ssl_vhosts, wait_for

PHASES = sys.argv[1].split(",") if len(sys.argv) > 1 else ["start", "status", "restart", "idle", "fresh"]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
IDLE = int(os.environ.get("BENCH_IDLE", "600"))
BATCHES = [int(x) for x in os.environ.get("BENCH_BATCH", "100,1000").split(",")]
BATCH_C = int(os.environ.get("BENCH_BATCH_C", "100"))
SPEC = "secp256r1"
NAMES = [f"s{i}.example.org" for i in range(N)]


def conf(sb, extra=""):
    out = [f"MDPrivateKeys {SPEC}"]
    out += [f"MDomain {x}" for x in NAMES]
    out.append(ssl_vhosts(sb, NAMES))
    out.append("<Location /md-status>\n  SetHandler md-status\n</Location>")
    out.append("<Location /server-status>\n  SetHandler server-status\n</Location>")
    out.append("MDServerStatus on")
    out.append(extra)
    return "\n".join(out)


def warm_store(path, due=()):
    """A store in which every MD has its own EC key and a certificate from a
    local CA. MDs in `due` have 10 days left of 90 (inside the default renewal
    window of 30 days), all others 89. Returns the seconds it took."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    t0 = time.time()
    shutil.rmtree(path, ignore_errors=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Hosting CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=100))
          .not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    due = set(due)
    for name in NAMES:
        key = ec.generate_private_key(ec.SECP256R1())
        start = now - datetime.timedelta(days=80 if name in due else 1)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=90))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        d = os.path.join(path, "domains", name)
        os.makedirs(d)
        with open(os.path.join(d, f"pubcert.{SPEC}.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
        kf = os.path.join(d, f"privkey.{SPEC}.pem")
        fd = os.open(kf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return time.time() - t0


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def child_rss_mib(parent):
    rss = []
    for k in children(parent):
        try:
            with open(f"/proc/{k}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return max(rss) if rss else 0.0


def install_store(sb, template):
    shutil.rmtree(sb.path("md"), ignore_errors=True)
    shutil.copytree(template, sb.path("md"), symlinks=True)


def start(sb, label):
    """`apache2 -k start` until the https port answers: seconds."""
    t0 = time.time()
    r = sb.apachectl("-k", "start", timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{label}: httpd did not start: {r.stderr}\n{sb.error_log()[-2000:]}")
    if not wait_for(lambda: listening(sb.https_port) and sb.pid(), 1800, 0.01):
        raise SystemExit(f"{label}: no https listener after 1800 s")
    return time.time() - t0


def stop(sb, label):
    sb.stop_httpd()
    ports = (sb.http_port, sb.https_port)
    if not wait_for(lambda: not any(listening(p) for p in ports), 180, 0.1):
        raise SystemExit(f"{label}: httpd still listening 180 s after stop")


def wrk(sb, path, seconds, conns=16):
    r = subprocess.run(["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "30s",
                        f"http://127.0.0.1:{sb.http_port}{path}"],
                       capture_output=True, text=True, check=True)
    if "Non-2xx" in r.stdout:
        raise SystemExit(f"errors during wrk {path}: {r.stdout}")
    if "Socket errors" in r.stdout:
        # the event MPM resets kept-alive connections of children it retires
        print("  (wrk: " + re.search(r"Socket errors: .*", r.stdout).group(0) + f", {path})")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))

    def ms(pct):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", r.stdout, re.M)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return rps, ms(50), ms(99)


def graceful(sb, label):
    """`-k graceful` until the parent says the new generation runs and the
    https port answers (seconds)."""
    gens = lambda: sb.error_log().count("resuming normal operations")  # noqa: E731
    g = gens()
    t0 = time.time()
    r = sb.apachectl("-k", "graceful")
    if r.returncode != 0:
        raise SystemExit(f"{label}: graceful failed: {r.stderr}")
    if not wait_for(lambda: gens() > g and listening(sb.https_port), 600, 0.02):
        raise SystemExit(f"{label}: no new generation 600 s after -k graceful")
    return time.time() - t0


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def line(title, res, target, fmt="{:.2f}", higher_better=False):
    o, c = med(res.get("ours", [])), med(res.get("c", []))
    print(f"{title}")
    for label in res:
        print(f"  {label + ':':7} median " + fmt.format(med(res[label])) + f"  {[round(x, 3) for x in res[label]]}")
    if res.get("c") and c > 0:
        print(f"  ratio ours/C: {o / c:.2f}  (target {target})")
    elif res.get("c"):
        print(f"  C: no answer during the run  (target {target})")
    elif target:
        print(f"  (target {target})")
    sys.stdout.flush()


def phase_start_status_restart(template):
    starts = {label: [] for label, _ in MODULES}
    rss = {label: [] for label, _ in MODULES}
    st = {k: {label: [] for label, _ in MODULES} for k in ("all", "one", "auto")}
    lat = {k: {label: [] for label, _ in MODULES} for k in ("all", "one", "auto")}
    restart = {label: [] for label, _ in MODULES}
    lat1 = {label: [] for label, _ in MODULES}
    with Sandbox() as sb:
        body = conf(sb)
        for _ in range(ROUNDS):
            for label, mod in MODULES:
                install_store(sb, template)
                sb.write_conf(body, module=mod, log_level="warn")
                # the first start writes what start-up writes once (md.json)
                start(sb, label)
                stop(sb, label)
                if "start" in PHASES:
                    starts[label].append(start(sb, label))
                    time.sleep(2)
                    rss[label].append(child_rss_mib(sb.pid()))
                else:
                    start(sb, label)
                if "status" in PHASES:
                    for key, path, secs, conns in (("all", "/md-status", 20, 2),
                                                   ("one", f"/md-status/{NAMES[N // 2]}", 5, 16),
                                                   ("auto", "/server-status?auto", 5, 16)):
                        wrk(sb, path, 1, conns)
                        rps, _p50, p99 = wrk(sb, path, secs, conns)
                        st[key][label].append(rps)
                        lat[key][label].append(p99)
                        if key == "one":
                            # latency of one client, not of a queue of 16
                            lat1[label].append(wrk(sb, path, secs, conns=1)[2])
                if "restart" in PHASES:
                    restart[label].append(graceful(sb, label))
                    time.sleep(2)
                stop(sb, label)
    if "start" in PHASES:
        line(f"start-up with {N} MDs (SSL vhosts, warm store) until the https port answers (s)", starts, "<= 0.6")
        line(f"resident memory of a child with {N} MDs (MiB)", rss, "<= 1.0")
    if "status" in PHASES:
        for key, what, target, conns in (("all", "GET /md-status (every MD)", "", 2),
                                         ("one", "GET /md-status/<one MD>", "", 16),
                                         ("auto", "GET /server-status?auto, MDServerStatus on", ">= 1.0", 16)):
            line(f"{what}, {N} MDs, wrk -c{conns} (req/s)", st[key], target or "-", "{:.1f}")
            line(f"{what}: p99 latency with {conns} connections (ms)", lat[key], "-", "{:.2f}")
        line("GET /md-status/<one MD>: p99 latency of one client (wrk -c1) (ms)", lat1, "<= 5 ms", "{:.2f}")
    if "restart" in PHASES:
        line(f"graceful restart with {N} MDs until the new generation answers (s)", restart, "-")


def phase_idle(template):
    """Both modules at once, each in its own sandbox, nothing due."""
    boxes = []
    try:
        for label, mod in MODULES:
            sb = Sandbox()
            install_store(sb, template)
            sb.write_conf(conf(sb), module=mod, log_level="warn")
            start(sb, label)
            stop(sb, label)  # md.json written once, as on a server in use
            boxes.append((label, sb))
        t0 = {}
        for label, sb in boxes:
            start(sb, label)
            t0[label] = cpu_seconds(sb.pid())
        time.sleep(IDLE)
        used = {label: [cpu_seconds(sb.pid()) - t0[label]] for label, sb in boxes}
        # memory after the first renewal pass, while idle
        rss = {label: [child_rss_mib(sb.pid())] for label, sb in boxes}
        for label, sb in boxes:
            errors = [x for x in sb.error_log().splitlines() if ":error]" in x or ":crit]" in x]
            if errors:
                print(f"  {label}: {len(errors)} errors in the log, first: {errors[0]}")
    finally:
        for label, sb in boxes:
            stop(sb, label)
            sb.stop()
    line(f"CPU seconds of all httpd processes over {IDLE} s idle with {N} MDs, nothing due "
         f"(from the moment the port answers)", used, "ours <= 1 CPU-s per 600 s")
    line(f"largest child RSS after {IDLE} s idle with {N} MDs (MiB)", rss, "<= 1.0")


def phase_fresh():
    """Each round on a store directory of its own, kept until the end:
    deleting 60,000 files between rounds makes ext4's inode allocator slow
    for the next round (`recently_deleted`, `find_inode_bit`: +7 s per
    round in a profile), which no server's first start meets."""
    times, rss = [], []
    with Sandbox() as sb:
        for i in range(ROUNDS):
            store = sb.path(f"md-fresh-{i}")
            body = conf(sb, f"MDInitialDelay 1h\nMDStoreDir {store}")
            sb.write_conf(body, log_level="warn")
            os.sync()
            times.append(start(sb, "ours"))
            time.sleep(2)
            rss.append(child_rss_mib(sb.pid()))
            stop(sb, "ours")
    line(f"ours only: start-up with {N} MDs on an empty store (a fallback per MD) (s)", {"ours": times}, "<= 30 s")
    line("ours only: child RSS after the fresh start (MiB)", {"ours": rss}, "-")


def staged(sb, name):
    return os.path.exists(sb.path("md", "staging", name, f"pubcert.{SPEC}.pem"))


class Peak:
    """Samples the largest child RSS and the orders pebble has in flight."""

    def __init__(self, sb):
        self.sb, self.rss, self.stop = sb, [], False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            pid = self.sb.pid()
            if pid:
                self.rss.append(child_rss_mib(pid))
            time.sleep(1)

    def done(self):
        self.stop = True
        self.t.join()
        return self.rss


def in_flight(sb, since):
    """Most orders pebble had between creating them and issuing their
    certificate, from its log since offset `since`."""
    try:
        with open(sb.path("logs", "pebble.log"), errors="replace") as f:
            f.seek(since)
            text = f.read()
    except OSError:
        return None
    live, peak = 0, 0
    for x in text.splitlines():
        if re.search(r"Added order \S+ to the db", x):
            live += 1
            peak = max(peak, live)
        elif "Issued certificate serial" in x:
            live -= 1
    return peak


def batch_run(sb, label, mod, due, templates):
    """One module with `due` of the N MDs due: the seconds from `apache2 -k
    start` until all are staged (printed with when the first, half and 90 %
    were, the child RSS first/peak/last and the most orders in flight)."""
    if len(due) not in templates:
        templates[len(due)] = sb.path(f"batch-{len(due)}")
        took = warm_store(templates[len(due)], due)
        print(f"(a store with {N} certificates, {len(due)} due, made in {took:.0f} s)")
    install_store(sb, templates[len(due)])
    sb.write_conf(conf(sb), module=mod, log_level="warn")
    since = os.path.getsize(sb.path("logs", "pebble.log"))
    t0 = time.time()
    start(sb, label)
    peak = Peak(sb)
    when, left = [], set(due)
    end = time.time() + 7200
    while left and time.time() < end:
        done = {x for x in left if staged(sb, x)}
        when += [time.time() - t0] * len(done)
        left -= done
        time.sleep(1)
    if left:
        raise SystemExit(f"{label}: {len(left)} of {len(due)} not staged after 2 h")
    took = time.time() - t0
    q = lambda p: when[min(len(when) - 1, int(p * len(when)))]  # noqa: E731
    print(f"  {label}, {len(due)} due: staged: first {when[0]:.0f} s, half {q(0.5):.0f} s, "
          f"90 % {q(0.9):.0f} s, all {when[-1]:.0f} s")
    rss = peak.done()
    mem = (rss[0] if rss else 0, max(rss) if rss else 0, rss[-1] if rss else 0)
    flight = in_flight(sb, since)
    print(f"  {label}: {len(due)} staged in {took:.1f} s; child RSS first/peak/last "
          f"{mem[0]:.1f}/{mem[1]:.1f}/{mem[2]:.1f} MiB; orders in flight at most {flight}")
    stop(sb, label)
    return took


def phase_batch():
    """Ours for every size in BATCHES, C for BATCH_C (scaled to the others).
    Writes bench/scale_batch.dat for the picture of bench/time_to_certs.py."""
    ours, c_time, templates = {}, None, {}
    with Sandbox() as sb:
        sb.start_ca(env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "3"})
        for label, mod in MODULES:
            if label == "c":
                c_time = batch_run(sb, label, mod, NAMES[:BATCH_C], templates)
            elif label == "ours":
                for b in BATCHES:
                    ours[b] = batch_run(sb, label, mod, NAMES[:b], templates)
    print(f"a batch of {','.join(map(str, BATCHES))} of {N} MDs due at once, "
          f"pebble validates with up to 3 s latency")
    for b in BATCHES:
        msg = f"  ours {ours[b]:.1f} s for {b}"
        if c_time is not None and b == BATCH_C:
            msg += f"; C {c_time:.1f} s for {b}; ratio ours/C {ours[b] / c_time:.3f}"
        elif c_time is not None:
            scaled = c_time * b / BATCH_C
            msg += (f"; C {c_time:.1f} s for {BATCH_C}, scaled to {b}: {scaled:.0f} s "
                     f"(C renews one MD after the other); ratio ours/C {ours[b] / scaled:.3f}"
                     + ("  (target <= 0.05)" if b == 1000 else ""))
        print(msg)
    dat = os.path.join(HERE, "scale_batch.dat")
    with open(dat, "w") as f:
        f.write(f"# bench/scale.py batch {N}, {datetime.date.today()}: due ours_s c_measured_s "
                f"c_scaled_s (? = not run)\n")
        for b in sorted(set(BATCHES) | ({BATCH_C} if c_time is not None else set())):
            o = f"{ours[b]:.1f}" if b in ours else "?"
            cm = f"{c_time:.1f}" if c_time is not None and b == BATCH_C else "?"
            cs = f"{c_time * b / BATCH_C:.1f}" if c_time is not None else "?"
            f.write(f"{b} {o} {cm} {cs}\n")
    print(f"  data for the picture: {dat} (bench/time_to_certs.py plot fast)")


def main():
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    build()
    print(f"bench/scale.py {','.join(PHASES)} {N} {ROUNDS}, {datetime.date.today()}, {os.cpu_count()} cores")
    if any(p in PHASES for p in ("start", "status", "restart", "idle")):
        with Sandbox() as tsb:
            template = tsb.path("warm")
            took = warm_store(template)
            print(f"(a warm store with {N} certificates made in {took:.0f} s)")
            if any(p in PHASES for p in ("start", "status", "restart")):
                phase_start_status_restart(template)
            if "idle" in PHASES:
                phase_idle(template)
    if "fresh" in PHASES:
        phase_fresh()
    if "batch" in PHASES:
        phase_batch()


if __name__ == "__main__":
    main()
