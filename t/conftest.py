"""Fixtures for the end-to-end tests: real httpd, real pebble, real openssl."""

import json
import os
import shutil
import subprocess
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "test-httpd"))

import sandbox as _sandbox  # noqa: E402
from sandbox import C_MODULE, Sandbox, default_module  # noqa: E402

A2MD = os.path.join(TOP, "target", "release", "a2md")


def pytest_sessionfinish(session, exitstatus):
    """Sandbox directories go when the session passed (each holds a store,
    logs and a CA: about 1.5 MB, 450 of them in a full run)."""
    if exitstatus != 0 or os.environ.get("MD_KEEP_SANDBOX"):
        return
    for sb in list(_sandbox._LIVE):
        sb.stop()
    for root in _sandbox.CREATED:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def module():
    path = default_module()
    assert os.path.exists(path), path
    return path


@pytest.fixture(scope="session")
def c_module():
    if not os.path.exists(C_MODULE):
        pytest.skip("the C mod_md is not installed")
    return C_MODULE


@pytest.fixture(scope="session")
def cfg(module):
    """A sandbox directory for `apache2 -t` runs (no processes)."""
    sb = Sandbox(module=module)
    yield sb
    sb.stop()


@pytest.fixture
def sb(module):
    """A fresh sandbox (no CA started); everything is stopped afterwards."""
    s = Sandbox(module=module)
    yield s
    s.stop()


@pytest.fixture
def ca_sb(module):
    """A fresh sandbox with pebble and the fake DNS running."""
    s = Sandbox(module=module)
    s.start_ca()
    yield s
    s.stop()


def syntax(sb, body, module=None):
    """Runs `apache2 -t`; returns (ok, last line of output)."""
    rc, out = sb.config_test(body, module=module)
    last = out.splitlines()[-1] if out else ""
    return rc == 0, last


def openssl_selfsigned(sb, name, cn="localhost"):
    """A self-signed cert/key pair in the sandbox (for static SSL vhosts)."""
    key, crt = sb.path("ca", f"{name}.key"), sb.path("ca", f"{name}.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", key, "-out", crt, "-subj", f"/CN={cn}"],
                   check=True, capture_output=True)
    os.chmod(key, 0o644)
    return crt, key


@pytest.fixture(scope="session")
def a2md():
    if not os.path.exists(A2MD) or os.path.getmtime(A2MD) < os.path.getmtime(os.path.join(TOP, "a2md", "src", "cli.rs")):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "a2md"], cwd=TOP, check=True)
    return A2MD


def drive(sb, a2md, names, *opts, ca_url=None, timeout=120, store=None, proxy=None, proxy_ca=None):
    argv = [a2md, "-d", store or sb.path("md"), "-a", ca_url or sb.ca_url, "-C", sb.ca_cert,
            *(["-p", proxy] if proxy else []), *(["-P", proxy_ca] if proxy_ca else []), "drive",
            "--contact", "admin@example.org", "--agreement", "accepted", *opts, *names]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"a2md printed no result: {r.stdout}\n{r.stderr}")
    out["_stderr"] = r.stderr
    out["_rc"] = r.returncode
    return out


@pytest.fixture
def cluster_factory(module):
    made = []

    def make(**kw):
        from cluster import Cluster

        c = Cluster(module, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
