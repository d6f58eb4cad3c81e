#!/usr/bin/env bash
# Durable ingest benchmark: spanfold serve on loopback, driven by spanfold-load over OTLP/gRPC
# (pre-encoded batches of agent.work_progress spans with ten attributes, eight agents), next to
# the peer measured in the same run: the same batches appended straight into a log (the store's
# ceiling, no network or decoding). Prints one line per run and the medians.
# Usage: bash benches/ingest.sh [RUNS] [SECONDS] [CONCURRENCY] [BATCH]
set -euo pipefail
runs="${1:-3}"; seconds="${2:-10}"; concurrency="${3:-8}"; batch="${4:-512}"
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet --bins
bin="$PWD/target/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
served=(); offline=()
for run in $(seq "$runs"); do
  repo="$work/run$run/repo"
  mkdir -p "$repo"; cd "$repo"
  git init -q -b main .
  echo x > a; git add a; git -c user.name=bench -c user.email=bench@localhost commit -q -m init
  "$bin/spanfold" agents init >/dev/null
  "$bin/spanfold" serve --grpc 127.0.0.1:0 --http 127.0.0.1:0 --manual 2>"$work/serve$run.log" &
  pid=$!
  for _ in $(seq 100); do [ -f .git/spanfold/server.json ] && break; sleep 0.05; done
  grpc=$(python3 -c 'import json;print(json.load(open(".git/spanfold/server.json"))["grpc"])')
  s=$("$bin/spanfold-load" --endpoint "$grpc" --duration "$seconds" --concurrency "$concurrency" --batch "$batch" --json)
  kill -TERM "$pid"; wait "$pid" || true
  o=$("$bin/spanfold-load" --offline "$work/offline$run" --duration "$seconds" --batch "$batch" --json)
  echo "run $run  served: $s"
  echo "run $run  offline store: $o"
  served+=("$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["spans_per_second"])' "$s")")
  offline+=("$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["spans_per_second"])' "$o")")
  cd - >/dev/null
done
python3 - "${served[*]}" "${offline[*]}" <<'PY'
import statistics, sys
served = [float(x) for x in sys.argv[1].split()]
offline = [float(x) for x in sys.argv[2].split()]
ratios = [s / o for s, o in zip(served, offline)]
print(f"median served  {statistics.median(served):,.0f} spans/s acknowledged durably")
print(f"median offline {statistics.median(offline):,.0f} spans/s (store ceiling, same batches)")
print(f"median ratio served/offline {statistics.median(ratios):.2f}")
PY
