"""The run artifact: a trained run's folder (manifest.json, config.yaml, weights, metrics, report) and the model
loaded from it. Every capability (evaluate, export, serve, compress, explain, privacy) reads runs through here, never
through forgeml.api. Loading never unpickles."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from forgeml import artifacts
from forgeml.config import params_class, run_config  # noqa: F401  (run_config: re-exported)
from forgeml.errors import DataError, RunError
from forgeml.features import of_column

if TYPE_CHECKING:  # pandas is imported where rows are read: a server reads runs without it
    import pandas as pd

WEIGHTS = "model.safetensors"


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    manifest: dict = field(repr=False, default_factory=dict)




def summary(task_name: str, m: dict) -> dict:
    """The metrics of ``m`` that the family shows in tables (forgeml.tasks.summary_keys)."""
    from forgeml.tasks import summary_keys

    return {k: m.get(k) for k in summary_keys(task_name)}


def signature(manifest: dict) -> dict:
    """What a client sends and gets back: ``inputs``, one field per feature (name, type, JSON schema, and what a
    client should know: levels, image size), and ``outputs``, the response fields (field -> JSON schema). Manifests
    of format 2 store it; for older runs it is built from the same parts."""
    if "signature" in manifest:
        return manifest["signature"]
    from forgeml.features import get
    from forgeml.tasks import make_task

    pre = manifest["preprocessing"]
    task = make_task(manifest["task"], {k: v for k, v in manifest["target"].items() if k != "name"})
    if "own_route" in task.tags:  # a client sends what the family's own route takes (generation: n, label, seed)
        return {"inputs": task.request_fields(), "outputs": task.response_fields()}
    return {"inputs": [get(f["type"]).field(pre[f["type"]], f["name"]) for f in manifest["features"]],
            "outputs": task.response_fields()}


class LoadedModel:
    """A trained run, ready to predict: ``forgeml.load("runs/x").predict(df)``."""

    def __init__(self, run: Union[str, Path]):
        from forgeml.features.preprocess import Preprocessor
        from forgeml.models import get_model
        from forgeml.tasks import make_task

        self.run_dir = artifacts.run_dir_of(run)
        self.manifest = artifacts.read_manifest(self.run_dir)
        self.preprocessor = Preprocessor(self.manifest["preprocessing"])
        target = {k: v for k, v in self.manifest["target"].items() if k != "name"}
        self.task = make_task(self.manifest["task"], target)
        m = self.manifest["model"]
        self.model_name = m["name"]
        self.learner = get_model(m["name"])
        if not (self.run_dir / m["file"]).is_file():
            raise RunError(f"{self.run_dir} has no trained model ({m['file']} is missing); train it to the end first "
                           "(forgeml train ..., or --resume an interrupted run)")
        if "torch" not in self.learner.tags:
            self.estimator = self.learner.load(self.run_dir)
        else:
            from forgeml.models import rebuild_layers

            params = params_class(m["name"]).model_validate(m["params"])
            kwargs = {"pretrained": False} if "pretrained" in self.learner.tags else {}  # weights come from the run
            self.estimator = self.learner.build(params, m["input_shapes"], self.task.out_dim, **kwargs)
            if m.get("dp_fixed"):  # trained with DP-SGD after BatchNorm -> GroupNorm etc.: the same layers again
                self.estimator = rebuild_layers(self.estimator, m["dp_fixed"])
            self.estimator.load_state_dict(artifacts.load_tensors(self.run_dir / m["file"]))
            self.estimator.eval()

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.manifest["features"]]

    @property
    def labels(self) -> Optional[list]:
        return self.manifest["target"].get("labels")

    def frame(self, data, sep: Optional[str] = None, encoding: Optional[str] = None) -> pd.DataFrame:
        """The rows to predict, from what predict was given. A CSV/TSV file is read with ``sep``/``encoding`` when
        given, else as training read its data (reading_options)."""
        import pandas as pd  # here, not at import: a server reads runs without pandas

        if isinstance(data, pd.DataFrame):
            return data
        if isinstance(data, dict):
            return pd.DataFrame([data])
        if isinstance(data, (str, Path)):
            return check_delimiter(read_inputs(data, self.manifest, *reading_options(self.run_dir, sep, encoding)),
                                   data, self.features)
        if isinstance(data, (list, tuple)):
            if data and isinstance(data[0], dict):
                return pd.DataFrame(list(data))
            image = of_column(self.manifest["features"], "files")
            if image:
                return pd.DataFrame({image: list(data)})
        raise DataError("predict takes a DataFrame, a dict or list of dicts (one per row), a file path, or a list of image paths/arrays")

    def require_target(self, capability: str, or_tags: tuple[str, ...] = ()) -> None:
        """Capabilities built for supervised runs say so plainly for the other families (forgeml.tasks)."""
        from forgeml.tasks import refuse_capability

        refuse_capability(self.task, self.run_dir, capability, or_tags)

    def raw(self, df: pd.DataFrame) -> np.ndarray:
        return self.learner.raw(self.estimator, self.preprocessor.transform(df), self.task)

    def predict(self, data, sep: Optional[str] = None, encoding: Optional[str] = None) -> pd.DataFrame:
        """Predictions (and class probabilities as proba_<label> columns) for each input row (``sep``/``encoding``:
        for a CSV/TSV file, as in ``frame``)."""
        df = self.frame(data, sep, encoding)
        if len(df) == 0:
            raise DataError("no rows to predict")
        result = self.task.predictions(self.task.outputs(self.raw(df)))
        # keep the caller's index so `df["pred"] = model.predict(df)["prediction"]` aligns row by row
        result.index = df.index
        return result


def load(run: Union[str, Path]) -> LoadedModel:
    """A trained run, ready to predict; a family that keeps its models its own way (forecasting) loads them itself
    (its ``load_run``)."""
    from forgeml.tasks import TASKS

    run_dir = artifacts.run_dir_of(run)
    manifest = artifacts.read_manifest(run_dir)
    opener = getattr(TASKS.get(manifest["task"]), "load_run", None)
    return opener(run_dir, manifest) if opener else LoadedModel(run)


def reading_options(run_dir: Path, sep: Optional[str] = None, encoding: Optional[str] = None) -> tuple:
    """(sep, encoding) to read a CSV/TSV file for a run: each one given here, else the one training was given
    (its config's data.sep / data.encoding when not auto), else None: sniffed, as training sniffed its data."""
    if sep is not None and encoding is not None:
        return sep, encoding
    from forgeml.errors import ForgeMLError

    try:
        trained = run_config(Path(run_dir)).data
    except (ForgeMLError, OSError, ValueError):  # no readable config.yaml (an old or hand-made run): sniff
        return sep, encoding
    given = lambda value: None if value in (None, "auto") else value  # noqa: E731
    return (sep if sep is not None else given(trained.sep)), (encoding if encoding is not None else given(trained.encoding))


def check_delimiter(df: pd.DataFrame, source, features: list[str]) -> pd.DataFrame:
    """A file read as one column whose name holds another delimiter, while the model needs other columns, was read
    with the wrong delimiter: say so and name --sep, instead of listing every column as missing."""
    from forgeml.data.sniff import DELIMITER_NAMES, DELIMITERS

    how = df.attrs.get("reading", {}).get("file")
    if not how or len(df.columns) != 1 or all(f in df.columns for f in features):
        return df
    only = str(df.columns[0])
    others = [DELIMITER_NAMES[d] for d in DELIMITERS if d != how["sep"] and d in only]
    if others:
        used = DELIMITER_NAMES.get(how["sep"], repr(how["sep"]))
        raise DataError(f"{source} read as {used}-separated {how['encoding']} text is one column, {only[:80]!r}, not the "
                        f"model's columns ({', '.join(features[:8])}{', ...' if len(features) > 8 else ''}); give its "
                        f"delimiter with --sep (e.g. --sep {others[0]})")
    return df


def read_inputs(source: Union[str, Path], manifest: dict, sep: Optional[str] = None,
                encoding: Optional[str] = None) -> pd.DataFrame:
    """Rows to predict from a table file or an image folder (all images inside, recursively); a CSV/TSV file is
    read with ``sep``/``encoding`` (None: sniffed)."""
    import pandas as pd

    from forgeml.data.sources import list_images, read_source, read_table

    path = Path(source)
    if str(source).startswith("bundled:"):
        return read_source(str(source))[0]
    if not path.exists():
        raise DataError(f"input not found: {source}")
    if path.is_dir():
        image = of_column(manifest["features"], "files")
        if image is None:
            raise DataError(f"{path} is a folder, but this model takes {[f['name'] for f in manifest['features']]} from a table")
        paths = list_images(path)
        if not paths:
            raise DataError(f"no images found in {path}")
        return pd.DataFrame({image: [str(p) for p in paths]})
    from forgeml.data.sources import anchor_image_paths

    return anchor_image_paths(read_table(path, sep, encoding), path.parent)


def write_table(df: pd.DataFrame, path: Union[str, Path]) -> None:
    import io

    named, path = path, Path(path)  # named: as given (a trailing / marks a folder)
    artifacts.check_output(named)
    suffix = "" if str(path) == "-" else path.suffix.lower()  # -: CSV on standard output
    buf = io.BytesIO()
    if suffix in (".csv", ""):
        df.to_csv(buf, index=False)
    elif suffix in (".parquet", ".pq"):
        df.to_parquet(buf, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        df.to_json(buf, orient="records", lines=True)
    else:
        raise DataError(f"unsupported output format {suffix}; use .csv, .parquet or .jsonl")
    artifacts.write_output(named, buf.getvalue())


def split_rows(model: LoadedModel) -> Optional[dict[str, pd.DataFrame]]:
    """The run's own train/val/test rows (None if its data can no longer be read)."""
    from forgeml.tasks import family_of

    try:
        cfg = run_config(model.run_dir)
        return family_of(cfg).split_rows(cfg)
    except DataError:
        return None


def test_rows(model: LoadedModel, limit: Optional[int] = None) -> Optional[pd.DataFrame]:
    """The run's own test split (None if its data can no longer be read)."""
    splits = split_rows(model)
    if splits is None:
        return None
    return splits["test"] if limit is None else splits["test"].iloc[:limit]


def seen_in_training(manifest: dict, run_dir: Path, data: str) -> bool:
    """Whether ``data`` is the source the run was trained on (the same string, or the same file once resolved: the
    manifest's source_path, else its source relative to here or to the folder above the runs folder), or a renamed or
    copied file with the same bytes (the manifest's source_sha256; hashed only when the size matches)."""
    import os

    source = manifest.get("data", {}).get("source")
    if not source:
        return False
    if str(data) == str(source):
        return True
    path = Path(data).expanduser()
    if str(data).startswith("bundled:") or not path.exists():
        return False
    trained = [Path(p) for p in (manifest["data"].get("source_path"), source, Path(run_dir).parent.parent / source) if p]
    for candidate in trained:
        try:
            if candidate.exists() and os.path.samefile(candidate, path):
                return True
        except OSError:
            continue
    return same_content(manifest["data"], path)


def same_content(trained: dict, path: Path) -> bool:
    """Whether the file at ``path`` holds the bytes of the training file (its size, then its SHA-256, as recorded)."""
    digest, size = trained.get("source_sha256"), trained.get("source_bytes")
    try:
        if not digest or not path.is_file() or (size is not None and path.stat().st_size != size):
            return False
        return artifacts.file_sha256(path) == digest
    except OSError:
        return False
