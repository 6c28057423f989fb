"""Clustering (task: clustering): K-Means on the standardized rows, k fixed or chosen by silhouette, a label column
that only evaluates (ARI, NMI), the first-principal-component baseline beside it; predict, evaluate, export and serve
answer the cluster and its distance. Real data: scikit-learn's wine (13 measurements on very different scales) and
iris, an R export with its rownames column, a semicolon CSV."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forgeml import api

from conftest import cli, user_error

TRACK = ("--tracking-uri", "none", "-q")


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory):
    """The wine table as an R user exports it: write.csv2 (semicolons, decimal commas) with its rownames column."""
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("wine")
    path = tmp_path_factory.mktemp("data") / "wine.csv"
    df.rename_axis("rownames").reset_index().assign(rownames=lambda d: d["rownames"] + 1).to_csv(path, sep=";", decimal=",", index=False)
    return path


@pytest.fixture(scope="module")
def wine(wine_csv, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return api.train({"name": "wine", "runs_dir": str(runs), "data": {"source": str(wine_csv)},
                      "task": {"name": "clustering", "label": "cultivar", "k": "auto", "k_max": 6},
                      "tracking": {"uri": "none"}}, quiet=True)


def test_k_auto_chooses_by_silhouette_and_the_label_only_evaluates(wine):
    m, manifest = wine.metrics, wine.manifest
    sweep = manifest["target"]["k_sweep"]
    assert [s["k"] for s in sweep] == [2, 3, 4, 5, 6]
    best = max(sweep, key=lambda s: s["silhouette"])
    assert manifest["target"]["k_chosen"] == best["k"] == 3  # wine has 3 cultivars; the silhouette finds them
    inertia = [s["inertia"] for s in sweep]
    assert all(a > b for a, b in zip(inertia, inertia[1:]))  # more centres, less inertia: the elbow plot's curve
    names = [f["name"] for f in manifest["features"]]
    assert "cultivar" not in names and "rownames" not in names and len(names) == 13  # the label and the row numbers are no inputs
    assert manifest["data"]["preparation"]["excluded_columns"][0]["column"] == "rownames"
    test = m["test"]
    assert test["clusters"] == 3 and sum(test["sizes"].values()) == test["n"] == manifest["data"]["rows"]["test"]
    assert test["ari"] > 0.45 and test["nmi"] > 0.5  # measured 0.55 / 0.65 on 27 test rows; chance is 0
    assert m["val"]["ari"] > 0.7  # measured 0.87 on 27 validation rows
    assert test["silhouette"] > 0.15 and test["davies_bouldin"] > 0 and test["calinski_harabasz"] > 0
    assert m["primary_metric"] == "silhouette" and m["choice"]["kept"] == "kmeans"


def test_baseline_slices_the_first_principal_component_and_the_report_shows_profiles(wine):
    m = wine.metrics
    assert m["baseline"]["name"] == "pca_slices"
    base = m["baseline"]["test"]
    assert base["clusters"] == 3 and base["silhouette"] is not None
    assert m["val"]["silhouette"] > m["baseline"]["val"]["silhouette"]  # K-Means separates better than one direction
    profiles = m["test"]["tables"]["cluster profiles"]
    assert profiles["columns"][:4] == ["cluster", "rows", "share", "alcohol"]
    assert sum(r[1] for r in profiles["rows"]) == m["test"]["n"]
    test_rows = api.load(wine.run_dir)
    from forgeml.run import test_rows as rows_of

    rows = rows_of(test_rows)
    clusters = test_rows.predict(rows)["cluster"].to_numpy()
    first = profiles["rows"][0]
    assert first[3] == pytest.approx(float(f"{rows.loc[clusters == first[0], 'alcohol'].mean():.4g}"))  # raw units
    plots = wine.run_dir / "plots"
    assert (plots / "k_selection.png").stat().st_size > 5000 and (plots / "clusters.png").stat().st_size > 5000
    report = (wine.run_dir / "report.html").read_text()
    assert "Cluster profiles (test)" in report and 'alt="k_selection"' in report and 'alt="clusters"' in report


def test_scaling_decides_the_clusters(wine_csv, tmp_path):
    """The default standardizes; without it proline (hundreds) outweighs every other measurement and the clusters
    follow it alone."""
    runs = {}
    for scale in ("standard", "none"):
        runs[scale] = api.train({"name": scale, "runs_dir": str(tmp_path), "data": {"source": str(wine_csv),
                                                                                 "clean": {"scale": scale}},
                                 "task": {"name": "clustering", "label": "cultivar", "k": 3},
                                 "tracking": {"uri": "none"}}, quiet=True)
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("wine")
    from sklearn.metrics import adjusted_rand_score

    ari = {s: adjusted_rand_score(df["cultivar"], api.load(r.run_dir).predict(df)["cluster"]) for s, r in runs.items()}
    assert ari["standard"] > 0.75 and ari["none"] < 0.5 and runs["none"].manifest["target"].get("k_sweep") is None


def test_predict_evaluate_export_and_serve_agree(wine, wine_csv, tmp_path):
    from fastapi.testclient import TestClient

    from forgeml.export.onnx import session
    from forgeml.run import test_rows
    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry

    model = api.load(wine.run_dir)
    rows = test_rows(model)
    pred = model.predict(rows)
    assert list(pred.columns) == ["cluster", "distance"] and pred["cluster"].between(0, 2).all()
    distances = model.learner.raw(model.estimator, model.preprocessor.transform(rows), model.task)
    assert np.allclose(pred["distance"], distances.min(axis=1))

    out = tmp_path / "pred.csv"
    assert cli("predict", str(wine.run_dir), str(wine_csv), "-o", str(out)) == 0
    assert len(pd.read_csv(out)) == 178  # the semicolon file read as training read it

    again = api.evaluate(wine.run_dir)
    assert again["ari"] == pytest.approx(wine.metrics["test"]["ari"]) and again["task"] == "clustering"
    unlabelled = tmp_path / "unlabelled.csv"
    rows.drop(columns=["cultivar"]).to_csv(unlabelled, index=False)
    scored = api.evaluate(wine.run_dir, str(unlabelled))
    assert scored["ari"] is None and scored["silhouette"] == pytest.approx(wine.metrics["test"]["silhouette"])

    info = api.export(wine.run_dir)
    assert [o["name"] for o in info["outputs"]] == ["distances", "cluster", "distance"]
    assert info["parity"]["max_abs_diff"] < 1e-4
    from forgeml.export.onnx import feeds

    got = session(wine.run_dir / "model.onnx").run(None, feeds(rows, model.preprocessor))
    assert (got[1] == pred["cluster"].to_numpy()).all() and np.allclose(got[2], pred["distance"], atol=1e-4)

    instances = json.loads(rows.drop(columns=["rownames", "cultivar"]).head(5).to_json(orient="records"))
    with TestClient(create_app(build_registry([f"wine={wine.run_dir}"]), ServeSettings())) as client:
        r = client.post("/v1/models/wine/predict", json={"instances": instances})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["clusters"] == pred["cluster"].head(5).tolist()
    assert np.allclose(body["distances"], pred["distance"].head(5), atol=1e-4)


def test_images_cluster_on_their_pixels(in_tmp):
    """bundled digits (a folder of images): the pixels are the points; the digit class only evaluates."""
    result = api.train({"name": "digits", "runs_dir": "runs", "data": {"source": "bundled:digits"},
                        "task": {"name": "clustering", "k": 10}, "tracking": {"uri": "none"}}, quiet=True)
    m = result.metrics["test"]
    assert m["clusters"] == 10 and m["ari"] is None and m["silhouette"] > 0.05
    assert [f["type"] for f in result.manifest["features"]] == ["image"]


def test_images_cluster_on_an_autoencoders_embedding_when_asked(in_tmp):
    """--model kmeans_embedding: K-Means on the codes of an autoencoder trained on the training images; model auto
    keeps plain K-Means; the exported graph (encoder, then K-Means' distances) answers as the run does."""
    from forgeml.models.kmeans_embedding import ENCODER_ATTR, codes
    from forgeml.run import load

    task = {"name": "clustering", "k": 10, "label": "label"}
    auto = api.train({"name": "auto", "runs_dir": "runs", "data": {"source": "bundled:digits"}, "task": task,
                      "tracking": {"uri": "none"}}, quiet=True)
    assert auto.metrics["model"] == "kmeans"  # opt_in: trained only when named
    result = api.train({"name": "embedded", "runs_dir": "runs", "data": {"source": "bundled:digits"}, "task": task,
                        "model": {"name": "kmeans_embedding", "code": 8, "epochs": 5}, "tracking": {"uri": "none"}},
                       quiet=True)
    m = result.metrics["test"]
    assert result.metrics["model"] == "kmeans_embedding" and m["clusters"] == 10 and 0 < m["ari"] <= 1
    model = load(result.run_dir)
    w1, _, w2, _ = getattr(model.estimator, ENCODER_ATTR)
    assert w1.shape == (64, 256) and w2.shape == (256, 8) and model.estimator.cluster_centers_.shape == (10, 8)
    rows = pd.DataFrame({"image": model.frame("bundled:digits")["image"][:5]})
    arrays = model.preprocessor.transform(rows)
    assert np.allclose(model.estimator.transform(codes(model.estimator, arrays)), model.raw(rows))
    info = api.export(result.run_dir)
    assert info["parity"]["max_abs_diff"] < 1e-4


def test_bad_k_and_mixed_flags_are_clear_errors(wine_csv, in_tmp, capsys):
    base = ("train", "--data", wine_csv, "--task", "clustering", *TRACK)
    assert "at least 2 clusters" in user_error(capsys, *base, "--k", "1")
    assert "k = 500 clusters, but the training split has only" in user_error(capsys, *base, "--k", "500", "--name", "big")
    assert "label column 'grape' not found" in user_error(capsys, *base, "--label", "grape", "--name", "g")
    assert "is not a clustering model" in user_error(capsys, *base, "--model", "lightgbm", "--name", "m")
    assert "task.k" in user_error(capsys, *base, "--k", "many", "--name", "many")
    assert not (in_tmp / "runs" / "big").exists()  # refused before anything was written


def test_explain_and_compress_say_they_do_not_cluster_yet(wine, capsys):
    msg = user_error(capsys, "explain", str(wine.run_dir))
    assert "works on anomaly, classification and regression runs so far" in msg and "is a clustering run" in msg
    msg = user_error(capsys, "compress", str(wine.run_dir), "--quantize", "int8")
    assert "works on classification and regression runs so far" in msg and "is a clustering run" in msg
