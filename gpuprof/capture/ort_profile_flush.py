"""Ask the model ``gpuprof triton serve --ort-profile`` serves to write its ONNX Runtime profile.

The model keeps ORT's profile in memory until its session ends; one inference request with
the KServe parameter ``gpuprof_flush_profile`` makes it end the session (writing the profile)
and open a new profiled one. Which folder it writes to is in the model's config
(``parameters.profile_dir``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import require_module
from .loadgen.server_api import CLIENT_HINT

FLUSH_PARAMETER = "gpuprof_flush_profile"   # the model's name for it (triton_onnx_model.py)


def profile_dir_of(config: dict) -> Path | None:
    """The folder named by a model config (``/v2/models/M/config``), when it names one."""
    config = config.get("config", config)
    value = config.get("parameters", {}).get("profile_dir", {}).get("string_value", "")
    return Path(value) if value else None


def send_flush(url: str, protocol: str, model: str, version: str, payload: dict,
               request_id: str, timeout_s: float = 30.0) -> None:
    """One inference request carrying the flush parameter (tritonclient, HTTP or gRPC)."""
    module = require_module(f"tritonclient.{protocol}", CLIENT_HINT)
    grpc = protocol == "grpc"
    client = (module.InferenceServerClient(url) if grpc else
              module.InferenceServerClient(url, network_timeout=timeout_s))
    try:
        inputs = []
        for name, array in payload.items():
            tensor = module.InferInput(name, list(array.shape), _datatype(array))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        kwargs = {"client_timeout": timeout_s} if grpc else {}
        client.infer(model, inputs, model_version=version, request_id=request_id,
                     parameters={FLUSH_PARAMETER: True}, **kwargs)
    finally:
        client.close()


def _datatype(array) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(array.dtype)


def model_config(url: str, protocol: str, model: str, version: str = "") -> dict:
    """The model's config as a dict (HTTP JSON, or gRPC's message converted)."""
    module = require_module(f"tritonclient.{protocol}", CLIENT_HINT)
    client = module.InferenceServerClient(url)
    try:
        if protocol == "grpc":
            return client.get_model_config(model, version, as_json=True)
        return client.get_model_config(model, version)
    finally:
        client.close()
