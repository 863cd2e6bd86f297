#!/usr/bin/env bash
# deploy/cron/autopod.cron: its job line, run as cron would (`\%` becomes `%`, /bin/sh), prints
# nothing when maintain exits 0 (no mail) and maintain's output when it exits non-zero (mail).
# Usage: cron_test.sh SOURCE_DIR
set -euo pipefail
src=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
line=$(grep -E '^\*/5 \* \* \* \* ' "$src/deploy/cron/autopod.cron")
grep -q '^AUTOPOD_HOME=' "$src/deploy/cron/autopod.cron"
command=$(printf '%s' "${line#\*/5 \* \* \* \* }" | sed 's/\\%/%/g')
mkdir -p "$work/bin"
cat >"$work/bin/autopod" <<'SH'
#!/bin/sh
echo "pod spender: down (over the daily budget)"; exit "$FAKE_EXIT"
SH
chmod +x "$work/bin/autopod"
quiet=$(PATH=$work/bin:$PATH FAKE_EXIT=0 /bin/sh -c "$command")
[ -z "$quiet" ] || { echo "FAIL: output on success (cron would mail it): $quiet" >&2; exit 1; }
loud=$(PATH=$work/bin:$PATH FAKE_EXIT=10 /bin/sh -c "$command")
[ "$loud" = "pod spender: down (over the daily budget)" ] ||
  { echo "FAIL: expected maintain's output on exit 10, got: $loud" >&2; exit 1; }
echo "cron line mails only failures"
