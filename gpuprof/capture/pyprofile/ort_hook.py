"""ONNX Runtime: every ``InferenceSession.run`` and ``run_with_iobinding`` timed on the host; with ``nodes=True`` also
ONNX Runtime's own per-node profile of the sessions created while profiling is on.

For the node profile the session must be created with ``SessionOptions.enable_profiling``:
``InferenceSession.__init__`` is wrapped to switch it on (ORT copies the options, so the
caller's object is put back as it was). Every ``run`` of such a session is numbered --
paused ones too, because ORT's profile has them all -- so that the k-th ``model_run`` of its
profile is matched to the k-th call, never by time; calls left out by a pause are dropped
from the profile the same way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .hooks import Hook
from .recorder import now_ns

PAUSED = -1


@dataclass
class NodeSession:
    """A session ORT profiles for us: its calls in order (call index, or PAUSED)."""

    session: object
    calls: list[int] = field(default_factory=list)
    profile_file: Path | None = None


class OrtHook(Hook):
    modules = ("onnxruntime",)

    def __init__(self, recorder, nodes: bool = False, profile_dir: Path | None = None):
        super().__init__(recorder)
        self.nodes = nodes
        self.profile_dir = profile_dir
        self.sessions: dict[int, NodeSession] = {}
        self._names = itertools.count()

    def install(self, name: str, module: ModuleType) -> None:
        session_class = getattr(module, "InferenceSession", None)
        if session_class is None:
            self.recorder.warn("onnxruntime has no InferenceSession; its calls are not captured")
            return
        for method in ("run", "run_with_iobinding"):  # the GPU path binds device buffers
            self.wrap(session_class, method, self._timed_run, "onnxruntime.InferenceSession")
        if self.nodes:
            self.wrap(session_class, "__init__", self._profiled_init(module),
                      "onnxruntime.InferenceSession")

    def _timed_run(self, original):
        recorder, sessions = self.recorder, self.sessions

        def run(session, *args, **kwargs):
            node_session = sessions.get(id(session)) if sessions else None
            if recorder.paused:
                recorder.left_out += 1
                if node_session is not None:
                    node_session.calls.append(PAUSED)
                return original(session, *args, **kwargs)
            start = now_ns()
            try:
                result = original(session, *args, **kwargs)
            except BaseException:
                recorder.raised += 1  # not an inference (and no model_run in ORT's profile)
                raise
            index = recorder.add_call("onnxruntime", start, now_ns())
            if node_session is not None:
                node_session.calls.append(index)
            return result
        return run

    def _profiled_init(self, module: ModuleType):
        def make(original):
            def init(session, *args, **kwargs):
                prepared = self._with_profiling(module, args, kwargs)
                if prepared is None:
                    return original(session, *args, **kwargs)
                options, args, kwargs, saved = prepared
                try:
                    original(session, *args, **kwargs)
                finally:
                    options.enable_profiling, options.profile_file_prefix = saved
                self.sessions[id(session)] = NodeSession(session)
            return init
        return make

    def _with_profiling(self, module: ModuleType, args: tuple, kwargs: dict):
        """The call's options with ORT profiling on into our folder, the call's arguments and
        the options' previous values; None to leave the call as it is: the caller profiles
        the session itself (their file, not ours), or this ORT's signature is another one."""
        try:
            options, args, kwargs = _options_argument(module, args, kwargs)
            if options.enable_profiling:
                return None
            saved = (options.enable_profiling, options.profile_file_prefix)
            options.enable_profiling = True
            options.profile_file_prefix = str(self.profile_dir / f"ort_{next(self._names)}")
        except Exception as exc:
            self.recorder.failed("switching on ONNX Runtime's node profile", exc)
            return None
        return options, args, kwargs, saved

    def finish(self) -> None:
        """End ORT's profiling of our sessions: each writes its JSON file now."""
        for node_session in self.sessions.values():
            try:
                node_session.profile_file = Path(node_session.session.end_profiling())
            except Exception as exc:  # a session already closed: its nodes are left out
                self.recorder.failed("onnxruntime end_profiling", exc)
            node_session.session = None  # do not keep the user's session alive


def _options_argument(module: ModuleType, args: tuple, kwargs: dict):
    """The SessionOptions the call passes (made when it passes none), and the call's
    arguments with it in place. Signature: (path_or_bytes, sess_options=None, ...)."""
    if len(args) >= 2 and args[1] is not None:
        return args[1], args, kwargs
    if kwargs.get("sess_options") is not None:
        return kwargs["sess_options"], args, kwargs
    options = module.SessionOptions()
    if len(args) >= 2:
        return options, (args[0], options, *args[2:]), kwargs
    return options, args, {**kwargs, "sess_options": options}
