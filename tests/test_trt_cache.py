"""The engine cache: keys, hits, misses on incomplete entries, --force, atomic files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuprof.capture.trt.cache import CacheEntry, cache_key, default_cache_dir
from gpuprof.capture.trt.options import BuildOptions
from tests.conftest import build_cls_engine

REPO = Path(__file__).resolve().parents[1]
CLS = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
SHAPES = {"x": (1, 3, 64, 64)}


def _key(**changes):
    base = {"model_sha256": "a" * 64, "options": BuildOptions().key_dict(),
            "tensorrt": {"module": "tensorrt_rtx", "version": "1.7.1.116"},
            "target": {"compute_capabilities": "rtx-default"}}
    base.update(changes)
    return cache_key(**base)


def test_key_depends_on_every_part():
    keys = {
        _key(),
        _key(model_sha256="b" * 64),
        _key(options=BuildOptions(shapes={"x": (1, 3, 320, 320)}).key_dict()),
        _key(options=BuildOptions(workspace_mib=256).key_dict()),
        _key(tensorrt={"module": "tensorrt_rtx", "version": "1.8.0"}),
        _key(tensorrt={"module": "tensorrt", "version": "1.7.1.116"}),
        _key(target={"gpu": "NVIDIA H100", "compute_capability": "9.0"}),
    }
    assert len(keys) == 7
    assert all(len(k) == 64 for k in keys)


def test_key_ignores_dict_order():
    a = BuildOptions(shapes={"a": (1,), "b": (2,)}).key_dict()
    b = BuildOptions(shapes={"b": (2,), "a": (1,)}).key_dict()
    assert _key(options=a) == _key(options=b)


def test_entry_names_are_safe(tmp_path):
    entry = CacheEntry.for_key(tmp_path, "../my model; rm -rf $HOME.onnx", "f" * 64)
    assert entry.plan.parent == tmp_path
    assert entry.plan.name == "my_model_rm_-rf_HOME-ffffffffffffffff.plan"
    assert entry.layers.name.endswith(".layers.json") and entry.sidecar.name.endswith(".json")


def test_default_cache_dir(monkeypatch, tmp_path):
    """Configured, else the user's cache directory: never the folder gpuprof runs in."""
    monkeypatch.setenv("GPUPROF_ENGINE_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("GPUPROF_ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "gpuprof" / "engines"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "gpuprof" / "engines"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.chdir(tmp_path)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "gpuprof" / "engines"


def test_entry_complete_only_with_consistent_sidecar(tmp_path):
    entry = CacheEntry.for_key(tmp_path, "m.onnx", "0" * 64)
    assert entry.read_sidecar() is None
    entry.write_plan(b"PLAN" * 10, {"kind": "network_pre_optimisation", "layers": []})
    assert entry.read_sidecar() is None  # no sidecar yet: a build killed here is a miss
    entry.write_sidecar({"build_seconds": 1.0})
    assert entry.read_sidecar()["plan_bytes"] == 40
    entry.plan.write_bytes(b"PLAN")  # a truncated plan no longer matches its sidecar
    assert entry.read_sidecar() is None
    entry.remove()
    assert list(tmp_path.iterdir()) == []


def test_sidecar_of_an_older_version_is_a_miss(tmp_path):
    """Older sidecars lack keys a run reads (precisions, guessed_axes): rebuild, never guess."""
    from gpuprof.capture.trt.cache import SIDECAR_VERSION

    entry = CacheEntry.for_key(tmp_path, "m.onnx", "2" * 64)
    entry.write_plan(b"PLAN", {"kind": "network_pre_optimisation", "layers": []})
    entry.write_sidecar({"build_seconds": 1.0})
    assert entry.read_sidecar()["version"] == SIDECAR_VERSION
    data = json.loads(entry.sidecar.read_text())
    entry.sidecar.write_text(json.dumps({**data, "version": SIDECAR_VERSION - 1}))
    assert entry.read_sidecar() is None


def test_no_partial_file_after_failed_write(tmp_path):
    entry = CacheEntry.for_key(tmp_path, "m.onnx", "1" * 64)
    with pytest.raises(TypeError):
        # json cannot encode a set: the layers file write fails half-way through
        entry.write_plan(b"x", {"layers": {1, 2}})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One real build of the small cls model, then the same call again."""
    from gpuprof.capture.trt.build import build_engine

    first = build_cls_engine(tmp_path_factory, SHAPES)
    cache = first.plan.parent
    second = build_engine(CLS, BuildOptions(shapes=SHAPES), cache_dir=cache)
    return cache, first, second


@pytest.mark.trt
def test_second_call_is_a_cache_hit(built):
    cache, first, second = built
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.plan == second.plan
    assert second.sidecar == json.loads(first.entry.sidecar.read_text())
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".json", ".plan"]
    assert not list(cache.glob("*.partial"))


@pytest.mark.trt
def test_sidecar_contents(built):
    _, first, _ = built
    side = first.sidecar
    for field in ("options", "tensorrt", "target", "model", "key", "build_seconds", "layer_count",
                  "plan_bytes", "built_utc", "layer_info_kind", "profile"):
        assert field in side, field
    assert side["key"].startswith(first.entry.stem.rsplit("-", 1)[1])
    if side["tensorrt"]["module"] == "tensorrt_rtx":
        assert side["target"] == {"compute_capabilities": "rtx-default", "aot": "cpu-portable"}


@pytest.mark.trt
def test_other_options_miss_and_force_rebuilds(built):
    from gpuprof.capture.trt.build import build_engine

    cache, first, _ = built
    forced = build_engine(CLS, BuildOptions(shapes=SHAPES), cache_dir=cache, force=True)
    assert not forced.cache_hit and forced.plan == first.plan
    assert build_engine(CLS, BuildOptions(shapes=SHAPES), cache_dir=cache).cache_hit
    other = build_engine(CLS, BuildOptions(shapes=SHAPES, workspace_mib=64), cache_dir=cache)
    assert not other.cache_hit and other.plan != first.plan
    other.entry.remove()


@pytest.mark.trt
def test_entry_without_sidecar_is_rebuilt(built):
    from gpuprof.capture.trt.build import build_engine

    cache, first, _ = built
    first.entry.sidecar.unlink()
    again = build_engine(CLS, BuildOptions(shapes=SHAPES), cache_dir=cache)
    assert not again.cache_hit and again.entry.read_sidecar() is not None


@pytest.mark.trt
def test_same_bytes_under_another_name_are_a_hit(built, tmp_path):
    """The key holds the model's content hash: a copy of the model under another file name
    finds the plan already built (no second entry)."""
    from gpuprof.capture.trt.build import build_engine

    cache, first, _ = built
    copy = tmp_path / "renamed_classifier.onnx"
    copy.write_bytes(CLS.read_bytes())
    again = build_engine(copy, BuildOptions(shapes=SHAPES), cache_dir=cache)
    assert again.cache_hit and again.plan == first.plan
    assert not list(cache.glob("renamed_classifier-*"))


@pytest.mark.trt
def test_build_uses_the_user_cache_dir_by_default(monkeypatch, tmp_path):
    from gpuprof.capture.trt.build import build_engine

    monkeypatch.delenv("GPUPROF_ENGINE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    result = build_engine(CLS, BuildOptions(shapes=SHAPES))
    assert result.plan.parent == tmp_path / "xdg" / "gpuprof" / "engines"
    assert not (tmp_path / "engines").exists()

