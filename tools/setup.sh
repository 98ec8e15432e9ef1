#!/usr/bin/env bash
# One-time, idempotent set-up of everything gpuprof needs on a fresh machine:
# a virtual environment in .venv with gpuprof and its optional parts, and the default demo model.
# Re-running it is cheap: it only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.gpuprof-setup-stamp
want=$(sha256sum pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing gpuprof and its dependencies (a few minutes the first time)"
  "$VENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/pip" install -q -e ".[trt,triton,dev]" 2>&1 | grep -v "is ignored" || true
  # tensorrt-stubs declares a dependency on full TensorRT, whose wheel cannot be downloaded
  # here; the stubs alone are what mypy needs.
  "$VENV/bin/pip" install -q --no-deps tensorrt-stubs 2>&1 | grep -v "is ignored" || true
  # Only the tritonserver binary bundled in nvidia-pytriton is used; its Python dependencies
  # would downgrade numpy below what pandas needs.
  "$VENV/bin/pip" install -q --no-deps nvidia-pytriton 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -c "import gpuprof, pandas, pyarrow, adbc_driver_sqlite, onnxruntime" \
    || { echo "[setup] core packages failed to install" >&2; exit 1; }
  echo "$want" > "$STAMP"
fi
"$VENV/bin/python" tools/fetch_models.py
