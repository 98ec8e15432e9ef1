"""Triton python-backend model that runs one ONNX file with ONNX Runtime (CPU).

This file is copied as ``model.py`` into a model repository that gpuprof writes; it runs inside
Triton's python stub, not inside gpuprof. The ONNX path comes from the model config's
parameters, so the same file serves any model. Only numpy, onnxruntime and Triton's own
``triton_python_backend_utils`` are imported.

With the config parameter ``profile_dir`` set, every session is profiled by ONNX Runtime and
the model writes what puts that profile on CLOCK_MONOTONIC (see ``_Profiler``); empty (the
default) leaves the request path as it is without profiling.

With ``max_batch_size`` > 0 in the config (Triton's dynamic batcher on), the requests of one
``execute`` call are stacked along dim 0 (the graph's batch dim), run as ONE ``session.run``
and the outputs split back by each request's rows, so the batch truly shares one execution.
"""

import ctypes
import json
import os
import sys
import time


def _add_site_packages():
    """The stub's interpreter ignores PYTHONPATH; gpuprof passes its packages' folders here.
    They go before the system's dist-packages so gpuprof's numpy/onnxruntime are the ones used."""
    folders = [p for p in os.environ.get("GPUPROF_SITE_PACKAGES", "").split(os.pathsep)
               if p and p not in sys.path]
    system = [i for i, p in enumerate(sys.path) if p.endswith(("dist-packages", "site-packages"))]
    at = system[0] if system else len(sys.path)
    sys.path[at:at] = folders


_add_site_packages()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


def _param(config, key, default):
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.onnx_path = _param(config, "onnx_path", "")
        self.threads = int(_param(config, "intra_op_threads", "1"))
        profile_dir = _param(config, "profile_dir", "")
        self.profiler = _Profiler(profile_dir) if profile_dir else None
        self.batched = int(config.get("max_batch_size", 0) or 0) > 0
        self.session = self._new_session()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _new_session(self):
        options = ort.SessionOptions()
        # Few threads by default: the server shares its cores with the load generator.
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        if self.profiler:
            self.profiler.prepare(options)
        session = ort.InferenceSession(self.onnx_path, options,
                                       providers=["CPUExecutionProvider"])
        if self.profiler:
            self.profiler.started(session)
        return session

    def execute(self, requests):
        if self.profiler is not None:
            return self._execute_profiled(requests)
        if self.batched and len(requests) > 1:
            return self._run_batch(requests)[0]
        return [self._run(request) for request in requests]

    def _run_batch(self, requests):
        """One ``session.run`` for all ``requests``: inputs concatenated along dim 0, outputs
        split back at the same row boundaries. Returns (responses, each request's rows)."""
        rows = [0] * len(requests)
        try:
            feeds = [self._feed(request) for request in requests]
            rows = [len(feed[self.input_names[0]]) for feed in feeds]
            stacked = {name: np.concatenate([feed[name] for feed in feeds])
                       for name in self.input_names}
            results = self.session.run(self.output_names, stacked)
        except Exception as exc:  # every request of the batch gets the error
            error = pb_utils.TritonError(str(exc))
            return [pb_utils.InferenceResponse(error=error) for _ in requests], rows
        bounds = np.cumsum(rows)[:-1]
        parts = [np.split(value, bounds) for value in results]
        return [pb_utils.InferenceResponse(output_tensors=[
                    _output(name, part[k]) for name, part in zip(self.output_names, parts)])
                for k in range(len(requests))], rows

    def _feed(self, request):
        return {name: _input(pb_utils.get_input_tensor_by_name(request, name))
                for name in self.input_names}

    def _execute_profiled(self, requests):
        """Each ``session.run`` stamped and logged with the requests it ran. A flush request
        ends the session first, so the whole batch it came in runs in the new one."""
        if any(_asks_flush(request) for request in requests):
            self.profiler.ended(self.session.end_profiling())
            self.session = self._new_session()
        if self.batched and len(requests) > 1:
            before = time.monotonic_ns()
            responses, rows = self._run_batch(requests)
            self.profiler.ran([r.request_id() for r in requests], before, time.monotonic_ns(),
                              rows)
        else:
            responses = []
            for request in requests:
                before = time.monotonic_ns()
                responses.append(self._run(request))
                self.profiler.ran([request.request_id()], before, time.monotonic_ns())
        self.profiler.flush()
        return responses

    def finalize(self):
        if self.profiler:
            self.profiler.ended(self.session.end_profiling())
            self.profiler.close()

    def _run(self, request):
        try:
            results = self.session.run(self.output_names, self._feed(request))
        except Exception as exc:  # report to the client instead of killing the stub
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
        tensors = [_output(name, value) for name, value in zip(self.output_names, results)]
        return pb_utils.InferenceResponse(output_tensors=tensors)


