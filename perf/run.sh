#!/usr/bin/env bash
# Runs one benchmark: perf/run.sh NAME [options]. Its last line is `RESULT NAME {json}`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: perf/run.sh NAME [options]  (NAME: registry)" >&2; exit 2; }
"$root/scripts/deps.sh" perf
dotnet build "$root/perf/EdgeEru.Perf" -c Release -o "$root/.build/perf" --nologo -v quiet -clp:ErrorsOnly >&2
exec dotnet "$root/.build/perf/EdgeEru.Perf.dll" "$@"
