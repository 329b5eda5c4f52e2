#!/usr/bin/env bash
# Sets up tagtrail and runs every check: lint, format, types, tests.
# With CI=true a missing service or package fails the run instead of skipping tests.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
echo "== ruff check" >&2
.venv/bin/ruff check .
echo "== ruff format --check" >&2
.venv/bin/ruff format --check .
echo "== mypy --strict" >&2
.venv/bin/mypy
echo "== tagtrail schema --check" >&2
.venv/bin/tagtrail schema --check
echo "== pytest" >&2
exec .venv/bin/pytest "$@"
