"""tfidf_linear: TF-IDF of word-id n-grams + logistic/ridge regression, a servable learner and text's baseline: fit,
its TF-IDF equal to scikit-learn's on the same ids, a save/load round trip without pickle, the ONNX graph's parity,
the served prediction, auto keeping the better of it and the text network, and a table it refuses."""

import numpy as np
import pandas as pd
import pytest
from conftest import assert_auto_kept_the_best, assert_served_like_predict, fast_train, user_error

from forgeml import api
from forgeml.data.bundled import load_bundled

pytest.importorskip("onnxruntime")


def tweets(n=1500):
    df, _ = load_bundled("tweets")
    return df.sample(n, random_state=0).reset_index(drop=True)


def values_text(n=600, seed=0):
    """A small regression text set: the target counts 'good' (+2) and 'bad' (-1) words, plus noise."""
    rng = np.random.default_rng(seed)
    words = np.array(["good", "bad", "the", "movie", "was", "plot", "actor", "very", "quite", "scene", "long", "short"])
    rows, y = [], []
    for _ in range(n):
        tokens = rng.choice(words, size=rng.integers(5, 14))
        rows.append(" ".join(tokens))
        y.append(2.0 * (tokens == "good").sum() - (tokens == "bad").sum() + rng.normal(0, 0.1))
    return pd.DataFrame({"review": rows, "score": y})


def _train(runs, name, source, target, model, **train):
    return api.train({"name": name, "runs_dir": str(runs), "data": {"source": source, "target": target},
                      "model": model, "tracking": {"uri": "none"}, "train": fast_train(**train)}, quiet=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfidf")
    tweets().to_csv(root / "tweets.csv", index=False)
    values_text().to_csv(root / "reviews.csv", index=False)
    return {"tweets": _train(root, "tw", str(root / "tweets.csv"), "source", {"name": "tfidf_linear"}),
            "values": _train(root, "rv", str(root / "reviews.csv"), "score", {"name": "tfidf_linear", "alpha": 0.1}),
            "root": root}


def test_its_tfidf_is_scikit_learns_on_the_same_ids():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from forgeml.models.tfidf_linear import SHIFT, counts, fit_vocabulary, tfidf

    rng = np.random.default_rng(1)
    ids = rng.integers(1, 40, size=(200, 12))
    ids[rng.random(ids.shape) < 0.1] = 0  # padding inside rows too: n-grams never cross it
    keys, idf = fit_vocabulary(ids, min_df=2, max_features=50000)
    docs = [" ".join(str(i) if i else "|" for i in row) for row in ids]
    vec = TfidfVectorizer(min_df=2, sublinear_tf=True, lowercase=False,
                          analyzer=lambda d: [g for part in d.split("|") for g in _grams(part.split())])
    expected = vec.fit_transform(docs)
    names = vec.get_feature_names_out()
    as_keys = np.array([int(n) if " " not in n else (int(n.split()[0]) << SHIFT) | int(n.split()[1]) for n in names])
    order = np.argsort(as_keys)
    assert np.array_equal(as_keys[order], keys)
    assert abs(expected[:, order] - tfidf(counts(ids, keys), idf, True)).max() < 1e-12


def _grams(tokens):
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def test_it_learns_tweets_and_its_files_reload_without_pickle(runs):
    result = runs["tweets"]
    assert result.manifest["model"]["name"] == "tfidf_linear"
    assert result.manifest["model"]["file"] == "model.tfidf_linear.npz"
    assert result.metrics["test"]["roc_auc"] > 0.75
    assert result.metrics["baseline"]["name"] == "tfidf_linear"  # text's baseline is this learner, trained once
    assert result.manifest["choice"]["baseline"]["verdict"] == "candidate"
    with np.load(result.run_dir / "model.tfidf_linear.npz", allow_pickle=False) as f:
        assert {"keys", "idf", "coef", "intercept", "meta"} <= set(f.files)
    rows = tweets().tail(50)
    model = api.load(result.run_dir)
    again = api.load(result.run_dir).predict(rows)
    pd.testing.assert_frame_equal(model.predict(rows), again)


@pytest.mark.parametrize("which", ["tweets", "values"])
def test_the_onnx_graph_matches_the_model(runs, which):
    from forgeml.export.onnx import build, feeds, session

    result = runs[which]
    model = api.load(result.run_dir)
    rows = api.test_rows(model)
    m = model.manifest
    graph = build(model.estimator, m["model"]["kind"], model.task, m["preprocessing"], m["model"]["input_shapes"])
    assert any(n.op_type == "TfIdfVectorizer" for n in graph.graph.node)
    got = session(graph.SerializeToString()).run(None, feeds(rows, model.preprocessor))[0]
    out = model.task.outputs(model.raw(rows))
    if which == "tweets":
        assert got.shape == out["proba"].shape and np.abs(got - out["proba"]).max() < 1e-5
    else:  # on the target's scale; compare on the standardized one, as the model predicts
        assert np.abs(model.task.from_graph(got)["pred"] - out["pred"]).max() < 1e-5
        assert result.metrics["test"]["r2"] > 0.8


def test_export_and_the_served_prediction_equal_predict(runs):
    pytest.importorskip("fastapi")
    run_dir = runs["tweets"].run_dir
    info = api.export(run_dir)
    assert info["parity"]["max_abs_diff"] < 1e-5
    rows = [{"text": "Thank you Iowa! #MakeAmericaGreatAgain"}, {"text": "Crooked media, very unfair!"}, {"text": None}]
    assert_served_like_predict(run_dir, rows, 1e-5)


def test_auto_on_text_keeps_the_better_of_the_network_and_tfidf_linear(runs, capsys):
    result = _train(runs["root"], "auto", str(runs["root"] / "tweets.csv"), "source",
                    {"name": "auto"}, epochs=1)
    assert result.manifest["choice"]["metric"] == "roc_auc"
    assert_auto_kept_the_best(result, ["text", "tfidf_linear"], "tfidf_linear")


def test_a_table_without_text_is_refused(in_tmp, capsys):
    df, target = load_bundled("diabetes")
    df.head(200).to_csv("diabetes.csv", index=False)
    err = user_error(capsys, "train", "--data", "diabetes.csv", "--target", target, "--model", "tfidf_linear",
                     "--tracking-uri", "none")
    assert "tfidf_linear" in err and "accepts text" in err


def test_its_words_are_explained_with_lime(runs, tmp_path):
    rows = pd.DataFrame({"text": ["Thank you Iowa! #MakeAmericaGreatAgain", "Crooked media, very unfair to me!"]})
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = api.explain(runs["tweets"].run_dir, str(tmp_path / "rows.csv"), out=tmp_path / "explained", quiet=True, samples=50)
    assert result["kind"] == "tokens" and result["methods"] == ["lime"] and result["files"]
