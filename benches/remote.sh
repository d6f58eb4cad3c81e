#!/usr/bin/env bash
# A remote agent's work to the remote's base: from the agent's push (its reports sent) to the
# base branch moving on the remote, against the same steps by the git command line, in the same
# run on twin repositories served by one `git daemon` on loopback.
#   spanfold: one `spanfold agents coordination-cycle` — it fetches the remote's base and the
#             agent's branch, merges, pushes the base with a lease, deletes the branch there and
#             here, and records each step in the log.
#   git CLI:  `git fetch` of the branch, `git merge`, `git push` of the base, `git push --delete`
#             of the branch, `git branch -d`.
# Each run's base has moved since the feature started, so both make a merge commit.
# Usage: bash benches/remote.sh [RUNS]
set -euo pipefail
runs="${1:-5}"
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet --bins
sf="$PWD/target/release/spanfold"
work="$(mktemp -d)"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
mkdir -p "$work/served"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
git daemon --reuseaddr --listen=127.0.0.1 --port="$port" --export-all --enable=receive-pack \
  --base-path="$work/served" "$work/served" 2>/dev/null &
daemon=$!
trap 'kill $daemon 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null && break
  sleep 0.05
done
ms() { date +%s%N; }
id=(-c user.name=a -c user.email=a@localhost)
results=()
for run in $(seq "$runs"); do
  for side in sf git; do
    repo="$work/$run/$side/repo"; bare="$work/served/$run-$side.git"
    mkdir -p "$repo"
    git -C "$repo" init -q -b main
    for f in $(seq 20); do echo "file $f" > "$repo/f$f.txt"; done
    git -C "$repo" add -A
    git -C "$repo" "${id[@]}" commit -q -m init
    git init -q --bare -b main "$bare"
    git -C "$repo" remote add origin "git://127.0.0.1:$port/$run-$side.git"
    git -C "$repo" push -q origin main
  done
  a="$work/$run/sf/repo"; b="$work/$run/git/repo"
  (cd "$a"
   git config spanfold.remote origin
   "$sf" agents init >/dev/null
   "$sf" agents register-agent cloud --remote >/dev/null
   "$sf" agents add-feature login >/dev/null
   "$sf" agents coordination-cycle >/dev/null)
  git -C "$b" push -q origin main:refs/heads/spanfold/login
  for side in sf git; do
    clone="$work/$run/$side/agent"
    git clone -q --branch spanfold/login "git://127.0.0.1:$port/$run-$side.git" "$clone"
    echo login > "$clone/login.txt"; git -C "$clone" add login.txt
    git -C "$clone" "${id[@]}" commit -q -m login
    git -C "$clone" push -q origin spanfold/login
    repo="$work/$run/$side/repo"
    echo moved > "$repo/base.txt"; git -C "$repo" add base.txt
    git -C "$repo" "${id[@]}" commit -q -m "the base moves on"
    git -C "$repo" push -q origin main
  done
  (cd "$a" && "$sf" agents progress cloud --state working >/dev/null \
     && "$sf" agents progress cloud --state validating >/dev/null \
     && "$sf" agents validate cloud --result passed >/dev/null)
  t0=$(ms); (cd "$a" && "$sf" agents coordination-cycle >/dev/null); t1=$(ms)
  sf_us=$(( (t1 - t0) / 1000 ))
  t0=$(ms)
  git -C "$b" fetch -q origin spanfold/login:spanfold/login
  git -C "$b" "${id[@]}" merge -q --no-edit spanfold/login
  git -C "$b" push -q origin main
  git -C "$b" push -q origin --delete spanfold/login
  git -C "$b" branch -q -d spanfold/login
  t1=$(ms)
  git_us=$(( (t1 - t0) / 1000 ))
  for side in sf git; do
    remote_main=$(git --git-dir="$work/served/$run-$side.git" rev-parse main)
    git --git-dir="$work/served/$run-$side.git" cat-file -e "$remote_main:login.txt" ||
      { echo "$side: the remote's base lacks the agent's work" >&2; exit 1; }
    if git --git-dir="$work/served/$run-$side.git" rev-parse -q --verify spanfold/login >/dev/null; then
      echo "$side: the branch is still on the remote" >&2; exit 1
    fi
  done
  echo "run $run: push to remote base: spanfold ${sf_us} us, git CLI ${git_us} us"
  results+=("$sf_us $git_us")
done
python3 - "${results[@]}" <<'PY'
import statistics, sys
rows = [list(map(int, r.split())) for r in sys.argv[1:]]
med = lambda i: statistics.median(r[i] for r in rows)
ratio = statistics.median(r[0] / r[1] for r in rows)
print(f"median: spanfold {med(0)/1000:.1f} ms, git CLI {med(1)/1000:.1f} ms, ratio spanfold/git {ratio:.2f}")
PY
