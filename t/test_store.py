"""The store (spec §5.1–5.4): created as the C module does it, and shared
with the C module in both directions."""

import base64
import json
import os
import pwd

import pytest

from helpers import start_must_fail

# No renewal runs: the layout is what start-up made (both modules open
# `staging/` to 0755 at the renewal job's first write there, which
# t/test_parity.py compares after the runs).
MD_BODY = """
MDomain a.example.org www.a.example.org
MDRenewMode manual
<VirtualHost 127.0.0.1:{http}>
  ServerName a.example.org
</VirtualHost>
"""


def body(sb):
    return MD_BODY.format(http=sb.http_port)


def owner(p):
    return pwd.getpwuid(os.stat(p).st_uid).pw_name


def mode(p):
    return os.stat(p).st_mode & 0o777


def store_key(sb):
    with open(sb.path("md", "md_store.json")) as f:
        text = f.read()
    doc = json.loads(text)
    return text, doc


def test_fresh_store_layout(sb):
    assert os.getuid() == 0, "the privilege split needs root"
    sb.start_httpd(body(sb))
    md = sb.path("md")
    text, doc = store_key(sb)
    assert doc["store"] == {"version": 3.0}
    key = base64.urlsafe_b64decode(doc["key"] + "=" * (-len(doc["key"]) % 4))
    assert len(key) == 48 and "=" not in doc["key"]
    # jansson's layout: 2-space indent, "3.0", no trailing newline
    assert text == '{\n  "store": {\n    "version": 3.0\n  },\n  "key": "%s"\n}' % doc["key"]
    assert mode(md) == 0o755 and owner(md) == "root"
    assert mode(os.path.join(md, "md_store.json")) == 0o600
    assert owner(os.path.join(md, "md_store.json")) == "root"
    assert mode(os.path.join(md, "accounts")) == 0o750 and owner(os.path.join(md, "accounts")) == "root"
    for g in ("challenges", "staging", "ocsp"):
        p = os.path.join(md, g)
        assert mode(p) == 0o750, g
        assert owner(p) == "www-data", g
        assert os.stat(p).st_gid == 0, g  # only the user id changes
    assert "store directory does not exist, creating " + md in sb.error_log()


def test_store_dir_is_server_root_relative(sb):
    sb.start_httpd(body(sb) + "\nMDStoreDir other/store")
    assert os.path.exists(sb.path("other", "store", "md_store.json"))


def _run(sb, module, conf_body):
    sb.clear_log()
    sb.write_conf(conf_body, module=module)
    sb.start_httpd()
    sb.stop_httpd()
    log = sb.error_log()
    assert "AH10046" not in log, log
    return log


def layout(sb):
    out = {}
    for dirpath, dirs, files in os.walk(sb.path("md")):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, sb.path("md"))] = (mode(p), owner(p))
    return out


@pytest.mark.parametrize("first", ["c", "rust"])
def test_store_shared_with_c_module(sb, module, c_module, first):
    order = [c_module, module] if first == "c" else [module, c_module]
    conf = body(sb)
    _run(sb, order[0], conf)
    text1, doc1 = store_key(sb)
    lay1 = layout(sb)
    log = _run(sb, order[1], conf)
    text2, doc2 = store_key(sb)
    # the second module opened the first one's store as it was
    assert doc2 == doc1 and text2 == text1
    assert "AH10046" not in log and "store directory does not exist" not in log
    lay2 = layout(sb)
    for path in ("md_store.json", "accounts", "challenges", "staging", "ocsp"):
        assert lay2[path] == lay1[path], path
    # and the first module still takes it back
    log = _run(sb, order[0], conf)
    assert store_key(sb)[1] == doc1
    assert "AH10046" not in log


BROKEN = [
    ("{ not json", "not readable as JSON"),
    ('{"store":{"version":4.0},"key":"x"}', "version too new: 4"),
    ('{"store":{"version":3.0}}', "missing key: key"),
    ('{"store":{"version":3.0},"key":"Zm9v"}', "key length unexpected"),
]


@pytest.mark.parametrize("content,expected", BROKEN, ids=[b[1] for b in BROKEN])
def test_broken_store_file_fails_cleanly(sb, content, expected):
    os.makedirs(sb.path("md"), mode=0o755)
    with open(sb.path("md", "md_store.json"), "w") as f:
        f.write(content)
    out = start_must_fail(sb, body(sb))
    assert f"AH10046: setup store for {sb.path('md')}" in out
    assert expected in out
    # nothing is lost: the file is untouched
    with open(sb.path("md", "md_store.json")) as f:
        assert f.read() == content


def test_store_path_not_a_directory(sb):
    with open(sb.path("md"), "w") as f:
        f.write("x")
    out = start_must_fail(sb, body(sb))
    assert "AH10046" in out and "is not a directory" in out
