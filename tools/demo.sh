#!/usr/bin/env bash
# Set up (if needed) and run gpuprof's main job on a real pretrained model: the PP-OCRv4 text
# detector shipped inside the rapidocr-onnxruntime package (Apache-2.0). Reports land in
# gpuprof-out/ppocrv4_det/. Extra arguments go to `gpuprof engine`.
set -euo pipefail
cd "$(dirname "$0")/.."
# GPUPROF_SKIP_SETUP=1: the README test runs the demo in an environment that is already set up
[ "${GPUPROF_SKIP_SETUP:-0}" = 1 ] || tools/setup.sh
exec .venv/bin/gpuprof engine models/ppocrv4_det.onnx "$@"
