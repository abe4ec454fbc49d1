"""Start-up as Debian configures it: many modules load before ours, and
httpd unloads and reloads every module between its dry run and the real
start, and again at every restart, often at another address. Nothing the
module hands to httpd or APR may point into its old image (issue 10.1)."""

import os
import time

from sandbox import MODULES
from helpers import site, wait_for

# Debian's mods-enabled order puts these (alphabetically) before md.
BEFORE = ["access_compat", "alias", "auth_basic", "authn_core", "authn_file", "authz_host",
          "authz_user", "autoindex", "cache", "cache_disk", "dav", "dav_fs", "deflate", "dir",
          "env", "expires", "filter", "headers", "http2", "include", "info", "lua",
          "negotiation", "proxy", "proxy_http", "reqtimeout", "rewrite", "setenvif"]


def conf_with_modules(sb, body):
    base = sb.base_conf()
    extra = "".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so\n" for m in BEFORE
                    if os.path.exists(f"{MODULES}/mod_{m}.so"))
    base = base.replace("LoadModule md_module", extra + "LoadModule md_module", 1)
    path = sb.path("httpd.conf")
    with open(path, "w") as f:
        f.write(base + body + "\n")
    sb.httpd_conf = path


def real_starts(sb):
    return sb.error_log().count("AH10071: mod_md (v2.6.10), initializing...")


def test_many_modules_starts_and_graceful_restarts(sb):
    """Every start and every graceful restart is a real one: the module
    initialises (AH10071), supervises its MD (AH10074) and httpd survives.
    With the dry-run marker under a key inside the module's image, most of
    these starts crashed in apr_pool_userdata_get or silently did nothing."""
    conf_with_modules(sb, site(sb, "start.example.org"))
    starts = 8
    restarts = 2
    for i in range(starts):
        sb.clear_log()
        r = sb.apachectl("-k", "start")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: real_starts(sb) == 1, 15), f"start {i}: " + sb.error_log()[-3000:]
        for k in range(restarts):
            assert wait_for(lambda: sb.pid() is not None, 5)
            r = sb.apachectl("-k", "graceful")
            assert r.returncode == 0, r.stderr
            assert wait_for(lambda: real_starts(sb) == k + 2, 15), \
                f"start {i}, restart {k}: " + sb.error_log()[-3000:]
        assert wait_for(lambda: sb.error_log().count("AH10074: 1 out of 1 mds need watching")
                        == restarts + 1, 10), sb.error_log()[-3000:]
        log = sb.error_log()
        assert "exit signal" not in log and "Segmentation" not in log, log[-3000:]
        pid = sb.pid()
        sb.stop_httpd()
        assert not sb._alive(pid)
        time.sleep(0.2)
