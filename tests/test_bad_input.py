"""Bad input never shows a traceback: the CLI prints one `error: ...` line (what is wrong, what to do) and exits 2."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forgeml.cli import main

from conftest import user_error

FAST = ["--epochs", "1", "--tracking-uri", "none", "--quiet"]


# --------------------------------------------------------------------------------------------- helpers
def train_error(capsys, *argv: str) -> str:
    return user_error(capsys, "train", *argv, *FAST)


def table(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x1": rng.normal(size=rows).round(3),
        "x2": rng.choice(["red", "green", "blue"], size=rows),
        "y": np.where(np.arange(rows) % 2 == 0, "yes", "no"),
    })


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


def image_folder(root: Path, per_class: int = 6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(root / cls / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One small finished run (mlp, 1 epoch) shared by the predict and existing-run tests."""
    root = tmp_path_factory.mktemp("trained")
    data = write_csv(root / "train.csv", table())
    try:
        main(["train", "--data", str(data), "--target", "y", "--model", "mlp", "--name", "small",
              "--runs-dir", str(root / "runs"), *FAST])
    except SystemExit as exc:
        assert exc.code in (0, None), f"training the shared run failed with exit code {exc.code}"
    run = root / "runs" / "small"
    assert (run / "manifest.json").is_file()
    return run


# --------------------------------------------------------------------------------------------- 1. missing data file
def test_missing_data_file(in_tmp, capsys):
    err = train_error(capsys, "--data", "nope.csv", "--target", "y")
    assert "nope.csv" in err and "not found" in err


# --------------------------------------------------------------------------------------------- 2. unsupported format
@pytest.mark.parametrize("name", ["data.xlsx", "data.txt", "data"])
def test_unsupported_format(in_tmp, capsys, name):
    (in_tmp / name).write_bytes(b"x1,y\n1,2\n")
    err = train_error(capsys, "--data", name, "--target", "y")
    assert "unsupported data format" in err
    assert name in err
    assert ".csv" in err and ".parquet" in err and ".jsonl" in err  # what to use instead


# --------------------------------------------------------------------------------------------- 3. empty data
@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("empty.csv", b"", "is empty"),
        ("empty.jsonl", b"", "is empty"),
        ("blank.csv", b"\n\n", "is empty"),
        ("header.csv", b"x1,x2,y\n", "has a header but no rows"),
    ],
)
def test_empty_data(in_tmp, capsys, name, content, expected):
    (in_tmp / name).write_bytes(content)
    err = train_error(capsys, "--data", name, "--target", "y")
    assert name in err and expected in err


# --------------------------------------------------------------------------------------------- 4. unknown target
def test_unknown_target_lists_columns(in_tmp, capsys):
    write_csv(in_tmp / "d.csv", table())
    err = train_error(capsys, "--data", "d.csv", "--target", "label")
    assert "'label'" in err and "not found" in err
    for col in ("x1", "x2", "y"):
        assert repr(col) in err  # the available columns are listed


def test_no_target_lists_columns(in_tmp, capsys):
    write_csv(in_tmp / "d.csv", table())
    err = train_error(capsys, "--data", "d.csv")
    assert "--target" in err
    for col in ("x1", "x2", "y"):
        assert repr(col) in err


# --------------------------------------------------------------------------------------------- 5. single class
@pytest.mark.parametrize("value", ["yes", 1])
def test_single_class_target(in_tmp, capsys, value):
    write_csv(in_tmp / "d.csv", table().assign(y=value))
    err = train_error(capsys, "--data", "d.csv", "--target", "y", "--task", "classification")
    assert "'y'" in err and "single class" in err and "at least two" in err
    assert "np." not in err and "numpy" not in err  # the value as the user wrote it, not a numpy repr


# --------------------------------------------------------------------------------------------- 6. regression on text
def test_regression_with_non_numeric_target(in_tmp, capsys):
    write_csv(in_tmp / "d.csv", table())
    err = train_error(capsys, "--data", "d.csv", "--target", "y", "--task", "regression")
    assert "numeric target" in err and "'y'" in err
    assert "--task classification" in err  # what to do


# --------------------------------------------------------------------------------------------- 7. all-missing feature
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_feature_entirely_missing(in_tmp, capsys, fmt):
    df = table().assign(notes=None)
    path = in_tmp / f"d.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    err = train_error(capsys, "--data", path.name, "--target", "y")
    assert "'notes'" in err and "entirely missing" in err
    assert "ignore" in err  # what to do: drop it or mark it ignore


# --------------------------------------------------------------------------------------------- 8. invalid config
@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("train:\n  optimizr: sgd\n", ["train.optimizr", "unknown key", "optimizer", "epochs", "lr"]),
        ("trian:\n  epochs: 2\n", ["trian", "unknown key", "train", "data", "model"]),
        ("model:\n  name: mlp\n  hiden: [8]\n", ["model.hiden", "unknown key", "hidden", "dropout"]),
        ("train:\n  optimizer: adam\n", ["train.optimizer", "'adamw'", "'sgd'"]),
        ("train:\n  schedule: linear\n", ["train.schedule", "'cosine'", "'onecycle'", "'constant'"]),
        ("train:\n  batch_size: 0\n", ["train.batch_size", "greater than or equal to 1"]),
        ("model:\n  name: xgboost\n", ["model", "unknown model name", "mlp", "lightgbm"]),
    ],
    ids=["bad-key", "bad-section", "bad-model-key", "bad-optimizer", "bad-schedule", "bad-batch-size", "bad-model"],
)
def test_invalid_config(in_tmp, capsys, yaml_text, expected):
    write_csv(in_tmp / "d.csv", table())
    (in_tmp / "cfg.yaml").write_text(yaml_text)
    err = train_error(capsys, "--config", "cfg.yaml", "--data", "d.csv", "--target", "y")
    assert "invalid config" in err
    for s in expected:
        assert s in err, f"{s!r} not in {err!r}"


