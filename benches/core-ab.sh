#!/usr/bin/env bash
# The fold and policy benchmarks (benches/core.rs) of this checkout against an earlier revision,
# in one run on one machine: both builds take turns, so a change is read as a ratio rather than
# against figures from another day.
# Usage: bash benches/core-ab.sh REV [RUNS] [FILTER]
set -euo pipefail
rev="${1:?usage: bash benches/core-ab.sh REV [RUNS] [FILTER]}"
runs="${2:-3}"; filter="${3:-fold|policy}"
cd "$(dirname "$0")/.."
root="$PWD"

# The path of a revision's `core` bench executable, built in release.
bench_bin() {
  cargo bench --locked --bench core --no-run --message-format=json 2> /dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "core" and m.get("executable"):
        print(m["executable"])'
}
new_bin="$(bench_bin)"
old_src="${TMPDIR:-/tmp}/spanfold-core-ab-src-$rev"
old_target="$root/target/core-ab-$rev"
rm -rf "$old_src"
git worktree add -q --detach "$old_src" "$rev"
old_bin="$(cd "$old_src" && CARGO_TARGET_DIR="$old_target" bench_bin)"
git worktree remove --force "$old_src"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# Runs one build's benchmarks; prints "name median_ns" per benchmark.
measure() {
  local bin="$1" out="$scratch/run-$RANDOM"
  CARGO_TARGET_DIR="$out" "$bin" --bench --noplot "$filter" > /dev/null 2>&1
  python3 - "$out/criterion" <<'EOF'
import json, pathlib, sys
for est in sorted(pathlib.Path(sys.argv[1]).glob("**/new/estimates.json")):
    name = "/".join(est.parts[len(pathlib.Path(sys.argv[1]).parts):-2])
    print(name, json.loads(est.read_text())["median"]["point_estimate"])
EOF
}

declare -A ratios
for i in $(seq 1 "$runs"); do
  # Alternate who goes first, so neither always gets the warmer machine.
  if (( i % 2 )); then a="$(measure "$old_bin")"; b="$(measure "$new_bin")"
  else b="$(measure "$new_bin")"; a="$(measure "$old_bin")"; fi
  while read -r name old_ns; do
    new_ns="$(awk -v n="$name" '$1 == n {print $2}' <<< "$b")"
    [ -n "$new_ns" ] || continue
    ratio="$(python3 -c "print(round($new_ns / $old_ns, 3))")"
    printf 'run %s  %-45s %s %12.0f ns   HEAD %12.0f ns   time ratio HEAD/%s %s\n' \
      "$i" "$name" "$rev" "$old_ns" "$new_ns" "$rev" "$ratio"
    ratios["$name"]+="$ratio "
  done <<< "$a"
done
for name in "${!ratios[@]}"; do
  python3 -c "import statistics,sys; print('median time ratio', sys.argv[1], statistics.median(map(float, sys.argv[2:])))" \
    "$name" ${ratios[$name]}
done | sort
