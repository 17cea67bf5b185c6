#!/usr/bin/env bash
# Runs one benchmark: perf/run.sh NAME [options]. Its last line is `RESULT NAME {json}`.
# perf/run.sh all: runs every benchmark once, saves their RESULT lines in perf/results.txt (a FAILED line
#   for one that is missing or fails, and goes on), then builds perf/report.md and the plots perf/*.svg.
# perf/run.sh report FILE: builds perf/report.md and the plots from saved RESULT lines, running nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
benchmarks=(registry schedule deploy agent dns lb ssh self-hosting chaos multidc)   # the order of Report/Figures.cs
[ $# -ge 1 ] || { echo "usage: perf/run.sh NAME [options] | all | report FILE  (NAME: ${benchmarks[*]})" >&2; exit 2; }
build() { dotnet build "$root/$1" -c Release -o "$root/.build/$2" --nologo -v quiet -clp:ErrorsOnly >&2; }
perf() { dotnet "$root/.build/perf/EdgeEru.Perf.dll" "$@"; }

if [ "$1" = report ]; then
  build perf/EdgeEru.Perf perf
  perf report "${@:2}" --out "$root/perf"
  exit
fi

"$root/scripts/deps.sh" perf
build perf/EdgeEru.Perf perf
case "$1" in
  schedule|deploy) ;;           # in-process: the scheduler, the Deployer and the dev rig
  self-hosting|chaos) ;;        # ./eru dev builds what it runs
  *)
    build dns/EdgeEru.Dns dns     # benchmarks run the real service binaries
    build lb/EdgeEru.Lb lb
    build agent/EdgeEru.Agent agent
    build mimiron-ssh/EdgeEru.Mimiron ssh
    ;;
esac
[ "$1" = all ] || exec dotnet "$root/.build/perf/EdgeEru.Perf.dll" "$@"
# all: one benchmark after the other (never in parallel: they measure the machine), each in its own process.
logs="$root/.build/perf-logs"
mkdir -p "$logs"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
echo "# measured by perf/run.sh all from $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, kernel $(uname -r), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" >"$results"
for b in "${benchmarks[@]}"; do
  echo "==> perf $b (output: .build/perf-logs/$b.log)" >&2
  rc=0
  timeout 1800 dotnet "$root/.build/perf/EdgeEru.Perf.dll" "$b" >"$logs/$b.log" 2>&1 || rc=$?
  line="$(grep -a "^RESULT $b " "$logs/$b.log" | tail -n 1 || true)"
  if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
    echo "$line" | tee -a "$results" >&2
  else
    why="$(grep -a -v '^[[:space:]]*$' "$logs/$b.log" | tail -n 1 | cut -c1-300 || true)"
    echo "FAILED $b exit $rc: ${why:-no output}" | tee -a "$results" >&2
  fi
done
# The machine is shared: say how busy it was, since the absolute figures depend on it (the ratios less so).
echo "# load average (1, 5, 15 min) at the end of the run: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"
cp "$results" "$root/perf/results.txt"
perf report "$root/perf/results.txt" --out "$root/perf"
