#!/usr/bin/env bash
# Stops the daemons .ci/slurm-up.sh started (and only those), then removes its state directory.
set -uo pipefail
DIR="${YUAN_SLURM_DIR:-/tmp/yuan-slurm}"
[ -f "$DIR/started" ] || exit 0
for d in slurmd slurmctld munged; do
  grep -qx "$d" "$DIR/started" || continue
  f="$DIR/$d.pid.started"; [ "$d" = munged ] && f="$DIR/munged.pid"
  pid="$(cat "$f" 2>/dev/null || true)"
  [ -n "$pid" ] || continue
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
rm -rf "$DIR"
