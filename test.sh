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
dotnet test EdgeEru.sln -c Release --no-build --nologo --blame-hang-timeout 15m "$@" 2>&1 | tee "$log" || status=$?

# One closing line for the whole suite, summed over the test assemblies.
# An assembly whose test host crashed or hung prints "Test Run Aborted." and no counts: it is one failure.
awk '/(Passed|Failed)! +- +Failed: +[0-9]+, +Passed: +[0-9]+, +Skipped: +[0-9]+/ {
       gsub(",", ""); f += $4; p += $6; s += $8; n++ }
     /^Test Run Aborted/ { f++; a++ }
     END { printf "tests: %d passed, %d failed, %d skipped%s\n", p, f, s, a ? " (" a " test run(s) aborted)" : "";
           if (n == 0 || a > 0) exit 1 }' "$log" || status=1
exit $status
