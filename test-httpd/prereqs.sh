#!/bin/bash
# Installs what building and testing need, when it is missing: Debian
# packages (httpd + headers, pebble, libclang for bindgen, libcurl/OpenSSL
# headers, dpkg-dev/binutils/lintian for the .deb), the Rust tool chain's rustfmt/clippy, and pytest.
set -euo pipefail
pkgs=(apache2 apache2-dev pebble etcd-server etcd-client chromium libclang-dev clang libcurl4-openssl-dev libssl-dev pkg-config openssl python3 wrk dpkg-dev binutils lintian)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v cargo >/dev/null 2>&1 && ! [ -x "$HOME/.cargo/bin/cargo" ]; then
    missing+=(cargo rustc rustfmt rust-clippy)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "prereqs: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
if command -v rustup >/dev/null 2>&1; then
    cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
    cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi
python3 -c "import pytest, prometheus_client, cryptography" 2>/dev/null || python3 -m pip install -q pytest prometheus-client cryptography
getent passwd www-data >/dev/null || { echo "prereqs: user www-data is missing" >&2; exit 1; }
