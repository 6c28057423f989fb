"""Generative oversampling (data.balance.method: generative): a conditional VAE learns each class from the training
split and its synthetic rows of the small class look like that class, not like the others."""
import numpy as np
import pandas as pd
import pytest

from forgeml.config import build_config
from forgeml.data import balance
from forgeml.data.schema import Feature
from forgeml.features import smote_roles
from forgeml.features.preprocess import Preprocessor


def _two_classes(seed=0):
    """400 rows: the common class around x=0 with level 'a' mostly; 40 rare rows around x=4 with level 'c' mostly,
    and a skewed amount column with many zeros (as ISLR Default's balance)."""
    rng = np.random.default_rng(seed)
    n0, n1 = 360, 40
    df = pd.DataFrame({
        "x": np.r_[rng.normal(0, 1, n0), rng.normal(4, 0.5, n1)],
        "amount": np.r_[np.where(rng.random(n0) < 0.4, 0.0, rng.exponential(100, n0)), rng.exponential(900, n1) + 500],
        "level": np.r_[rng.choice(["a", "b", "c"], n0, p=[0.7, 0.25, 0.05]), rng.choice(["a", "b", "c"], n1, p=[0.05, 0.15, 0.8])],
    })
    return df, np.r_[np.zeros(n0, np.int64), np.ones(n1, np.int64)]


def _resampled(epochs=150, seed=0):
    df, y = _two_classes()
    cfg = build_config({"data": {"source": "d.csv", "target": "y",
                                 "balance": {"method": "generative", "generator_epochs": epochs, "seed": seed}}}).data
    pre = Preprocessor.fit(df, [Feature("x", "numeric"), Feature("amount", "numeric"), Feature("level", "categorical")], cfg)
    arrays = pre.transform(df)
    return arrays, y, balance.resample(arrays, y, cfg.balance, ["common", "rare"], smote_roles(pre.state))


def test_synthetic_rows_of_the_small_class_look_like_that_class():
    arrays, y, (out, y_new, index, report) = _resampled()
    assert index is None and np.bincount(y_new).tolist() == [360, 360]
    assert report["synthetic_rows"] == {"rare": 320}
    for key in arrays:  # the real rows are kept as they were, first; the synthetic ones follow
        assert out[key].dtype == arrays[key].dtype and np.array_equal(out[key][:400], arrays[key])
    real_rare, synthetic = {k: v[y == 1] for k, v in arrays.items()}, {k: v[400:] for k, v in out.items()}
    common = {k: v[y == 0] for k, v in arrays.items()}
    # x (the first numeric column): the synthetic rows sit with the rare class, far from the common one
    gap = real_rare["numeric"][:, 0].mean() - common["numeric"][:, 0].mean()
    assert abs(synthetic["numeric"][:, 0].mean() - real_rare["numeric"][:, 0].mean()) < 0.2 * gap
    # the skewed amount stays inside what training saw (the quantile transform maps back into its range)
    assert synthetic["numeric"].min(axis=0).round(5).tolist() >= arrays["numeric"].min(axis=0).round(5).tolist()
    assert synthetic["numeric"].max(axis=0).round(5).tolist() <= arrays["numeric"].max(axis=0).round(5).tolist()
    # levels: only real codes, and the rare class's usual level is the synthetic rows' usual level
    codes = synthetic["categorical"][:, 0]
    assert set(np.unique(codes)) <= set(np.unique(arrays["categorical"]))
    assert np.bincount(codes).argmax() == np.bincount(real_rare["categorical"][:, 0]).argmax()
    assert 0 <= report["detectability_roc_auc"] <= 1


def test_the_same_seed_gives_the_same_rows():
    first, second = _resampled(epochs=20)[2], _resampled(epochs=20)[2]
    assert all(np.array_equal(first[0][k], second[0][k]) for k in first[0])
    assert not np.array_equal(first[0]["numeric"], _resampled(epochs=20, seed=1)[2][0]["numeric"])


def test_a_class_too_small_to_learn_is_refused_with_what_to_do():
    from forgeml.errors import DataError

    df, y = _two_classes()
    keep = np.r_[np.arange(360), np.arange(360, 366)]  # 6 rare rows
    cfg = build_config({"data": {"source": "d.csv", "target": "y", "balance": {"method": "generative"}}}).data
    pre = Preprocessor.fit(df.iloc[keep], [Feature("x", "numeric")], cfg)
    with pytest.raises(DataError, match="at least 10 training rows of a class.*'rare' has 6.*oversample or class_weights"):
        balance.resample(pre.transform(df.iloc[keep]), y[keep], cfg.balance, ["common", "rare"], smote_roles(pre.state))


def test_a_run_records_what_the_generator_did(in_tmp):
    """End to end on ISLR Default: the validation and test splits keep the real balance, the manifest says how many
    rows were made and how detectable they are."""
    from forgeml import api

    r = api.train(name="g", quiet=True, data={"source": "bundled:default", "balance": {"method": "generative",
                                                                                    "generator_epochs": 5}},
                  model={"name": "linear"}, train={"epochs": 2}, tracking={"uri": "none"})
    bal = r.manifest["data"]["preparation"]["balance"]
    before, after = bal["train_class_counts_before"], bal["train_class_counts_after"]
    assert after == [before[0], before[0]] and bal["synthetic_rows"] == {"Yes": before[0] - before[1]}
    assert 0 <= bal["detectability_roc_auc"] <= 1
    assert "a classifier tells them from real rows of their class" in (r.run_dir / "report.html").read_text()
    assert r.metrics["test"]["n"] == 1500 and sum(r.metrics["test"]["confusion_matrix"][1]) < 100  # real test balance
