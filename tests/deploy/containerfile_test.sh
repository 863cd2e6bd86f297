#!/usr/bin/env bash
# The Containerfile without a container runtime or hadolint (neither is in Debian 12, and no
# base image can be pulled offline): its shape is checked, every package it installs exists in
# this Debian's archive (apt-get --simulate), and its runtime stage carries every library
# package dpkg-shlibdeps finds the built binaries need.
# Usage: containerfile_test.sh SOURCE_DIR AUTOPOD_BIN TUNNELD_BIN
set -euo pipefail
src=$1 bin=$(realpath "$2") tunneld=$(realpath "$3")
file=$src/deploy/container/Containerfile
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(grep -c '^FROM debian:12' "$file")" -eq 2 ] || fail "two stages, both on debian:12"
grep -q '^USER autopod$' "$file" || fail "runs as the unprivileged user autopod"
grep -q '^VOLUME \["/home/autopod/.autopod"\]$' "$file" || fail "AUTOPOD_HOME is a volume"
grep -q '^ENTRYPOINT \["autopod"\]$' "$file" || fail "the entrypoint is autopod"

# The packages of each `apt-get install` (continuation lines joined), in stage order.
stage_packages() {
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$file" | grep 'apt-get install' | sed -n "${1}p" |
    sed -e 's/.*--no-install-recommends//' -e 's/&&.*//' | tr -s ' ' '\n' | grep -v '^$'
}
build_pkgs=$(stage_packages 1)
runtime_pkgs=$(stage_packages 2)
[ -n "$build_pkgs" ] && [ -n "$runtime_pkgs" ] || fail "cannot read the package lists"
# shellcheck disable=SC2086
apt-get install --simulate -qq $build_pkgs $runtime_pkgs >/dev/null ||
  fail "a package of the Containerfile does not install on this Debian: $(echo $build_pkgs $runtime_pkgs)"

# Runtime libraries: what dpkg-shlibdeps says the binaries need.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debian" && touch "$work/debian/control"
deps=$(cd "$work" && dpkg-shlibdeps -O "$bin" "$tunneld" 2>/dev/null | sed 's/^shlibs:Depends=//')
for dep in $(echo "$deps" | tr ',' '\n' | sed 's/(.*)//; s/ //g'); do
  # In debian:12-slim already; sanitizer runtimes only in a -DSANITIZE=ON build's binaries.
  case "$dep" in libc6|libgcc-s1|libstdc++6|libasan[0-9]*|libubsan[0-9]*) continue ;; esac
  echo "$runtime_pkgs" | grep -qx "$dep" || fail "the runtime stage lacks $dep (dpkg-shlibdeps: $deps)"
done
echo "Containerfile packages install here and cover the binaries' libraries"
