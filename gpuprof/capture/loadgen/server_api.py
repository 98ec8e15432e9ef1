"""The Triton control calls a load test needs: metadata, config, statistics, trace settings.

One small interface over tritonclient's HTTP and gRPC clients, used only from the measuring
thread (tritonclient's clients are not thread-safe). Connection problems become one clear
``CaptureError``; an unknown model becomes ``BadInputError``.
"""

from __future__ import annotations

import functools

from ...errors import BadInputError, CaptureError, require_module

CLIENT_HINT = 'pip install "tritonclient[http,grpc]"'
STAGES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


class ServerGone(CaptureError):
    """The server stopped answering during a run."""


class ServerAPI:
    def __init__(self, url: str, protocol: str = "http", timeout_s: float = 10.0):
        self.url, self.protocol = url, protocol
        module = require_module(f"tritonclient.{protocol}", CLIENT_HINT)
        self.errors = (require_module("tritonclient.utils", CLIENT_HINT).InferenceServerException,
                       OSError)
        if protocol == "http":
            self._client = module.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s)
            self._deadline: dict = {}
        else:  # gRPC has no client-wide timeout: each call gets one, or a hung server hangs us
            self._client = module.InferenceServerClient(url)
            self._deadline = {"client_timeout": timeout_s}

    def close(self) -> None:
        self._client.close()

    def _rpc(self, name: str):
        """The client's method, with the per-call deadline gRPC needs."""
        return functools.partial(getattr(self._client, name), **self._deadline)

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self.errors as exc:
            raise ServerGone(f"cannot reach Triton at {self.url} ({_reason(exc)}) while {what}",
                             f"Check that the server is running and -u/-i ({self.protocol}) "
                             "point at it") from exc

    def check_live(self) -> None:
        if not self._call("checking it is live", self._rpc("is_server_live")):
            raise ServerGone(f"Triton at {self.url} is not live", "Check the server's log")

    def is_live(self) -> bool:
        try:
            return bool(self._rpc("is_server_live")())
        except self.errors:
            return False

    def model_info(self, model: str, version: str = ""):
        from .inputs import ModelInfo

        self.check_live()
        try:
            metadata = self._json(self._rpc("get_model_metadata")(model, version))
            config = self._json(self._rpc("get_model_config")(model, version))
        except self.errors[0] as exc:
            raise BadInputError(f"model '{model}' is not available on {self.url}: {_reason(exc)}",
                                f"Models on the server: {self.model_names() or 'none'}") from exc
        return ModelInfo.from_server(metadata, config.get("config", config))

    def model_names(self) -> str:
        try:
            index = self._rpc("get_model_repository_index")()
        except self.errors:
            return "?"
        rows = index if isinstance(index, list) else self._json(index).get("models", [])
        return ", ".join(sorted(r.get("name", "?") for r in rows))

    def stats(self, model: str, version: str = "") -> dict[str, tuple[int, int]]:
        """Cumulative {stage: (count, ns)} summed over versions, plus inference/execution counts."""
        raw = self._json(self._call("reading statistics", self._rpc("get_inference_statistics"),
                                    model, version))
        return cumulative_stats(raw)

    def trace_settings(self, model: str | None = None) -> dict:
        return self._json(self._call("reading trace settings", self._rpc("get_trace_settings"),
                                     model_name=model))

    def update_trace_settings(self, settings: dict, model: str | None = None) -> dict:
        return self._json(self._call("changing trace settings",
                                     self._rpc("update_trace_settings"),
                                     model_name=model, settings=settings))

    def _json(self, value) -> dict:
        if isinstance(value, dict) or value is None:
            return value or {}
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(value, preserving_proto_field_name=True)


def cumulative_stats(raw: dict) -> dict[str, tuple[int, int]]:
    """Flatten ``/v2/models/M/stats`` (HTTP JSON or gRPC as dict; gRPC gives ints as strings)."""
    out = {stage: (0, 0) for stage in STAGES} | {"inference_count": (0, 0),
                                                  "execution_count": (0, 0)}
    for model in raw.get("model_stats", []):
        stats = model.get("inference_stats", {})
        for stage in STAGES:
            item = stats.get(stage, {})
            count, ns = out[stage]
            out[stage] = (count + int(item.get("count", 0)), ns + int(item.get("ns", 0)))
        for key in ("inference_count", "execution_count"):
            out[key] = (out[key][0] + int(model.get(key, 0)), 0)
    return out


def stats_delta(before: dict, after: dict) -> dict[str, tuple[int, int]]:
    return {k: (after[k][0] - before[k][0], after[k][1] - before[k][1]) for k in after}


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "message", lambda: None)() if callable(getattr(exc, "message", None))
               else exc) or type(exc).__name__
    return text.strip().splitlines()[0][:200]
