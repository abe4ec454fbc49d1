"""No state of the store takes httpd down (issue 25). Three MDs with
certificates, installed; then one thing goes wrong in the store and httpd
is (re)started, as logrotate's nightly reload does. The C module stops the
whole server there (asserted here on the same store, so the difference stays
visible); ours starts, serves every certificate it can read, says what is
wrong once, and renews what it lost.

The store is on a small tmpfs the test mounts (the suite runs as root), so
that a full disk is a real ENOSPC."""

import glob
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from sandbox import C_MODULE
from helpers import STATUS
from helpers import wait_for

NAMES = ["a.sf.example.org", "b.sf.example.org", "c.sf.example.org"]
A, B, C = NAMES


def mount_tmpfs(path, size="3m"):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the store here ({r.stderr.strip()}): needs root")


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


@pytest.fixture
def fsb(sb):
    """A sandbox whose store is a tmpfs, with pebble running."""
    mount_tmpfs(sb.path("md"))
    sb.start_ca()
    yield sb
    sb.stop_httpd()
    umount(sb.path("md"))


def conf(sb, extra="", names=NAMES):
    out = [STATUS, "MDRetryDelay 1s", extra]
    for n in names:
        out.append(f"MDomain {n}")
        out.append(f"<VirtualHost 127.0.0.1:{sb.https_port}>\n  ServerName {n}\n  SSLEngine on\n</VirtualHost>")
        out.append(f"<VirtualHost 127.0.0.1:{sb.http_port}>\n  ServerName {n}\n</VirtualHost>")
    return "\n".join(out) + "\n"


def live(sb, name, f="pubcert.pem"):
    return sb.path("md", "domains", name, f)


def install_all(sb, names=NAMES, extra=""):
    """Certificates for `names`, obtained, installed by a restart; httpd stopped."""
    sb.start_httpd(conf(sb, extra, names))
    assert wait_for(lambda: all(os.path.exists(sb.path("md", "staging", n, "pubcert.pem"))
                                and job_done(sb, n) for n in names), 60), sb.error_log()[-3000:]
    sb.start_httpd()
    assert all(os.path.exists(live(sb, n)) for n in names), sb.error_log()[-3000:]
    sb.stop_httpd()


def job_done(sb, name):
    try:
        with open(sb.path("md", "staging", name, "job.json")) as f:
            return json.load(f).get("notified-renewed") is True
    except (OSError, ValueError):
        return False


def served(sb, name):
    """(HTTP status, whose certificate: 'ca', 'fallback', or the issuer)."""
    try:
        status, der = sb.https_request(name, timeout=5)
    except OSError as e:
        return None, repr(e)
    issuer = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-issuer"],
                            input=der, capture_output=True).stdout.decode()
    return status, ("ca" if "Pebble" in issuer else
                    "fallback" if "Apache Managed Domain Fallback" in issuer else issuer)


def md_status(sb, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{sb.http_port}/md-status/{name}", timeout=5) as r:
        return json.load(r)


def c_module_stops(sb, body):
    """Starts the C module on the store as it is: it must fail (the
    difference this issue is about), and it must not have repaired it."""
    sb.stop_httpd()
    sb.clear_log()
    r = sb.start_httpd(body, module=C_MODULE, check=False)
    pid = sb.pid()
    time.sleep(1)
    alive = pid is not None and sb._alive(pid)
    log = sb.error_log()
    sb.stop_httpd()
    assert r.returncode != 0 or not alive, "the C module started over this store:\n" + log[-2000:]
    return log


def errors_about(log, text):
    return [x for x in log.splitlines() if "[md:error]" in x and text in x]


def another_key():
    return subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                          capture_output=True, check=True).stdout


