"""The forecasting networks' quantile outputs and the intervals built on them: a head whose quantiles never cross,
the pinball loss they learn by after the forecast (which they leave as it was), conformalized quantile regression
(CQR) on the validation windows, the choice between CQR and split conformal (``task.intervals: auto``), a run whose
intervals are the network's own (predict, evaluate, export), and split conformal where there are no quantiles
(``quantiles: false``, a run from before quantile heads, a combination with a member that has none)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from forgeml import api
from forgeml.models.forecast_nets import QuantileHead, WindowLoss, quantile_points
from forgeml.tasks.forecast_backtest import (as_rows, bands, calibrate, choose_intervals, interval_ends,
                                             interval_quantiles, outside_scores, own_bands)

from conftest import cli, promo_panel

QUANTILES = [0.025, 0.1, 0.5, 0.9, 0.975]


@pytest.fixture(scope="module")
def nbeats_run(air_csv, tmp_path_factory):
    return api.train({"name": "air_q", "runs_dir": str(tmp_path_factory.mktemp("runs")), "data": {"source": str(air_csv)},
                      "task": {"name": "forecasting", "horizon": 12, "intervals": "quantile"},
                      "model": {"name": "nbeats", "width": 64},
                      "train": {"epochs": 20}, "tracking": {"uri": "none"}}, quiet=True)


def test_the_quantiles_of_the_run_levels_and_a_head_that_never_crosses():
    assert quantile_points([80, 95]) == QUANTILES
    assert interval_ends([80, 95]) == [0.1, 0.9, 0.025, 0.975]
    head = QuantileHead(8, 3, QUANTILES)
    window, median = torch.randn(64, 8), torch.randn(64, 3, requires_grad=True)
    zero = head(window, median)  # untrained: the median is the forecast, the quantiles close around it
    assert zero.shape == (64, 3, 5)
    torch.testing.assert_close(zero[..., 2], median)
    assert ((zero[..., 3] - zero[..., 2]) - np.log1p(np.exp(-3.0))).abs().max() < 1e-5
    torch.nn.init.normal_(head.spread[-1].weight, std=3.0)  # gaps of any size
    torch.nn.init.normal_(head.spread[-1].bias, std=3.0)
    out = head(window, median)
    assert (out.diff(dim=-1) >= 0).all()  # ordered: no quantile crosses the next
    out[..., [0, 1, 3, 4]].sum().backward()  # the quantiles' loss does not move the forecast
    assert median.grad is None or not median.grad.any()
    assert head.spread[0].weight.grad.abs().sum() > 0
    alone = QuantileHead(8, 3, [0.5])  # the median alone (quantiles: false, or a run from before them): no weights
    assert not list(alone.parameters())
    torch.testing.assert_close(alone(window, median)[..., 0], median)


class _Fixed(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, batch):
        return self.out


def test_the_median_learns_its_absolute_error_and_then_the_quantiles_their_pinball_loss():
    y = torch.tensor([[1.0, float("nan")], [3.0, 0.0]])
    median = torch.tensor([[[2.0], [9.0]], [[3.0], [1.0]]])
    (_, loss), = WindowLoss().step(_Fixed(median), {"y": y})
    assert loss.item() == pytest.approx((1 + 0 + 1) / 3)  # the NaN target (past the series' end) is left out
    assert WindowLoss().validation_loss(median.numpy(), y.numpy()) == pytest.approx(2 / 3)
    three = torch.tensor([[[0.0, 1.5, 2.0]], [[0.0, 1.5, 2.0]]])  # quantiles 0.1, 0.5, 0.9 of a point at 1
    (_, loss), = WindowLoss([0.1, 0.5, 0.9], "median").step(_Fixed(three), {"y": torch.ones(2, 1)})
    assert loss.item() == pytest.approx(0.5)
    (_, loss), = WindowLoss([0.1, 0.5, 0.9], "spread").step(_Fixed(three), {"y": torch.ones(2, 1)})
    assert loss.item() == pytest.approx(2 * 0.1)  # each outer quantile 2 x 0.1 x 1 off
    assert WindowLoss([0.1, 0.5, 0.9], "spread").validation_loss(three.numpy(), np.ones((2, 1))) == pytest.approx(0.2)


@pytest.mark.parametrize("data", ["air", "stores"])
def test_quantiles_leave_the_forecast_as_it_was(data, air_csv, tmp_path):
    """The quantile head trains after the network, on its forecasts: the forecasts are those of the same network
    trained without quantiles (same seed), to the bit; also through the covariates' correction (the stores)."""
    if data == "air":
        source, task, history = {"source": str(air_csv)}, {"horizon": 12}, pd.read_csv(air_csv)
    else:
        history = promo_panel(days=120)
        history.to_csv(tmp_path / "stores.csv", index=False)
        source = {"source": str(tmp_path / "stores.csv"), "target": "sales"}
        task = {"horizon": 7, "id_col": "store", "time_col": "date", "known": ["promo"], "windows": 1}
    runs = [api.train({"name": f"q{on}", "runs_dir": str(tmp_path), "data": source,
                       "task": {"name": "forecasting", "intervals": "quantile", **task},
                       "model": {"name": "nbeats", "width": 32, "quantiles": on},
                       "train": {"epochs": 4}, "tracking": {"uri": "none"}}, quiet=True) for on in (True, False)]
    assert runs[0].metrics["test"]["mase"] == runs[1].metrics["test"]["mase"]
    if data == "air":
        on, off = (api.predict(r.run_dir, history) for r in runs)
        np.testing.assert_array_equal(on["forecast"], off["forecast"])
        assert not np.allclose(on["hi_80"], off["hi_80"])  # the intervals are not


