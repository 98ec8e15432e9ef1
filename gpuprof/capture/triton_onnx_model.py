"""Triton python-backend model that runs one ONNX file with ONNX Runtime (CPU).

This file is copied as ``model.py`` into a model repository that gpuprof writes; it runs inside
Triton's python stub, not inside gpuprof. The ONNX path comes from the model config's
parameters, so the same file serves any model. Only numpy, onnxruntime and Triton's own
``triton_python_backend_utils`` are imported.
"""

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


def _output(name, value):
    """Numeric outputs go through DLPack: the stub's numpy bridge (pybind11 built against
    numpy 1) reads numpy 2 arrays as zero bytes. Strings (object arrays) have no DLPack form."""
    value = np.ascontiguousarray(value)
    if value.dtype == np.object_:
        return pb_utils.Tensor(name, value)
    return pb_utils.Tensor.from_dlpack(name, value)
