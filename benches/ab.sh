#!/usr/bin/env bash
# Durable ingest of this checkout against an earlier revision, in one run on one machine: both
# `spanfold serve` builds take turns under the same load generator (this checkout's), so a change
# is measured as a ratio rather than against figures from another day.
# Usage: bash benches/ab.sh REV [RUNS] [SECONDS] [CONCURRENCY] [BATCH]
set -euo pipefail
rev="${1:?usage: bash benches/ab.sh REV [RUNS] [SECONDS] [CONCURRENCY] [BATCH]}"
runs="${2:-3}"; seconds="${3:-10}"; concurrency="${4:-8}"; batch="${5:-512}"
cd "$(dirname "$0")/.."
root="$PWD"
cargo build --locked --release --quiet --bins
# Outside this checkout: inside it, cargo would take the old tree for a member of this workspace.
old_src="${TMPDIR:-/tmp}/spanfold-ab-src-$rev"
old_bin="$root/target/ab-$rev"
if [ ! -x "$old_bin/release/spanfold" ]; then
  rm -rf "$old_src"
  git worktree add -q --detach "$old_src" "$rev"
  (cd "$old_src" && CARGO_TARGET_DIR="$old_bin" cargo build --locked --release --quiet --bin spanfold)
  git worktree remove --force "$old_src"
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# One server on a fresh repository; prints acknowledged spans/s, p99 in ms, and the server's CPU
# seconds per million spans over the measured window (CPU time is not stolen by a neighbour, so
# it varies less than the rate on a shared machine).
measure() {
  local bin="$1" dir="$scratch/repo-$RANDOM"
  git init -q -b main "$dir"
  git -C "$dir" -c user.name=b -c user.email=b@example.com commit -q --allow-empty -m initial
  (cd "$dir" && "$bin" agents init > /dev/null)
  (cd "$dir" && exec "$bin" serve --grpc 127.0.0.1:0 --http 127.0.0.1:0 --manual > /dev/null 2>&1) &
  local pid=$!
  local advert="$dir/.git/spanfold/server.json"
  for _ in $(seq 1 200); do [ -s "$advert" ] && break; sleep 0.05; done
  local grpc
  grpc="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc"])' "$advert")"
  "$root/target/release/spanfold-load" --endpoint "${grpc#http://}" --concurrency "$concurrency" \
    --batch "$batch" --duration "$seconds" --watch-pid "$pid" --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["spans_per_second"]), r["latency_ms_p99"], round(r["receiver_cpu_seconds"] * 1e6 / r["spans_acknowledged"], 3))'
  kill "$pid"; wait "$pid" 2> /dev/null || true
}

echo "run  $rev spans/s (p99 ms, CPU s/M)   HEAD spans/s (p99 ms, CPU s/M)   rate HEAD/$rev   CPU HEAD/$rev"
ratios=(); cpus=()
for i in $(seq 1 "$runs"); do
  # Alternate who goes first, so neither always gets the warmer machine.
  if (( i % 2 )); then a="$(measure "$old_bin/release/spanfold")"; b="$(measure "$root/target/release/spanfold")"
  else b="$(measure "$root/target/release/spanfold")"; a="$(measure "$old_bin/release/spanfold")"; fi
  read -r a_rate a_p99 a_cpu <<< "$a"; read -r b_rate b_p99 b_cpu <<< "$b"
  ratio="$(python3 -c "print(round($b_rate / $a_rate, 3))")"
  cpu="$(python3 -c "print(round($b_cpu / $a_cpu, 3))")"
  ratios+=("$ratio"); cpus+=("$cpu")
  printf '%-4s %-34s %-34s %-14s %s\n' "$i" "$a_rate ($a_p99, $a_cpu)" "$b_rate ($b_p99, $b_cpu)" "$ratio" "$cpu"
done
python3 -c "import statistics,sys; print('median ratio', statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}"
python3 -c "import statistics,sys; print('median CPU per span ratio (lower: HEAD cheaper)', statistics.median(map(float, sys.argv[1:])))" "${cpus[@]}"
