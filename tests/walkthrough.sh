#!/usr/bin/env bash
# The main job until the demo exists: builds spanfold and walks through the whole workflow on a
# scratch repository — init, register agents, add features, one coordination cycle, an agent
# reporting progress, the task `agents next` hands an agent, status, then a server assigning by
# itself and the lines it prints for its operator — each step a separate process, as a user
# would type it.
# Usage: bash tests/walkthrough.sh [DIR]   (DIR: where to make the scratch repository)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet
bin="$PWD/target/release/spanfold"

work="${1:-$(mktemp -d)}"
mkdir -p "$work"
repo="$work/project"
rm -rf "$repo" "$work/project.worktrees"
git init -q -b main "$repo"
cd "$repo"
echo "# scratch project" > README.md
git add README.md
# Only this setup commit needs an author; spanfold itself runs without a git identity.
git -c user.name=walkthrough -c user.email=walkthrough@localhost commit -q -m "initial commit"

step() { printf '\n$ spanfold %s\n' "$*"; "$bin" "$@"; }

step agents init
step agents register-agent backend-1 --langs python --frameworks fastapi --expertise backend,api --max-concurrent 2
step agents register-agent frontend-1 --langs typescript --frameworks react --expertise frontend
step agents register-agent fullstack-1 --langs python,typescript --frameworks fastapi,react --expertise fullstack --complexity high
cat > "$work/auth.json" <<'JSON'
{"requirements": ["JWT token generation and validation", "Password hashing"],
 "acceptance_criteria": ["Users can login and receive JWT token"]}
JSON
step agents add-feature user-auth --desc "JWT-based authentication" --priority high --effort 5 --langs python --frameworks fastapi --req-file "$work/auth.json"
step agents add-feature dashboard-ui --priority medium --effort 8 --langs typescript --frameworks react
step agents add-feature search-api --priority critical --effort 3 --langs python
step agents add-feature fast-path --priority low --langs rust
step agents coordination-cycle
step agents progress backend-1 --state working --feature search-api --progress 40 --files 3
wt=$("$bin" agents next backend-1 | cut -f2)
printf '\n$ (agent backend-1 writes and commits in %s)\n' "$wt"
echo 'def search(q): return []' > "$wt/search.py"
git -C "$wt" add search.py
git -C "$wt" -c user.name=backend-1 -c user.email=backend-1@localhost commit -q -m "search API"
step agents progress backend-1 --state validating --feature search-api
step agents validate backend-1 --result passed --feature search-api
step agents coordination-cycle
printf '\n$ git log --oneline -2 main\n'; git log --oneline -2 main
# The task an agent is handed, as text for a coding agent's prompt (user-auth has requirements).
holder=$("$bin" --json agents agent-status | python3 -c 'import json,sys; print(next(f["assigned_agent"] for f in json.load(sys.stdin)["data"]["features"] if f["name"] == "user-auth"))')
step agents next "$holder" --prompt
step agents agent-status
step agents worktree-status
printf '\n$ git worktree list\n'; git worktree list
printf '\n$ git status --porcelain   (the main checkout stays clean)\n'; git status --porcelain
printf '\n$ spanfold --json agents agent-status | .data.coordination_status\n'
"$bin" --json agents agent-status | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["data"]["coordination_status"], indent=2))'

# The same repository with a server: it coordinates by itself and tells its operator what it does.
printf '\n$ spanfold serve --interval 0 &   (its lines for the operator are shown after it stops)\n'
"$bin" serve --grpc 127.0.0.1:0 --http 127.0.0.1:0 --interval 0 > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 200); do [ -f .git/spanfold/server.json ] && break; sleep 0.05; done
step agents register-agent ops-1 --langs go
step agents add-feature health-check --desc "GET /healthz answers ok" --langs go
step agents next ops-1 --wait --timeout 20 --prompt
kill -TERM "$server"; wait "$server" || true
printf '\n$ (the server'"'"'s lines)\n'; grep '^spanfold: ' "$work/serve.log"
printf '\nScratch repository: %s\n' "$repo"
