"""The run directory: atomic writes, JSON metadata and safetensors weights. Loading never unpickles."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

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


def check_output(path: Union[str, Path], example: str = "predictions.csv") -> None:
    """Refuse, before any work, an output path that names a folder (an existing one, or a path ending in /)."""
    if str(path) == "-":
        return
    if str(path).endswith(("/", os.sep)) or Path(path).is_dir():
        raise RunError(f"cannot write {path}: it is a folder; give a file name such as {Path(path) / example}")


def write_output(path: Union[str, Path], data: bytes, example: str = "predictions.csv") -> None:
    """Write a file the user named (predictions, metrics, an export): ``-`` is standard output; a device, a pipe or a
    symlink is written through, never replaced (a symlink to a regular file: its target is written atomically); a
    regular path is written atomically. A folder or a path that cannot be written is a RunError that says so
    (``example``: the file name the folder message suggests)."""
    import stat
    import sys

    if str(path) == "-":
        out = getattr(sys.stdout, "buffer", None)
        if out is not None:
            sys.stdout.flush()
            out.write(data)
            out.flush()
        else:
            sys.stdout.write(data.decode("utf-8"))
        return
    check_output(path, example)
    path = Path(path)
    where = f"cannot write {path}"
    try:
        mode = os.stat(path).st_mode if path.exists() else None
        if mode is not None and not stat.S_ISREG(mode):  # /dev/stdout, a named pipe, a terminal: write through
            with open(path, "wb") as fh:
                fh.write(data)
        elif path.is_symlink():  # keep the link; replace what it points to
            atomic_write_bytes(Path(os.path.realpath(path)), data)
        else:
            atomic_write_bytes(path, data)
    except PermissionError:
        raise RunError(f"{where}: permission denied; choose a path you can write to") from None
    except (NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
        raise RunError(f"{where}: {exc.strerror or exc} (a part of the path is a file, not a folder)") from None
    except OSError as exc:
        raise RunError(f"{where}: {exc.strerror or exc}") from None


def check_run_folder(run_dir: Path, config_yaml: Optional[str] = None) -> None:
    """The run folder is still the one training started (its config.yaml is there, with ``config_yaml`` when given):
    a folder removed or replaced during training fails the run instead of leaving half a run."""
    config = Path(run_dir) / "config.yaml"
    if not config.is_file() or (config_yaml is not None and config.read_text() != config_yaml):
        what = "removed" if not Path(run_dir).is_dir() else "changed (its config.yaml is gone or different)"
        raise RunError(f"the run folder {run_dir} was {what} during training; the run is not written. Train again "
                       "(with --overwrite if the folder exists)")


def source_path(source: str) -> dict:
    """{"source_path": the absolute, resolved path} of a data source that is a file or folder (none for bundled:NAME);
    for a file also "source_bytes" and "source_sha256", its size and content hash, so that a renamed or copied training
    file is still recognized (forgeml.run.seen_in_training)."""
    path = Path(source).expanduser()
    if str(source).startswith("bundled:") or not path.exists():
        return {}
    out = {"source_path": str(path.resolve())}
    if path.is_file():
        try:
            out.update(source_bytes=path.stat().st_size, source_sha256=file_sha256(path))
        except OSError:  # unreadable now: the path alone identifies it
            pass
    return out


def file_sha256(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (big files never held in memory)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_text(obj: Any) -> str:
    """Indented JSON as forgeml writes it (numpy values and paths become plain JSON)."""
    return json.dumps(obj, indent=2, default=_json_default) + "\n"


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json_text(obj))


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
