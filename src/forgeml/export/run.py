"""``forgeml export RUN``: write a run's model as ONNX (runs with onnxruntime alone) and record it in the manifest."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional, Union

from forgeml import artifacts
from forgeml.errors import ConfigError
from forgeml.run import load, test_rows


def export(run: Union[str, Path], format: str = "onnx", output: Optional[Union[str, Path]] = None, check_rows: int = 256) -> dict:
    """Write the run's model as ONNX with its preprocessing inside, checked against the trained model on up to
    ``check_rows`` test rows; the manifest's ``export.onnx`` records the graph's inputs and outputs.

    ``output`` is written as forgeml writes any file a user names (artifacts.write_output): a folder is refused before
    any work, a symlink or a pipe is written through, a regular file is replaced atomically. The files the model needs
    (``export.onnx.files``, e.g. a text vocabulary) go beside it, written first, so a model is never there without them.
    Everything is built in a temporary folder and checked before anything is written."""
    from forgeml.export.onnx import export_run

    if format != "onnx":
        raise ConfigError(f"unknown export format {format!r}; forgeml exports onnx")
    if output is not None and str(output) == "-":
        raise ConfigError("forgeml export writes files (the model and the files it needs beside it); give a file name "
                          "such as model.onnx instead of -")
    if output is not None:
        artifacts.check_output(output, "model.onnx")
    model = load(run)
    own = getattr(model, "export_onnx", None)  # a family that writes its run's graph itself (forecasting)
    if own is None:
        model.require_target("forgeml export (and so forgeml serve)", or_tags=("scores", "clusters"))
    path = Path(output) if output is not None else model.run_dir / "model.onnx"
    with tempfile.TemporaryDirectory(prefix="forgeml-export-") as tmp:
        staged = Path(tmp) / (path.name or "model.onnx")
        info = own(staged, check_rows > 0) if own else export_run(model, staged, test_rows(model, check_rows))
        for name in info.get("files", []):
            artifacts.write_output(path.parent / name, (Path(tmp) / name).read_bytes(), name)
        artifacts.write_output(output if output is not None else path, staged.read_bytes(), "model.onnx")
    info["file"] = path.name if _same_folder(path.parent, model.run_dir) else str(path)
    manifest = artifacts.read_manifest(model.run_dir)
    manifest.setdefault("export", {})["onnx"] = info
    artifacts.write_json(model.run_dir / artifacts.MANIFEST, manifest)
    return info


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b
