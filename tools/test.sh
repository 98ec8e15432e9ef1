#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
.venv/bin/python tools/fetch_models.py --tests
exec .venv/bin/python -m pytest "$@"
