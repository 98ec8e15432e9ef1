"""ONNX Runtime backend: run an ONNX model on ORT and capture latency, per-node times and RSS."""

from .runner import OrtRunConfig, run_onnxruntime

__all__ = ["OrtRunConfig", "run_onnxruntime"]
