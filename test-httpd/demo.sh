#!/bin/bash
# The main job in the sandbox: install prerequisites, build the module,
# start pebble + fake DNS + httpd with the module on loopback, show what the
# module made of its managed domains, and stop everything again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test-httpd/prereqs.sh
export PATH="$HOME/.cargo/bin:$PATH"
exec python3 test-httpd/sandbox.py demo
