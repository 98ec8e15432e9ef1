"""ONNX Runtime backend: run an ONNX model on ORT and capture latency, ORT's own profile and RSS
(``pipeline/engine_run.py::run_onnxruntime`` reads the profile into per-node times)."""

from .runner import OrtCapture, OrtRunConfig, capture_onnxruntime

__all__ = ["OrtCapture", "OrtRunConfig", "capture_onnxruntime"]
