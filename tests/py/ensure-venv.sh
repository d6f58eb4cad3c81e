#!/usr/bin/env bash
# Creates target/py-venv with the real OpenTelemetry Python clients the tests use, once.
# Prints the venv's python. Safe to run concurrently: a lock serialises installs.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/py-venv"
stamp="$venv/.installed-$(sha1sum "$root/tests/py/requirements.txt" | cut -c1-12)"
mkdir -p "$root/target"
exec 9>"$root/target/py-venv.lock"
flock 9
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/py/requirements.txt" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
