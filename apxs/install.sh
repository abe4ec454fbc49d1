#!/bin/sh
# Installs mod_md in Rust into httpd with apxs, as mod_md_rs.so: it never
# overwrites the distribution's own mod_md.so. Also installs md_rs.load and
# md_rs.conf into mods-available so that a2enmod/a2dismod switch modules.
#
#   apxs/install.sh [path/to/libmod_md.so]
#
# Environment: LIBEXECDIR (default: apxs -q LIBEXECDIR), CONFDIR (default:
# $(apxs -q SYSCONFDIR)/mods-available), APXS (default: apxs).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
so=${1:-$here/../target/release/libmod_md.so}
APXS=${APXS:-apxs}
LIBEXECDIR=${LIBEXECDIR:-$($APXS -q LIBEXECDIR)}
CONFDIR=${CONFDIR:-$($APXS -q SYSCONFDIR)/mods-available}

if [ ! -f "$so" ]; then
    echo "install.sh: $so not found; build it first: cargo build --release" >&2
    exit 1
fi
if ! nm -D --defined-only "$so" | grep -q ' md_module$'; then
    echo "install.sh: $so does not export md_module" >&2
    exit 1
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$so" "$stage/mod_md_rs.so"
mkdir -p "$LIBEXECDIR" "$CONFDIR"
# apxs -i copies the shared object into LIBEXECDIR under its own name.
"$APXS" -i -S LIBEXECDIR="$LIBEXECDIR" -n md_rs "$stage/mod_md_rs.so"
sed "s|@LIBEXECDIR@|$LIBEXECDIR|" "$here/md_rs.load" > "$stage/md_rs.load"
for f in md_rs.load md_rs.conf; do
    src="$stage/$f"
    [ "$f" = md_rs.conf ] && src="$here/$f"
    if [ -e "$CONFDIR/$f" ] && ! cmp -s "$src" "$CONFDIR/$f"; then
        echo "install.sh: keeping your $CONFDIR/$f (new version: $CONFDIR/$f.new)"
        install -m 0644 "$src" "$CONFDIR/$f.new"
    else
        install -m 0644 "$src" "$CONFDIR/$f"
    fi
done
echo "installed $LIBEXECDIR/mod_md_rs.so and $CONFDIR/md_rs.{load,conf}"
echo "switch modules with: a2dismod md; a2enmod md_rs; systemctl restart apache2"
