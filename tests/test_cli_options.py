"""Every documented CLI option changes what happens: each test passes the flag through `forgeml ...` (in-process) and
checks the effect on fitted values, predictions, files or explanations, usually against the same command without it."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from forgeml import api

from conftest import cli, fast_train, user_error

FAST = ["--model", "mlp", "--epochs", "2", "--tracking-uri", "none", "-q"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _messy(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Binary target from x1 and a skewed x2 (mean far from median) with 10% gaps and a clear mode (7.0), a
    categorical column, then 15 exact duplicates of earlier rows appended."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n).round(4)
    x2 = rng.lognormal(1.0, 1.0, size=n).round(3)
    x2[rng.choice(n, n // 12, replace=False)] = 7.0  # the most frequent value
    y = np.where(x1 + 0.4 * np.log(x2) + 0.3 * rng.normal(size=n) > 0.4, "yes", "no")
    df = pd.DataFrame({"x1": x1, "x2": x2, "city": rng.choice(["a", "b", "c"], n), "y": y})
    df.loc[rng.choice(n, n // 10, replace=False), "x2"] = np.nan
    return pd.concat([df, df.iloc[:15]], ignore_index=True)


N_UNIQUE, N_DUPLICATES = 300, 15


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A folder with messy.csv and a cache of CLI-trained runs: lab.run(name, *flags) trains once per name."""
    root = tmp_path_factory.mktemp("cli-options")
    _messy().to_csv(root / "messy.csv", index=False)

    class Lab:
        dir = root
        data = root / "messy.csv"
        runs: dict = {}

        def run(self, name: str, *flags: str) -> Path:
            if name not in self.runs:
                code = cli("train", "--data", str(self.data), "--target", "y", "--name", name,
                           "--runs-dir", str(root / "runs"), *FAST, *flags)
                assert code == 0, f"training {name} {flags} failed"
                self.runs[name] = root / "runs" / name
            return self.runs[name]

    return Lab()


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _train_split(run: Path) -> pd.DataFrame:
    return api.split_data(api.run_config(run)).raw["train"]


def _proba(run: Path, rows: pd.DataFrame) -> np.ndarray:
    return api.predict(run, rows)[["proba_no", "proba_yes"]].to_numpy()


ROWS = pd.DataFrame({"x1": [-1.0, 0.2, 1.5], "city": ["a", "b", "c"]})


@pytest.fixture(scope="module")
def cleaned(lab):
    return lab.run("cleaned", "--impute", "median", "--scale", "robust", "--outliers", "clip", "--dedup", "--device", "cpu")


@pytest.fixture(scope="module")
def plain(lab):
    return lab.run("plain")


# --------------------------------------------------------------------------------------------- data.clean flags
def test_impute_median_fills_gaps_with_the_training_median(cleaned, plain):
    x2 = pd.to_numeric(_train_split(cleaned)["x2"])
    num = _manifest(cleaned)["preprocessing"]["numeric"]
    assert num["columns"] == ["x1", "x2"]
    assert num["fill"][1] == pytest.approx(np.nanmedian(x2), rel=1e-6)
    assert abs(np.nanmedian(x2) - np.nanmean(x2)) > 0.5  # skewed: the flag's choice is visible
    # without --impute: the training mean
    plain_x2 = pd.to_numeric(_train_split(plain)["x2"])
    assert _manifest(plain)["preprocessing"]["numeric"]["fill"][1] == pytest.approx(np.nanmean(plain_x2), rel=1e-5)
    # a row with a gap predicts exactly as the row with the training median written in
    gap, filled = ROWS.assign(x2=np.nan), ROWS.assign(x2=num["fill"][1])
    np.testing.assert_allclose(_proba(cleaned, gap), _proba(cleaned, filled), atol=1e-7)
    mean_filled = ROWS.assign(x2=float(np.nanmean(x2)))
    assert np.abs(_proba(cleaned, gap) - _proba(cleaned, mean_filled)).max() > 1e-4


