#!/usr/bin/env bash
# The whole test suite: lint, layer contracts, unit, integration and e2e tests.
# Installs what it needs first (scripts/setup.sh). Run as root on Debian 12.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
cd "$here"
export PATH="$here/.venv/bin:$PATH"
ruff check bootstrap tests bench
lint-imports
exec pytest -ra --durations=15 "$@" tests
