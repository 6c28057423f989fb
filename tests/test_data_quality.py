"""Cleaning, class imbalance, splits and cross-validation: fitted on training rows only, replayed everywhere."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import cli, fast_train, user_error

from forgeml import api


def _messy(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A binary task with gaps, outliers, a categorical column with gaps, and 20 exact duplicate rows."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(10, 3, size=n)
    df = pd.DataFrame({"x1": x1, "x2": x2, "city": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
                       "y": np.where(x1 + 0.2 * rng.normal(size=n) > 0, "yes", "no")})
    df.loc[rng.choice(n, 40, replace=False), "x2"] = np.nan
    df.loc[rng.choice(n, 30, replace=False), "city"] = None
    df.loc[rng.choice(n, 5, replace=False), "x2"] = 1e6  # outliers
    return pd.concat([df, df.iloc[:20]], ignore_index=True)


CLEAN = {"deduplicate": True, "missing": {"numeric": "median", "categorical": "most_frequent", "indicator": True},
         "scale": "robust", "outliers": {"method": "clip", "quantiles": [0.02, 0.98]}}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("clean")
    _messy().to_csv(d / "messy.csv", index=False)
    result = api.train(name="clean", runs_dir=str(d / "runs"), quiet=True, data={"source": str(d / "messy.csv"), "target": "y",
                       "clean": CLEAN}, model={"name": "mlp", "hidden": [16]}, train=fast_train(), tracking={"uri": "none"})
    return d, result


def test_cleaning_is_fitted_on_the_training_split_only(clean_run):
    d, result = clean_run
    cfg = api.run_config(result.run_dir)
    train = api.split_data(cfg).raw["train"]
    num = result.manifest["preprocessing"]["numeric"]
    x2 = pd.to_numeric(train["x2"])
    assert num["fill"][1] == pytest.approx(np.nanmedian(x2), rel=1e-5)  # median of the training rows, not all rows
    lo, hi = np.nanquantile(x2, [0.02, 0.98])
    assert num["clip"][0][1] == pytest.approx(lo, rel=1e-4) and num["clip"][1][1] == pytest.approx(hi, rel=1e-4)
    assert num["indicator"] == ["x2"] and result.manifest["model"]["input_shapes"]["numeric"] == 3
    assert result.manifest["preprocessing"]["categorical"]["missing"] == "most_frequent"
    assert result.manifest["data"]["preparation"]["duplicates"] == 20
    assert sum(result.manifest["data"]["rows"].values()) == 400


def test_predict_and_onnx_replay_the_cleaning_identically(clean_run):
    """Gaps, outliers and missing categories give the same outputs from predict and from the exported graph."""
    from forgeml.export.onnx import feeds, outputs_of, session

    d, result = clean_run
    api.export(result.run_dir)
    model = api.load(result.run_dir)
    rows = pd.DataFrame({"x1": [0.5, -1.0, np.nan, 2.0], "x2": [np.nan, 1e9, 10.0, -1e9], "city": [None, "a", "zzz", "c"]})
    proba = model.predict(rows)[["proba_no", "proba_yes"]].to_numpy()
    onnx_out = outputs_of(session(result.run_dir / "model.onnx"), feeds(rows, model.preprocessor), model.task)
    np.testing.assert_allclose(onnx_out["proba"], proba, atol=1e-5)
    # a huge value is clipped to the training bound, so it acts like the bound itself
    clipped = rows.assign(x2=[np.nan, result.manifest["preprocessing"]["numeric"]["clip"][1][1], 10.0, -1e9])
    np.testing.assert_allclose(model.predict(clipped)[["proba_yes"]].to_numpy()[1], proba[1, 1:], atol=1e-6)
    # a missing city is coded as the most frequent level ('a'), an unseen one as unknown
    codes = model.preprocessor.transform(rows)["categorical"][:, 0]
    assert codes[0] == codes[1] == 1 and codes[2] == 0


def test_training_rows_dropped_only_from_the_training_split(in_tmp):
    _messy().to_csv("messy.csv", index=False)
    result = api.train(name="drop", quiet=True, data={"source": "messy.csv", "target": "y",
                       "clean": {"missing": {"numeric": "drop"}, "outliers": {"method": "drop"}}},
                       model={"name": "mlp", "hidden": [8]}, train=fast_train(epochs=1), tracking={"uri": "none"})
    dropped = result.manifest["data"]["preparation"]["training_rows_dropped"]
    assert dropped["missing numeric value"] > 0 and dropped["outlier"] > 0
    splits = api.split_data(api.run_config(result.run_dir))
    assert result.manifest["data"]["rows"]["test"] == len(splits.raw["test"])  # test keeps its gaps, filled not dropped
    assert splits.raw["test"]["x2"].isna().any()


def test_text_normalization_is_replayed_by_the_server_encoder():
    from forgeml.config import DataConfig
    from forgeml.features.preprocess import Preprocessor
    from forgeml.data.schema import Feature
    from forgeml.features.records import encode

    df = pd.DataFrame({"t": ["  Ｃａｆé   CRÈME  brûlée ", "ﬁne  dining", "plain text here"]})
    cfg = DataConfig(source="x", clean={"text": {"nfkc": True, "strip": True, "lower": True}})
    pre = Preprocessor.fit(df, [Feature("t", "text")], cfg)
    assert pre.state["text"]["normalize"] == {"lower": True, "strip": True, "nfkc": True}
    assert "café" in pre.state["text"]["vocab"] and "fine" in pre.state["text"]["vocab"]
    served = encode([{"t": v} for v in df["t"]], pre.state, ["t"])
    np.testing.assert_array_equal(served["tokens"], pre.transform(df)["tokens"])


# --------------------------------------------------------------------------------------------- imbalance
def _imbalanced(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    score = 2.5 * x[:, 0] + rng.normal(scale=0.7, size=n)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "kind": rng.choice(["p", "q"], n), "y": (score > 4.2).astype(int)})


@pytest.mark.parametrize("method", ["oversample", "undersample", "smote"])
def test_resampling_touches_only_the_training_split(in_tmp, method):
    _imbalanced().to_csv("imb.csv", index=False)
    cfg = {"source": "imb.csv", "target": "y", "balance": {"method": method}}
    data = api.prepare(api.build_config({"data": cfg, "model": {"name": "mlp"}}))
    plain = api.prepare(api.build_config({"data": {"source": "imb.csv", "target": "y"}, "model": {"name": "mlp"}}))
    counts = np.bincount(data.y["train"])
    assert counts[0] == counts[1]  # balanced
    before = np.bincount(plain.y["train"])
    assert counts[1] > before[1] if method != "undersample" else counts[0] == before[1]
    for split in ("val", "test"):  # the real class balance stays
        np.testing.assert_array_equal(data.y[split], plain.y[split])
        np.testing.assert_array_equal(data.enc[split]["numeric"], plain.enc[split]["numeric"])
    if method == "smote":  # SMOTENC: synthetic rows keep valid category codes
        assert set(np.unique(data.enc["train"]["categorical"])) <= set(np.unique(plain.enc["train"]["categorical"]))


def test_balance_methods_raise_minority_recall(in_tmp):
    _imbalanced(seed=1).to_csv("imb.csv", index=False)
    recall = {}
    for m in ("none", "class_weights", "focal", "smote"):
        r = api.train(name=m, quiet=True, data={"source": "imb.csv", "target": "y", "balance": {"method": m}},
                      model={"name": "mlp", "hidden": [32]}, train=fast_train(epochs=6, lr=3e-3), tracking={"uri": "none"})
        recall[m] = r.metrics["test"]["per_class"]["1"]["recall"]
    assert min(recall[m] for m in ("class_weights", "focal", "smote")) > recall["none"], recall


def test_class_weights_and_focal_loss_values():
    import torch

    from forgeml.config import BalanceConfig
    from forgeml.data.balance import class_weights, training_loss

    y = np.array([0] * 90 + [1] * 10)
    np.testing.assert_allclose(class_weights(y, 2), [100 / 180, 100 / 20])
    out, target = torch.tensor([[2.0, 0.0], [0.0, 0.5]]), torch.tensor([0, 1])
    focal = training_loss(BalanceConfig(method="focal", focal_gamma=0.0, focal_balanced=False), y, 2)
    assert float(focal(out, target)) == pytest.approx(float(torch.nn.functional.cross_entropy(out, target)))
    easy = training_loss(BalanceConfig(method="focal", focal_gamma=2.0, focal_balanced=False), y, 2)
    assert float(easy(out, target)) < float(focal(out, target))  # well-classified rows count less
    weighted = training_loss(BalanceConfig(method="focal", focal_gamma=0.0), y, 2)
    w = torch.tensor(class_weights(y, 2), dtype=torch.float32)
    assert float(weighted(out, target)) == pytest.approx(float(torch.nn.functional.cross_entropy(out, target, weight=w)))


def test_threshold_tuned_for_recall_is_used_by_predict_evaluate_and_serve(in_tmp):
    from forgeml.serve.registry import build_registry

    _imbalanced(seed=2).to_csv("imb.csv", index=False)
    result = api.train(name="thr", quiet=True, data={"source": "imb.csv", "target": "y",
                       "balance": {"threshold": "recall", "target_recall": 0.9}},
                       model={"name": "mlp", "hidden": [32]}, train=fast_train(epochs=6, lr=3e-3), tracking={"uri": "none"})
    target = result.manifest["target"]
    t = target["threshold"]
    assert 0 < t < 0.5 and target["threshold_tuning"]["val_recall"] >= 0.9
    # the validation scores are at the tuned threshold, as the test scores are
    assert result.metrics["val"]["per_class"]["1"]["recall"] == pytest.approx(target["threshold_tuning"]["val_recall"])
    # the baseline gets its own threshold by the same rule, on its own validation probabilities
    base = result.metrics["baseline"]
    assert base["val"]["per_class"]["1"]["recall"] >= 0.9 and base["val"]["threshold"] != t
    rows = pd.read_csv("imb.csv").drop(columns="y").iloc[:300]
    pred = api.predict(result.run_dir, rows)
    np.testing.assert_array_equal(pred["prediction"].to_numpy().astype(int), (pred["proba_1"] >= t).astype(int))
    assert api.evaluate(result.run_dir)["threshold"] == t
    api.export(result.run_dir)
    model = build_registry([str(result.run_dir)]).all()[0]
    body = model.response(model.run(model.feed(rows.to_dict("records"))))
    np.testing.assert_array_equal(np.asarray(body["predictions"]).astype(int), pred["prediction"].to_numpy().astype(int))


def test_balance_bad_input(in_tmp, capsys):
    df = _imbalanced(n=400, seed=3)
    df.to_csv("imb.csv", index=False)
    assert "data.balance.method" in user_error(capsys, "train", "--data", "imb.csv", "--target", "y", "--balance", "smot",
                                               "--tracking-uri", "none")
    counts = np.bincount(df["y"])
    assert counts[1] < 40
    msg = user_error(capsys, "train", "--data", "imb.csv", "--target", "y", "--balance", "smote", "--model", "mlp",
                     "--tracking-uri", "none", "-q", "--config", _config_file({"data": {"balance": {"k_neighbors": 30}}}))
    assert "needs at least 31 training rows of every class" in msg and "class 1 has" in msg
    msg = user_error(capsys, "train", "--data", "imb.csv", "--target", "a", "--balance", "oversample", "--tracking-uri", "none")
    assert "data.balance is for classification" in msg


def _config_file(data: dict) -> str:
    import yaml
    from pathlib import Path

    Path("cfg.yaml").write_text(yaml.safe_dump(data))
    return "cfg.yaml"


# --------------------------------------------------------------------------------------------- splits, cv
def _grouped(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"patient": rng.integers(0, 40, n), "x": rng.normal(size=n),
                       "day": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d")})
    df["y"] = (df["x"] > 0).astype(int)
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


def test_group_split_keeps_each_group_in_one_split_and_drops_the_column(in_tmp):
    _grouped().to_csv("g.csv", index=False)
    splits = api.split_data(api.build_config({"data": {"source": "g.csv", "target": "y", "split": {"group_col": "patient"},
                                                       "features": {"day": "ignore"}}}))
    groups = [set(splits.raw[s]["patient"]) for s in ("train", "val", "test")]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert [f.name for f in splits.features] == ["x"]


def test_time_split_orders_train_before_val_before_test(in_tmp):
    _grouped().to_csv("g.csv", index=False)
    splits = api.split_data(api.build_config({"data": {"source": "g.csv", "target": "y", "split": {"time_col": "day"}}}))
    days = {s: pd.to_datetime(splits.raw[s]["day"]) for s in ("train", "val", "test")}
    assert days["train"].max() < days["val"].min() and days["val"].max() < days["test"].min()
    assert "day" not in [f.name for f in splits.features]


def test_split_bad_input(in_tmp, capsys):
    df = _grouped()
    df.to_csv("g.csv", index=False)
    base = ["train", "--data", "g.csv", "--target", "y", "--tracking-uri", "none", "-q"]
    assert "split.group_col 'clinic' is not a column" in user_error(capsys, *base, "--group-col", "clinic")
    assert "split.time_col 'when' is not a column" in user_error(capsys, *base, "--time-col", "when")
    df.assign(day=df["day"].where(df.index != 7, "next tuesday-ish")).to_csv("bad.csv", index=False)
    msg = user_error(capsys, "train", "--data", "bad.csv", "--target", "y", "--time-col", "day", "--tracking-uri", "none")
    assert "does not parse as dates/times" in msg and "'next tuesday-ish'" in msg


def test_cv_reports_mean_std_and_folds_partition_the_data(in_tmp, capsys):
    assert cli("cv", "--data", "bundled:breast_cancer", "--folds", "3", "--model", "mlp", "--epochs", "2",
               "--tracking-uri", "none", "-q") == 0
    out = capsys.readouterr().out
    assert "3-fold cross-validation" in out and "model: mean" in out and "model: std" in out
    summary = json.loads(open("runs/breast_cancer-cv/cv.json").read())
    acc = [f["test"]["accuracy"] for f in summary["per_fold"]]
    assert summary["model"]["accuracy"]["mean"] == pytest.approx(np.mean(acc))
    assert summary["model"]["accuracy"]["std"] == pytest.approx(np.std(acc, ddof=1))
    assert min(acc) > 0.85
    tests = [api.split_data(api.run_config(api.artifacts.run_dir_of(f["run"]))).raw["test"] for f in summary["per_fold"]]
    assert sum(len(t) for t in tests) == 569  # every row is tested exactly once
    keys = pd.concat(tests).round(6).astype(str).agg("|".join, axis=1)
    assert keys.nunique() == len(keys)


# --------------------------------------------------------------------------------------------- augmentation
def test_image_flip_and_shift_move_pixels_not_change_them():
    import torch

    from forgeml.config import AugmentConfig
    from forgeml.data.augment import batch_augmenter
    from forgeml.features import augment_roles

    roles = augment_roles({"image": {}})  # the image type's inputs, as it declares them
    assert roles == {"image": "pixels"}
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    flip = batch_augmenter(AugmentConfig(image={"flip": True}), roles)
    out = torch.cat([flip({"image": x}, torch.Generator().manual_seed(s))[0]["image"] for s in range(8)])
    for img, src in zip(out, x.repeat(8, 1, 1, 1)):
        assert torch.allclose(img, src, atol=1e-4) or torch.allclose(img, src.flip(-1), atol=1e-4)
    assert not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(out, x.repeat(8, 1, 1, 1)))  # some were flipped
    shift = batch_augmenter(AugmentConfig(image={"crop": 1}), roles)
    moved = shift({"image": x}, torch.Generator().manual_seed(0))[0]["image"]
    assert set(moved.flatten().round().tolist()) <= set(x.flatten().tolist())  # whole-pixel shifts, edge repeated


def test_text_deletion_keeps_order_and_minilm_markers():
    import torch

    from forgeml.config import AugmentConfig
    from forgeml.data.augment import batch_augmenter
    from forgeml.features import augment_roles

    aug = batch_augmenter(AugmentConfig(text={"delete": 0.5}), augment_roles({"text": {"tokenizer": "minilm"}}))
    ids = torch.tensor([[101, 11, 12, 13, 14, 15, 102, 0], [101, 21, 102, 0, 0, 0, 0, 0]])
    out = aug({"input_ids": ids, "attention_mask": (ids != 0).long()}, torch.Generator().manual_seed(3))[0]
    for row, src in zip(out["input_ids"].tolist(), ids.tolist()):
        real = [t for t in row if t]
        assert real[0] == 101 and real[-1] == 102 and len(real) >= 3  # [CLS] .. [SEP], never emptied
        inner = [t for t in src if t not in (0, 101, 102)]
        assert [t for t in inner if t in real] == real[1:-1]  # survivors keep their order
    assert out["attention_mask"].tolist() == (out["input_ids"] != 0).long().tolist()


def test_table_augmentation_changes_training_and_is_reproducible(in_tmp):
    opts = dict(quiet=True, data={"source": "bundled:breast_cancer", "augment": {"table": {"noise": 0.1, "mixup": 0.4}}},
                model={"name": "mlp", "hidden": [16]}, train=fast_train(epochs=8, lr=3e-3, threads=1), tracking={"uri": "none"})
    a = api.train(name="a", **opts)
    b = api.train(name="b", **opts)
    assert a.metrics["test"]["log_loss"] == b.metrics["test"]["log_loss"] and a.metrics["test"]["accuracy"] > 0.85
    # the augmentation really reaches the training batches: without it, the same seed trains a different model
    plain = api.train(name="plain", **{**opts, "data": {"source": "bundled:breast_cancer"}})
    train_losses = lambda run: [h["train_loss"] for h in run.metrics["history"]]  # noqa: E731
    assert train_losses(a) == train_losses(b)
    assert max(abs(x - y) for x, y in zip(train_losses(a), train_losses(plain))) > 1e-3
    assert plain.metrics["test"]["log_loss"] != a.metrics["test"]["log_loss"]
