#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on STABLE Rust and runs each for a while.
#
#   bash fuzz/run.sh SECONDS [TARGET...]     # every target when none is named
#   bash fuzz/run.sh 0                       # build only
#
# Each target runs for SECONDS on a fresh corpus (fuzz/corpus/TARGET, emptied first) with the
# committed seeds (fuzz/seeds/TARGET) as a second, read-only corpus: libFuzzer writes new units
# only to the first directory. A crash, panic, timeout or OOM is written to
# fuzz/artifacts/TARGET/ and makes the script exit non-zero (after the other targets ran).
# The fuzzer's output goes to fuzz/logs/TARGET.log; one summary line per target is printed.
#
# Environment: FUZZ_TARGET_DIR (default fuzz/target), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
all_targets=(otlp_proto otlp_json reducer names)

usage() {
    echo "usage: bash fuzz/run.sh SECONDS [TARGET...]   (targets: ${all_targets[*]})" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ ]] || usage
secs=$1
shift
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "unknown target: $t" >&2; usage; }
done

# Largest input per target: whole export bodies for OTLP, small ones elsewhere.
max_len_of() {
    case $1 in
        otlp_proto | otlp_json) echo 1048576 ;;
        *) echo 65536 ;;
    esac
}

# The instrumentation cargo-fuzz asks of nightly, with stable flags only: the SanitizerCoverage
# module pass is run by name (-Cpasses), configured through LLVM options (-Cllvm-args); the
# counters and PC table feed libFuzzer's coverage, trace-compares its comparison hints. No
# -Zsanitizer (nightly only): memory errors in unsafe code are not caught; panics, overflows,
# debug assertions, timeouts and OOMs are.
rustflags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    --cfg fuzzing
    -Cdebug-assertions
    -Coverflow-checks
)
host="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${FUZZ_TARGET_DIR:-$here/target}"

echo "building fuzz targets ($(rustc --version), $host)" >&2
# --target keeps RUSTFLAGS off build scripts and proc macros (run on the host, not linked with
# libFuzzer, they would fail to link once instrumented).
env -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS \
    RUSTFLAGS="${rustflags[*]}" CARGO_TARGET_DIR="$target_dir" \
    cargo build --release --locked --manifest-path "$here/Cargo.toml" --target "$host" \
    $(printf -- '--bin %s ' "${targets[@]}")
bin_dir="$target_dir/$host/release"
[[ $secs -gt 0 ]] || exit 0

mkdir -p "$here/logs"
failed=()
for t in "${targets[@]}"; do
    corpus="$here/corpus/$t"
    artifacts="$here/artifacts/$t"
    log="$here/logs/$t.log"
    rm -rf "$corpus"
    mkdir -p "$corpus" "$artifacts" "$here/seeds/$t"
    dict=()
    [[ -f $here/dicts/$t.dict ]] && dict=(-dict="$here/dicts/$t.dict")
    rc=0
    # A panic prints its message and backtrace (RUST_BACKTRACE) before libFuzzer saves the input.
    RUST_BACKTRACE=1 "$bin_dir/$t" "$corpus" "$here/seeds/$t" \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len_of "$t")" \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" ${FUZZ_ARGS:-} \
        >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    status=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$status")
    if [[ $rc -eq 0 ]]; then
        result=ok
    else
        failed+=("$t")
        unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        kind=$(grep -m1 -oE 'ERROR: libFuzzer: [a-z -]+' "$log" || true)
        # A panic: where, and the first line of its message.
        if grep -q ' panicked at ' "$log"; then
            kind="panicked at $(sed -n 's/.* panicked at \(.*\):$/\1/p' "$log" | head -1): $(
                sed -n '/ panicked at /{n;p;q}' "$log" | cut -c1-160)"
        fi
        result="FAILED (exit $rc${kind:+, $kind}${unit:+, input $unit}; see $log)"
    fi
    printf '%-10s execs=%s exec/s=%s cov=%s ft=%s corpus=%s result=%s\n' \
        "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzzing failed: ${failed[*]}" >&2
    exit 1
fi