@pytest.mark.parametrize("impute, scale", [("most_frequent", "minmax"), ("constant", "none")])
def test_other_impute_and_scale_choices(lab, impute, scale):
    run = lab.run(f"{impute}-{scale}", "--impute", impute, "--scale", scale)
    train = _train_split(run)
    x1, x2 = pd.to_numeric(train["x1"]).to_numpy(), pd.to_numeric(train["x2"]).to_numpy()
    num = _manifest(run)["preprocessing"]["numeric"]
    assert num["scale_method"] == scale
    if impute == "most_frequent":
        assert num["fill"][1] == pytest.approx(7.0)
        filled = np.where(np.isnan(x2), 7.0, x2)
        assert num["center"] == pytest.approx([x1.min(), filled.min()], rel=1e-5)  # minmax: to [0, 1]
        assert num["scale"] == pytest.approx([np.ptp(x1), np.ptp(filled)], rel=1e-5)
    else:
        assert num["fill"][1] == 0.0  # data.clean.missing.fill_value
        assert num["center"] == [0.0, 0.0] and num["scale"] == [1.0, 1.0]  # unscaled
    np.testing.assert_allclose(_proba(run, ROWS.assign(x2=np.nan)), _proba(run, ROWS.assign(x2=num["fill"][1])), atol=1e-7)


def test_scale_robust_centres_on_the_training_median(cleaned, plain):
    train = _train_split(cleaned)
    num = _manifest(cleaned)["preprocessing"]["numeric"]
    lo, hi = np.asarray(num["clip"][0]), np.asarray(num["clip"][1])
    x1 = np.clip(pd.to_numeric(train["x1"]).to_numpy(np.float32), lo[0], hi[0])
    assert num["scale_method"] == "robust"
    assert num["center"][0] == pytest.approx(np.median(x1), rel=1e-5)
    q25, q75 = np.quantile(x1, [0.25, 0.75])
    assert num["scale"][0] == pytest.approx(q75 - q25, rel=1e-4)
    plain_num = _manifest(plain)["preprocessing"]["numeric"]
    plain_x1 = pd.to_numeric(_train_split(plain)["x1"])
    assert plain_num["scale_method"] == "standard"
    assert plain_num["center"][0] == pytest.approx(plain_x1.mean(), rel=1e-4, abs=1e-6)
    assert plain_num["scale"][0] == pytest.approx(plain_x1.std(ddof=0), rel=1e-4)


def test_outliers_clip_bounds_are_training_quantiles_and_huge_values_act_as_the_bound(cleaned, plain):
    train = _train_split(cleaned)
    num = _manifest(cleaned)["preprocessing"]["numeric"]
    x2 = pd.to_numeric(train["x2"]).to_numpy(np.float32)
    lo, hi = np.nanquantile(x2, [0.01, 0.99])
    assert num["clip"][0][1] == pytest.approx(lo, rel=1e-5) and num["clip"][1][1] == pytest.approx(hi, rel=1e-5)
    huge = ROWS.assign(x2=[1e9, -1e9, 1e6])
    at_bounds = ROWS.assign(x2=[num["clip"][1][1], num["clip"][0][1], num["clip"][1][1]])
    np.testing.assert_allclose(_proba(cleaned, huge), _proba(cleaned, at_bounds), atol=1e-7)
    # without --outliers nothing is clipped: the same rows predict differently
    assert "clip" not in _manifest(plain)["preprocessing"]["numeric"]
    assert np.abs(_proba(plain, huge) - _proba(plain, at_bounds)).max() > 1e-4


def test_dedup_removes_the_duplicate_rows_before_splitting(cleaned, plain):
    m = _manifest(cleaned)
    assert m["data"]["preparation"]["duplicates"] == N_DUPLICATES
    assert sum(m["data"]["rows"].values()) == N_UNIQUE
    splits = api.split_data(api.run_config(cleaned))
    every = pd.concat(splits.raw.values(), ignore_index=True)
    assert not every.duplicated().any()
    plain_m = _manifest(plain)
    assert "duplicates" not in plain_m["data"].get("preparation", {})
    assert sum(plain_m["data"]["rows"].values()) == N_UNIQUE + N_DUPLICATES


