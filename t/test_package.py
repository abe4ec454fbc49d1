"""The Debian package (issue 17): packaging/build-deb.sh builds it, lintian
finds no error, and installed into this machine's httpd it enables md_rs,
passes `apache2ctl configtest`, shows in `apache2ctl -M` and names itself in
the log; with Debian's md enabled beside it the configuration test says which
module would run; removed (purged), nothing of it is left and Debian's
mod_md can be enabled again. The machine's module state is restored."""

import glob
import os
import shutil
import subprocess

import pytest

from conftest import TOP

PKG = "libapache2-mod-md-rs"
MODULES = ("md", "md_rs", "ssl", "socache_shmcb")


def run(*argv, check=True):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, f"{argv}: {r.stdout}{r.stderr}"
    return r


def enabled(mod):
    return subprocess.run(["a2query", "-q", "-m", mod]).returncode == 0


@pytest.fixture(scope="module")
def debs():
    if not shutil.which("dpkg-deb") or not shutil.which("a2query"):
        pytest.skip("needs Debian's dpkg and apache2")
    r = run(os.path.join(TOP, "packaging", "build-deb.sh"), "--no-build", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    found = sorted(glob.glob(os.path.join(TOP, "target", "debian", "*.deb")))
    assert len(found) == 2, found
    return found


@pytest.fixture
def system_modules():
    """Restores the machine's enabled modules and removes the package."""
    before = {m: enabled(m) for m in MODULES}
    yield before
    subprocess.run(["dpkg", "--purge", PKG + "-dbgsym", PKG], capture_output=True)
    for m, on in before.items():
        if os.path.exists(f"/etc/apache2/mods-available/{m}.load") and on != enabled(m):
            subprocess.run(["a2enmod" if on else "a2dismod", "-q", m], capture_output=True)


def test_package_contents_and_lintian(debs):
    main = next(d for d in debs if "-dbgsym" not in d)
    files = run("dpkg-deb", "-c", main).stdout
    for path in ("./usr/lib/apache2/modules/mod_md_rs.so", "./etc/apache2/mods-available/md_rs.load",
                 "./etc/apache2/mods-available/md_rs.conf", "./usr/bin/a2md",
                 "./usr/share/man/man8/a2md.8.gz", "./usr/share/doc/libapache2-mod-md-rs/copyright",
                 "./usr/share/bash-completion/completions/a2md",
                 "./usr/share/zsh/vendor-completions/_a2md"):
        assert path in files, files
    assert "mod_md.so" not in files.replace("mod_md_rs.so", "")
    # stripped: the module is no bigger than a few MB (the release build with
    # its debug information is over 10 MB); the debug information is in -dbgsym
    tmp = os.path.join(TOP, "target", "debian", "x")
    shutil.rmtree(tmp, ignore_errors=True)
    run("dpkg-deb", "-x", main, tmp)
    so = os.path.join(tmp, "usr/lib/apache2/modules/mod_md_rs.so")
    assert os.path.getsize(so) < 4_000_000, os.path.getsize(so)
    assert ".debug_info" not in run("readelf", "-S", so).stdout
    assert "md_module" in run("nm", "-D", "--defined-only", so).stdout
    dbg = run("dpkg-deb", "-c", next(d for d in debs if "-dbgsym" in d)).stdout
    assert "/usr/lib/debug/.build-id/" in dbg
    conffiles = run("dpkg-deb", "-I", main, "conffiles").stdout.split()
    assert conffiles == ["/etc/apache2/mods-available/md_rs.conf",
                         "/etc/apache2/mods-available/md_rs.load"]
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed")
    r = run("lintian", "--fail-on", "error", *debs, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\nE: " not in "\n" + r.stdout


def test_install_switch_and_remove(debs, system_modules, sb):
    if enabled("md"):
        run("a2dismod", "-q", "md")
    r = run("dpkg", "-i", *debs)
    # enabled on installation (Debian's md was not), with its dependency
    assert enabled("md_rs") and enabled("ssl"), r.stdout + r.stderr
    assert run("apache2ctl", "configtest").stderr.strip().endswith("Syntax OK")
    assert "md_module (shared)" in run("apache2ctl", "-M").stdout
    # the installed files, in a sandbox server on loopback: the module names
    # itself at start-up, at httpd's default LogLevel
    lines = sb.base_conf(log_level="warn").splitlines()
    conf = "\n".join("Include /etc/apache2/mods-available/md_rs.load"
                     if line.startswith("LoadModule md_module") else line for line in lines)
    conf += "\nInclude /etc/apache2/mods-available/md_rs.conf\nMDomain pkg.example.org\n"
    sb.write_conf(conf, base=False)
    sb.start_httpd()
    sb.stop_httpd()
    log = sb.error_log()
    assert "mod_md in Rust " in log and "is the mod_md of this server" in log, log[-2000:]
    # Debian's md enabled beside it: md.load comes first and httpd would skip
    # ours; the configuration test says so instead of running the other one
    run("a2enmod", "-q", "md")
    r = run("apache2ctl", "configtest", check=False)
    assert r.returncode != 0
    assert "md_rs (mod_md in Rust) is enabled, but Debian's mod_md (md) was loaded first" in r.stderr
    run("a2dismod", "-q", "md")
    # an admin's edit of md_rs.conf survives an upgrade (a conffile)
    with open("/etc/apache2/mods-available/md_rs.conf", "a") as f:
        f.write("# edited by the admin\n")
    run("dpkg", "-i", "--force-confold", *debs)
    assert "# edited by the admin" in open("/etc/apache2/mods-available/md_rs.conf").read()
    # removed and purged: nothing of ours is left
    run("dpkg", "--purge", PKG + "-dbgsym", PKG)
    assert run("dpkg", "-L", PKG, check=False).returncode != 0
    left = [p for p in ("/usr/lib/apache2/modules/mod_md_rs.so", "/usr/bin/a2md",
                        "/etc/apache2/mods-available/md_rs.load",
                        "/etc/apache2/mods-available/md_rs.conf",
                        "/etc/apache2/mods-enabled/md_rs.load",
                        "/etc/apache2/mods-enabled/md_rs.conf",
                        "/usr/share/doc/" + PKG, "/usr/share/man/man8/a2md.8.gz")
            if os.path.lexists(p)]
    left += glob.glob("/var/lib/apache2/module/*/md_rs")
    assert not left, left
    # Debian's module is enabled again and works
    run("a2enmod", "-q", "md")
    assert run("apache2ctl", "configtest").stderr.strip().endswith("Syntax OK")
    assert "md_module (shared)" in run("apache2ctl", "-M").stdout
