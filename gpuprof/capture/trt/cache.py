"""The engine cache: serialized plans keyed by everything that changes them.

Key = sha256 of (model content sha256, build options, TensorRT module name and version, target
GPU). Each entry is three files sharing one stem ``<model>-<key[:16]>``:

- ``.plan``: the serialized engine,
- ``.layers.json``: layer information (engine inspector JSON, or the parsed network's layers
  before optimisation when no GPU can deserialize the engine; ``kind`` says which),
- ``.json``: the sidecar (options, versions, build time, layer count, sizes); a sidecar of an
  older ``SIDECAR_VERSION`` is a miss, so the entry is rebuilt with every current key.

Every file is written by atomic rename and the sidecar last, so an entry without a sidecar (a
build killed half-way) is a miss and a half-written plan never becomes a hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...fsutil import atomic_write

ENV_VAR = "GPUPROF_ENGINE_CACHE"
SIDECAR_FORMAT = "gpuprof-engine"
SIDECAR_VERSION = 2  # 2: precisions and guessed_axes (older entries are rebuilt)


def default_cache_dir() -> Path:
    """``$GPUPROF_ENGINE_CACHE``, else the user's cache directory (``$XDG_CACHE_HOME``, else
    ``~/.cache``) ``/gpuprof/engines``: never a folder that depends on where gpuprof is run."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    # the XDG spec ignores a relative XDG_CACHE_HOME
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "gpuprof" / "engines"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_key(model_sha256: str, options: dict[str, Any], tensorrt: dict[str, str],
              target: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of everything that determines the plan."""
    material = {"model_sha256": model_sha256, "options": options, "tensorrt": tensorrt,
                "target": target}
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """The files of one cached engine."""

    directory: Path
    stem: str

    @classmethod
    def for_key(cls, directory: str | os.PathLike, model_name: str, key: str) -> CacheEntry:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model_name).stem)[:64] or "model"
        return cls(Path(directory), f"{safe}-{key[:16]}")

    @classmethod
    def find(cls, directory: str | os.PathLike, model_name: str, key: str) -> CacheEntry:
        """The entry for this key: the one named after this model file, or, when that one
        misses, a complete one built from the same bytes under another file name (the key
        holds the model's content hash, so the plan is the same)."""
        named = cls.for_key(directory, model_name, key)
        if named.read_sidecar() is not None:
            return named
        for sidecar in sorted(Path(directory).glob(f"*-{key[:16]}.json")):
            other = cls(Path(directory), sidecar.name[:-len(".json")])
            data = other.read_sidecar()
            if data is not None and data.get("key") == key:
                return other
        return named

    @property
    def plan(self) -> Path:
        return self.directory / f"{self.stem}.plan"

    @property
    def sidecar(self) -> Path:
        return self.directory / f"{self.stem}.json"

    @property
    def layers(self) -> Path:
        return self.directory / f"{self.stem}.layers.json"

    def read_sidecar(self) -> dict[str, Any] | None:
        """The sidecar when the entry is complete and consistent, else None (a miss)."""
        try:
            data = json.loads(self.sidecar.read_text())
            complete = self.plan.stat().st_size == data["plan_bytes"] and self.layers.exists()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        current = data.get("format") == SIDECAR_FORMAT and data.get("version") == SIDECAR_VERSION
        return data if complete and current else None

    def write_plan(self, plan: bytes, layers: dict[str, Any]) -> None:
        """Store the plan and its layer information (not yet a hit: no sidecar)."""
        with atomic_write(self.layers) as handle:
            json.dump(layers, handle, indent=1)
        with atomic_write(self.plan, "wb") as handle:
            handle.write(plan)

    def write_sidecar(self, sidecar: dict[str, Any]) -> None:
        """Write the sidecar last: it is what makes the entry complete."""
        data = {"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, **sidecar,
                "plan_file": self.plan.name, "layers_file": self.layers.name,
                "plan_bytes": self.plan.stat().st_size}
        with atomic_write(self.sidecar) as handle:
            json.dump(data, handle, indent=1, default=str)

    def remove(self) -> None:
        """Drop an entry (``--force``); the sidecar first so it is never half-valid."""
        for path in (self.sidecar, self.plan, self.layers):
            path.unlink(missing_ok=True)
