"""``forgeml export`` for a forecasting run whose model is a window network (N-BEATS, the LSTM...), the global
LightGBM, or a combination of them: one ``model.onnx`` that takes series' histories and gives the next ``horizon``
points with the run's intervals, with onnxruntime alone.

    history [series, length] float32 ─► each network's window, scaled by its level ─► the mean of the members
                                      ├► LightGBM's feature rows ─► its trees ─► x level ┘
                                      └► the series' MASE scale ─► forecast ± quantile x scale x sqrt(step)
                                                                   (or the networks' own quantiles ± correction x scale)

The graph does what ``forgeml predict`` does after reading a history: a history shorter than a network's window is
padded at the front with its first value, the window is divided by the mean absolute value of its last points, and the
interval half-width is the run's conformal quantile times the series' mean absolute seasonal difference (MASE's
scale) times sqrt(step); for a run whose intervals are the networks' own quantiles (CQR), each end is the networks'
mean quantile moved outward by the run's correction times that scale. The history must be regular (gaps filled, as ``forgeml
predict`` fills them) and one season and two points long at least (torch's exporter reads a single seasonal difference
as a broadcast). A run with LightGBM takes more inputs, what the values do not give: the calendar of the future times,
the covariates, the static codes (forgeml.models.forecast_lgbm_onnx; the graph is joined in forecast_onnx_lgbm). A
network that reads covariates takes them the same way (known, past, static; forgeml.models.forecast_covariates), and
its graph is built by the same joining code (with no trees).
Statistical models re-run their smoothing over each history: runs that use them are served as they are (``forgeml
serve``'s forecast route).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from forgeml.errors import RunError
from forgeml.models.forecast_nets import history_level


class HistoryForecaster(nn.Module):
    """history [N, T] -> forecast [N, H], then (lo, hi) [N, H] per interval level. ``nets``: (network, window
    length, the quantiles its output holds) per network (Forecaster.window_network); ``quantiles``: the run's
    calibrated number per level; ``ends``: for a run whose intervals are the networks' own quantiles (CQR), the
    levels' ends (forecast_backtest.interval_ends), which every network holds; else None."""

    def __init__(self, nets: list[tuple[nn.Module, int, list[float]]], season: int, horizon: int,
                 quantiles: list[float], ends: list[float] | None = None):
        super().__init__()
        self.nets = nn.ModuleList(net for net, _, _ in nets)
        self.lags = [lags for _, lags, _ in nets]
        self.medians = [learned.index(0.5) for _, _, learned in nets]
        self.own = None if ends is None else [[learned.index(q) for q in ends] for _, _, learned in nets]
        self.season = max(int(season), 1)
        self.register_buffer("steps", torch.arange(1, horizon + 1, dtype=torch.float32).sqrt())
        self.register_buffer("q", torch.tensor(quantiles, dtype=torch.float32))

    def forward(self, history: torch.Tensor):
        outs = self.outputs(history)
        pred = torch.stack(self.medians_of(outs)).mean(dim=0)
        out = [pred]
        for below, above in self.offsets(history, outs, pred):
            out += [pred - below, pred + above]
        return tuple(out)

    def outputs(self, history: torch.Tensor, given: dict | None = None) -> list[torch.Tensor]:
        """Each network's quantiles [N, H, Q] (Q = 1: the median alone); ``given``: the graph's other inputs (the
        covariates networks read)."""
        full = torch.cat([history[:, :1].expand(-1, max(self.lags)), history], dim=1)
        outs = []
        for net, lags in zip(self.nets, self.lags):
            level = history_level(history, lags)
            outs.append(net({"window": full[:, -lags:] / level, **(given or {})}) * level.unsqueeze(-1))
        return outs

    def medians_of(self, outs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each network's forecast [N, H]: its median."""
        return [out[..., m] for out, m in zip(outs, self.medians)]

    def offsets(self, history: torch.Tensor, outs: list[torch.Tensor], pred: torch.Tensor | None):
        """Per level, how far below and above the members' mean forecast ``pred`` [N, H] its interval reaches.
        Split conformal: both the half-width, quantile x the series' MASE scale x sqrt(step). CQR (every member is a
        network with quantiles; ``pred`` is their mean median): the networks' mean lower and upper quantile, moved
        outward by the correction x the scale."""
        seasonal = (history[:, self.season:] - history[:, :-self.season]).abs().mean(dim=1)
        naive = (history[:, 1:] - history[:, :-1]).abs().mean(dim=1)
        one = torch.ones_like(naive)
        scale = torch.where(seasonal > 1e-12, seasonal, torch.where(naive > 1e-12, naive, one))  # evaluate.mase_scale
        out = []
        for i in range(len(self.q)):
            if self.own is None:
                half = self.q[i] * scale[:, None] * self.steps[None, :]
                out.append((half, half))
                continue
            lo = torch.stack([o[..., idx[2 * i]] for o, idx in zip(outs, self.own)]).mean(dim=0)
            hi = torch.stack([o[..., idx[2 * i + 1]] for o, idx in zip(outs, self.own)]).mean(dim=0)
            widen = self.q[i] * scale[:, None]
            out.append((pred - lo + widen, hi - pred + widen))
        return out


INPUT_ORDER = ("history", "calendar", "known", "past", "static")


def members(model) -> tuple[list[tuple[nn.Module, int, list[float]]], list, list[dict]]:
    """The (network, window length, its output's quantiles) of each window network of the run's model, the graph features
    (Forecaster.graph_features) of each member with trees, and the inputs the networks read besides the history
    (their covariates); RunError naming what cannot be exported."""
    from forgeml.models import LEARNERS

    nets, trees, net_inputs, left = [], [], [], []
    for learner, fitted in model.members:
        net = learner.window_network(fitted)
        tree = None if net else learner.graph_features(fitted, model.horizon)
        nets += [net] if net else []
        net_inputs += learner.window_inputs(fitted, model.horizon) if net else []
        trees += [tree] if tree else []
        left += [] if net or tree else [learner.name]
    if not left:
        return nets, trees, net_inputs
    forecasters = [(n, LEARNERS.get(n)) for n in LEARNERS.tagged("forecaster")]
    windows = [n for n, cls in forecasters if getattr(cls, "exports_window", False)]
    graphs = [n for n, cls in forecasters if getattr(cls, "exports_graph", False)]
    names = [learner.name for learner, _ in model.members]
    raise RunError(f"{model.run_dir}'s model is {model.model_name}" + (f" ({', '.join(names)})" if names != [model.model_name] else "")
                   + f": forgeml export writes forecasting runs whose model is a window network ({', '.join(windows)}), "
                   f"the global LightGBM ({', '.join(graphs)}) or a combination of them; statistical models "
                   f"({', '.join(left)}) re-run their smoothing over each history, which a fixed graph does not express. "
                   f"Serve the run as it is (forgeml serve {model.run_dir} answers POST "
                   f"/v1/models/{model.run_dir.name}/forecast), or train one that exports (--model {windows[0]})")


def spec(model) -> tuple[list[dict], list[dict]]:
    """The graph's inputs and outputs as the manifest describes them."""
    s, h = model.state, model.horizon
    inputs = [{"name": "history", "dtype": "float32", "shape": ["series", "length"], "columns": [s["target"]],
               "how": f"each series' values, oldest first, at its regular {s['freq']} steps (gaps filled), at least "
                      f"one season and two points ({s['season'] + 2}); series of one request share the length"}]
    _, trees, net_inputs = members(model)
    for i in net_inputs + [i for tree in trees for i in tree.inputs]:
        inputs += [] if i["name"] in {j["name"] for j in inputs} else [i]
    inputs.sort(key=lambda i: INPUT_ORDER.index(i["name"]))
    outputs = [{"name": "forecast", "dtype": "float32", "shape": ["series", h], "how": f"the next {h} points"}]
    for lv in sorted(s["levels"]):
        outputs += [{"name": f"lo_{lv}", "dtype": "float32", "shape": ["series", h], "how": f"the {lv}% interval's lower end"},
                    {"name": f"hi_{lv}", "dtype": "float32", "shape": ["series", h], "how": f"the {lv}% interval's upper end"}]
    return inputs, outputs


def to_onnx(module: nn.Module, example: dict, outputs: list[str], dims: tuple):
    """torch.onnx's dynamo export of ``module`` (inputs by name, in ``example``'s order; ``dims``: the dynamic
    dimensions, shaped as forward's arguments): an onnx.ModelProto."""
    from forgeml.models.torch_onnx import export_quietly

    return export_quietly(module, tuple(example.values()), list(example), outputs, dims)


def build(model):
    """The ONNX model (an onnx.ModelProto) of a forecasting run."""
    from forgeml.errors import require

    require("onnxscript", "export", "forgeml export (torch's ONNX exporter needs it)")
    from forgeml.tasks.forecast_backtest import interval_ends

    s = model.state
    levels = sorted(s["levels"])
    quantiles = [float(s["interval_quantiles"][str(lv)] if str(lv) in s["interval_quantiles"]
                       else s["interval_quantiles"][lv]) for lv in levels]
    nets, trees, net_inputs = members(model)
    # "quantile": every member is a network whose outputs hold the levels' ends (forecasting.py chose CQR)
    ends = interval_ends(levels) if s.get("intervals") == "quantile" else None
    core = HistoryForecaster(nets, s["season"], model.horizon, quantiles, ends).eval()
    series = torch.export.Dim("series", min=1)
    dims = {0: series, 1: torch.export.Dim("length", min=s["season"] + 2, max=100_000)}
    if trees or net_inputs:  # LightGBM: its feature rows in torch, its trees spliced in after them (forecast_onnx_lgbm);
        # networks that read covariates take them as more inputs, as LightGBM does
        from forgeml.tasks.forecast_onnx_lgbm import build_with_trees

        return build_with_trees(model, core, trees, levels, dims, series)
    example = torch.ones(2, max(max(core.lags), s["season"] + 2)) + torch.rand(2, 1)
    proto = to_onnx(core, {"history": example}, [o["name"] for o in spec(model)[1]], (dims,))
    proto.producer_name = "forgeml"
    return proto


def export(model, path, contexts: list | None = None) -> dict:
    """Write ``model.onnx`` for a loaded forecasting run (forgeml.tasks.forecast_run.ForecastModel) and describe it
    for the manifest; ``contexts``: forecasts of the run's own data to compare it with (ForecastModel.export_onnx)."""
    from forgeml.artifacts import atomic_write_bytes

    proto = build(model)
    atomic_write_bytes(path, proto.SerializeToString())
    size = path.stat().st_size
    inputs, outputs = spec(model)
    info = {"file": path.name, "size_bytes": size, "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
            "inputs": inputs, "outputs": outputs}
    if contexts:
        diff = parity(model, proto.SerializeToString(), contexts)
        if diff is not None:
            info["parity"] = diff
    return info


def feeds(model, contexts: list) -> dict[str, np.ndarray]:
    """The graph's inputs for the Contexts predict makes: the histories, cut to the shortest's length (one matrix),
    and what the trees' features need besides (the calendar, the covariates, the static codes)."""
    width = min(len(c.history) for c in contexts)
    out = {"history": np.stack([c.history[-width:] for c in contexts]).astype(np.float32)}
    for learner, fitted in model.members:
        out.update(learner.window_feeds(fitted, contexts, model.horizon))
    for tree in members(model)[1]:
        out.update(tree.feeds(contexts))
    return out


def parity(model, onnx_bytes: bytes, contexts: list) -> dict | None:
    """max |the run's forecast - onnx| relative to the series' level, over ``contexts`` (None if none is long enough
    for the graph)."""
    from forgeml.errors import require

    ort = require("onnxruntime", "export", "checking the exported graph")
    contexts = [c for c in contexts if len(c.history) >= model.state["season"] + 2]
    if not contexts:
        return None
    feed = feeds(model, contexts)
    got = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).run(["forecast"], feed)[0]
    # predict reads each series' whole history; the graph gets the last `width` points of each (one matrix): the
    # windows are the same while width covers the longest window, and the MASE scale differs only through its span
    want = np.mean([learner.forecast(fitted, contexts, model.horizon) for learner, fitted in model.members], axis=0)
    level = np.abs(feed["history"]).mean(axis=1, keepdims=True) + 1e-9
    return {"series": len(contexts), "max_rel_diff": float(np.max(np.abs(got - want) / level))}
