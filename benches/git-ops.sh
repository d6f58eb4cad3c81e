#!/usr/bin/env bash
# Worktree creation and merging: one `spanfold agents coordination-cycle` against the same steps
# done with the git command line in a loop, measured in the same run on twin repositories.
#   assign: N features to N agents — spanfold decides, records, creates N branches and locked
#           worktrees, records the outcomes; the peer runs `git branch`, `git worktree add` and
#           `git worktree lock` N times.
#   merge:  one submitted feature — spanfold records, merges, updates the main checkout,
#           removes the worktree and the branch, records; the peer runs `git merge`, `git
#           worktree unlock`, `git worktree remove` and `git branch -d`. Once by a one-shot
#           command that opens the log (a fast-forward), once more with a second feature through
#           a running `spanfold serve --manual`, the command asking it for the cycle (a merge
#           commit: the base has moved since the feature started). The server's own cycle time
#           (from its /metrics) is what an agent's `validate` span waits for when it triggers
#           the merge itself.
# Usage: bash benches/git-ops.sh [RUNS] [N]
set -euo pipefail
runs="${1:-3}"; n="${2:-50}"
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet --bins
sf="$PWD/target/release/spanfold"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
ms() { date +%s%N; }
commit_work() { # checkout, i
  echo work > "$1/work-$2.txt"; git -C "$1" add "work-$2.txt"
  git -C "$1" -c user.name=a -c user.email=a@localhost commit -q -m work
}
sf_merge() { # repo, i: prints the merge's microseconds
  local wa t0 t1
  wa=$("$sf" --coord-dir "$1/.git/spanfold" agents next "agent-$2" | cut -f2)
  commit_work "$wa" "$2"
  (cd "$1" && "$sf" agents progress "agent-$2" --state working >/dev/null \
     && "$sf" agents progress "agent-$2" --state validating >/dev/null \
     && "$sf" agents validate "agent-$2" --result passed >/dev/null)
  t0=$(ms); (cd "$1" && "$sf" agents coordination-cycle >/dev/null); t1=$(ms)
  echo $(( (t1 - t0) / 1000 ))
}
git_merge() { # repo, i: the same steps by hand, prints microseconds
  local wb="$1.worktrees/feature-$2" t0 t1
  commit_work "$wb" "$2"
  t0=$(ms)
  git -C "$1" -c user.name=a -c user.email=a@localhost merge -q --no-edit "feature-$2"
  git -C "$1" worktree unlock "$wb"
  git -C "$1" worktree remove "$wb"
  git -C "$1" branch -q -d "feature-$2"
  t1=$(ms)
  echo $(( (t1 - t0) / 1000 ))
}
results=()
for run in $(seq "$runs"); do
  for side in sf git; do
    repo="$work/$run/$side/repo"
    mkdir -p "$repo"
    git -C "$repo" init -q -b main
    for f in $(seq 20); do echo "file $f" > "$repo/f$f.txt"; done
    git -C "$repo" add -A
    git -C "$repo" -c user.name=bench -c user.email=bench@localhost commit -q -m init
  done
  a="$work/$run/sf/repo"; b="$work/$run/git/repo"
  (cd "$a"
   "$sf" agents init >/dev/null
   for i in $(seq "$n"); do
     "$sf" agents register-agent "agent-$i" >/dev/null
     "$sf" agents add-feature "feature-$i" >/dev/null
   done)
  t0=$(ms); (cd "$a" && "$sf" agents coordination-cycle >/dev/null); t1=$(ms)
  sf_assign=$(( (t1 - t0) / 1000 ))
  mkdir -p "$b.worktrees"
  t0=$(ms)
  for i in $(seq "$n"); do
    git -C "$b" branch "feature-$i" main
    git -C "$b" worktree add -q "$b.worktrees/feature-$i" "feature-$i"
    git -C "$b" worktree lock --reason "agent-$i" "$b.worktrees/feature-$i"
  done
  t1=$(ms)
  git_assign=$(( (t1 - t0) / 1000 ))
  # One feature's work committed on each side, then merged: once by a one-shot command that
  # opens the log itself, once through a running server (`serve --manual`, as a team runs it).
  sf_cli_merge=$(sf_merge "$a" 1); git_cli_merge=$(git_merge "$b" 1)
  (cd "$a" && exec "$sf" serve --manual --grpc 127.0.0.1:0 --http 127.0.0.1:0) >"$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do [ -f "$a/.git/spanfold/server.json" ] && break; sleep 0.05; done
  http=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$a/.git/spanfold/server.json")
  cycle_sum() { curl -fsS "$http/metrics" | awk '/^spanfold_cycle_duration_seconds_sum/ {print $2}'; }
  before=$(cycle_sum)
  sf_served_merge=$(sf_merge "$a" 2); git_served_merge=$(git_merge "$b" 2)
  sf_cycle=$(python3 -c 'import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1e6))' "$before" "$(cycle_sum)")
  kill "$server"; wait "$server" || true
  for i in 1 2; do
    [ -f "$a/work-$i.txt" ] || { echo "spanfold's merge $i did not land" >&2; exit 1; }
  done
  [ -z "$(git -C "$a" status --porcelain)" ] || { echo "spanfold left the checkout dirty" >&2; exit 1; }
  echo "run $run: assign $n: spanfold ${sf_assign} us, git CLI ${git_assign} us; merge 1: spanfold ${sf_cli_merge} us, git CLI ${git_cli_merge} us; merge 1 served: spanfold ${sf_served_merge} us (its cycle in the server ${sf_cycle} us), git CLI ${git_served_merge} us"
  results+=("$sf_assign $git_assign $sf_cli_merge $git_cli_merge $sf_served_merge $git_served_merge $sf_cycle")
done
python3 - "${results[@]}" <<'PY'
import statistics, sys
rows = [list(map(int, r.split())) for r in sys.argv[1:]]
med = lambda i: statistics.median(r[i] for r in rows)
ratio = lambda i, j: statistics.median(r[i] / r[j] for r in rows)
print(f"median assign: spanfold {med(0)/1000:.1f} ms, git CLI {med(1)/1000:.1f} ms, ratio spanfold/git {ratio(0,1):.2f}")
print(f"median merge:  spanfold {med(2)/1000:.1f} ms, git CLI {med(3)/1000:.1f} ms, ratio spanfold/git {ratio(2,3):.2f}")
print(f"median merge, served: spanfold {med(4)/1000:.1f} ms, git CLI {med(5)/1000:.1f} ms, ratio spanfold/git {ratio(4,5):.2f}")
print(f"median merge in the server's cycle: {med(6)/1000:.1f} ms, ratio to git CLI {ratio(6,5):.2f}")
PY
