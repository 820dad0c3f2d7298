#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, format, types, then pytest (which starts
# the lab once for the session). Run scripts/setup.sh --dev first.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check monitor exporters tests bench
.venv/bin/ruff format --check monitor exporters tests bench
.venv/bin/mypy --strict monitor exporters
exec .venv/bin/python -m pytest "$@"
