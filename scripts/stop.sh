#!/usr/bin/env bash
# Stops exactly the processes `make demo` started (their PID files in $LOOKALIKE_HOME/run):
# SIGTERM to each one's process group, then SIGKILL what is left after 20 s.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
shopt -s nullglob
pids=()
for f in "$RUN_DIR"/*.pid; do
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    echo "[stop] $(basename "$f" .pid) (pid $pid)"
    pids+=("$pid")
  fi
  rm -f "$f"
done
for _ in $(seq 20); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 1
done
for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
[ ${#pids[@]} -gt 0 ] || echo "[stop] nothing was running"
