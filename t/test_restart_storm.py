"""Graceful restarts while renewals run (issue 11.1): a child that exits
stops its renewal workers at a safe point and waits for them; none may be
left inside OpenSSL while the child's exit() tears it down. The renewal
that was cut off resumes afterwards: nothing is lost."""

import os
import signal
import time

from helpers import job, wait_for


def test_graceful_restart_storm_during_renewals(sb):
    # a CA with real latency keeps orders in flight across the restarts
    sb.start_ca(env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "1"}, validity=300)
    names = [f"storm{i}.example.org" for i in range(10)]
    conf = [f"MDomain {n}" for n in names]
    for n in names:
        conf.append(f"<VirtualHost 127.0.0.1:{sb.http_port}>\n  ServerName {n}\n</VirtualHost>")
    # 5-minute certificates, renewed when less than 99% is left: every
    # restart finds renewals to do
    conf.append("MDRenewWindow 99%")
    conf.append("MDRetryDelay 1s")
    sb.start_httpd("\n".join(conf))
    # renewals under way (an order placed) or already through (a staged set):
    # a fast CA can finish an order between two polls
    assert wait_for(lambda: any(os.path.exists(sb.path("md", "staging", n, f))
                                for n in names for f in ("order.json", "pubcert.pem")),
                    20), sb.error_log()[-2000:]
    for _ in range(25):
        os.kill(sb.pid(), signal.SIGUSR1)
        time.sleep(1.2)
    # after the storm, every MD gets its certificate
    assert wait_for(lambda: all(job(sb, n).get("notified-renewed") or
                                os.path.exists(sb.path("md", "domains", n, "pubcert.pem"))
                                for n in names), 90), sb.error_log()[-3000:]
    log = sb.error_log()
    assert "exit signal" not in log, [line for line in log.splitlines() if "exit signal" in line]
    assert "internal error" not in log
    # the account registered at the first renewal is the only one (issue 11.2)
    assert len(os.listdir(sb.path("md", "accounts"))) <= 1, os.listdir(sb.path("md", "accounts"))
