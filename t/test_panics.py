"""No panic crosses into httpd: with the test trigger MD_RS_TEST_PANIC a
hook panics inside the real httpd; the guard logs it and httpd goes on."""

import os
import urllib.error
import urllib.request

import pytest

from helpers import site, wait_for


@pytest.fixture
def trigger():
    def set_point(p):
        os.environ["MD_RS_TEST_PANIC"] = p
    yield set_point
    os.environ.pop("MD_RS_TEST_PANIC", None)


def get(sb, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sb.http_port}{path}", timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_panic_in_a_request_handler(sb, trigger):
    trigger("md-status")
    sb.start_httpd("<Location /md-status>\n  SetHandler md-status\n</Location>\n")
    for _ in range(5):
        assert get(sb, "/md-status") in (404, 500)  # declined, not a dead connection
    assert get(sb, "/index.html") == 200
    log = sb.error_log()
    assert "[md:crit]" in log and "internal error in md-status handler: test panic at md-status" in log
    assert not any(s in log for s in ("Segmentation fault", "exit signal Abort", "core dumped"))


def test_panic_in_the_renewal_job(ca_sb, trigger):
    trigger("renewal-job")
    name = "pj.example.org"
    ca_sb.start_httpd(site(ca_sb, name))
    assert wait_for(lambda: "internal error in renewal job: test panic at renewal-job" in ca_sb.error_log(), 20)
    assert get(ca_sb, "/index.html") == 200
    assert not any(s in ca_sb.error_log() for s in ("Segmentation fault", "exit signal Abort", "core dumped"))


def test_panic_in_post_config_fails_the_start_cleanly(sb, trigger):
    trigger("post_config")
    sb.write_conf("")
    r = sb.start_httpd(check=False)
    out = r.stderr + r.stdout + sb.error_log()
    assert r.returncode != 0
    assert "internal error in post_config: test panic at post_config" in out
