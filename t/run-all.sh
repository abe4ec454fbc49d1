#!/bin/bash
# Runs every test: installs missing prerequisites, then cargo fmt --check,
# cargo clippy -D warnings, cargo test (engine and glue unit tests), a
# release build, and the end-to-end suite in t/ against real httpd, pebble
# and the C module.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test-httpd/prereqs.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== cargo build --release (the module and a2md)"
cargo build --release --workspace
echo "== end-to-end tests (t/)"
export MD_MODULE="$PWD/target/release/libmod_md.so"
python3 -m pytest -p no:cacheprovider -q t/ "$@"
