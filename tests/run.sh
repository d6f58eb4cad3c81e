#!/usr/bin/env bash
# Runs every test: unit, integration (real sled logs, real git repositories, the built binary,
# a real server on loopback talked to by curl, tonic and the OpenTelemetry Python SDK).
# Installs whatever the tests need first, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for tool in git curl python3 flock; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq git curl python3 python3-venv util-linux
fi
python3 -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -qq; apt-get install -y -qq python3-venv; }
# The Python SDK and its OTLP exporters, from the package registry, into target/py-venv.
bash tests/py/ensure-venv.sh >/dev/null
# Debian's Chromium and playwright-core from npm, for the dashboard's browser test.
bash tests/browser/ensure.sh >/dev/null
# The whole workspace (the core crate's unit tests too), with the test hooks (crash points, a clock
# that can be put ahead: the feature `test-hooks`, never in a release build).
cargo test --locked --workspace --all-targets --features spanfold/test-hooks