def test_cqr_moves_a_model_interval_until_it_covers_its_level():
    rng = np.random.default_rng(0)
    scales = np.full(40, 2.0)

    def draw():
        actual = rng.normal(0, 2.0, (40, 3, 6))  # [series, windows, horizon]
        return actual, {80: (np.full(actual.shape, -0.5), np.full(actual.shape, 0.5)),  # too narrow
                        95: (np.full(actual.shape, -9.0), np.full(actual.shape, 9.0))}  # too wide

    actual, own = draw()
    scores = outside_scores(actual, own, scales)
    q = interval_quantiles(scores, [80, 95])
    assert q["80"] > 0 > q["95"]  # widened, narrowed
    fresh, own = draw()
    got = bands(np.zeros_like(fresh), scales, q, 6, own)
    for lv, (lo, hi) in got.items():
        assert abs(((fresh >= lo) & (fresh <= hi)).mean() - lv / 100) < 0.04
    # the split conformal bands, beside: symmetric about the forecast, widening with sqrt(step)
    lo, hi = bands(np.zeros((2, 4)), np.ones(2), {"80": 1.0}, 4)[80]
    np.testing.assert_allclose(hi[0], np.sqrt([1, 2, 3, 4]))
    np.testing.assert_allclose(lo, -hi)
    assert own_bands(None, [80]) is None


def test_auto_picks_the_kind_of_interval_that_scores_better_on_the_calibration_windows():
    rng = np.random.default_rng(1)
    spread = rng.uniform(0.2, 3.0, (60, 1, 1))  # each series' own noise level, which the model's quantiles know
    actual = rng.normal(0, 1, (60, 2, 6)) * spread
    pred = np.zeros_like(actual)
    z = {0.1: -1.2816, 0.9: 1.2816, 0.025: -1.96, 0.975: 1.96}
    good = np.stack([np.broadcast_to(z[q] * spread, actual.shape) for q in interval_ends([80, 95])], axis=-1)
    scales = np.full(60, 1.0)  # a scale that does not know the noise: split conformal is as wide for every series
    rows = as_rows([(actual, pred, good, scales)])
    kind, loss = choose_intervals(rows, [80, 95])
    assert kind == "quantile" and loss["quantile"] < loss["conformal"]
    noise = rng.uniform(0.2, 3.0, (60, 1, 1))  # quantiles that know nothing (widths unrelated to the noise),
    bad = np.stack([np.broadcast_to(z[q] * noise, actual.shape) for q in interval_ends([80, 95])], axis=-1)
    true_scales = spread[:, 0, 0]  # against a scale that knows it
    kind, loss = choose_intervals(as_rows([(actual, pred, bad, true_scales)]), [80, 95])
    assert kind == "conformal" and loss["conformal"] < loss["quantile"]
    assert calibrate("quantile", rows, [80])["80"] == pytest.approx(0, abs=0.5)  # good quantiles need little change
    assert choose_intervals(as_rows([(actual[:1, :1], pred[:1, :1], good[:1, :1], scales[:1])]), [80]) == ("conformal", {})