DAMAGE = {
    "pubcert-truncated": ("pubcert.pem", lambda b: b[: len(b) // 2]),
    "pubcert-garbage": ("pubcert.pem", lambda b: b"this is not a certificate\n"),
    "pubcert-empty": ("pubcert.pem", lambda b: b""),
    "privkey-another": ("privkey.pem", lambda b: another_key()),
    "privkey-garbage": ("privkey.pem", lambda b: b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"),
    "privkey-empty": ("privkey.pem", lambda b: b""),
}


def test_a_broken_live_set_does_not_take_httpd_down(fsb):
    sb = fsb
    install_all(sb)
    body = conf(sb)
    for case, (fname, damage) in DAMAGE.items():
        path = live(sb, B, fname)
        with open(path, "rb") as f:
            good = f.read()
        with open(path, "wb") as f:
            f.write(damage(good))
        # the C module stops on it (AH02562 / AH02565)
        clog = c_module_stops(sb, body)
        assert "AH02562" in clog or "AH02565" in clog or "AH02564" in clog, (case, clog[-2000:])
        # ours: starts, the others serve their certificates, B the fallback
        sb.clear_log()
        sb.start_httpd(body)
        assert served(sb, A) == (200, "ca") and served(sb, C) == (200, "ca"), case
        log = sb.error_log()
        lines = errors_about(log, path)
        assert len(lines) == 1, (case, log[-3000:])
        assert "set aside as" in lines[0] and "renewed now" in lines[0], lines
        assert os.path.exists(path + ".broken"), case
        st = md_status(sb, B)
        assert any(path in p for p in st["store"]["problems"]), st.get("store")
        assert all("store" not in md_status(sb, n) for n in (A, C))
        # B is renewed at once and served hot, no restart
        pid = sb.pid()
        assert wait_for(lambda: served(sb, B) == (200, "ca"), 60), (case, sb.error_log()[-3000:])
        assert sb.pid() == pid
        # the next restart is clean and installs B's new certificate
        sb.clear_log()
        sb.start_httpd()
        assert "[md:error]" not in sb.error_log(), (case, sb.error_log()[-2000:])
        assert os.path.exists(live(sb, B)) and "store" not in md_status(sb, B)
        assert all(served(sb, n) == (200, "ca") for n in NAMES), case
        sb.stop_httpd()
        for f in glob.glob(sb.path("md", "domains", B, "*.broken")):
            os.remove(f)


def fill(path):
    """Fills the file system of `path` up: a file that takes all space left."""
    filler = os.path.join(path, "filler")
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    return filler


def test_a_full_store_at_a_graceful_restart(fsb):
    """The store's file system is full at a graceful restart that changes
    every MD (a new MDContactEmail): md.json cannot be written. The C module
    exits (AH10172, then AH00020); ours goes on serving, says so once per
    MD with the path and the OS error, shows it in md-status, and writes the
    md.json files at the first restart after space is back."""
    sb = fsb
    install_all(sb)
    sb.start_httpd(conf(sb))
    filler = fill(sb.path("md"))
    changed = conf(sb, "MDContactEmail other@example.org")
    sb.clear_log()
    sb.start_httpd(changed)  # graceful
    assert sb._alive(sb.pid())
    assert all(served(sb, n) == (200, "ca") for n in NAMES)
    log = sb.error_log()
    for n in NAMES:
        lines = errors_about(log, f"md[{n}]")
        assert len(lines) == 1, (n, log[-3000:])
        assert "No space left on device" in lines[0] and sb.path("md", "domains", n) in lines[0], lines
        assert "No space left on device" in md_status(sb, n)["store"]["problems"][0]
    # nothing half-written: no temp files
    assert not [f for f in glob.glob(sb.path("md", "**", "*"), recursive=True) if ".tmp." in f]
    # the C module stops there
    clog = c_module_stops(sb, changed)
    assert "AH10172" in clog and "No space left on device" in clog, clog[-2000:]
    # space is back: the next start is clean and the MDs have the new contact
    os.remove(filler)
    sb.clear_log()
    sb.start_httpd(changed)
    assert "[md:error]" not in sb.error_log(), sb.error_log()[-2000:]
    for n in NAMES:
        with open(live(sb, n, "md.json")) as f:
            assert json.load(f)["contacts"] == ["mailto:other@example.org"]
        assert "store" not in md_status(sb, n)


def test_a_full_store_and_a_new_md(fsb):
    """A new MD whose fallback certificate cannot be written (the store is
    full) still gets an answer: the fallback is made in httpd's runtime
    directory; the other MDs serve as before. The C module cannot start."""
    sb = fsb
    install_all(sb, NAMES[:2])
    filler = fill(sb.path("md"))
    body = conf(sb)
    clog = c_module_stops(sb, body)
    assert "AH10174" in clog or "No space left" in clog, clog[-2000:]
    sb.clear_log()
    sb.start_httpd(body)
    assert served(sb, A) == (200, "ca") and served(sb, B) == (200, "ca")
    assert served(sb, C) == (503, "fallback")
    log = sb.error_log()
    assert "the fallback certificate is made in " + sb.path("run", "md-fallback") in log, log[-3000:]
    # space is back: C gets its certificate (served hot), the next start is clean
    os.remove(filler)
    assert wait_for(lambda: served(sb, C) == (200, "ca"), 60), sb.error_log()[-3000:]
    sb.clear_log()
    sb.start_httpd()
    assert "[md:error]" not in sb.error_log(), sb.error_log()[-2000:]
    assert all(served(sb, n) == (200, "ca") for n in NAMES)


def test_a_full_store_with_a_staged_set_to_install(fsb):
    """A renewed set is staged; the store is full at the restart that would
    install it: it stays staged (nothing half-written, nothing lost), is
    served hot meanwhile, and is installed at the restart after space is
    back."""
    sb = fsb
    install_all(sb)
    sb.start_httpd(conf(sb, names=NAMES).replace("MDomain " + B, f"<MDomain {B}>\n  MDRenewWindow 3000d\n</MDomain>"))
    assert wait_for(lambda: os.path.exists(sb.path("md", "staging", B, "pubcert.pem")) and job_done(sb, B), 60)
    with open(sb.path("md", "staging", B, "pubcert.pem"), "rb") as f:
        staged = f.read()
    filler = fill(sb.path("md"))
    sb.clear_log()
    sb.start_httpd(conf(sb))
    lines = errors_about(sb.error_log(), f"md[{B}]: cannot install the staged certificates")
    assert len(lines) == 1 and "No space left on device" in lines[0], sb.error_log()[-3000:]
    with open(sb.path("md", "staging", B, "pubcert.pem"), "rb") as f:
        assert f.read() == staged
    assert not os.path.exists(sb.path("md", "tmp", B))
    assert all(served(sb, n) == (200, "ca") for n in NAMES)
    fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint"], input=staged,
                        capture_output=True).stdout
    status, der = sb.https_request(B)
    assert subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-fingerprint"],
                          input=der, capture_output=True).stdout == fp  # served hot
    os.remove(filler)
    sb.clear_log()
    sb.start_httpd()
    assert "[md:error]" not in sb.error_log(), sb.error_log()[-2000:]
    with open(live(sb, B), "rb") as f:
        assert f.read() == staged


def test_a_read_only_store(fsb):
    """The store's file system is read-only at a restart that changes the
    MDs: ours serves every certificate and says what it could not write;
    the C module stops."""
    sb = fsb
    install_all(sb)
    changed = conf(sb, "MDContactEmail other@example.org")
    subprocess.run(["mount", "-o", "remount,ro", sb.path("md")], check=True)
    clog = c_module_stops(sb, changed)
    assert "Read-only file system" in clog, clog[-2000:]
    sb.clear_log()
    sb.start_httpd(changed)
    assert all(served(sb, n) == (200, "ca") for n in NAMES)
    log = sb.error_log()
    for n in NAMES:
        lines = errors_about(log, f"md[{n}]")
        assert len(lines) == 1 and "Read-only file system" in lines[0], (n, log[-3000:])
        assert "store" in md_status(sb, n)
    subprocess.run(["mount", "-o", "remount,rw", sb.path("md")], check=True)
    sb.clear_log()
    sb.start_httpd()
    assert "[md:error]" not in sb.error_log(), sb.error_log()[-2000:]


def test_the_store_goes_away_while_httpd_runs(fsb):
    """The store's file system goes away (an unmounted share) while renewals
    run; then `staging/` is made root-only. httpd goes on serving, md-status
    answers and says why renewals fail, nothing panics, nothing is written
    into the empty mount point; once the store is back, the next start
    recovers and renews."""
    sb = fsb
    install_all(sb)
    backup = sb.path("md-backup")
    subprocess.run(["cp", "-a", sb.path("md"), backup], check=True)
    renewing = conf(sb, "MDRenewWindow 3000d\nMDCheckInterval 2s")
    sb.start_httpd(renewing)
    umount(sb.path("md"))
    time.sleep(8)
    assert sb._alive(sb.pid())
    assert os.listdir(sb.path("md")) == [], os.listdir(sb.path("md"))
    assert all(served(sb, n) == (200, "ca") for n in NAMES)
    for n in NAMES:
        st = md_status(sb, n)
        assert st["name"] == n
        assert "is gone" in st["store"]["problems"][-1], st.get("store")
    log = sb.error_log()
    assert "is gone" in log, log[-3000:]
    assert "panic" not in log and "internal error" not in log and "exit signal" not in log, log[-3000:]
    # back, but staging/ is root's alone now: the job says it cannot write
    sb.stop_httpd()
    mount_tmpfs(sb.path("md"))
    subprocess.run(f"cp -a {backup}/. {sb.path('md')}/", shell=True, check=True)
    sb.clear_log()
    sb.start_httpd(renewing)
    os.chown(sb.path("md", "staging"), 0, 0)
    os.chmod(sb.path("md", "staging"), 0o700)
    time.sleep(6)
    assert sb._alive(sb.pid()) and all(served(sb, n)[0] == 200 for n in NAMES)
    log = sb.error_log()
    assert "Permission denied" in log and "panic" not in log and "exit signal" not in log, log[-3000:]
    # the next start hands staging/ back to the User and the renewals go
    # through, also when a staging area is removed while they run
    sb.clear_log()
    sb.start_httpd(renewing)
    end = time.time() + 1.5
    while time.time() < end:
        shutil.rmtree(sb.path("md", "staging", B), ignore_errors=True)
        time.sleep(0.05)
    assert wait_for(lambda: all(job_done(sb, n) for n in NAMES), 60), sb.error_log()[-3000:]
    assert "panic" not in sb.error_log() and "exit signal" not in sb.error_log()
    assert all(served(sb, n) == (200, "ca") for n in NAMES)


def test_a_broken_static_set_gets_the_fallback(fsb):
    """An MD with MDCertificateFile/MDCertificateKeyFile whose key is not
    the certificate's: the C module stops (AH02565); ours starts, that
    vhost gets the fallback (503), the error names the directive to fix,
    and the other MDs serve as before."""
    sb = fsb
    install_all(sb, NAMES[:2])
    d = sb.path("static")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-keyout", os.path.join(d, "orig.key"), "-out", cert, "-subj", f"/CN={C}",
                    "-addext", f"subjectAltName=DNS:{C}"], check=True, capture_output=True)
    with open(key, "wb") as f:
        f.write(another_key())
    body = conf(sb, names=NAMES[:2]) + f"""<MDomain {C}>
  MDCertificateFile {cert}
  MDCertificateKeyFile {key}
</MDomain>
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {C}
  SSLEngine on
</VirtualHost>
"""
    clog = c_module_stops(sb, body)
    assert "AH02565" in clog or "AH02564" in clog, clog[-2000:]
    sb.clear_log()
    sb.start_httpd(body)
    assert served(sb, A) == (200, "ca") and served(sb, B) == (200, "ca")
    assert served(sb, C) == (503, "fallback")
    lines = errors_about(sb.error_log(), key)
    assert len(lines) == 1 and "MDCertificateKeyFile" in lines[0], sb.error_log()[-3000:]
    assert "does not belong to the certificate" in lines[0]
    assert os.path.exists(key), "the admin's own files are left where they are"
    assert any("MDCertificateKeyFile" in p for p in md_status(sb, C)["store"]["problems"])
