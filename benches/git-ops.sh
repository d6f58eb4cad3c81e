#!/usr/bin/env bash
# Worktree creation and merging: one `spanfold agents coordination-cycle` against the same steps
# done with the git command line in a loop, measured in the same run on twin repositories.
#   assign: N features to N agents — spanfold decides, records, creates N branches and locked
#           worktrees, records the outcomes; the peer runs `git branch`, `git worktree add` and
#           `git worktree lock` N times.
#   merge:  one submitted feature — spanfold records, merges (fast-forward), updates the main
#           checkout, removes the worktree and the branch, records; the peer runs `git merge
#           --ff-only`, `git worktree unlock`, `git worktree remove` and `git branch -d`.
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
  # One feature's work, committed on each side, then merged.
  wa=$("$sf" --coord-dir "$a/.git/spanfold" agents next agent-1 | cut -f2)
  echo work > "$wa/work.txt"; git -C "$wa" add work.txt
  git -C "$wa" -c user.name=a -c user.email=a@localhost commit -q -m work
  (cd "$a" && "$sf" agents progress agent-1 --state working >/dev/null \
     && "$sf" agents progress agent-1 --state validating >/dev/null \
     && "$sf" agents validate agent-1 --result passed >/dev/null)
  wb="$b.worktrees/feature-1"
  echo work > "$wb/work.txt"; git -C "$wb" add work.txt
  git -C "$wb" -c user.name=a -c user.email=a@localhost commit -q -m work
  t0=$(ms); (cd "$a" && "$sf" agents coordination-cycle >/dev/null); t1=$(ms)
  sf_merge=$(( (t1 - t0) / 1000 ))
  t0=$(ms)
  git -C "$b" merge -q --ff-only feature-1
  git -C "$b" worktree unlock "$wb"
  git -C "$b" worktree remove "$wb"
  git -C "$b" branch -q -d feature-1
  t1=$(ms)
  git_merge=$(( (t1 - t0) / 1000 ))
  [ -f "$a/work.txt" ] && [ -z "$(git -C "$a" status --porcelain)" ] || { echo "spanfold's merge did not land" >&2; exit 1; }
  echo "run $run: assign $n: spanfold ${sf_assign} us, git CLI ${git_assign} us; merge 1: spanfold ${sf_merge} us, git CLI ${git_merge} us"
  results+=("$sf_assign $git_assign $sf_merge $git_merge")
done
python3 - "${results[@]}" <<'PY'
import statistics, sys
rows = [list(map(int, r.split())) for r in sys.argv[1:]]
med = lambda i: statistics.median(r[i] for r in rows)
ratio = lambda i, j: statistics.median(r[i] / r[j] for r in rows)
print(f"median assign: spanfold {med(0)/1000:.1f} ms, git CLI {med(1)/1000:.1f} ms, ratio spanfold/git {ratio(0,1):.2f}")
print(f"median merge:  spanfold {med(2)/1000:.1f} ms, git CLI {med(3)/1000:.1f} ms, ratio spanfold/git {ratio(2,3):.2f}")
PY
