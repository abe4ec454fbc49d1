"""apxs/install.sh: installs under its own name, never over Debian's
mod_md.so, and md_rs.load/md_rs.conf let a2enmod switch modules."""

import hashlib
import os
import shutil
import subprocess

from conftest import TOP

DEBIAN_MD = "/usr/lib/apache2/modules/mod_md.so"


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def install(module, tmp):
    env = dict(os.environ, LIBEXECDIR=os.path.join(tmp, "modules"),
               CONFDIR=os.path.join(tmp, "mods-available"))
    return subprocess.run([os.path.join(TOP, "apxs", "install.sh"), module], env=env,
                          capture_output=True, text=True)


def test_install_with_apxs(module, cfg, tmp_path):
    before = sha(DEBIAN_MD) if os.path.exists(DEBIAN_MD) else None
    tmp = cfg.path("apxs-test")
    shutil.rmtree(tmp, ignore_errors=True)
    r = install(module, tmp)
    assert r.returncode == 0, r.stderr
    so = os.path.join(tmp, "modules", "mod_md_rs.so")
    assert sha(so) == sha(module)
    assert not os.path.exists(os.path.join(tmp, "modules", "mod_md.so"))
    if before:
        assert sha(DEBIAN_MD) == before
    load = open(os.path.join(tmp, "mods-available", "md_rs.load")).read()
    assert f"LoadModule md_module {so}" in load
    assert "# Conflicts: md" in load
    # the installed module loads through the .load/.conf pair
    body = "\n".join(f"Include {os.path.join(tmp, 'mods-available', f)}" for f in ("md_rs.load", "md_rs.conf"))
    conf = cfg.base_conf().replace("LoadModule md_module", "#LoadModule md_module") + body
    with open(cfg.path("apxs.conf"), "w") as f:
        f.write(conf)
    r = subprocess.run(["apache2", "-t", "-f", cfg.path("apxs.conf")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # an admin's edited md_rs.conf is kept
    with open(os.path.join(tmp, "mods-available", "md_rs.conf"), "a") as f:
        f.write("# mine\n")
    r = install(module, tmp)
    assert r.returncode == 0 and "keeping your" in r.stdout
    assert "# mine" in open(os.path.join(tmp, "mods-available", "md_rs.conf")).read()


def test_install_refuses_non_module(cfg):
    bogus = cfg.path("bogus.so")
    with open(bogus, "w") as f:
        f.write("no module")
    r = install(bogus, cfg.path("apxs-bogus"))
    assert r.returncode != 0 and "does not export md_module" in r.stderr


def test_a2enmod_switches_modules(module, cfg):
    if not shutil.which("a2enmod"):
        import pytest
        pytest.skip("a2enmod not available")
    confdir = cfg.path("etc-apache2")
    shutil.rmtree(confdir, ignore_errors=True)
    # a copy of Debian's mods-available, plus ours
    shutil.copytree("/etc/apache2/mods-available", os.path.join(confdir, "mods-available"))
    os.makedirs(os.path.join(confdir, "mods-enabled"))
    r = install(module, confdir)
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, APACHE_CONFDIR=confdir)
    a2 = lambda *a: subprocess.run(list(a), env=env, capture_output=True, text=True)  # noqa: E731
    enabled = lambda: sorted(os.listdir(os.path.join(confdir, "mods-enabled")))  # noqa: E731
    assert a2("a2enmod", "-q", "md").returncode == 0
    assert "md.load" in enabled()
    r = a2("a2enmod", "-q", "md_rs")
    assert r.returncode != 0 and "conflict" in (r.stdout + r.stderr).lower()
    assert "md_rs.load" not in enabled()
    assert a2("a2dismod", "-q", "md").returncode == 0
    r = a2("a2enmod", "-q", "md_rs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "md_rs.load" in enabled() and "md_rs.conf" in enabled() and "md.load" not in enabled()
    assert "ssl.load" in enabled()  # its dependency came along
