#!/usr/bin/env bash
# The systemd user units verify with systemd-analyze, pointed at the autopod just built (the
# installed units run /usr/bin/autopod; scripts/package-check verifies those as installed).
# Usage: units_test.sh AUTOPOD_BIN SOURCE_DIR. Exit 77 (skipped, reason printed) without
# systemd-analyze.
set -euo pipefail
bin=$1 src=$2
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIPPED: systemd-analyze is not installed (apt-get install systemd)" >&2
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src"/deploy/systemd/autopod-maintain.service "$src"/deploy/systemd/autopod-maintain.timer \
  "$src"/deploy/systemd/autopod-agent.service "$work"/
sed -i "s|/usr/bin/autopod|$bin|" "$work"/autopod-maintain.service "$work"/autopod-agent.service
grep -q "^ExecStart=$bin maintain$" "$work"/autopod-maintain.service
# --user needs a runtime directory; in a container without one it fails with "Failed to
# initialize manager". A private one is enough.
mkdir -m 0700 "$work/runtime"
XDG_RUNTIME_DIR=$work/runtime systemd-analyze verify --user \
  "$work"/autopod-maintain.service "$work"/autopod-maintain.timer "$work"/autopod-agent.service
# The check is real: a unit whose program is missing fails it.
sed "s|^ExecStart=.*|ExecStart=$work/missing maintain|" "$work"/autopod-maintain.service \
  >"$work"/broken.service
if XDG_RUNTIME_DIR=$work/runtime systemd-analyze verify --user "$work"/broken.service 2>/dev/null; then
  echo "systemd-analyze accepted a unit whose program is missing" >&2
  exit 1
fi
# What the issue asks of them.
grep -q '^Type=oneshot$' "$work"/autopod-maintain.service
grep -q '^ReadWritePaths=%h/.autopod$' "$work"/autopod-maintain.service
grep -q '^OnCalendar=\*:0/5$' "$work"/autopod-maintain.timer
grep -q '^Persistent=true$' "$work"/autopod-maintain.timer
grep -q "^ExecStart=$bin agent --listen 127.0.0.1:8787$" "$work"/autopod-agent.service
grep -q '^Type=notify$' "$work"/autopod-agent.service
echo "units verify"
