#!/usr/bin/env bash
# Set up Tusk and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null
exec .venv/bin/tusk demo "$@"
