"""Fixtures for the end-to-end tests: real httpd, real pebble, real openssl."""

import os
import subprocess
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "test-httpd"))

from sandbox import C_MODULE, Sandbox, default_module  # noqa: E402


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
