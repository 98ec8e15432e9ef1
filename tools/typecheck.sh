#!/usr/bin/env bash
# Type-check the TensorRT capture code against the full TensorRT API (tensorrt-stubs).
# Extra arguments go to mypy. Exit status is mypy's (0: no errors).
#
# tensorrt-stubs installs tensorrt/__init__.pyi and tensorrt_bindings/*.pyi without a py.typed
# marker, so mypy would skip them ("missing library stubs or py.typed") and every TensorRT object
# would silently become Any. We put a copy of those two stub folders on MYPYPATH instead, with
# the generator's syntax errors repaired (parameters named 'in', a required parameter after
# defaulted ones), since mypy stops at a syntax error in any stub it reads.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
site=$("$PY" -c "import os, tensorrt_stubs; print(os.path.dirname(os.path.dirname(tensorrt_stubs.__file__)))" 2>/dev/null) || {
  echo "tensorrt-stubs is not installed: $PY -m pip install --no-deps tensorrt-stubs" >&2
  echo "(never without --no-deps: it depends on a full TensorRT wheel that cannot be downloaded)" >&2
  exit 2
}
stubs=$(mktemp -d)
trap 'rm -rf "$stubs"' EXIT
for pkg in tensorrt tensorrt_bindings; do
  mkdir "$stubs/$pkg"
  for f in "$site/$pkg"/*.pyi; do
    sed -E -e 's/([(, ])in: /\1in_: /g' \
           -e 's/, channel_axis: int\) -> IScaleLayer/, channel_axis: int = ...) -> IScaleLayer/' \
        "$f" > "$stubs/$pkg/$(basename "$f")"
  done
done
MYPYPATH="$stubs" "$PY" -m mypy --config-file tools/mypy-trt.ini --cache-dir .mypy_cache/trt \
  gpuprof/capture/trt gpuprof/capture/pyprofile/trt_hook.py gpuprof/cli/build.py "$@"
