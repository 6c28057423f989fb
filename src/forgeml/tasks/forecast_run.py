"""A trained forecasting run, loaded: ``forgeml.load("runs/x").predict(history)`` forecasts the next ``horizon``
points of every series in the history, with the run's intervals; ``evaluate_run(data)`` backtests the run's models
on the last windows of each series (forgeml evaluate).

The history is a table like the training data. Rows after a series' last value, with the target empty, carry the
future values of the known covariates (a price plan, a temperature forecast): predict needs all ``horizon`` of them
for each series when the run has known covariates.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from forgeml.errors import DataError, ForgeMLError, RunError


class ForecastModel:
    def __init__(self, run_dir: Path, manifest: dict):
        from forgeml.models import LEARNERS
        from forgeml.tasks import make_task

        self.run_dir, self.manifest = Path(run_dir), manifest
        self.state = {k: v for k, v in manifest["target"].items() if k != "name"}
        self.task = make_task(manifest["task"], self.state)
        self.model_name = manifest["model"]["name"]
        self.members = []
        for name in self.state["members"]:
            folder = self.run_dir / "forecasters" / name
            if not folder.is_dir():
                raise RunError(f"{self.run_dir} has no trained {name} ({folder} is missing); train it again")
            learner = LEARNERS.get(name)()
            self.members.append((learner, learner.load(folder)))

    features: list = []
    labels = None

    @property
    def horizon(self) -> int:
        return int(self.state["horizon"])

    def require_target(self, capability: str, or_tags: tuple[str, ...] = ()) -> None:
        from forgeml.tasks import refuse_capability

        refuse_capability(self.task, self.run_dir, capability, or_tags)

    def config(self):
        from forgeml.config import build_config
        from forgeml.config.experiment import load_config

        return build_config(load_config(self.run_dir / "config.yaml"), str(self.run_dir / "config.yaml"))

    def frame(self, data, sep: Optional[str] = None, encoding: Optional[str] = None) -> pd.DataFrame:
        """A history from a DataFrame, a list of rows, or a file (read with ``sep``/``encoding``, else as training
        read its data)."""
        from forgeml.data.sources import read_source

        if isinstance(data, pd.DataFrame):
            return data
        if isinstance(data, (str, Path)):
            if not str(data).startswith("bundled:") and not Path(data).is_file():
                raise DataError(f"history not found: {data}")
            trained = self.config().data
            given = lambda value: None if value in (None, "auto") else value  # noqa: E731
            return read_source(str(data), sep if sep is not None else given(trained.sep),
                               encoding if encoding is not None else given(trained.encoding))[0]
        if isinstance(data, (list, tuple)) and data and isinstance(data[0], dict):
            return pd.DataFrame(list(data))
        raise DataError("forecasting predict takes a history: a DataFrame, a file, or a list of rows (dicts)")

    # ---- reading a history
    def read_history(self, df: pd.DataFrame):
        """The history as a Panel, and the known covariates' future rows per series."""
        from forgeml.features.series import parse_times, read_panel

        s = self.state
        target, time_col, id_col, known = s["target"], s["time_col"], s.get("id_col"), list(s.get("known", []))
        needed = [c for c in (time_col, target, id_col, *known, *s.get("past", []), *s.get("static", [])) if c]
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise DataError(f"the history has no column(s) {missing}; this run needs {needed} (columns given: "
                            f"{list(df.columns)})")
        if df.empty:
            raise DataError("no rows to forecast from")
        stamps, _ = parse_times(df[time_col])
        ids = df[id_col].astype(str) if id_col else pd.Series("series", index=df.index)
        valued = pd.to_numeric(df[target], errors="coerce").notna()
        if not valued.any():
            raise DataError(f"no row of the history has a number in {target!r}: give each series' recent values "
                            f"(examples: {df[target].astype(str).head(3).tolist()})")
        last = stamps[valued].groupby(ids[valued]).max()
        later = ~valued & (stamps > ids.map(last))
        panel, _ = read_panel(df[~later.to_numpy()], target, time_col, id_col, known, s["freq"], s["season"], "fill")
        future = {}
        if known:
            rows = df[later.to_numpy()].assign(_time=stamps[later].to_numpy(), _id=ids[later].to_numpy())
            future = {k: g.set_index("_time")[known] for k, g in rows.groupby("_id")}
        return panel, future

    def contexts_of(self, panel, future: dict, origins: Optional[list[list[int]]] = None) -> list:
        from forgeml.features.series import future_times
        from forgeml.models.forecasters import Context
        from forgeml.tasks.forecast_backtest import contexts_at

        h, known = self.horizon, list(self.state.get("known", []))
        if origins is not None:
            return contexts_at(panel, origins, h)
        need = max(self.state["season"] + 1, 3)
        out = []
        for s in panel.series:
            if len(s.values) < need:
                raise DataError(f"series {s.id!r} has {len(s.values)} points of history; this model needs at least "
                                f"{need} (a season and one point)")
            times = future_times(s.times[-1], self.state["freq"], h)
            ahead = None
            if known:
                given = future.get(s.id)
                lacking = times if given is None else times.difference(given.index)
                if len(lacking):
                    raise DataError(f"series {s.id!r}: the known covariates {known} are missing at {len(lacking)} of the "
                                    f"{h} future times (the first: {lacking[0]}); add rows for those times with the "
                                    f"covariates filled and {self.state['target']!r} empty")
                ahead = given.loc[times].apply(pd.to_numeric, errors="coerce").astype(float)
            out.append(Context(s.id, s.values, s.times, times, s.covariates, ahead, s.static))
        return out

    def forecast_contexts(self, contexts: list) -> np.ndarray:
        return np.mean([learner.forecast(model, contexts, self.horizon) for learner, model in self.members], axis=0)

    def interval_bands(self, contexts: list, pred: np.ndarray, scales: np.ndarray) -> dict:
        """level -> (lo, hi) [len(contexts), horizon], as training calibrated them: around the members' own
        quantiles (averaged) for a run whose intervals are CQR (``intervals: quantile``), else split conformal."""
        from forgeml.tasks.forecast_backtest import bands, interval_ends, own_bands

        levels, own = sorted(self.state["levels"]), None
        if self.state.get("intervals") == "quantile":
            own = own_bands(np.mean([learner.forecast_quantiles(model, contexts, self.horizon, interval_ends(levels))
                                     for learner, model in self.members], axis=0), levels)
        return bands(pred, scales, self.state["interval_quantiles"], self.horizon, own)

    # ---- the capabilities
    def predict(self, data, sep: Optional[str] = None, encoding: Optional[str] = None) -> pd.DataFrame:
        """The next ``horizon`` points of each series, with the intervals: one row per series and time."""
        return self.forecast_panel(*self.read_history(self.frame(data, sep, encoding)))

    def forecast_panel(self, panel, future: dict) -> pd.DataFrame:
        """predict's table for a history read as a Panel (and the known covariates' future rows per series)."""
        from forgeml.evaluate.forecast import mase_scale

        contexts = self.contexts_of(panel, future)
        pred = self.forecast_contexts(contexts)
        scales = np.array([mase_scale(c.history, self.state["season"]) for c in contexts])
        lo_hi = self.interval_bands(contexts, pred, scales)
        id_name = self.state.get("id_col") or "series"
        out = pd.DataFrame({id_name: np.repeat([c.id for c in contexts], self.horizon),
                            self.state["time_col"]: np.concatenate([c.future for c in contexts]),
                            "forecast": pred.ravel()})
        for lv, (lo, hi) in sorted(lo_hi.items()):
            out[f"lo_{lv}"], out[f"hi_{lv}"] = lo.ravel(), hi.ravel()
        return out

    # ---- serving: forgeml serve answers POST /v1/models/NAME/forecast with the run's own models (forecast_serve)
    serve_route = "forecast"

    def answer(self, body) -> dict:
        from forgeml.tasks.forecast_serve import answer

        return answer(self, body)

    def serve_example(self) -> Optional[list[dict]]:
        from forgeml.tasks.forecast_serve import example

        return example(self)

    def serve_schemas(self) -> tuple[dict, dict]:
        from forgeml.tasks.forecast_serve import schemas

        return schemas(self)

    def export_onnx(self, path: Path, check: bool = True) -> dict:
        """forgeml export: the run's networks and LightGBM as one ONNX graph (forgeml.tasks.forecast_onnx), checked
        against the run's own forecasts of its data: from each series' whole history, or, for a run with known
        covariates (whose future the data lacks), from each series cut one horizon before its end."""
        from forgeml.tasks.forecast_onnx import export

        contexts = None
        if check:
            try:
                panel, future = self.read_history(self.frame(self.config().data.source))
                ends = [[max(len(s.values) - self.horizon, 0)] for s in panel.series] if self.state.get("known") else None
                contexts = self.contexts_of(panel, future, ends)
            except (OSError, ValueError, ForgeMLError):  # the data moved or changed: the manifest says parity was not checked
                contexts = None
        return export(self, Path(path), contexts)

    def onnx_feeds(self, data, sep: Optional[str] = None, encoding: Optional[str] = None) -> dict[str, np.ndarray]:
        """The inputs of the graph ``forgeml export`` writes, for a history as predict takes it (future rows of the
        known covariates included): ``history`` [series, length] float32, each series' last values (series of
        unequal lengths are cut to the shortest's length: feed them apart to use each one's whole history) and, for
        a run with LightGBM, ``calendar``, then ``known``, ``past``, ``static`` where the run has them, as the
        manifest's ``export.onnx.inputs`` describe them. The graph's rows follow the series in predict's order."""
        from forgeml.tasks.forecast_onnx import feeds

        return feeds(self, self.contexts_of(*self.read_history(self.frame(data, sep, encoding))))

    def evaluate_run(self, data=None, sep: Optional[str] = None, encoding: Optional[str] = None) -> dict:
        """Metrics of the run's models on the last ``windows`` windows of each series of ``data`` (default: the
        run's own data, whose last windows are its test windows: the saved models never saw them)."""
        from forgeml.evaluate.forecast import mase_scale, score
        from forgeml.tasks.forecast_backtest import backtest_origins

        if data is None:
            data = self.config().data.source
        panel, _ = self.read_history(self.frame(data, sep, encoding))
        h, w = self.horizon, int(self.state["windows"])
        short = [s.id for s in panel.series if len(s.values) < w * h + max(self.state["season"] + 1, 3)]
        if short:
            raise DataError(f"series {short[0]!r} is too short to score {w} window(s) of {h} points after enough history")
        origins = [backtest_origins(len(s.values), h, w, "test") for s in panel.series]
        contexts = self.contexts_of(panel, {}, origins)
        pred = self.forecast_contexts(contexts)
        actual = np.stack([np.stack([s.values[t:t + h] for t in o]) for s, o in zip(panel.series, origins)])
        scales = np.array([mase_scale(s.values[:o[0]], self.state["season"]) for s, o in zip(panel.series, origins)])
        lo_hi = self.interval_bands(contexts, pred, np.repeat(scales, w))
        shape = (len(panel.series), w, h)
        out = score(actual, pred.reshape(shape), scales, {lv: (lo.reshape(shape), hi.reshape(shape))
                                                          for lv, (lo, hi) in lo_hi.items()}, panel.ids)
        out["task"] = self.task.name
        out["data"] = str(data)
        return out
