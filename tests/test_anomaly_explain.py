"""`forgeml explain` on anomaly runs: each column's share of a row's anomaly score (forgeml.explain.anomaly).

Data where the answer is known: six independent normal columns and a categorical one; the anomalies (2 % of the
rows) are rows with one column, x3, pushed 12 standard deviations away. For those rows x3 must get the largest share,
whatever the detector; a new row pushed out in another column must get that column.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forgeml import api

from conftest import cli, fast_train, user_error

pytestmark = pytest.mark.usefixtures("one_thread")

COLUMNS = [f"x{i}" for i in range(1, 7)]
SHIFT = 12  # standard deviations


def _table(n: int = 600, odd: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(COLUMNS)))
    df = pd.DataFrame(x, columns=COLUMNS)
    df["site"] = rng.choice(["north", "south"], size=n)
    df["kind"] = "normal"
    bad = rng.choice(n, odd, replace=False)
    df.loc[bad, "x3"] += rng.choice([-1.0, 1.0], size=odd) * SHIFT * df["x3"].std()
    df.loc[bad, "kind"] = "odd"
    return df


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "factors.csv"
    _table().to_csv(path, index=False)
    return path


def _train(table, runs, name: str, **model):
    train = fast_train(epochs=30, lr=3e-3) if name in ("autoencoder", "deep_svdd") else None
    cfg = {"name": name, "runs_dir": str(runs), "data": {"source": str(table)},
           "task": {"name": "anomaly", "label": "kind"}, "model": {"name": name, **model}, "tracking": {"uri": "none"}}
    return api.train({**cfg, **({"train": train} if train else {})}, quiet=True).run_dir


@pytest.fixture(scope="module")
def runs(table, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"autoencoder": _train(table, root, "autoencoder", hidden=[8, 2]),
            "isolation_forest": _train(table, root, "isolation_forest"), "lof": _train(table, root, "lof"),
            "deep_svdd": _train(table, root, "deep_svdd")}


def _odd_row(column: str, sign: float = 1.0) -> dict:
    """A training row with one column pushed SHIFT standard deviations out."""
    df = _table()
    row = {c: float(df.loc[0, c]) for c in COLUMNS} | {"site": str(df.loc[0, "site"])}
    row[column] += sign * SHIFT * float(df[column].std())
    return row


@pytest.mark.parametrize("detector, method", [("autoencoder", "reconstruction"), ("isolation_forest", "permutation"),
                                              ("autoencoder", "permutation"), ("lof", "permutation"),
                                              ("deep_svdd", "permutation")])
def test_the_column_that_makes_a_row_anomalous_gets_the_largest_share(runs, tmp_path, detector, method):
    result = api.explain(runs[detector], method=method, out=tmp_path / "why", rows=15, quiet=True)
    recs = result["instances"]
    assert [r["method"] for r in recs] == [method] * 15
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)  # the most anomalous test rows, most anomalous first
    odd = [r for r in recs if r["true"] == "odd"]
    assert len(odd) >= 2  # the planted anomalies are among the 15 highest scores of 90
    for r in odd:
        assert r["top"][0] == "x3", r["attributions"]
        assert r["attributions"]["x3"] > 0.3  # not a narrow win (measured 0.33-0.93, the next column 0.02-0.23)
    # rows from outside the run, each pushed out in another column: that column leads
    probes = [_odd_row("x1"), _odd_row("x6", -1.0), _odd_row("x4")]
    found = api.explain(runs[detector], probes, method=method, out=tmp_path / "probes", quiet=True)["instances"]
    assert [r["top"][0] for r in found] == ["x1", "x6", "x4"]
    assert all(r["is_anomaly"] == (r["score"] >= result["threshold"]) for r in found)  # the flag beside the score


def test_the_autoencoders_contributions_add_up_to_its_score(runs, tmp_path):
    """Reconstruction: a column's contribution is its squared error / D (a one-hot block summed), so a row's
    contributions are its score and its shares are fractions of the score."""
    from forgeml.explain import anomaly as an

    result = api.explain(runs["autoencoder"], out=tmp_path, rows=10, quiet=True)
    assert result["methods"] == ["reconstruction"]  # the default for a detector that rebuilds its input
    for r in result["instances"]:
        assert sum(r["contributions"].values()) == pytest.approx(r["score"], abs=1e-5)
        assert sum(r["attributions"].values()) == pytest.approx(1.0, abs=1e-5)
        assert min(r["attributions"].values()) >= 0
        assert set(r["attributions"]) == {*COLUMNS, "site"}  # one per raw column: the categorical's block summed
    model = api.load(runs["autoencoder"])
    arrays = model.preprocessor.transform(_table().head(50))
    sh = an.reconstruction(model, arrays)
    np.testing.assert_allclose(sh.contributions.sum(axis=1), model.predict(_table().head(50))["score"], rtol=1e-5)


def test_permutation_measures_against_the_reference_rows(runs):
    """Replacing a column by the row's own value changes nothing: every contribution is exactly 0. Against the
    training rows, the absolute shares of a row add up to 1."""
    from forgeml.explain import anomaly as an
    from forgeml.run import split_rows

    model = api.load(runs["isolation_forest"])
    arrays = model.preprocessor.transform(pd.DataFrame([_odd_row("x2")]))
    itself = an.permutation(model, arrays, reference=arrays, neighbours=5)
    assert np.all(itself.contributions == 0) and np.all(itself.shares == 0)
    train = split_rows(model)["train"]
    reference, _ = an.reference_arrays(model, train)
    sh = an.permutation(model, arrays, reference, neighbours=30)
    assert np.abs(sh.shares).sum() == pytest.approx(1.0)
    assert sh.units.names[int(np.argmax(sh.shares[0]))] == "x2"
    assert sh.contributions[0].max() <= sh.scores[0]  # a drop in score, never more than the score itself


def test_cli_writes_the_files_and_the_report_section(runs, capsys):
    run = runs["isolation_forest"]
    assert cli("explain", str(run), "-q", "--rows", "4") == 0
    out = capsys.readouterr().out
    assert "share of the row's anomaly score" in out and "x3" in out
    folder = run / "explanations"
    files = {"shares_permutation.csv", "rows_permutation.png", "mean_share_permutation.png", "explanations.json"}
    assert files <= {p.name for p in folder.iterdir()}
    table = pd.read_csv(folder / "shares_permutation.csv")
    assert list(table.columns[:4]) == ["row", "score", "is_anomaly", "true"] and set(COLUMNS) <= set(table.columns)
    assert len(table) == 4 and table["is_anomaly"].dtype == bool
    saved = json.loads((folder / "explanations.json").read_text())
    assert saved["shares"]["permutation"]["mean_shares"] and saved["threshold"] is not None
    report = (run / "report.html").read_text()
    assert "Explanations" in report and "per-row permutation" in report


@pytest.mark.parametrize("args, message", [
    (("--method", "ig"), "method 'ig' does not apply to this anomaly run"),
    (("--method", "reconstruction"), "needs a detector that rebuilds its input"),
    (("--class", "odd"), "an anomaly run gives scores, not classes"),
    (("--method", "shap"), "unknown explain method 'shap'; an anomaly run (isolation_forest) takes permutation"),
])
def test_methods_that_do_not_fit_an_anomaly_run_are_refused(runs, capsys, args, message):
    assert message in user_error(capsys, "explain", runs["isolation_forest"], *args, "-q")


def test_images_get_a_heat_map_of_pixel_shares(in_tmp):
    r = api.train({"name": "digits", "data": {"source": "bundled:digits"}, "task": {"name": "anomaly"},
                   "model": {"name": "autoencoder", "hidden": [32, 8]}, "train": fast_train(epochs=2),
                   "tracking": {"uri": "none"}}, quiet=True)
    result = api.explain(r.run_dir, rows=2, quiet=True)
    assert {"grid_reconstruction.png", "shares_reconstruction.csv"} <= set(result["files"])
    for rec in result["instances"]:
        heat = np.asarray(rec["heatmap"])
        assert heat.shape == (8, 8) and heat.sum() == pytest.approx(1.0, abs=1e-4) and heat.min() >= 0
        assert rec["peak"] == list(np.unravel_index(heat.argmax(), heat.shape))
    occluded = api.explain(r.run_dir, rows=1, method="permutation", samples=10, out=in_tmp / "p", quiet=True)
    assert np.abs(np.asarray(occluded["instances"][0]["heatmap"])).sum() == pytest.approx(1.0, abs=1e-4)


def test_the_server_explains_a_detector(runs):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry

    run = runs["isolation_forest"]
    with TestClient(create_app(build_registry([str(run)]), ServeSettings())) as client:
        ok = client.post(f"/v1/models/{run.name}/explain", json={"instances": [_odd_row("x5"), _odd_row("x1")]})
        wrong = client.post(f"/v1/models/{run.name}/explain", json={"instances": [_odd_row("x5")], "method": "lime"})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["method"] == "permutation" and "training split" in body["baseline"]
    assert [e["top"][0] for e in body["explanations"]] == ["x5", "x1"]
    assert all(e["is_anomaly"] == (e["score"] >= body["threshold"]) for e in body["explanations"])
    assert wrong.status_code == 422 and "does not apply to this anomaly run" in wrong.json()["detail"]
