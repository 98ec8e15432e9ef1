"""What ``gpuprof.profile()`` captures inside the user's own process.

``recorder.Recorder`` holds the raw rows (records, inference calls) on CLOCK_MONOTONIC;
``patches`` swaps a runtime's method for a timing wrapper and puts it back;
``post_import`` applies those patches to runtimes imported after profiling started; one
module per runtime (``ort_hook``, ``trt_hook``, ``triton_hook``) knows its entry points;
``cuda`` holds the CUDA and NVML calls (profiler start/stop, events, device memory), each a
no-op where no driver exists. Nothing here parses or analyses: ``pipeline/pyprofile.py``
turns the raw rows into a ``Profile``.
"""
