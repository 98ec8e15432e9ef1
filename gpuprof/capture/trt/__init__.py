"""TensorRT capture: build and cache engines, and run them under measurement.

Importing this package imports no TensorRT, CUDA or NVML: every heavy module is imported
lazily by the function that needs it, with an install hint when it is missing.

- ``build``: ONNX -> network -> config -> plan (cached, see ``cache``), with progress callbacks.
- ``runner``: the profiled child process (GPU only): allocator events, CUDA-event timings,
  per-layer IProfiler times; ``results`` loads its output directory into a ``Profile``.
- ``nsys_cmd``: the exact Nsight Systems command lines around the runner.
- ``pipeline``: ONNX -> cached plan -> runner child (optionally under nsys) -> its results
  (``pipeline/engine_run.py`` adds the layer information and merges the nsys export).
- ``api``: which TensorRT flavour is used (full TensorRT, else TensorRT-RTX; tensorrt_lean for
  the runtime interfaces only).
"""
