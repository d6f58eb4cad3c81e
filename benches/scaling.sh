#!/usr/bin/env bash
# How the costs a user waits for grow with the log: for each size, a log of that many spans
# (progress reports from eight registered agents, appended straight into the store by
# spanfold-load --offline), then `spanfold serve --manual` on it, timed:
#   open     serve started on a log with no checkpoint until it answers (reads and folds it all)
#   index    then, until the whole log's timeline index is built (in the background, on idle
#            CPU: /metrics spanfold_timeline_index_events reaches spanfold_log_events)
#   restart  serve started again, now from its checkpoints (and the index it stored)
#   ready    then, until the index holds every event again
#   status   GET /api/status (the view as it stands)
#   cli      `spanfold agents agent-status` through that server (a process, its probe, the call)
#   timeline GET /api/timeline?resolution=800 for the whole log: the dashboard's first render
#   again    the same question again (the server keeps the whole log's timeline)
# Each figure is the median of RUNS. Usage: bash benches/scaling.sh [RUNS] [SIZES...]
set -euo pipefail
runs="${1:-3}"; shift || true
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000 1000000 10000000)
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet --bins
bin="$PWD/target/release"
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
start() { # repo: starts a server there; `took` is the ms until it advertised itself
  local t0; t0=$(now)
  rm -f "$1/.git/spanfold/server.json"
  (cd "$1" && exec "$bin/spanfold" serve --manual --grpc 127.0.0.1:0 --http 127.0.0.1:0) >"$1.serve.log" 2>&1 &
  server=$!
  until [ -f "$1/.git/spanfold/server.json" ]; do
    kill -0 "$server" 2>/dev/null || { echo "serve exited; see $1.serve.log" >&2; exit 1; }
    sleep 0.01
  done
  took=$(ms "$t0" "$(now)")
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }
indexed() { # http: waits until the timeline index holds every event; `took` is the ms waited
  local t0; t0=$(now)
  until curl -fsS "$1/metrics" | python3 -c '
import sys
m = dict(l.split() for l in sys.stdin if l.startswith("spanfold_log_events ") or l.startswith("spanfold_timeline_index_events "))
sys.exit(0 if m.get("spanfold_timeline_index_events") == m["spanfold_log_events"] else 1)'; do
    sleep 0.02
  done
  took=$(ms "$t0" "$(now)")
}
http_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$1/.git/spanfold/server.json"; }
timed_get() { # url: prints ms
  local t0; t0=$(now); curl -fsS -o /dev/null "$1"; ms "$t0" "$(now)"
}
rows=()
for n in "${sizes[@]}"; do
  for run in $(seq "$runs"); do
    repo="$work/$n-$run/repo"
    mkdir -p "$repo"
    git -C "$repo" init -q -b main
    git -C "$repo" -c user.name=b -c user.email=b@localhost commit -q --allow-empty -m init
    (cd "$repo" && "$bin/spanfold" agents init >/dev/null)
    "$bin/spanfold-load" --offline "$repo/.git/spanfold" --spans "$n" --json >/dev/null
    start "$repo"; open=$took
    indexed "$(http_of "$repo")"; index=$took; stop
    start "$repo"; restart=$took
    http=$(http_of "$repo")
    indexed "$http"; ready=$took
    status=$(timed_get "$http/api/status")
    t0=$(now); (cd "$repo" && "$bin/spanfold" agents agent-status >/dev/null); cli=$(ms "$t0" "$(now)")
    timeline=$(timed_get "$http/api/timeline?resolution=800")
    again=$(timed_get "$http/api/timeline?resolution=800")
    stop
    echo "spans $n run $run: open $open ms, index $index ms, restart $restart ms, ready $ready ms, status $status ms, cli $cli ms, timeline $timeline ms, again $again ms"
    rows+=("$n $open $index $restart $ready $status $cli $timeline $again")
    rm -rf "$work/$n-$run"
  done
done
python3 - "${rows[@]}" <<'PY'
import statistics, sys
rows = [list(map(int, r.split())) for r in sys.argv[1:]]
print("| spans in the log | open (no checkpoint) | index built after it | restart | index ready after it | /api/status | agent-status (CLI) | timeline, first | timeline, again |")
print("|---|---|---|---|---|---|---|---|---|")
for n in sorted({r[0] for r in rows}):
    med = lambda i: statistics.median(r[i] for r in rows if r[0] == n)
    print(f"| {n:,} | " + " | ".join(f"{med(i):,.0f} ms" for i in range(1, 9)) + " |")
PY
