#!/usr/bin/env bash
# Loopback benchmark: 2-shard server vs the bundled load client, bounded runs.
# Prints the client's numbers plus the server's CPU time per request / per GB
# (server and client share the machine's cores, so throughput alone is noisy).
# Usage: ./bench.sh [secs-per-run] [extra server flags...]
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-5}; shift || true
cargo build --release -q
PORT=18090
L=./target/release/load
cpu_ticks() { awk '{print $14+$15}' "/proc/$SRV/stat"; }
TICK=$(getconf CLK_TCK)
trap 'kill "${SRV:-}" 2>/dev/null || true' EXIT
load() { # args: addr path conns
  local t0 out; t0=$(cpu_ticks)
  out=$($L --addr "$1" --path "$2" --conns "$3" --secs "$SECS")
  local ticks=$(( $(cpu_ticks) - t0 ))
  local req; req=$(sed -E 's/.*: ([0-9]+) req,.*/\1/' <<<"$out")
  awk -v o="$out" -v t="$ticks" -v hz="$TICK" -v r="$req" -v p="$2" 'BEGIN {
    cpu = t / hz; printf "%s | server cpu %.2fs", o, cpu;
    if (p == "/big") printf " = %.2f cpu-s/GB\n", cpu / (r * 2097152 / 1e9);
    else printf " = %.1f us/req\n", cpu * 1e6 / r }'
}
for mode in "" "--no-writev"; do
  ./target/release/httpspike --port $PORT --secs 600 $mode "$@" 2>/dev/null &
  SRV=$!
  sleep 0.5
  echo "== server ${mode:-(writev)} $*"
  for c in 2 4 16; do load 127.0.0.1:$PORT /hello $c; done
  load "[::1]:$PORT" /hello 4
  for c in 1 2 4; do load 127.0.0.1:$PORT /big $c; done
  kill "$SRV"; wait "$SRV" 2>/dev/null || true
done
