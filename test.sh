#!/usr/bin/env bash
# Installs what is missing, builds everything (warnings are errors), runs every test against real parts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/deps.sh test

echo "==> building"
dotnet build EdgeEru.sln -c Release --nologo -v quiet -clp:ErrorsOnly

echo "==> testing"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
dotnet test EdgeEru.sln -c Release --no-build --nologo --blame-hang-timeout 5m "$@" 2>&1 | tee "$log" || status=$?

# One closing line for the whole suite, summed over the test assemblies.
awk '/(Passed|Failed)! +- +Failed: +[0-9]+, +Passed: +[0-9]+, +Skipped: +[0-9]+/ {
       gsub(",", ""); f += $4; p += $6; s += $8; n++ }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s; if (n == 0) exit 1 }' "$log" || status=1
exit $status
