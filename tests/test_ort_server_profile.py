"""The ONNX Runtime profile folder's edges: the config parameter, a missing folder, and
--node-csv without --trace (one Error line, before any load)."""

from __future__ import annotations

import pytest

from gpuprof.capture.triton_repo import TensorSpec, config_pbtxt
from gpuprof.errors import BadInputError
from gpuprof.ingest.ort_server_profile import read_profile_dir

SPEC = [TensorSpec("x", "TYPE_FP32", (1, 3))]


def test_profile_dir_is_a_config_parameter_only_when_asked(tmp_path):
    plain = config_pbtxt("m", tmp_path / "m.onnx", SPEC, SPEC)
    assert 'key: "profile_dir"' not in plain
    profiled = config_pbtxt("m", tmp_path / "m.onnx", SPEC, SPEC, profile_dir=tmp_path / "p")
    assert f'key: "profile_dir" value: {{ string_value: "{tmp_path / "p"}" }}' in profiled


def test_a_missing_profile_folder_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        read_profile_dir(tmp_path / "absent")


def test_node_csv_needs_trace(capsys):
    from gpuprof.cli.main import main

    code = main(["perf", "-m", "m", "-u", "127.0.0.1:1", "--node-csv", "n.csv"])
    assert code == 2
    assert "Error: --node-csv needs --trace" in capsys.readouterr().err
