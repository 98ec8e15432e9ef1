"""perf ``--input-data`` JSON with ``"shape"`` defines the variable dims, as perf_analyzer's
does: no --shape needed; a shape that does not fit the model is one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpuprof.capture.loadgen.inputs import (
    ModelInfo,
    TensorInfo,
    data_shapes,
    read_input_json,
    request_shapes,
)
from gpuprof.cli.main import main
from gpuprof.errors import BadInputError

CLS_INFO = ModelInfo("cls", "1", (TensorInfo("x", "FP32", (-1, 3, -1, -1)),),
                     (TensorInfo("y", "FP32", (-1, 2)),), 0)


def _write(path, entries) -> str:
    path.write_text(json.dumps({"data": entries}))
    return str(path)


def _entry(shape) -> dict:
    return {"x": {"content": np.arange(np.prod(shape), dtype=float).tolist(), "shape": list(shape)}}


def test_the_first_entrys_shape_defines_variable_dims(tmp_path):
    source = _write(tmp_path / "in.json", [_entry((1, 3, 48, 192)), _entry((1, 3, 48, 96))])
    assert data_shapes(source) == {"x": (1, 3, 48, 192)}
    shapes = request_shapes(CLS_INFO, data_shapes(source), 1)
    assert shapes == {"x": (1, 3, 48, 192)}
    payloads = read_input_json(source, CLS_INFO, shapes)
    # each entry keeps its own shape, as perf_analyzer sends it
    assert [p["x"].shape for p in payloads] == [(1, 3, 48, 192), (1, 3, 48, 96)]
    assert data_shapes("random") == {} and data_shapes("zero") == {}


def test_a_json_shape_that_does_not_fit_is_refused(tmp_path):
    source = _write(tmp_path / "in.json", [_entry((1, 3, 48, 192)), _entry((1, 4, 8, 8))])
    with pytest.raises(BadInputError, match="does not fit"):
        read_input_json(source, CLS_INFO, {"x": (1, 3, 48, 192)})


@pytest.mark.triton
def test_perf_runs_on_json_shapes_without_shape(cls_triton_server, tmp_path, capsys):
    source = _write(tmp_path / "in.json", [_entry((1, 3, 48, 192))])
    out = tmp_path / "perf.json"
    argv = ["perf", "-m", cls_triton_server.model_name, "-u", cls_triton_server.http_url,
            "--input-data", source, "--measurement-interval", "300", "-r", "3", "--no-live",
            "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert "x [1,3,48,192]" in out.read_text()
