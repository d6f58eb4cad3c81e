#!/usr/bin/env bash
# Runs every test: unit, integration (real sled logs, real git repositories, the built binary).
# Installs whatever the tests need first, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git; }
cargo test --locked --all-targets
