#!/usr/bin/env bash
# Records the replay fixtures again: runs each scenario on a scratch repository with the built
# spanfold, exports its log, and stores the live status beside it as the expectation.
# Usage: bash replay-fixtures/record.sh [SCENARIO...]   (default: all)
# Scenarios: demo conflict lease-expiry crash-recovery python-sdk python-sdk-capture
#   agent-telemetry
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/replay-fixtures"
cd "$root"
cargo build --locked --quiet --bin spanfold
bin="$root/target/debug/spanfold"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# A newcomer's machine: no git identity, no global config. Only this script's own commits
# (the agents' work) name an author.
export HOME="$work/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
mkdir -p "$HOME"
agent_git() { git -c user.name=agent -c user.email=agent@example.com "$@"; }

data() { python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["data"], indent=2))'; }

new_repo() {
  local repo="$work/$1/project"
  mkdir -p "$repo"
  git -C "$repo" init -q -b main
  printf '# project\nhello\n' > "$repo/README.md"
  git -C "$repo" add README.md
  agent_git -C "$repo" commit -q -m initial
  echo "$repo"
}

# Exports the log of the repository in $PWD as NAME.jsonl with NAME.expected.json.
save() {
  local name="$1"
  "$bin" export -o "$out/$name.jsonl" >/dev/null
  "$bin" --json agents agent-status | data > "$out/$name.expected.json"
  echo "recorded $name: $(wc -l < "$out/$name.jsonl") lines"
}

worktree_of() {
  "$bin" --json agents next "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["worktree_path"])'
}

finish() { # AGENT: reports the work done and validated
  "$bin" agents progress "$1" --state working --progress 100 >/dev/null
  "$bin" agents progress "$1" --state validating >/dev/null
  "$bin" agents validate "$1" --result passed >/dev/null
}

record_demo() {
  "$bin" demo --repo "$work/demo/project" >/dev/null
  (cd "$work/demo/project" && save demo)
  # The same trace with one decision edited by hand: the first assignment of the third cycle
  # names another agent. `replay --verify` must refuse it and name that span.
  mkdir -p "$out/broken"
  python3 - "$out/demo.jsonl" "$out/broken/demo-edited-decision.jsonl" <<'PY'
import json, sys
cycles, done, lines = 0, False, []
for line in open(sys.argv[1]):
    doc = json.loads(line)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                cycles += span["name"] == "coordination.cycle"
                if span["name"] == "agent.feature_assignment" and cycles == 3 and not done:
                    for kv in span["attributes"]:
                        if kv["key"] == "agent.id":
                            was = kv["value"]["stringValue"]
                            kv["value"]["stringValue"] = "demo-agent-2" if was != "demo-agent-2" else "demo-agent-3"
                            done = True
    lines.append(json.dumps(doc, separators=(",", ":")))
assert done, "no assignment in the third cycle"
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
  echo "recorded broken/demo-edited-decision"
}

record_conflict() {
  cd "$(new_repo conflict)"
  "$bin" agents init >/dev/null
  "$bin" agents register-agent a1 >/dev/null
  "$bin" agents register-agent a2 >/dev/null
  "$bin" agents add-feature greet-en >/dev/null
  "$bin" agents add-feature greet-fr >/dev/null
  "$bin" agents coordination-cycle >/dev/null
  local wt1 wt2
  wt1="$(worktree_of a1)"; wt2="$(worktree_of a2)"
  printf '# project\nhello\nhello world\n' > "$wt1/README.md"; agent_git -C "$wt1" commit -qam english
  printf '# project\nhello\nbonjour\n' > "$wt2/README.md"; agent_git -C "$wt2" commit -qam french
  finish a1; finish a2
  "$bin" agents coordination-cycle >/dev/null   # greet-en merges, greet-fr conflicts
  agent_git -C "$wt2" merge -q main >/dev/null 2>&1 || true
  printf '# project\nhello\nhello world\nbonjour\n' > "$wt2/README.md"
  agent_git -C "$wt2" commit -qam "both greetings"
  "$bin" agents progress a2 --state validating >/dev/null
  "$bin" agents validate a2 --result passed >/dev/null
  "$bin" agents coordination-cycle >/dev/null
  save conflict
}

record_lease_expiry() {
  cd "$(new_repo lease-expiry)"
  "$bin" agents init --lease 1 >/dev/null
  "$bin" agents register-agent sleepy >/dev/null
  "$bin" agents add-feature f1 >/dev/null
  "$bin" agents coordination-cycle >/dev/null
  sleep 2.2
  "$bin" agents register-agent eager >/dev/null
  "$bin" agents coordination-cycle >/dev/null    # sleepy's lease expires; f1 goes to eager
  local wt
  wt="$(worktree_of eager)"
  echo done > "$wt/f1.txt"; agent_git -C "$wt" add f1.txt; agent_git -C "$wt" commit -qm f1
  finish eager
  "$bin" agents coordination-cycle >/dev/null
  "$bin" agents reset sleepy >/dev/null
  save lease-expiry
}

