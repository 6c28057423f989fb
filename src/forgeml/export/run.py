"""``forgeml export RUN``: write a run's model as ONNX (runs with onnxruntime alone) and record it in the manifest."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from forgeml import artifacts
from forgeml.errors import ConfigError
from forgeml.run import load, test_rows


def export(run: Union[str, Path], format: str = "onnx", output: Optional[Union[str, Path]] = None, check_rows: int = 256) -> dict:
    """Write the run's model as ONNX with its preprocessing inside, checked against the trained model on up to
    ``check_rows`` test rows; the manifest's ``export.onnx`` records the graph's inputs and outputs."""
    from forgeml.export.onnx import export_run

    if format != "onnx":
        raise ConfigError(f"unknown export format {format!r}; forgeml exports onnx")
    model = load(run)
    model.require_target("forgeml export (and so forgeml serve)", or_tag="scores")
    path = Path(output) if output else model.run_dir / "model.onnx"
    info = export_run(model, path, test_rows(model, check_rows))
    manifest = artifacts.read_manifest(model.run_dir)
    manifest.setdefault("export", {})["onnx"] = info
    artifacts.write_json(model.run_dir / artifacts.MANIFEST, manifest)
    return info