def test_a_network_run_calibrates_its_own_quantiles(nbeats_run, air_csv):
    run = nbeats_run.run_dir
    target = json.loads((run / "manifest.json").read_text())["target"]
    assert target["intervals"] == "quantile" and target["calibration_points"] >= 96
    meta = json.loads((run / "forecasters" / "nbeats" / "forecaster.json").read_text())
    assert meta["quantiles"] == QUANTILES
    out = api.predict(run, pd.read_csv(air_csv))
    assert len(out) == 12
    cols = ["lo_95", "lo_80", "forecast", "hi_80", "hi_95"]
    assert (out[cols].diff(axis=1).iloc[:, 1:] >= 0).all().all()  # nested, around the forecast
    # not the split conformal shape (forecast +- a width growing with sqrt(step)): the network's own, asymmetric
    assert not np.allclose(out["hi_80"] - out["forecast"], out["forecast"] - out["lo_80"], rtol=1e-3)
    m = nbeats_run.metrics["test"]
    assert 0.5 <= m["coverage_80"] <= 1 and m["wql"] > 0
    again = api.evaluate(run)  # evaluate rebuilds the intervals the same way
    assert again["coverage_80"] == pytest.approx(m["coverage_80"]) and again["wql"] == pytest.approx(m["wql"])


def test_quantiles_off_and_a_run_from_before_them_use_split_conformal(air_csv, tmp_path):
    run = api.train({"name": "air_point", "runs_dir": str(tmp_path), "data": {"source": str(air_csv)},
                     "task": {"name": "forecasting", "horizon": 12},
                     "model": {"name": "lstm", "hidden": 16, "quantiles": False},
                     "train": {"epochs": 3}, "tracking": {"uri": "none"}}, quiet=True)
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["target"]["intervals"] == "conformal"
    want = api.predict(run.run_dir, pd.read_csv(air_csv))
    np.testing.assert_allclose(want["hi_80"] - want["forecast"], want["forecast"] - want["lo_80"])
    # a run saved before quantile heads: no "intervals" in its manifest, no "quantiles" in the network's shape
    del manifest["target"]["intervals"]
    (run.run_dir / "manifest.json").write_text(json.dumps(manifest))
    meta_file = run.run_dir / "forecasters" / "lstm" / "forecaster.json"
    meta = json.loads(meta_file.read_text())
    assert meta.pop("quantiles") == [0.5]
    meta_file.write_text(json.dumps(meta))
    pd.testing.assert_frame_equal(api.predict(run.run_dir, pd.read_csv(air_csv)), want)


def test_a_combination_with_a_member_without_quantiles_is_split_conformal_in_predict_and_export(nbeats_run, air_csv,
                                                                                                tmp_path):
    """N-BEATS (quantile outputs) averaged with LightGBM (none), as model auto's combination keeps them: the
    intervals are split conformal around the mean forecast, the network's median being its forecast."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from forgeml.tasks.forecast_onnx import export

    trees = api.train({"name": "air_trees", "runs_dir": str(tmp_path), "data": {"source": str(air_csv)},
                       "task": {"name": "forecasting", "horizon": 12},
                       "model": {"name": "lightgbm_forecast", "n_estimators": 30}, "tracking": {"uri": "none"}}, quiet=True)
    both = api.load(trees.run_dir)
    both.members = api.load(nbeats_run.run_dir).members + both.members
    assert both.state["intervals"] == "conformal"
    df = pd.read_csv(air_csv)
    want = both.predict(df)
    alone = [api.predict(r, df)["forecast"] for r in (nbeats_run.run_dir, trees.run_dir)]
    np.testing.assert_allclose(want["forecast"], np.mean(alone, axis=0))
    info = export(both, tmp_path / "both.onnx", both.contexts_of(*both.read_history(df)))
    assert info["parity"]["max_rel_diff"] < 1e-4
    session = ort.InferenceSession(str(tmp_path / "both.onnx"))
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, both.onnx_feeds(df))))
    for col in ("forecast", "lo_80", "hi_95"):
        np.testing.assert_allclose(got[col][0], want[col], rtol=1e-4, atol=1e-2)


def test_export_of_a_network_run_gives_its_cqr_intervals(nbeats_run, air_csv, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "air.onnx"
    assert cli("export", str(nbeats_run.run_dir), "-o", str(out)) == 0
    df = pd.read_csv(air_csv)
    session = ort.InferenceSession(str(out))
    for n in (30, len(df)):
        want = api.predict(nbeats_run.run_dir, df.tail(n))
        got = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {"history": df["value"].to_numpy(np.float32)[None, -n:]})))
        for col in ("forecast", "lo_80", "hi_80", "lo_95", "hi_95"):
            np.testing.assert_allclose(got[col][0], want[col], rtol=2e-5, atol=1e-3)
