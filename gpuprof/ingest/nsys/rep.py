"""``.nsys-rep`` reports: exported to SQLite with the installed ``nsys`` (none is bundled)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ...errors import BadInputError, CaptureError, MissingToolError


def ensure_sqlite(path: Path) -> Path:
    """The SQLite export for ``path``: itself, or a fresh export of a .nsys-rep beside it."""
    if path.suffix != ".nsys-rep":
        return path
    if not path.is_file():
        raise BadInputError(f"{path} does not exist", "Check the path and try again")
    target = path.with_suffix(".sqlite")
    if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
        return target
    nsys = shutil.which("nsys")
    if nsys is None:
        raise MissingToolError(
            f"{path.name} is an Nsight Systems report and 'nsys' is not installed here",
            f"Export it where nsys is installed: nsys export --type sqlite -o {target.name} "
            f"{path.name}, then run gpuprof on the .sqlite file")
    cmd = [nsys, "export", "--type", "sqlite", "--force-overwrite", "true",
           "-o", str(target), str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired as exc:
        raise CaptureError(f"nsys export of {path.name} took over an hour",
                           "Export it by hand with nsys export --type sqlite") from exc
    if done.returncode != 0 or not target.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CaptureError(f"nsys export failed for {path.name}: {tail[0]}",
                           "Check that the report opens in Nsight Systems")
    return target
