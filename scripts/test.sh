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
# on TUSK_TEST_WORKERS processes (pytest-xdist; 3 by default: most tests wait on servers and subprocesses, so a
# third worker still gains on 2 cores); worksteal keeps the long tests from ending up queued behind each other
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${TUSK_TEST_WORKERS:-3}" --dist worksteal --durations=30 "$@"
