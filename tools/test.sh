#!/usr/bin/env bash
# Set up (if needed), type-check the TensorRT code against tensorrt-stubs, and run the whole
# test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
.venv/bin/python tools/fetch_models.py --tests
echo "[test] type-checking TensorRT calls against tensorrt-stubs"
tools/typecheck.sh
exec .venv/bin/python -m pytest "$@"
