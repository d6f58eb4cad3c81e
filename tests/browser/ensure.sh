#!/usr/bin/env bash
# Installs what the browser test needs, once: Debian's Chromium, and playwright-core from npm into
# target/browser-node (its lock file is tests/browser/package-lock.json). Prints the directory
# holding node_modules. Safe to run concurrently: a lock serialises installs.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/target/browser-node"
mkdir -p "$root/target"
exec 9>"$root/target/browser-node.lock"
flock 9
if ! command -v chromium > /dev/null; then
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
fi
stamp="$dir/.installed-$(sha1sum "$root/tests/browser/package-lock.json" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$root/tests/browser/package.json" "$root/tests/browser/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --silent --no-audit --no-fund >&2)
  touch "$stamp"
fi
echo "$dir"