def test_missing_indicator_adds_an_input_that_the_model_uses(lab, plain):
    run = lab.run("indicator", "--missing-indicator")
    m = _manifest(run)
    assert m["preprocessing"]["numeric"]["indicator"] == ["x2"]  # x1 has no gaps: no indicator
    assert m["model"]["input_shapes"]["numeric"] == 3
    assert _manifest(plain)["model"]["input_shapes"]["numeric"] == 2
    fill = m["preprocessing"]["numeric"]["fill"][1]
    # with the indicator a gap is not the same as the fill value; without it, it is
    assert np.abs(_proba(run, ROWS.assign(x2=np.nan)) - _proba(run, ROWS.assign(x2=fill))).max() > 1e-4
    plain_fill = _manifest(plain)["preprocessing"]["numeric"]["fill"][1]
    np.testing.assert_allclose(_proba(plain, ROWS.assign(x2=np.nan)), _proba(plain, ROWS.assign(x2=plain_fill)), atol=1e-7)


def test_impute_drop_and_outliers_drop_remove_exactly_those_training_rows(lab):
    run = lab.run("drops", "--impute", "drop", "--outliers", "drop")
    splits = api.split_data(api.run_config(run))
    train = splits.raw["train"]
    values = train[["x1", "x2"]].apply(pd.to_numeric).to_numpy(np.float32)
    gap = np.isnan(values).any(axis=1)
    lo, hi = np.nanquantile(values, [0.01, 0.99], axis=0)
    with np.errstate(invalid="ignore"):
        outlier = ((values < lo) | (values > hi)).any(axis=1)
    m = _manifest(run)
    assert m["data"]["preparation"]["training_rows_dropped"] == {"missing numeric value": int(gap.sum()),
                                                                "outlier": int(outlier.sum())}
    assert gap.sum() > 0 and outlier.sum() > 0
    assert m["data"]["rows"]["train"] == len(train) - int((gap | outlier).sum())
    assert m["data"]["rows"]["test"] == len(splits.raw["test"])  # the test split keeps its gaps (filled, not dropped)
    assert splits.raw["test"]["x2"].isna().any()


