#!/usr/bin/env bash
# Export and replay throughput. Each run makes a log of agent.work_progress spans (ten
# attributes, eight registered agents; spanfold-load --offline for SECONDS), then times:
#   export --format protobuf, export (OTLP/JSON lines),
#   replay of the protobuf file, replay of the JSON file,
# and, as the peer measured in the same run, `spanfold rebuild`: the same events folded from
# the log itself (sled, lz4, postcard) instead of from a file.
# Prints one line per run and the medians.
# Usage: bash benches/replay.sh [RUNS] [SECONDS]
set -euo pipefail
runs="${1:-3}"; seconds="${2:-4}"
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet --bins
bin="$PWD/target/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
results=()
for run in $(seq "$runs"); do
  dir="$work/log$run"
  spans=$("$bin/spanfold-load" --offline "$dir" --duration "$seconds" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["spans_acknowledged"])')
  spans=$((spans + 8)) # the registrations
  t0=$(now); "$bin/spanfold" --coord-dir "$dir" export --format protobuf -o "$work/run.binpb" >/dev/null
  t1=$(now); "$bin/spanfold" --coord-dir "$dir" export -o "$work/run.jsonl" >/dev/null
  t2=$(now); "$bin/spanfold" replay "$work/run.binpb" >/dev/null
  t3=$(now); "$bin/spanfold" replay "$work/run.jsonl" >/dev/null
  t4=$(now); "$bin/spanfold" --coord-dir "$dir" rebuild >/dev/null
  t5=$(now)
  line=$(python3 - "$spans" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$(stat -c %s "$work/run.binpb")" "$(stat -c %s "$work/run.jsonl")" <<'PY'
import json, sys
n = int(sys.argv[1]); t = [float(x) for x in sys.argv[2:8]]
rate = lambda a, b: n / (t[b] - t[a])
print(json.dumps({
    "spans": n,
    "export_protobuf": rate(0, 1), "export_json": rate(1, 2),
    "replay_protobuf": rate(2, 3), "replay_json": rate(3, 4),
    "rebuild_from_log": rate(4, 5),
    "protobuf_bytes_per_span": int(sys.argv[8]) / n, "json_bytes_per_span": int(sys.argv[9]) / n,
}))
PY
)
  echo "run $run: $line"
  results+=("$line")
  rm -rf "$dir" "$work/run.binpb" "$work/run.jsonl"
done
python3 - "${results[@]}" <<'PY'
import json, statistics, sys
runs = [json.loads(a) for a in sys.argv[1:]]
med = lambda k: statistics.median(r[k] for r in runs)
for k in ["replay_protobuf", "replay_json", "export_protobuf", "export_json", "rebuild_from_log"]:
    print(f"median {k:<18} {med(k):>12,.0f} spans/s")
ratios = [r["replay_protobuf"] / r["rebuild_from_log"] for r in runs]
print(f"median ratio replay_protobuf / rebuild_from_log: {statistics.median(ratios):.2f}")
print(f"bytes per span: protobuf {med('protobuf_bytes_per_span'):.0f}, json {med('json_bytes_per_span'):.0f}")
PY