@pytest.mark.parametrize(
    "yaml_text, expected",
    [("train: [epochs\n", "not valid YAML"), ("- a\n- b\n", "must hold a mapping")],
    ids=["broken-yaml", "not-a-mapping"],
)
def test_unreadable_config(in_tmp, capsys, yaml_text, expected):
    write_csv(in_tmp / "d.csv", table())
    (in_tmp / "cfg.yaml").write_text(yaml_text)
    err = train_error(capsys, "--config", "cfg.yaml", "--data", "d.csv", "--target", "y")
    assert "cfg.yaml" in err and expected in err


# --------------------------------------------------------------------------------------------- 9. no images
@pytest.mark.parametrize("layout", ["empty", "class-folders-without-images"])
def test_image_folder_without_images(in_tmp, capsys, layout):
    folder = in_tmp / "imgs"
    folder.mkdir()
    if layout != "empty":
        for cls in ("cat", "dog"):
            (folder / cls).mkdir()
            (folder / cls / "readme.txt").write_text("not an image")
    err = train_error(capsys, "--data", "imgs")
    assert "no images found" in err and "imgs" in err
    assert ".png" in err and ".jpg" in err  # what it looked for


# --------------------------------------------------------------------------------------------- 10. corrupt image
@pytest.mark.parametrize("kind", ["garbage", "zero-bytes", "truncated"])
def test_corrupt_image_is_fatal_and_named(in_tmp, capsys, kind):
    folder = image_folder(in_tmp / "imgs")
    bad = folder / "dog" / "broken.png"
    if kind == "garbage":
        bad.write_bytes(b"this is not a png at all" * 10)
    elif kind == "zero-bytes":
        bad.write_bytes(b"")
    else:
        good = (folder / "dog" / "0.png").read_bytes()
        bad.write_bytes(good[: len(good) // 2])
    err = train_error(capsys, "--data", "imgs")
    assert "broken.png" in err
    assert "corrupt" in err or "unreadable" in err
    assert "remove" in err or "fix" in err  # what to do


# --------------------------------------------------------------------------------------------- 11. resume without checkpoint
@pytest.mark.parametrize("state", ["no-run-folder", "empty-run-folder"])
def test_resume_without_checkpoint(in_tmp, capsys, state):
    write_csv(in_tmp / "d.csv", table())
    if state == "empty-run-folder":
        (in_tmp / "runs" / "r1" / "checkpoints").mkdir(parents=True)
    err = train_error(capsys, "--data", "d.csv", "--target", "y", "--name", "r1", "--resume")
    assert "--resume" in err and "no checkpoint" in err and "r1" in err
    assert "without --resume" in err  # what to do


def test_resume_without_data_or_checkpoint(in_tmp, capsys):
    err = train_error(capsys, "--name", "r1", "--resume")
    assert "no checkpoint" in err and "r1" in err


# --------------------------------------------------------------------------------------------- 12. predict
@pytest.mark.parametrize("state", ["missing", "no-manifest"])
def test_predict_on_missing_run(in_tmp, capsys, state):
    write_csv(in_tmp / "new.csv", table().drop(columns="y"))
    if state == "no-manifest":
        (in_tmp / "runs" / "ghost").mkdir(parents=True)
    err = user_error(capsys, "predict", "runs/ghost", "new.csv")
    assert "runs/ghost" in err
    if state == "missing":
        assert "run folder not found" in err and "forgeml train" in err
    else:
        assert "manifest.json" in err and "not a finished forgeml run" in err


def test_predict_input_missing_feature(in_tmp, capsys, trained_run):
    write_csv(in_tmp / "new.csv", table().drop(columns=["y", "x2"]))
    err = user_error(capsys, "predict", trained_run, "new.csv")
    assert "missing feature columns" in err and "'x2'" in err
    assert "'x1'" in err  # the columns the model needs


def test_predict_input_file_missing(in_tmp, capsys, trained_run):
    err = user_error(capsys, "predict", trained_run, "nope.csv")
    assert "nope.csv" in err and "not found" in err


# --------------------------------------------------------------------------------------------- 13. existing run
def test_existing_run_without_overwrite(in_tmp, capsys, trained_run):
    before = (trained_run / "manifest.json").read_text()
    write_csv(in_tmp / "d.csv", table(seed=1))
    err = train_error(capsys, "--data", "d.csv", "--target", "y", "--name", trained_run.name,
                      "--runs-dir", trained_run.parent)
    assert "already exists" in err and trained_run.name in err
    assert "--overwrite" in err and "--resume" in err and "--name" in err  # what to do
    assert (trained_run / "manifest.json").read_text() == before  # the existing run is untouched
    assert json.loads(before)["name"] == "small"


def test_failed_data_check_does_not_block_a_retry(in_tmp, capsys):
    """A run that failed on its data (before any training) must not count as an existing run afterwards."""
    write_csv(in_tmp / "d.csv", table())
    err = train_error(capsys, "--data", "d.csv", "--target", "label")
    assert "'label'" in err
    try:  # the user fixes the flag and runs the same command again
        main(["train", "--data", "d.csv", "--target", "y", "--model", "mlp", *FAST])
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code in (0, None), f"retry after fixing the input failed: {err}"
    assert (in_tmp / "runs" / "d" / "manifest.json").is_file()


def test_resume_without_a_run_name_asks_for_it(in_tmp, capsys):
    from conftest import cli

    assert cli("train", "--resume") == 2
    err = capsys.readouterr().err
    assert "--resume needs the name of the run" in err and "Traceback" not in err