record_crash_recovery() {
  cd "$(new_repo crash-recovery)"
  "$bin" agents init >/dev/null
  "$bin" agents register-agent a1 >/dev/null
  "$bin" agents add-feature f1 >/dev/null
  # Dies between recording the assignment and creating the worktree.
  SPANFOLD_FAULT=after-assignment-decision "$bin" agents coordination-cycle >/dev/null 2>&1 || true
  "$bin" agents coordination-cycle >/dev/null    # recovery creates the worktree
  local wt
  wt="$(worktree_of a1)"
  echo done > "$wt/f1.txt"; agent_git -C "$wt" add f1.txt; agent_git -C "$wt" commit -qm f1
  finish a1
  "$bin" agents coordination-cycle >/dev/null
  save crash-recovery
}

python_venv() { bash "$root/tests/py/ensure-venv.sh"; }

record_python_sdk() {
  local py repo
  py="$(python_venv)"
  repo="$(new_repo python-sdk)"
  cd "$repo"
  "$bin" agents init >/dev/null
  "$bin" agents add-feature py-feature --langs python >/dev/null
  "$bin" serve --grpc 127.0.0.1:0 --http 127.0.0.1:0 --interval 0 2>"$work/serve.log" &
  local pid=$!
  for _ in $(seq 200); do [ -f .git/spanfold/server.json ] && break; sleep 0.05; done
  local grpc http
  grpc=$(python3 -c 'import json;print(json.load(open(".git/spanfold/server.json"))["grpc"])')
  http=$(python3 -c 'import json;print(json.load(open(".git/spanfold/server.json"))["http"])')
  OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT="http://$grpc" \
    OTEL_RESOURCE_ATTRIBUTES=agent.id=py-agent,service.name=py-agent \
    "$py" "$root/tests/py/agent.py" "$http" >/dev/null
  kill -TERM "$pid"; wait "$pid" || true
  save python-sdk
}

# Claude Code's, Codex CLI's and Gemini CLI's own telemetry (OTLP log records and metrics, no
# spanfold spans), from the Python SDK's exporters, each agent on its feature.
record_agent_telemetry() {
  local py repo
  py="$(python_venv)"
  repo="$(new_repo agent-telemetry)"
  cd "$repo"
  "$bin" agents init >/dev/null
  for a in claude-1 codex-1 gemini-1; do "$bin" agents register-agent "$a" >/dev/null; done
  for f in login search export; do "$bin" agents add-feature "$f" >/dev/null; done
  "$bin" agents coordination-cycle >/dev/null
  "$bin" serve --grpc 127.0.0.1:0 --http 127.0.0.1:0 --manual 2>"$work/serve.log" &
  local pid=$!
  for _ in $(seq 200); do [ -f .git/spanfold/server.json ] && break; sleep 0.05; done
  local grpc http
  grpc=$(python3 -c 'import json;print(json.load(open(".git/spanfold/server.json"))["grpc"])')
  http=$(python3 -c 'import json;print(json.load(open(".git/spanfold/server.json"))["http"])')
  OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT="$http" \
    OTEL_RESOURCE_ATTRIBUTES=agent.id=claude-1 "$py" "$root/tests/py/claude_telemetry.py" 1 >/dev/null
  OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT="http://$grpc" \
    OTEL_RESOURCE_ATTRIBUTES=agent.id=codex-1 "$py" "$root/tests/py/agent_events.py" codex >/dev/null
  OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT="$http" \
    OTEL_RESOURCE_ATTRIBUTES=agent.id=gemini-1 "$py" "$root/tests/py/agent_events.py" gemini >/dev/null
  kill -TERM "$pid"; wait "$pid" || true
  save agent-telemetry
}

record_python_sdk_capture() {
  local py
  py="$(python_venv)"
  "$py" "$root/tests/py/capture.py" "$out/python-sdk-capture.binpb"
  # No live log holds this capture: its expectation is the replay at recording time.
  "$bin" --json replay "$out/python-sdk-capture.binpb" | data > "$out/python-sdk-capture.expected.json"
  echo "recorded python-sdk-capture"
}

scenarios=("$@")
[ "${#scenarios[@]}" -gt 0 ] || scenarios=(demo conflict lease-expiry crash-recovery python-sdk python-sdk-capture agent-telemetry)
for s in "${scenarios[@]}"; do
  "record_${s//-/_}"
done