# --------------------------------------------------------------------------------------------- --threshold f1
def _imbalanced(n: int = 800, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (2.5 * x[:, 0] + rng.normal(scale=0.8, size=n) > 3.0).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


def test_threshold_f1_is_tuned_on_validation_and_decides_predictions(in_tmp):
    from sklearn.metrics import f1_score

    df = _imbalanced()
    df.to_csv("imb.csv", index=False)
    assert cli("train", "--data", "imb.csv", "--target", "y", "--threshold", "f1", "--model", "mlp", "--epochs", "4",
               "--lr", "0.003", "--tracking-uri", "none", "-q") == 0
    run = in_tmp / "runs" / "imb"
    target = _manifest(run)["target"]
    t = target["threshold"]
    assert target["threshold_tuning"]["tuned_for"] == "f1" and 0 < t < 1 and t != 0.5
    pred = api.predict(run, df.drop(columns="y"))
    decided = pred["prediction"].to_numpy().astype(int)
    np.testing.assert_array_equal(decided, (pred["proba_1"] >= t).astype(int))
    assert (decided != (pred["proba_1"] >= 0.5)).sum() > 0  # the tuned threshold changed some decisions
    # the best F1 on the validation split, at least as good as 0.5 there
    val = api.split_data(api.run_config(run)).raw["val"]
    p_val = api.predict(run, val.drop(columns="y"))["proba_1"].to_numpy()
    f1_at = lambda thr: f1_score(val["y"], (p_val >= thr).astype(int), zero_division=0)  # noqa: E731
    assert f1_at(t) >= f1_at(0.5)
    assert f1_at(t) >= max(f1_at(q) for q in np.unique(p_val)) - 1e-9
    assert api.evaluate(run)["threshold"] == t


# --------------------------------------------------------------------------------------------- --seed, --overwrite
def test_seed_reproduces_and_overwrite_replaces(lab, capsys):
    runs = lab.dir / "runs"

    def train(*flags):
        return cli("train", "--data", str(lab.data), "--target", "y", "--name", "seeded", "--runs-dir", str(runs),
                   "--model", "mlp", "--epochs", "1", "--tracking-uri", "none", "-q", *flags)

    run = runs / "seeded"
    assert train("--seed", "7") == 0
    first = json.loads((run / "metrics.json").read_text())
    weights = (run / "model.safetensors").read_bytes()
    (run / "marker.txt").write_text("from the first run")

    msg = user_error(capsys, "train", "--data", str(lab.data), "--target", "y", "--name", "seeded", "--runs-dir",
                     str(runs), "--seed", "7", "--tracking-uri", "none", "-q")
    assert "already exists" in msg and "--overwrite" in msg
    assert (run / "marker.txt").is_file()  # refused: nothing touched

    assert train("--seed", "7", "--overwrite") == 0
    assert not (run / "marker.txt").exists()  # the old run folder was replaced, not merged into
    again = json.loads((run / "metrics.json").read_text())
    untimed = lambda m: [{k: v for k, v in e.items() if k != "seconds"} for e in m["history"]]  # noqa: E731
    assert again["test"] == first["test"] and untimed(again) == untimed(first)  # same seed, same run
    assert (run / "model.safetensors").read_bytes() == weights

    assert train("--seed", "8", "--overwrite") == 0
    other = json.loads((run / "metrics.json").read_text())
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == 8
    assert other["test"]["log_loss"] != first["test"]["log_loss"]  # another seed, another initialisation
    assert (run / "model.safetensors").read_bytes() != weights


def test_cv_overwrite_is_refused_without_and_replaces_with(in_tmp, capsys):
    _messy(n=120).to_csv("small.csv", index=False)
    base = ["cv", "--data", "small.csv", "--target", "y", "--folds", "2", "--model", "lightgbm", "--tracking-uri", "none",
            "-q"]
    assert cli(*base) == 0
    cv_dir = in_tmp / "runs" / "small-cv"
    (cv_dir / "marker.txt").write_text("old")
    msg = user_error(capsys, *base)
    assert "already exists" in msg and "--overwrite" in msg and (cv_dir / "marker.txt").is_file()
    assert _manifest(cv_dir / "fold-1")["preprocessing"]["numeric"]["scale_method"] == "standard"
    assert cli(*base, "--scale", "none", "--overwrite") == 0
    assert not (cv_dir / "marker.txt").exists()  # replaced, not merged into
    for k in (1, 2):  # every fold is the new command's
        assert _manifest(cv_dir / f"fold-{k}")["preprocessing"]["numeric"]["scale_method"] == "none"


# --------------------------------------------------------------------------------------------- --device
def test_device_cpu_is_recorded_and_used(cleaned, plain):
    import torch

    metrics = json.loads((cleaned / "metrics.json").read_text())
    assert metrics["training"]["device"] == "cpu"
    assert yaml.safe_load((cleaned / "config.yaml").read_text())["train"]["device"] == "cpu"
    assert yaml.safe_load((plain / "config.yaml").read_text())["train"]["device"] == "auto"
    auto = json.loads((plain / "metrics.json").read_text())["training"]["device"]
    # on a GPU machine auto takes the GPU and --device cpu keeps training off it (the refusal of cuda without a GPU
    # is in test_errors.py)
    assert auto.startswith("cuda") if torch.cuda.is_available() else auto == "cpu"


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_device_cuda_trains_on_the_gpu(in_tmp):
    assert cli("train", "--data", "bundled:iris", "--device", "cuda", *FAST) == 0
    metrics = json.loads((in_tmp / "runs" / "iris" / "metrics.json").read_text())
    assert metrics["training"]["device"].startswith("cuda")
    assert metrics["test"]["accuracy"] > 0.5


# --------------------------------------------------------------------------------------------- predict -o, export -o
@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_predict_output_file_holds_the_api_predictions(plain, tmp_path, capsys, suffix):
    rows = _messy(n=40, seed=3).drop(columns="y").iloc[:40]
    rows.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / f"pred.{suffix}"
    assert cli("predict", str(plain), str(tmp_path / "new.csv"), "-o", str(out)) == 0
    assert f"wrote 40 predictions to {out}" in capsys.readouterr().err
    written = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}[suffix](out)
    expected = api.predict(plain, rows)
    assert list(written.columns) == ["prediction", "proba_no", "proba_yes"]
    assert written["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(written[["proba_no", "proba_yes"]].to_numpy(), expected[["proba_no", "proba_yes"]].to_numpy(),
                               rtol=1e-6)


