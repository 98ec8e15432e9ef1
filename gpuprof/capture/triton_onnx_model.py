"""Triton python-backend model that runs one ONNX file with ONNX Runtime (CPU).

This file is copied as ``model.py`` into a model repository that gpuprof writes; it runs inside
Triton's python stub, not inside gpuprof. The ONNX path comes from the model config's
parameters, so the same file serves any model. Only numpy, onnxruntime and Triton's own
``triton_python_backend_utils`` are imported.
"""

import ctypes
import json
import os
import sys


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
        options = ort.SessionOptions()
        # Few threads by default: the server shares its cores with the load generator.
        options.intra_op_num_threads = int(_param(config, "intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            _param(config, "onnx_path", ""), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        return [self._run(request) for request in requests]

    def _run(self, request):
        try:
            feed = {name: _input(pb_utils.get_input_tensor_by_name(request, name))
                    for name in self.input_names}
            results = self.session.run(self.output_names, feed)
        except Exception as exc:  # report to the client instead of killing the stub
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
        tensors = [_output(name, value) for name, value in zip(self.output_names, results)]
        return pb_utils.InferenceResponse(output_tensors=tensors)


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
