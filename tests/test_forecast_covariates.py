"""Forecasting's window networks read the run's covariates (known, past, static) beside the window: they learn what a
known promotion does, predict needs its plan, and the exported ONNX graph takes the covariates as inputs and agrees
with predict."""
import json

import numpy as np
import pandas as pd
import pytest

from forgeml import api
from forgeml.errors import DataError
from forgeml.models.forecast_covariates import context_inputs, covariate_meta, window_inputs
from forgeml.models.forecast_windows import training_windows

from conftest import cli, promo_panel

TASK = {"name": "forecasting", "horizon": 7, "id_col": "store", "time_col": "date", "known": ["promo"], "windows": 1}


def _train(tmp_path, df, model: dict, epochs: int = 30, name: str = "sales", **task):
    df.to_csv(tmp_path / f"{name}.csv", index=False)
    return api.train({"name": name, "runs_dir": str(tmp_path / "runs"),
                      "data": {"source": str(tmp_path / f"{name}.csv"), "target": "sales"}, "task": {**TASK, **task},
                      "model": model, "train": {"epochs": epochs}, "tracking": {"uri": "none"}}, quiet=True)


def _plan(df, stores=("s0", "s1", "s2"), region=lambda s: "north" if s == "s1" else "south"):
    last = pd.Timestamp(df["date"].max())
    return pd.DataFrame([{"store": s, "date": (last + pd.Timedelta(days=d)).strftime("%Y-%m-%d"), "sales": None,
                          "promo": int(d % 2 == 0), "region": region(s)} for s in stores for d in range(1, 8)])


def test_the_windows_covariates_line_up_with_their_targets():
    from forgeml.features.series import read_panel

    df = promo_panel(n_series=2, days=40).assign(temp=lambda d: np.arange(len(d)) % 11)  # not known: past-only
    panel, _ = read_panel(df, "sales", "date", "store", ["promo"], None, None, "fill")
    meta = covariate_meta(panel)
    assert meta == {"known": ["promo"], "past": ["temp"], "static": {"region": ["north", "south"]}}
    w = training_windows(panel, 7, 14, 10_000)
    given = window_inputs(meta, panel, w, 7)
    assert given["known"].shape == (len(w.origin), 7, 1) and given["static"].shape == (len(w.origin), 1)
    promo = [s.covariates["promo"].to_numpy() for s in panel.series]
    temp = [s.covariates["temp"].to_numpy() for s in panel.series]
    for j in (0, len(w.origin) // 2, len(w.origin) - 1):  # the promotion at each target point (clipped past the end)
        s, t = w.series[j], w.origin[j]
        want = [promo[s][min(t + k, len(promo[s]) - 1)] for k in range(7)]
        assert given["known"][j, :, 0].tolist() == want
        assert given["static"][j, 0] == (1.0 if panel.series[s].static["region"] == "south" else 0.0)
        assert given["past"][j, 0] == temp[s][max(t - 1, 0)]  # what was seen at the origin's last point


def test_a_network_learns_a_known_promotion_and_predict_needs_its_plan(tmp_path):
    df = promo_panel()
    with_cov = _train(tmp_path, df, {"name": "nbeats"}, name="with")
    without = _train(tmp_path, df, {"name": "nbeats", "covariates": False}, name="without")
    # the promotion lifts sales by 60% on a quarter of the days: a window cannot know when it runs, the plan can
    assert with_cov.metrics["test"]["mase"] < 0.8 * without.metrics["test"]["mase"], \
        (with_cov.metrics["test"]["mase"], without.metrics["test"]["mase"])
    meta = json.loads((with_cov.run_dir / "forecasters" / "nbeats" / "forecaster.json").read_text())
    assert meta["covariates"]["known"] == ["promo"] and meta["covariates"]["static"] == {"region": ["north", "south"]}
    assert 0.2 < meta["covariates"]["known_mean"][0] < 0.3  # the share of promotion days: the standardization's mean
    with pytest.raises(DataError, match=r"known covariates \['promo'\] are missing"):
        api.predict(with_cov.run_dir, df)
    future = _plan(df)
    out = api.predict(with_cov.run_dir, pd.concat([df, future], ignore_index=True))
    s0 = out[out["store"] == "s0"].reset_index(drop=True)
    promo = future[future["store"] == "s0"]["promo"].to_numpy()
    assert s0["forecast"][promo == 1].mean() > 1.3 * s0["forecast"][promo == 0].mean()  # the plan moves the forecast


def test_export_of_a_network_with_covariates_takes_them_as_inputs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    df = promo_panel(days=120)
    run = _train(tmp_path, df, {"name": "nbeats", "width": 64}, epochs=5)
    out = tmp_path / "sales.onnx"
    assert cli("export", str(run.run_dir), "-o", str(out)) == 0
    spec = json.loads((run.run_dir / "manifest.json").read_text())["export"]["onnx"]
    inputs = {i["name"]: i for i in spec["inputs"]}
    assert list(inputs) == ["history", "known", "static"]  # no calendar: the networks do not read it
    assert inputs["known"]["shape"] == ["series", 7, 1] and inputs["static"]["levels"] == {"region": ["north", "south"]}
    assert spec["parity"]["max_rel_diff"] < 1e-4
    # a fourth store in a region the run never saw: its one-hot is all zeros, in the graph as in predict
    new = df[df["store"] == "s0"].assign(store="s3", region="east")
    history = pd.concat([df, new, _plan(df, ("s0", "s1", "s2", "s3"), lambda s: {"s1": "north", "s3": "east"}.get(s, "south"))],
                        ignore_index=True)
    want = api.predict(run.run_dir, history)
    feeds = api.load(run.run_dir).onnx_feeds(history)
    assert sorted(feeds) == ["history", "known", "static"]
    np.testing.assert_array_equal(feeds["static"][:, 0], [1, 0, 1, np.nan])
    got = dict(zip([o.name for o in ort.InferenceSession(str(out)).get_outputs()],
                   ort.InferenceSession(str(out)).run(None, feeds)))
    for i, store in enumerate(("s0", "s1", "s2", "s3")):
        mine = want[want["store"] == store]
        for col in ("forecast", "lo_80", "hi_95"):
            np.testing.assert_allclose(got[col][i], mine[col], rtol=1e-4, atol=1e-3)


def test_a_static_column_that_names_each_series_is_not_read_by_the_networks():
    from forgeml.models.forecast_nets import attributes

    meta = {"known": [], "past": [], "static": {"title": ["a", "b", "c"], "region": ["north", "south"]}}
    assert attributes(meta, 3)["static"] == {"region": ["north", "south"]}
    assert attributes(meta, 4)["static"] == meta["static"]  # a fourth series shares a title: an attribute


def test_a_run_without_covariates_reads_none():
    from types import SimpleNamespace

    panel = SimpleNamespace(known=[], past=[], static=[], series=[])
    meta = covariate_meta(panel)
    assert meta == {"known": [], "past": [], "static": {}} and context_inputs(meta, [], 7) == {}
