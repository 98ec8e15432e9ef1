"""Saved runs (.gpuprof) load lazily and keep the NVTX attribution, so re-analysing one
decodes only what the analysis touches and skips the projection (and, for the tables saved
with it, the aggregation); the results are the same."""

from __future__ import annotations

import json
import shutil
import zipfile

import pandas as pd
import pytest

import gpuprof
from gpuprof.analyze import layers as layers_module
from gpuprof.api import ATTRIBUTION_VERSION, RANGE_TABLE_VERSION, _range_table_name
from gpuprof.errors import BadInputError
from gpuprof.model import Profile
from gpuprof.model.saved import LazyTables

from .conftest import fixture_path

RESNET = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"
NO_NVTX = "annikola__cuda_bitonic_sort__report1.sqlite"


@pytest.fixture(scope="module")
def resnet_saved(tmp_path_factory):
    run = gpuprof.load(fixture_path("nsys", RESNET))
    expected = run.layers()
    run.gpu_time_by_range()  # every domain's table too: saved with the run
    path = run.save(tmp_path_factory.mktemp("saved") / "resnet.gpuprof")
    return path, expected, run


def _no_projection(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the saved attribution should have been used")
    monkeypatch.setattr(layers_module, "project_to_ranges", refuse)


def test_saved_run_keeps_the_attribution_and_skips_the_projection(resnet_saved, monkeypatch):
    path, expected, _ = resnet_saved
    _no_projection(monkeypatch)
    again = gpuprof.load(path)
    pd.testing.assert_frame_equal(again.layers(), expected)


def test_layer_report_from_a_saved_run_decodes_no_table(resnet_saved, monkeypatch):
    """The saved per-range table is the layer report's only input: nothing is re-aggregated."""
    path, expected, _ = resnet_saved
    def refuse(*args, **kwargs):
        raise AssertionError("the saved range table should have been used")
    monkeypatch.setattr(layers_module, "gpu_time_by_range", refuse)
    run = gpuprof.load(path)
    pd.testing.assert_frame_equal(run.layers(), expected)
    assert run.tables._loaded == {} and run.tables._partial == {}


def test_saved_range_tables_equal_the_computed_ones(resnet_saved):
    path, _, run = resnet_saved
    again = gpuprof.load(path)
    for domain in (None, "TensorRT"):
        assert again.derived(_range_table_name(domain), RANGE_TABLE_VERSION) is not None
        pd.testing.assert_frame_equal(again.gpu_time_by_range(domain), run.gpu_time_by_range(domain))


def test_empty_range_table_survives_saving(tmp_path):
    run = gpuprof.load(fixture_path("nsys", NO_NVTX))
    computed = run.gpu_time_by_range()
    assert computed.empty
    again = gpuprof.load(run.save(tmp_path / "plain.gpuprof"))
    assert again.derived(_range_table_name(None), RANGE_TABLE_VERSION) is not None
    pd.testing.assert_frame_equal(again.gpu_time_by_range(), computed, check_index_type=False)


def test_derived_tables_are_ignored_once_a_source_table_changes(resnet_saved):
    """A table replaced after loading (here one kernel fewer) makes the saved attribution and
    range tables not this run's: they are recomputed, never misapplied."""
    path, _, _ = resnet_saved
    run = gpuprof.load(path)
    run.tables["kernels"] = run.kernels.iloc[:-1]
    assert run.derived(_range_table_name("TensorRT"), RANGE_TABLE_VERSION) is None
    assert run.derived("attribution_" + b"TensorRT".hex(), ATTRIBUTION_VERSION) is None
    fresh = gpuprof.load(fixture_path("nsys", RESNET))
    fresh.tables["kernels"] = fresh.kernels.iloc[:-1]
    pd.testing.assert_frame_equal(run.layers(), fresh.layers())


def test_layer_report_without_the_saved_table_decodes_only_the_columns_it_needs(resnet_saved, tmp_path):
    path, expected, _ = resnet_saved
    stale = tmp_path / "stale_ranges.gpuprof"
    _rewrite_header(path, stale, lambda h: h["derived"].update(
        {k: RANGE_TABLE_VERSION + 1 for k in h["derived"] if k.startswith("ranges_")}))
    run = gpuprof.load(stale)
    assert isinstance(run.tables, LazyTables)
    pd.testing.assert_frame_equal(run.layers(), expected)
    assert run.tables._loaded == {}  # no whole table was decoded
    assert set(run.tables._partial) == {"kernels", "nvtx_ranges"}
    assert "api_calls" not in run.tables._partial  # only the projection needs launches
    assert set(run.tables._partial["kernels"]) == {"name"}  # durations come with the attribution


def test_lazy_tables_equal_the_ingested_ones(resnet_saved):
    path, _, run = resnet_saved
    loaded = Profile.load(path)
    for name in ("kernels", "api_calls", "nvtx_ranges", "copies"):
        pd.testing.assert_frame_equal(loaded.tables[name], run.tables[name], check_categorical=False)
    partial = Profile.load(path).frame("kernels", ["end_ns", "name"])
    pd.testing.assert_frame_equal(partial, run.kernels[["end_ns", "name"]], check_categorical=False)


def _rewrite_header(src, dst, change):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "meta.json":
                header = json.loads(data)
                change(header)
                data = json.dumps(header).encode()
            zout.writestr(info, data)


def test_attribution_of_another_version_is_recomputed(resnet_saved, tmp_path):
    path, expected, _ = resnet_saved
    stale = tmp_path / "stale.gpuprof"
    _rewrite_header(path, stale, lambda h: h["derived"].update(
        {k: ATTRIBUTION_VERSION + 1 for k in h["derived"]}))
    run = gpuprof.load(stale)
    assert run.derived("attribution_" + b"TensorRT".hex(), ATTRIBUTION_VERSION) is None
    pd.testing.assert_frame_equal(run.layers(), expected)


def test_runs_saved_without_derived_tables_still_load(resnet_saved, tmp_path):
    path, expected, _ = resnet_saved
    old = tmp_path / "old.gpuprof"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if not info.filename.startswith("derived/"):
                data = zin.read(info)
                if info.filename == "meta.json":
                    header = json.loads(data)
                    header.pop("derived")
                    data = json.dumps(header).encode()
                zout.writestr(info, data)
    pd.testing.assert_frame_equal(gpuprof.load(old).layers(), expected)


def test_compressed_members_are_read_too(resnet_saved, tmp_path):
    """A saved run re-zipped with deflate (by a user's tool) is still a valid saved run."""
    path, expected, _ = resnet_saved
    deflated = tmp_path / "deflated.gpuprof"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    pd.testing.assert_frame_equal(gpuprof.load(deflated).layers(), expected)


def test_truncated_saved_run_is_one_clear_error(resnet_saved, tmp_path):
    path, _, _ = resnet_saved
    data = path.read_bytes()
    for keep in (len(data) // 3, len(data) - 100):
        broken = tmp_path / f"cut{keep}.gpuprof"
        broken.write_bytes(data[:keep])
        with pytest.raises(BadInputError, match="not a readable gpuprof run file"):
            gpuprof.load(broken).layers()


def test_damaged_column_data_is_one_clear_error(resnet_saved, tmp_path):
    """Damage inside a member (its footer intact) surfaces when the column is decoded."""
    path, _, _ = resnet_saved
    broken = tmp_path / "damaged.gpuprof"
    shutil.copy(path, broken)
    with zipfile.ZipFile(broken) as zf:
        info = zf.getinfo("kernels.parquet")
    raw = bytearray(broken.read_bytes())
    start = info.header_offset + 30 + len(info.filename)
    for i in range(start + 64, start + info.file_size // 2):
        raw[i] ^= 0x5A
    broken.write_bytes(bytes(raw))
    loaded = Profile.load(broken)  # footers are intact: the damage shows when data is decoded
    with pytest.raises(BadInputError, match="not a readable gpuprof run file"):
        loaded.kernels  # noqa: B018 - decoding the table is the point


def test_top_level_load_passes_details():
    run = gpuprof.load(fixture_path("nsys", RESNET), details=True)
    assert run.meta.extra["details"] is True and len(run.kernel_launches) == len(run.kernels)


def test_a_column_missing_from_an_older_saved_run_is_filled(resnet_saved, tmp_path):
    """Runs saved before a column existed still answer column reads, as whole loads do."""
    import io

    import pyarrow.parquet as pq

    path, _, run = resnet_saved
    older = tmp_path / "older.gpuprof"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(older, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "kernels.parquet":
                table = pq.read_table(io.BytesIO(data)).drop_columns(["demangled_name"])
                buf = io.BytesIO()
                pq.write_table(table, buf)
                data = buf.getvalue()
            zout.writestr(info, data)
    partial = Profile.load(older).frame("kernels", ["start_ns", "demangled_name"])
    assert partial["demangled_name"].isna().all()
    assert partial["start_ns"].tolist() == run.kernels["start_ns"].tolist()


def test_tables_encoded_ahead_are_saved_as_they_are_at_save_time(tmp_path):
    """encode_ahead (what `gpuprof nsys --save` starts before its report) must not save a
    table as it was when encoding started: one replaced since is encoded again."""
    run = gpuprof.load(fixture_path("nsys", RESNET))
    plain = gpuprof.load(run.save(tmp_path / "plain.gpuprof"))
    run.encode_ahead()
    run.tables["kernels"] = run.kernels.iloc[:-1].reset_index(drop=True)
    again = gpuprof.load(run.save(tmp_path / "ahead.gpuprof"))
    pd.testing.assert_frame_equal(again.kernels, run.kernels, check_categorical=False)
    assert len(again.kernels) == len(plain.kernels) - 1
    for name in ("api_calls", "nvtx_ranges", "copies"):  # unchanged: the encoding ahead
        pd.testing.assert_frame_equal(again.tables[name], plain.tables[name], obj=name)


def test_cancelled_encoding_still_saves_every_table(tmp_path):
    """cancel_encoding (a failed or interrupted report) drops what was encoded ahead; a save
    after it encodes again and loses nothing."""
    run = gpuprof.load(fixture_path("nsys", RESNET))
    run.encode_ahead()
    run.cancel_encoding()
    assert "_encoded_ahead" not in run.__dict__
    again = gpuprof.load(run.save(tmp_path / "after.gpuprof"))
    for name in ("kernels", "api_calls", "nvtx_ranges", "copies"):
        assert len(again.tables[name]) == len(run.tables[name]) > 0, name
