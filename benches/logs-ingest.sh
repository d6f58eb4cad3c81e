#!/usr/bin/env bash
# Log ingest next to span ingest, measured in the same run: spanfold serve on loopback driven by
# spanfold-load over OTLP/gRPC, once with spans (agent.work_progress, ten attributes) and once
# with log records shaped as Claude Code's api_request events (a body, ten attributes), each on
# a fresh server and log, the order alternating between runs. Prints one line per run and the
# medians; the ratio is log records/s over spans/s.
# Usage: bash benches/logs-ingest.sh [RUNS] [SECONDS] [CONCURRENCY] [BATCH]
set -euo pipefail
runs="${1:-3}"; seconds="${2:-10}"; concurrency="${3:-8}"; batch="${4:-512}"
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet --bins
bin="$PWD/target/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Drives a fresh server with SIGNAL; prints the load generator's JSON summary.
drive() {
  local signal="$1" repo="$work/$2/repo"
  mkdir -p "$repo"
  (
    cd "$repo"
    git init -q -b main .
    echo x > a; git add a; git -c user.name=bench -c user.email=bench@localhost commit -q -m init
    "$bin/spanfold" agents init >/dev/null
    "$bin/spanfold" serve --grpc 127.0.0.1:0 --http 127.0.0.1:0 --manual >"$work/$2.out" 2>"$work/$2.log" &
    pid=$!
    for _ in $(seq 100); do [ -f .git/spanfold/server.json ] && break; sleep 0.05; done
    grpc=$(python3 -c 'import json;print(json.load(open(".git/spanfold/server.json"))["grpc"])')
    "$bin/spanfold-load" --endpoint "$grpc" --signal "$signal" --duration "$seconds" \
      --concurrency "$concurrency" --batch "$batch" --json
    kill -TERM "$pid"; wait "$pid" || true
  )
}

rate() { python3 -c 'import json,sys;print(json.loads(sys.argv[1])["spans_per_second"])' "$1"; }

spans=(); logs=()
for run in $(seq "$runs"); do
  if [ $((run % 2)) -eq 1 ]; then
    s=$(drive traces "spans$run"); l=$(drive logs "logs$run")
  else
    l=$(drive logs "logs$run"); s=$(drive traces "spans$run")
  fi
  echo "run $run  spans: $s"
  echo "run $run  logs:  $l"
  spans+=("$(rate "$s")"); logs+=("$(rate "$l")")
done
python3 - "${spans[*]}" "${logs[*]}" <<'PY'
import statistics, sys
spans = [float(x) for x in sys.argv[1].split()]
logs = [float(x) for x in sys.argv[2].split()]
ratios = [l / s for s, l in zip(spans, logs)]
print(f"median spans  {statistics.median(spans):,.0f} spans/s acknowledged durably")
print(f"median logs   {statistics.median(logs):,.0f} log records/s acknowledged durably")
print(f"ratios {', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}")
PY
