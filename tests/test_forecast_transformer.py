"""The temporal transformer global forecaster (forgeml.models.forecast_transformer): trained as a forecasting run on
AirPassengers, loaded and predicted with intervals, saved and loaded back to the same forecasts, and its network
exported by torch's dynamo ONNX exporter with a free batch size and run by onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from forgeml import api


@pytest.fixture(scope="module")
def air(air_csv, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return api.train({"name": "air_transformer", "runs_dir": str(runs), "data": {"source": str(air_csv)},
                      "task": {"name": "forecasting", "horizon": 12}, "model": {"name": "transformer"},
                      "train": {"epochs": 8}, "tracking": {"uri": "none"}}, quiet=True)


def _windows(net, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` scaled windows (level ~1) of the network's length: a seasonal wave with noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(net.pos.shape[0], dtype=torch.float32)
    return 1 + 0.2 * torch.sin(2 * torch.pi * t / 12) + 0.05 * torch.randn(n, len(t), generator=g)


def test_trains_on_air_passengers(air):
    m = air.metrics
    # its quantile outputs or split conformal, whichever scored better on the validation windows (task.intervals auto)
    assert m["intervals"]["kind"] in ("quantile", "conformal")
    assert set(m["intervals"]["cross_fitted_wql"]) == {"quantile", "conformal"}
    mase, naive = m["test"]["mase"], m["references"]["seasonal naive"]["test"]["mase"]
    print(f"transformer test MASE {mase:.4f}, seasonal naive {naive:.4f}")
    assert m["model"] == "transformer" and air.manifest["target"]["season"] == 12
    assert np.isfinite(mase) and mase < 2.0  # measured: 1.285 vs seasonal naive 1.665 (8 epochs)


def test_predict_gives_the_horizon_with_ordered_intervals(air, air_csv):
    out = api.load(air.run_dir).predict(str(air_csv))
    assert len(out) == 12 and out.groupby("series").size().eq(12).all()
    assert [c for c in out.columns if c.startswith(("lo_", "hi_"))] == ["lo_80", "hi_80", "lo_95", "hi_95"]
    for lv in (80, 95):
        assert (out[f"lo_{lv}"] <= out["forecast"]).all() and (out["forecast"] <= out[f"hi_{lv}"]).all()
    assert 350 < out["forecast"].mean() < 650  # 1960 averaged 476 passengers a month


def test_saved_and_loaded_back_forecasts_the_same(air, air_csv, tmp_path):
    first = api.load(air.run_dir)
    again = api.predict(air.run_dir, str(air_csv))
    np.testing.assert_array_equal(first.predict(str(air_csv))["forecast"].to_numpy(), again["forecast"].to_numpy())
    # the learner's own save/load: the same weights and shape, the same forecasts
    learner, fitted = first.members[0]
    learner.save(fitted, tmp_path)
    loaded = learner.load(tmp_path)
    x = _windows(fitted["net"], 5)
    with torch.no_grad():
        assert torch.equal(fitted["net"]({"window": x}), loaded["net"]({"window": x}))
    # the saved network scores the run's test windows as the trained one did
    assert api.evaluate(air.run_dir)["mase"] == pytest.approx(air.metrics["test"]["mase"], rel=1e-6)


class _Window(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, window):
        return self.net({"window": window})


def test_the_network_exports_to_onnx_with_a_free_batch_size(air):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    import contextlib
    import io
    import warnings

    net = api.load(air.run_dir).members[0][1]["net"].eval()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # the exporter narrates on stdout
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_Window(net).eval(), (_windows(net, 4),), None, input_names=["window"],
                                    dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), dynamo=True,
                                    external_data=False)
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert "Softmax" in ops and "LayerNormalization" in ops  # the plain attention, not a fused kernel
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (1, 7, 64):  # other batch sizes than the example's
        x = _windows(net, n, seed=n)
        with torch.no_grad():
            want = net({"window": x}).numpy()
        got = session.run(None, {"window": x.numpy()})[0]
        assert got.shape == want.shape == (n, 12, 5)  # the median and the 80% and 95% intervals' ends
        diff = float(np.abs(got - want).max())
        print(f"batch {n}: max |onnx - torch| = {diff:.2e}")
        assert diff < 1e-4
