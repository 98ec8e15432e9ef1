"""Create ONNX Runtime sessions and turn ORT's exceptions into one clear line."""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import CaptureError, require_module

GPU_PROVIDERS = ("CUDAExecutionProvider",)
_STATUS = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*(\w+)\s*:\s*")
_SOURCE = re.compile(r"^/\S+\.(?:cc|h|cpp):\d+\s+")
_LOAD_FROM = re.compile(r"^Load model from .*? failed:\s*")  # repeats the path we already name


def ort_module():
    return require_module("onnxruntime", "pip install onnxruntime (or onnxruntime-gpu)")


def choose_providers() -> list[str]:
    """CUDA first where this onnxruntime build has it, CPU always as the fallback."""
    available = ort_module().get_available_providers()
    return [p for p in GPU_PROVIDERS if p in available] + ["CPUExecutionProvider"]


def create_session(model: Path, providers: list[str], profile_prefix: Path | None = None):
    """An ``InferenceSession`` for ``model``; profiling on when ``profile_prefix`` is given."""
    ort = ort_module()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's C++ logger writes to stderr; keep only errors
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    try:
        return ort.InferenceSession(str(model), options, providers=providers)
    except Exception as exc:  # ORT raises its own pybind classes; keep them inside this module
        raise load_error(model, exc) from exc


def session_settings(session) -> str:
    """The settings that shape CPU latency, in words, for the report's facts."""
    options = session.get_session_options()
    threads = options.intra_op_num_threads
    return (f"graph optimization {options.graph_optimization_level.name}, "
            f"{options.execution_mode.name}, intra-op threads "
            f"{threads if threads > 0 else 'ORT default (one per physical core)'}")


def load_error(model: Path, exc: Exception) -> CaptureError:
    status, text = clean_message(str(exc))
    version = ort_module().__version__
    if status in ("INVALID_GRAPH", "NOT_IMPLEMENTED") or "not a registered" in text:
        hint = ("The model uses an operator, opset or type this ONNX Runtime does not support: "
                "upgrade onnxruntime or re-export the model with supported operators")
    else:
        hint = "Check the model with: python -m onnx.checker (or re-export it)"
    return CaptureError(f"ONNX Runtime {version} cannot load '{model.name}': {text}", hint)


def run_error(model: Path, exc: Exception) -> CaptureError:
    _, text = clean_message(str(exc))
    return CaptureError(f"ONNX Runtime failed running '{model.name}': {text}",
                        "The input shapes may not suit the model: pass --shapes NAME:DIMS")


def clean_message(text: str) -> tuple[str, str]:
    """(status code, first line of the message without ORT's status and source-location prefix)."""
    text = text.strip().splitlines()[0] if text.strip() else "unknown error"
    match = _STATUS.match(text)
    status = match.group(1) if match else ""
    text = _LOAD_FROM.sub("", _STATUS.sub("", text))
    if _SOURCE.match(text):
        text = _drop_signature(_SOURCE.sub("", text))
    return status, text[:300].rstrip(". ")


def _drop_signature(text: str) -> str:
    """Drop a leading C++ signature ``ns::f(args...) const`` that ORT puts before the message."""
    depth = 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and text[i + 1:i + 2] == " ":
                return text[i + 2:]
    return text
