"""Many MDs renew at once (issue 5, point 4): a CA that never answers one
MD does not hold up the others."""

import json
import os
import time

from helpers import job, wait_for
from helpers import black_hole


def test_twenty_mds_one_stuck_ca(ca_sb):
    hole, _ = black_hole()
    try:
        stuck = "stuck.example.org"
        names = [f"p{i}.example.org" for i in range(19)]
        conf = [f"<MDomain {stuck}>\n  MDCertificateAuthority https://localhost:{hole.getsockname()[1]}/dir\n</MDomain>"]
        conf += [f"MDomain {n}" for n in names]
        for n in [stuck] + names:
            conf.append(f"<VirtualHost 127.0.0.1:{ca_sb.http_port}>\n  ServerName {n}\n</VirtualHost>")
        conf.append("MDParallelRenewals 8")
        t0 = time.time()
        ca_sb.start_httpd("\n".join(conf))

        def done(n):
            return job(ca_sb, n).get("notified-renewed") is True
        assert wait_for(lambda: all(done(n) for n in names), 25), \
            [n for n in names if not done(n)] + [ca_sb.error_log()[-2000:]]
        elapsed = time.time() - t0
        # the stuck MD is still waiting for its CA: nobody waited for it
        assert not done(stuck)
        assert not os.path.exists(ca_sb.path("md", "staging", stuck, "pubcert.pem"))
        # and all of them share one account, registered once
        accounts = {open(ca_sb.path("md", "staging", n, "md.json")).read().count("ACME-") for n in names}
        staged_accounts = {json.load(open(ca_sb.path("md", "staging", n, "account.json")))["url"]
                           for n in names
                           if os.path.exists(ca_sb.path("md", "staging", n, "account.json"))}
        assert len(staged_accounts) == 1, staged_accounts
        assert "registered new account" in ca_sb.error_log()
        assert ca_sb.error_log().count("registered new account") == 1
        # an account another MD is writing in this process is no fault
        # (issue 25: a warning named its key missing while it was copied)
        assert "cannot use the stored ACME account" not in ca_sb.error_log()
        print(f"19 MDs with certificates after {elapsed:.1f}s", accounts)
        # installed: every MD records the one account in md.json (issue
        # 10.6: those that used another MD's staged account had none)
        ca_sb.start_httpd()
        assert wait_for(lambda: all(os.path.exists(ca_sb.path("md", "domains", n, "pubcert.pem"))
                                    for n in names), 20)
        ids = {json.load(open(ca_sb.path("md", "domains", n, "md.json")))["ca"].get("account")
               for n in names}
        assert ids == set(os.listdir(ca_sb.path("md", "accounts"))) and len(ids) == 1, ids
    finally:
        hole.close()