def test_predict_without_output_writes_csv_to_stdout(plain, tmp_path, capsys):
    rows = _messy(n=20, seed=4).drop(columns="y")
    rows.to_parquet(tmp_path / "new.parquet", index=False)  # parquet input
    assert cli("predict", str(plain), str(tmp_path / "new.parquet")) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out))
    expected = api.predict(plain, rows)
    assert printed["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(printed["proba_yes"], expected["proba_yes"], rtol=1e-6)


def test_export_output_writes_there_and_runs_in_onnxruntime(plain, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    target = tmp_path / "elsewhere" / "exported.onnx"
    assert cli("export", str(plain), "--output", str(target)) == 0
    out = capsys.readouterr().out
    assert target.is_file() and str(target) in out
    assert not (plain / "model.onnx").exists()  # written where asked, not into the run
    spec = _manifest(plain)["export"]["onnx"]
    assert spec["file"] == str(target)

    rows = ROWS.assign(x2=[np.nan, 3.0, 1e6]).to_dict("records")
    feed = {}
    for inp in spec["inputs"]:
        values = [[r.get(c) for c in inp["columns"]] for r in rows]
        if inp["dtype"] == "string":
            feed[inp["name"]] = np.array([[str(v) for v in row] for row in values], dtype=object)
        else:
            feed[inp["name"]] = np.array(values, dtype=np.float32)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    proba = session.run(None, feed)[names.index(spec["outputs"][0]["name"])] if spec["outputs"] else None
    proba = np.asarray(proba)
    expected = _proba(plain, pd.DataFrame(rows))
    if proba.shape != expected.shape:  # the first output may be the label; find the probabilities
        proba = next(np.asarray(o) for o in session.run(None, feed) if np.asarray(o).shape == expected.shape)
    np.testing.assert_allclose(proba, expected, atol=1e-4)


# --------------------------------------------------------------------------------------------- evaluate, quickstart
def test_evaluate_prints_and_writes_the_api_metrics(plain, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert cli("evaluate", str(plain), "-o", str(out)) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the title may wrap
    expected = api.evaluate(plain)
    recorded = json.loads((plain / "metrics.json").read_text())["test"]
    assert expected["accuracy"] == pytest.approx(recorded["accuracy"])  # the run's own test split, replayed
    assert expected["log_loss"] == pytest.approx(recorded["log_loss"], rel=1e-5)
    for key in ("accuracy", "roc_auc", "log_loss"):
        assert f"{expected[key]:.4f}" in printed, key
    assert f"({expected['n']} rows)" in printed and "test split of" in printed
    written = json.loads(out.read_text())
    assert written["accuracy"] == expected["accuracy"] and written["log_loss"] == pytest.approx(expected["log_loss"])

    labelled = _messy(n=50, seed=9).iloc[:50]
    labelled.to_csv(tmp_path / "labelled.csv", index=False)
    assert cli("evaluate", str(plain), "--data", str(tmp_path / "labelled.csv")) == 0
    printed = " ".join(capsys.readouterr().out.split())
    on_file = api.evaluate(plain, str(tmp_path / "labelled.csv"))
    assert on_file["n"] == 50 and "(50 rows)" in printed and f"{on_file['accuracy']:.4f}" in printed
    proba = _proba(plain, labelled.drop(columns="y"))
    assert on_file["accuracy"] == pytest.approx(np.mean(np.where(proba[:, 1] >= 0.5, "yes", "no") == labelled["y"]))


def test_quickstart_through_the_cli(in_tmp, capsys, monkeypatch):
    # the real quickstart trains 30 epochs of a 64/128-channel CNN; the same command on a tiny budget
    monkeypatch.setitem(api.QUICKSTART, "model", {"name": "cnn", "channels": [8, 16]})
    monkeypatch.setitem(api.QUICKSTART, "train", fast_train(epochs=1, lr=3e-3, threads=1))
    assert cli("quickstart", "--runs-dir", "qs", "--tracking-uri", "none", "-q") == 0
    out = capsys.readouterr().out
    run = in_tmp / "qs" / "quickstart"
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"]["source"] == "bundled:digits" and cfg["model"]["name"] == "cnn" and cfg["train"]["epochs"] == 1
    assert metrics["model"] == "cnn" and metrics["test"]["n"] == 360  # 20% of digits' 1,797 images
    assert "cnn (chosen)" in out and "baseline: pixels_linear" in out and "qs/quickstart" in out
    for key in ("accuracy", "log_loss"):
        assert f"{metrics['test'][key]:.4f}" in out and f"{metrics['baseline']['test'][key]:.4f}" in out
    assert metrics["test"]["accuracy"] > 0.3  # 10 classes: chance is 0.1


# --------------------------------------------------------------------------------------------- explain options
def _explain(run, out: Path, *flags) -> dict:
    assert cli("explain", str(run), "--out", str(out), "-q", *flags) == 0
    return json.loads((out / "explanations.json").read_text())


def test_explain_rows_sets_how_many_rows_are_explained(plain, tmp_path):
    for n in (2, 5):
        result = _explain(plain, tmp_path / f"r{n}", "--method", "ig", "--rows", str(n))
        assert len(result["instances"]) == n
        assert len(pd.read_csv(tmp_path / f"r{n}" / "attributions_ig.csv")) == n
    two = _explain(plain, tmp_path / "r2", "--method", "ig", "--rows", "2")
    assert {r["true"] for r in two["instances"]} == {"yes", "no"}  # spread over the classes
    assert len(_explain(plain, tmp_path / "default", "--method", "ig")["instances"]) == 6


def test_explain_steps_reach_integrated_gradients(plain, tmp_path):
    def ig(*flags):
        return _explain(plain, tmp_path / "ig", "--method", "ig", "--rows", "3", *flags)["instances"]

    coarse, fine, default, fifty = ig("--steps", "2"), ig("--steps", "200"), ig(), ig("--steps", "50")
    assert [r["attributions"] for r in default] == [r["attributions"] for r in fifty]  # the default is 50 steps
    assert [r["attributions"] for r in coarse] != [r["attributions"] for r in fine]
    # Captum's convergence delta (completeness error) shrinks with more steps
    err = lambda recs: sum(abs(r["delta"]) for r in recs)  # noqa: E731
    assert err(coarse) > 1e-3 and err(coarse) > 10 * err(fine)


def test_explain_samples_reach_lime(plain, tmp_path):
    def lime(*flags):
        return [r["attributions"] for r in _explain(plain, tmp_path / "lime", "--method", "lime", "--rows", "2",
                                                    *flags)["instances"]]

    default, four_hundred, few = lime(), lime("--samples", "400"), lime("--samples", "20")
    assert default == four_hundred  # the documented default for tables (seeded: the same draws)
    assert few != default


def _shapes(root: Path, per_class: int = 30) -> Path:
    """8x8 grey images: a bright row, column or corner decides the class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("row", "col", "corner"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (8, 8)).astype(np.uint8)
            if label == "row":
                img[2, :] = 230
            elif label == "col":
                img[:, 5] = 230
            else:
                img[5:, 5:] = 230
            Image.fromarray(img, "L").save(root / label / f"{i}.png")
    return root


def test_explain_per_class_sets_the_image_grid(tmp_path):
    pytest.importorskip("captum")
    run = api.train({"name": "shapes", "runs_dir": str(tmp_path / "runs"), "data": {"source": str(_shapes(tmp_path / "shapes"))},
                     "model": {"name": "cnn", "channels": [4, 8]}, "tracking": {"uri": "none"},
                     "train": fast_train(epochs=2, threads=1, batch_size=16)}, quiet=True).run_dir
    for k in (1, 3):
        result = _explain(run, tmp_path / f"pc{k}", "--per-class", str(k))
        truths = [r["true"] for r in result["instances"]]
        assert len(truths) == 3 * k and all(truths.count(c) == k for c in ("row", "col", "corner"))
        assert result["files"] == ["grid.png", "explanations.json"]
        assert all("gradcam" in r and "ig" in r for r in result["instances"])


# --------------------------------------------------------------------------------------------- federate --engine
def test_federate_engine_local_is_used_and_recorded(in_tmp, capsys):
    pytest.importorskip("flwr")
    (in_tmp / "small.yaml").write_text("model: {name: mlp, hidden: [16]}\ntrain: {threads: 1}\n")
    assert cli("federate", "--data", "bundled:iris", "--clients", "2", "--rounds", "1", "--engine", "local",
               "--no-central", "--config", "small.yaml", "--tracking-uri", "none", "-q") == 0
    fed = json.loads((in_tmp / "runs" / "iris-federated" / "metrics.json").read_text())["federated"]
    assert fed["engine"] == "local" and len(fed["clients"]) == 2


def test_federate_engine_simulation_needs_ray(in_tmp, capsys, monkeypatch):
    import sys

    pytest.importorskip("flwr")
    monkeypatch.setitem(sys.modules, "ray", None)  # as on a machine without the [cluster] extra
    msg = user_error(capsys, "federate", "--data", "bundled:iris", "--engine", "simulation", "--tracking-uri", "none", "-q")
    assert "'ray'" in msg and "forgeml[cluster]" in msg and "--engine simulation" in msg
    assert not (in_tmp / "runs" / "iris-federated").exists()


# --------------------------------------------------------------------------------------------- cv: group/time columns
def _patients(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"patient": [f"p{i}" for i in rng.integers(0, 12, n)], "x": rng.normal(size=n).round(4),
                       "day": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d")})
    df["y"] = np.where(df["x"] + 0.3 * rng.normal(size=n) > 0, "up", "down")
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


def _fold_splits(cv_dir: Path, folds: int) -> list:
    return [api.split_data(api.run_config(cv_dir / f"fold-{k}")).raw for k in range(1, folds + 1)]


def test_cv_with_a_group_column_tests_each_group_in_exactly_one_fold(in_tmp):
    _patients().drop(columns="day").to_csv("p.csv", index=False)
    assert cli("cv", "--data", "p.csv", "--target", "y", "--group-col", "patient", "--folds", "3", "--model", "lightgbm",
               "--tracking-uri", "none", "-q") == 0
    cv_dir = in_tmp / "runs" / "p-cv"
    summary = json.loads((cv_dir / "cv.json").read_text())
    assert summary["split"]["group_col"] == "patient" and summary["split"]["stratified"] is False
    tested = []
    for raw in _fold_splits(cv_dir, 3):
        test, seen = set(raw["test"]["patient"]), set(raw["train"]["patient"]) | set(raw["val"]["patient"])
        assert test and not (test & seen)  # the test patients are unseen
        tested.append(test)
    assert sorted(set.union(*tested)) == sorted(set(_patients()["patient"]))
    assert sum(len(t) for t in tested) == 12  # each patient is tested once
    assert [f["name"] for f in _manifest(cv_dir / "fold-1")["features"]] == ["x"]


def test_cv_with_a_time_column_uses_expanding_windows(in_tmp):
    _patients().drop(columns="patient").to_csv("t.csv", index=False)
    assert cli("cv", "--data", "t.csv", "--target", "y", "--time-col", "day", "--folds", "3", "--model", "lightgbm",
               "--tracking-uri", "none", "-q") == 0
    cv_dir = in_tmp / "runs" / "t-cv"
    assert json.loads((cv_dir / "cv.json").read_text())["split"]["time_col"] == "day"
    days = [{s: pd.to_datetime(raw[s]["day"]) for s in ("train", "val", "test")} for raw in _fold_splits(cv_dir, 3)]
    for d in days:
        assert d["train"].max() < d["val"].min() and d["val"].max() < d["test"].min()  # the past predicts the future
    for a, b in zip(days, days[1:]):
        assert a["test"].max() < b["test"].min()  # consecutive test blocks
        assert len(b["train"]) + len(b["val"]) > len(a["train"]) + len(a["val"])  # the window expands
    assert sum(len(d["test"]) for d in days) == 180  # the last 3 of 4 time blocks of 240 rows are tested
    assert "day" not in [f["name"] for f in _manifest(cv_dir / "fold-1")["features"]]


# --------------------------------------------------------------------------------------------- parquet and TSV input
def test_parquet_and_tsv_train_the_same_model_as_csv(in_tmp):
    rng = np.random.default_rng(1)
    n = 200
    df = pd.DataFrame({"x1": rng.normal(size=n), "place": rng.choice(["Paris, FR", "Lyon, FR", "Bonn, DE"], n)})
    df["y"] = np.where(df["x1"] + (df["place"] == "Bonn, DE") > 0.5, "hi", "lo")
    df.to_csv("d.csv", index=False)
    df.to_csv("d.tsv", sep="\t", index=False)
    df.to_parquet("d.parquet", index=False)
    test = {}
    for fmt in ("csv", "tsv", "parquet"):
        assert cli("train", "--data", f"d.{fmt}", "--target", "y", "--name", fmt, "--model", "lightgbm",
                   "--tracking-uri", "none", "-q") == 0
        raw = api.split_data(api.run_config(in_tmp / "runs" / fmt)).raw
        assert list(raw["train"].columns) == ["x1", "place", "y"]  # the tab-separated commas stay inside their column
        test[fmt] = json.loads((in_tmp / "runs" / fmt / "metrics.json").read_text())["test"]
        assert {f["name"]: f["type"] for f in _manifest(in_tmp / "runs" / fmt)["features"]} == {"x1": "numeric",
                                                                                             "place": "categorical"}
    assert test["tsv"] == test["csv"] and test["parquet"] == test["csv"]
    assert test["csv"]["accuracy"] > 0.8


# --------------------------------------------------------------------------------------------- int8 for text models
def _short_speed_budget(monkeypatch) -> None:
    """Latency measurement is not under test here: a short budget keeps the test quick on a busy machine."""
    import inspect

    try:
        from forgeml.compress.measure import speed
    except ImportError:
        return
    short = {"repeats": 20, "budget_s": 0.5}
    params = [p for p in inspect.signature(speed).parameters.values() if p.default is not inspect.Parameter.empty]
    monkeypatch.setattr(speed, "__defaults__", tuple(short.get(p.name, p.default) for p in params))


@pytest.mark.slow  # the LSTM export through torch.onnx is most of it
def test_compress_quantize_int8_on_a_text_model_is_dynamic(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    _short_speed_budget(monkeypatch)
    onnx = pytest.importorskip("onnx")
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("tweets")
    df.sample(400, random_state=0).to_csv(tmp_path / "tweets.csv", index=False)
    run = api.train({"name": "tweets", "runs_dir": str(tmp_path), "data": {"source": str(tmp_path / "tweets.csv"),
                     "target": "source"}, "tracking": {"uri": "none"}, "model": {"name": "text", "hidden": 16,
                     "embedding_dim": 16}, "train": fast_train(epochs=2, threads=1)}, quiet=True).run_dir
    assert cli("compress", str(run), "--quantize", "int8", "--threads", "1", "-q") == 0
    by = {v["variant"]: v for v in json.loads((run / "compression.json").read_text())["variants"]}
    assert set(by) == {"fp32", "onnx-fp32", "int8"}  # no static variant for an LSTM
    assert by["int8"]["method"] == "dynamic"
    ops = {n.op_type for n in onnx.load(str(run / by["int8"]["file"])).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "MatMulInteger" in ops  # int8 weights, ranges per batch
    assert "LSTM" not in ops and "QuantizeLinear" not in ops  # nothing left in float, no static QDQ
    assert by["onnx-fp32"]["size_bytes"] / by["int8"]["size_bytes"] > 2.5
    fp32, int8 = by["onnx-fp32"]["test_metrics"], by["int8"]["test_metrics"]
    assert abs(int8["log_loss"] - fp32["log_loss"]) < 0.01 and abs(int8["accuracy"] - fp32["accuracy"]) <= 0.02
