#!/usr/bin/env bash
# Runs one benchmark: perf/run.sh NAME [options]. Its last line is `RESULT NAME {json}`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: perf/run.sh NAME [options]  (NAME: registry, dns, lb, agent, ssh, schedule, deploy)" >&2; exit 2; }
"$root/scripts/deps.sh" perf
build() { dotnet build "$root/$1" -c Release -o "$root/.build/$2" --nologo -v quiet -clp:ErrorsOnly >&2; }
build perf/EdgeEru.Perf perf
case "$1" in
  schedule|deploy) ;;           # in-process: the scheduler, the Deployer and the dev rig
  *)
    build dns/EdgeEru.Dns dns     # benchmarks run the real service binaries
    build lb/EdgeEru.Lb lb
    build agent/EdgeEru.Agent agent
    build mimiron-ssh/EdgeEru.Mimiron ssh
    ;;
esac
exec dotnet "$root/.build/perf/EdgeEru.Perf.dll" "$@"