FLUSH_PARAMETER = "gpuprof_flush_profile"


def _asks_flush(request):
    try:
        return FLUSH_PARAMETER in json.loads(request.parameters() or "{}")
    except (AttributeError, ValueError):
        return False


class _Profiler:
    """What turns ONNX Runtime's profile into CLOCK_MONOTONIC times, written into ``folder``.

    Per session ``n`` of this process: the profile (``ort-<pid>-<n>_<date>.json``, ts in µs
    from the profiling start) and ``anchor-<pid>-<n>.json`` (that start in realtime epoch ns
    and realtime minus monotonic, measured between two monotonic reads). Per process one
    ``runs-<pid>.jsonl``: a line per ``session.run`` with Triton's request id (a batch's: every
    request id and its rows) and monotonic stamps around it, and a line naming each profile when its session ends, so a reader
    knows which sessions are complete and which run lines belong to which profile.
    """

    def __init__(self, folder):
        self.folder, self.pid, self.number = folder, os.getpid(), 0
        os.makedirs(folder, exist_ok=True)
        self.runs = open(os.path.join(folder, f"runs-{self.pid}.jsonl"), "a", encoding="utf-8")
        self.lines = []

    def prepare(self, options):
        self.number += 1
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(self.folder, f"ort-{self.pid}-{self.number}")

    def started(self, session):
        offset, error = _realtime_minus_monotonic()
        anchor = {"pid": self.pid, "session": self.number,
                  "profiling_start_ns": session.get_profiling_start_time_ns(),
                  "realtime_minus_monotonic_ns": offset, "offset_error_ns": error}
        path = os.path.join(self.folder, f"anchor-{self.pid}-{self.number}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(anchor, handle)
        os.replace(path + ".tmp", path)

    def ran(self, request_ids, before_ns, after_ns, rows=None):
        """One line per ``session.run``: one request's run keeps the single ``request_id``;
        a batch's names every request it ran and each one's rows (dim 0) in the batch."""
        line = {"session": self.number, "before_ns": before_ns, "after_ns": after_ns}
        if len(request_ids) == 1:
            line["request_id"] = request_ids[0]
        else:
            line.update(request_ids=list(request_ids), rows=list(rows or []))
        self.lines.append(json.dumps(line))

    def ended(self, profile_path):
        self.lines.append(json.dumps({"session": self.number,
                                      "profile": os.path.basename(profile_path)}))
        self.flush()

    def flush(self):
        if self.lines:
            self.runs.write("\n".join(self.lines) + "\n")
            self.runs.flush()
            self.lines = []

    def close(self):
        self.flush()
        self.runs.close()


def _realtime_minus_monotonic(tries=20):
    """CLOCK_REALTIME - CLOCK_MONOTONIC in ns from the tightest of ``tries`` bracketed reads;
    the error is half that bracket."""
    best = None
    for _ in range(tries):
        first = time.monotonic_ns()
        real = time.time_ns()
        last = time.monotonic_ns()
        if best is None or last - first < best[1] - best[0]:
            best = (first, last, real)
    first, last, real = best
    return real - (first + last) // 2, (last - first + 1) // 2


def _input(tensor):
    """Numeric inputs through DLPack too: ``as_numpy`` returns zeros under numpy 2."""
    try:
        return np.from_dlpack(tensor)
    except (TypeError, ValueError, BufferError, RuntimeError):  # BYTES tensors: no DLPack form
        return tensor.as_numpy()


# DLPack's name for a capsule its consumer has taken. Module-level: PyCapsule_SetName keeps the
# pointer, so the string must outlive every capsule renamed with it.
_USED_CAPSULE_NAME = ctypes.c_char_p(b"used_dltensor")
_capsule_set_name = ctypes.pythonapi.PyCapsule_SetName
_capsule_set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_set_name.restype = ctypes.c_int


def _output(name, value):
    """Numeric outputs go through DLPack: the stub's numpy bridge (pybind11 built against
    numpy 1) reads numpy 2 arrays as zero bytes. Strings (object arrays) have no DLPack form.

    The stub takes the capsule but marks it "used_dlpack", not DLPack's "used_dltensor";
    numpy's capsule destructor then takes it for an unconsumed "dltensor", fails to read it
    and prints a ``PyCapsule_GetPointer called with incorrect name`` traceback into the
    server log for every output. Marking the taken capsule the standard way leaves the
    tensor to the stub, which owns it now, and keeps the log (and the measured compute) clean.
    """
    value = np.ascontiguousarray(value)
    if value.dtype == np.object_:
        return pb_utils.Tensor(name, value)
    capsule = value.__dlpack__()
    tensor = pb_utils.Tensor.from_dlpack(name, capsule)
    _capsule_set_name(capsule, _USED_CAPSULE_NAME)
    return tensor
