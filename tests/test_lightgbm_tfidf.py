"""lightgbm_tfidf: LightGBM on a table's columns beside a TF-IDF of its text, the baseline of tables with text
columns and a servable learner: auto keeps the better of it and the MLP, its file reloads without pickle, the ONNX
graph (TfIdfVectorizer joined to the table's columns before the trees) and the server agree with predict, and explain
runs on it."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import assert_auto_kept_the_best, assert_served_like_predict, fast_train

from forgeml import api
from forgeml.data.bundled import load_bundled

pytest.importorskip("onnxruntime")


def tickets(n=900, seed=0) -> pd.DataFrame:
    """Real tweets as a ticket's text beside a numeric and a categorical column: the label is the tweet's source
    (Android or iPhone), which the text predicts, and the hour and channel add a little."""
    df, _ = load_bundled("tweets")
    df = df.sample(n, random_state=seed).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    iphone = (df["source"] == "iPhone").to_numpy()
    return pd.DataFrame({"hour": np.where(iphone, rng.normal(15, 3, n), rng.normal(8, 3, n)).round(1),
                         "channel": rng.choice(["web", "app", "sms"], n), "text": df["text"],
                         "source": df["source"]})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lgb_tfidf")
    tickets().to_csv(root / "tickets.csv", index=False)

    def train(name, model, **train):
        return api.train({"name": name, "runs_dir": str(root / "runs"), "data": {"source": str(root / "tickets.csv"),
                          "target": "source"}, "model": model, "tracking": {"uri": "none"},
                          "train": fast_train(**train)}, quiet=True)

    return {"root": root, "train": train, "lgb": train("lgb", {"name": "lightgbm_tfidf"})}


def test_it_learns_from_the_columns_and_the_text_and_reloads_without_pickle(runs):
    result = runs["lgb"]
    assert result.manifest["model"]["file"] == "model.lightgbm_tfidf.npz"
    assert result.metrics["test"]["roc_auc"] > 0.9
    assert result.metrics["baseline"]["name"] == "lightgbm_tfidf"  # it is its own baseline: trained once
    with np.load(result.run_dir / "model.lightgbm_tfidf.npz", allow_pickle=False) as f:
        assert {"keys", "idf", "booster", "meta"} <= set(f.files)
    model = api.load(result.run_dir)
    assert model.estimator.n_table == 2 and len(model.estimator.keys) > 100  # hour + channel; the n-grams
    rows = api.test_rows(model)
    pd.testing.assert_frame_equal(model.predict(rows), api.load(result.run_dir).predict(rows))
    # the text counts: blanking it moves the probabilities
    blank = model.predict(rows.assign(text="")).filter(like="proba_").to_numpy()
    assert np.abs(blank - model.predict(rows).filter(like="proba_").to_numpy()).mean() > 0.1


def test_the_onnx_graph_and_the_server_agree_with_predict(runs):
    pytest.importorskip("fastapi")
    run_dir = runs["lgb"].run_dir
    info = api.export(run_dir)
    assert info["parity"]["max_abs_diff"] < 1e-4
    assert sorted(i["name"] for i in info["inputs"]) == ["categorical", "numeric", "tokens"]
    rows = [{"hour": 16.0, "channel": "app", "text": "Thank you Iowa! #MakeAmericaGreatAgain"},
            {"hour": None, "channel": "fax", "text": None}]
    assert_served_like_predict(run_dir, rows, 1e-4)


def test_auto_keeps_the_better_of_the_mlp_and_lightgbm_tfidf(runs):
    assert_auto_kept_the_best(runs["train"]("auto", {"name": "auto"}, epochs=2), ["mlp", "lightgbm_tfidf"], "lightgbm_tfidf")


def test_explain_ranks_its_columns(runs):
    result = api.explain(runs["lgb"].run_dir, quiet=True, rows=2)
    assert result["kind"] == "columns" and "permutation" in result["methods"]
    summary = json.loads((runs["lgb"].run_dir / "explanations" / "explanations.json").read_text())
    importance = {f["feature"]: f["importance"] for f in summary["permutation"]["features"]}
    assert importance["hour"] > 0.05 and importance["text"] > 0.02  # both carry the label
    assert abs(importance["channel"]) < 0.01  # drawn at random: shuffling it changes nothing
