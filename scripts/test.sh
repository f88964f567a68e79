#!/usr/bin/env bash
# Run the whole test suite: lint, types, and pytest against SQLite + local
# objects and PostgreSQL + a loopback S3 server (started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure-postgres.sh
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports  # the import contract: [tool.importlinter] in pyproject.toml, docs/architecture.md
scripts/smoke-plain-install.sh  # a plain `pip install .` in a fresh venv: the core commands, the extras' errors
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
