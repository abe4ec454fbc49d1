#!/usr/bin/env python3
"""MDChallengeDns01 command for the tests: publishes the TXT record through
pebble-challtestsrv's management API.

  dns01_challtestsrv.py HOST:PORT setup <domain> <value>
  dns01_challtestsrv.py HOST:PORT teardown <domain> [<value>]

Writes each call to $DNS01_LOG (if set), one line per call."""

import json
import os
import sys
import urllib.request


def main(argv):
    mgmt, action, domain = argv[1], argv[2], argv[3]
    log = os.environ.get("DNS01_LOG")
    if log:
        with open(log, "a") as f:
            f.write(" ".join(argv[2:]) + "\n")
    host = f"_acme-challenge.{domain}."
    if action == "setup":
        body = {"host": host, "value": argv[4]}
        path = "/set-txt"
    elif action == "teardown":
        body = {"host": host}
        path = "/clear-txt"
    else:
        return 2
    req = urllib.request.Request(f"http://{mgmt}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return 0 if r.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
