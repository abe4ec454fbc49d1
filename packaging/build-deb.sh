#!/bin/sh
# Builds the Debian packages of mod_md in Rust into target/debian/:
#
#   libapache2-mod-md-rs_<version>_<arch>.deb
#       /usr/lib/apache2/modules/mod_md_rs.so (stripped; beside Debian's
#       mod_md.so, never over it), /etc/apache2/mods-available/md_rs.{load,conf},
#       /usr/bin/a2md and its man page; enables md_rs on installation unless
#       Debian's md is enabled, disables it on removal (apache2-maintscript-helper)
#   libapache2-mod-md-rs-dbgsym_<version>_<arch>.deb
#       the debug information, under /usr/lib/debug/.build-id/
#
#   packaging/build-deb.sh [--no-build]
#
# Needs cargo (unless --no-build), dpkg-dev, binutils; run lintian on the
# result to check it (t/test_package.py does).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ "${1:-}" != "--no-build" ]; then
    PATH="$HOME/.cargo/bin:$PATH" cargo build --release --workspace
fi
so=target/release/libmod_md.so
bin=target/release/a2md
for f in "$so" "$bin"; do
    [ -f "$f" ] || { echo "build-deb.sh: $f is missing: cargo build --release --workspace" >&2; exit 1; }
done

pkg=libapache2-mod-md-rs
upstream=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
version="$upstream-1"
arch=$(dpkg --print-architecture)
out=target/debian
root=$out/$pkg
dbgroot=$out/$pkg-dbgsym
rm -rf "$out"
mkdir -p "$root/DEBIAN" "$dbgroot/DEBIAN"

# Installs a stripped copy of $1 as $2 (below $root) and its debug
# information under /usr/lib/debug/.build-id/ (below $dbgroot), as
# dh_strip does. Prints the build id.
strip_into() {
    src=$1 dest=$root$2 mode=$3
    install -D -m "$mode" "$src" "$dest"
    id=$(readelf -n "$dest" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p' | head -n 1)
    [ -n "$id" ] || { echo "build-deb.sh: $src has no build id" >&2; exit 1; }
    dir=$(echo "$id" | cut -c1-2)
    rest=$(echo "$id" | cut -c3-)
    mkdir -p "$dbgroot/usr/lib/debug/.build-id/$dir"
    objcopy --only-keep-debug --compress-debug-sections "$dest" \
        "$dbgroot/usr/lib/debug/.build-id/$dir/$rest.debug"
    chmod 0644 "$dbgroot/usr/lib/debug/.build-id/$dir/$rest.debug"
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$dest"
    echo "$id"
}

ids="$(strip_into "$so" /usr/lib/apache2/modules/mod_md_rs.so 0644)"
ids="$ids $(strip_into "$bin" /usr/bin/a2md 0755)"

install -d "$root/etc/apache2/mods-available"
sed "s|@LIBEXECDIR@|/usr/lib/apache2/modules|" apxs/md_rs.load > "$root/etc/apache2/mods-available/md_rs.load"
install -m 0644 apxs/md_rs.conf "$root/etc/apache2/mods-available/md_rs.conf"
chmod 0644 "$root/etc/apache2/mods-available/md_rs.load"

doc=$root/usr/share/doc/$pkg
install -D -m 0644 packaging/debian/copyright "$doc/copyright"
install -D -m 0644 README.md "$doc/README.md"
gzip -9n "$doc/README.md"
date=$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
cat > "$out/changelog" <<EOF
$pkg ($version) unstable; urgency=medium

  * Built from mod_md in Rust $upstream ($(git rev-parse --short HEAD 2>/dev/null || echo local)).

 -- mod_md in Rust maintainers <maintainers@users.noreply.github.com>  $date
EOF
install -m 0644 "$out/changelog" "$doc/changelog.Debian"
gzip -9n "$doc/changelog.Debian"
# the man page and the shell completions, made from a2md's own command
# line definition (they never drift from the binary)
install -d "$root/usr/share/man/man8" "$root/usr/share/bash-completion/completions" \
    "$root/usr/share/zsh/vendor-completions"
"$bin" generate man > "$root/usr/share/man/man8/a2md.8"
gzip -9n "$root/usr/share/man/man8/a2md.8"
"$bin" generate bash > "$root/usr/share/bash-completion/completions/a2md"
"$bin" generate zsh > "$root/usr/share/zsh/vendor-completions/_a2md"
chmod 0644 "$root/usr/share/bash-completion/completions/a2md" "$root/usr/share/zsh/vendor-completions/_a2md"
install -d "$dbgroot/usr/share/doc"
ln -s "$pkg" "$dbgroot/usr/share/doc/$pkg-dbgsym"

# Depends: the shared libraries as dpkg-shlibdeps finds them (libc, libssl
# of the system, libcurl; the httpd and APR symbols come from the httpd
# that loads the module), and the httpd module ABI.
shl=$out/shlibdeps
mkdir -p "$shl/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$pkg" "$pkg" > "$shl/debian/control"
(cd "$shl" && dpkg-shlibdeps -O --warnings=0 \
    "$top/$root/usr/lib/apache2/modules/mod_md_rs.so" "$top/$root/usr/bin/a2md") > "$shl/out"
libs=$(sed -n 's/^shlibs:Depends=//p' "$shl/out")
rm -rf "$shl"

for s in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"
done
printf '/etc/apache2/mods-available/md_rs.conf\n/etc/apache2/mods-available/md_rs.load\n' > "$root/DEBIAN/conffiles"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | LC_ALL=C sort | xargs md5sum) > "$root/DEBIAN/md5sums"
size=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: mod_md in Rust maintainers <maintainers@users.noreply.github.com>
Installed-Size: $size
Depends: apache2-api-20120211, apache2-bin (>= 2.4.41), $libs
Recommends: apache2
Section: httpd
Priority: optional
Description: ACME certificates for Apache httpd (mod_md in Rust)
 A drop-in replacement for Apache httpd's mod_md, written in Rust: it obtains
 and renews TLS certificates by ACME (RFC 8555) for the virtual hosts it
 manages and hands them to mod_ssl. It reads and writes the same store as
 Debian's mod_md, has the same directives, and adds hot activation of renewed
 certificates without a restart, parallel renewal, ARI, OCSP stapling and
 clusters of servers on a shared store.
 .
 Enable it with "a2dismod md; a2enmod md_rs" (only one of the two can run).
EOF

(cd "$dbgroot" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | LC_ALL=C sort | xargs md5sum) > "$dbgroot/DEBIAN/md5sums"
dsize=$(du -k -s --exclude=DEBIAN "$dbgroot" | cut -f1)
cat > "$dbgroot/DEBIAN/control" <<EOF
Package: $pkg-dbgsym
Source: $pkg
Version: $version
Auto-Built-Package: debug-symbols
Architecture: $arch
Maintainer: mod_md in Rust maintainers <maintainers@users.noreply.github.com>
Installed-Size: $dsize
Depends: $pkg (= $version)
Section: debug
Priority: optional
Description: debug symbols for $pkg
Build-Ids:$(for i in $ids; do printf ' %s' "$i"; done)
EOF

dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
dpkg-deb --root-owner-group -Zxz --build "$dbgroot" "$out/${pkg}-dbgsym_${version}_${arch}.deb" >/dev/null
ls -l "$out"/*.deb
