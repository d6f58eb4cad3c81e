#!/usr/bin/env bash
# Durable ingest next to a dedicated OTLP collector, in one run on one machine: rotel (a Rust
# OTLP collector, from PyPI) with its blackhole exporter, and `spanfold serve` writing every
# span durably, driven by the same load generator with the same batches, concurrency and span
# shape. Prints spans/s acknowledged, p50/p99 export latency, CPU seconds per million spans and
# peak RSS for both, and the ratio; then latency at 80% of spanfold's peak, and memory while
# ingesting into a log of BIG_LOG spans (0 skips that part).
# CLIENT grpcio sends the same shape of load from gRPC's own C core (benches/grpc_load.py, with
# the OpenTelemetry project's protobuf classes) instead of spanfold-load: a client neither side
# wrote.
# Usage: bash benches/vs-rotel.sh [RUNS] [SECONDS] [CONCURRENCY] [BATCH] [BIG_LOG] [CLIENT]
set -euo pipefail
runs="${1:-3}"; seconds="${2:-10}"; concurrency="${3:-8}"; batch="${4:-512}"; big="${5:-10000000}"
client="${6:-spanfold-load}"
cd "$(dirname "$0")/.."
cargo build --locked --release --quiet --bins
venv="$PWD/target/bench-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import rotel' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "rotel==0.0.1a15"
fi
if [ "$client" = grpcio ] && ! "$venv/bin/python" -c 'import grpc, opentelemetry.proto' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio==1.85.4" "opentelemetry-proto==1.45.2"
fi
rotel="$("$venv/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
exec python3 benches/vs_rotel.py --bin "$PWD/target/release" --rotel "$rotel" \
  --runs "$runs" --seconds "$seconds" --concurrency "$concurrency" --batch "$batch" --big-log "$big" \
  --client "$client" --python "$venv/bin/python"
