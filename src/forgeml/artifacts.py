"""The run directory: atomic writes, JSON metadata and safetensors weights. Loading never unpickles."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from forgeml.errors import RunError

FORMAT_VERSION = 2  # 2: the manifest holds the signature (forgeml.run.signature); 1 is still read
READABLE_FORMATS = (1, 2)
MANIFEST = "manifest.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give run files the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def save_tensors(path: Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(clean, metadata=metadata))


def load_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def run_dir_of(run: str | Path) -> Path:
    """Accept runs/<name> or a bare name that exists under ./runs."""
    p = Path(run)
    if not (p / MANIFEST).is_file() and not p.exists() and (Path("runs") / p / MANIFEST).is_file():
        p = Path("runs") / p
    if not p.is_dir():
        raise RunError(f"run folder not found: {run} (give the path printed by 'forgeml train', e.g. runs/<name>)")
    if not (p / MANIFEST).is_file():
        raise RunError(f"{p} has no {MANIFEST}: it is not a finished forgeml run (was training interrupted? resume it with --resume)")
    return p


def read_manifest(run_dir: Path) -> dict:
    manifest = read_json(run_dir / MANIFEST)
    version = manifest.get("format_version")
    if version not in READABLE_FORMATS:
        raise RunError(f"{run_dir} was written with artifact format {version}; this forgeml reads formats "
                       f"{', '.join(map(str, READABLE_FORMATS))}")
    return manifest


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("forgeml", "torch", "numpy", "pandas", "scikit-learn", "lightgbm", "safetensors", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
