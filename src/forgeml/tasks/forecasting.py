"""Forecasting: the next ``horizon`` points of one series or of many series in one long table, with 80% and 95%
intervals, chosen and scored by rolling-origin backtests.

The split is in time, per series (``windows`` W, ``horizon`` H, T points):

    | fit ................................ | validation: W windows of H | test: W windows of H |
                                          T - 2WH                      T - WH                  T

1. Every candidate (the statistical baselines, the global LightGBM, the N-BEATS-style network) fits on the fit part
   and forecasts the validation windows, each from its own origin with the actual history up to it.
2. ``model: auto`` keeps the candidate with the lowest validation MASE; the mean of the ``ensemble`` best (a forecast
   combination) competes too. The best statistical baseline on validation is the run's baseline.
3. The kept model and the baseline are fitted again on fit + validation and forecast the test windows, which nothing
   fitted on or chose by. Seasonal naive is scored there too (MASE's reference).
4. Intervals, calibrated on the kept model's validation windows (forgeml.tasks.forecast_backtest): when every
   member gives its own quantiles (the networks' quantile outputs), conformalized quantile regression: the model's
   interval, widened or narrowed by how far validation points fell outside it. Otherwise split conformal: the
   validation errors, divided by the series' MASE scale and by sqrt(step), give one quantile per level; an interval
   is the forecast plus or minus it, times scale and sqrt(step).

Series too short for the backtest (2WH points plus two horizons to fit on) are named and left out of training and
scoring; predict still forecasts them. The run keeps the models fitted on fit + validation: predict forecasts from the
history it is given (a local model re-runs its smoothing over it; a global model reads its last window).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from forgeml.core import Task
from forgeml.errors import ConfigError, DataError
from forgeml.tasks import TASKS
from forgeml.tasks.forecast_backtest import (backtest_origins, bands, calibrate, calibration_rows, contexts_at, cut,
                                             interval_ends, interval_kind, interval_quantiles, own_bands, scaled_errors)
from forgeml.tasks.forecast_config import ForecastingConfig, options

if TYPE_CHECKING:
    import pandas as pd

    from forgeml.features.series import Panel

Say = Callable[[str], None]
COMBINATION = "combination"
SLOW_MAX_SEASON = 12  # a slow learner's (not tagged many_series: seasonal ARIMA) cost grows with the season
INTERVAL_KINDS = {"quantile": "the model's own quantiles, conformalized", "conformal": "split conformal"}
MODELS = "forecasters"  # RUN/forecasters/<model>/: the kept model's files (each member of a combination)


@dataclass
class SeriesData:
    """What training needs: the panel (series long enough for the backtest), the columns, the candidates."""

    task: "Forecasting"
    panel: "Panel"
    target: str
    time_col: str
    candidates: list[str]
    opts: ForecastingConfig
    skipped: list[str] = field(default_factory=list)

    @property
    def rows(self) -> dict:
        h, w = self.task.horizon, self.opts.windows
        points = sum(len(s.values) for s in self.panel.series)
        n = len(self.panel.series)
        return {"train": points - 2 * n * w * h, "val": n * w * h, "test": n * w * h}


def target_column(df: pd.DataFrame, given: Optional[str], implied: Optional[str], skip: set) -> str:
    if given:
        return given
    if implied and implied in df.columns:
        return implied
    numeric = [c for c in df.columns if c not in skip and c != "rownames" and str(df[c].dtype) not in ("object", "str")
               and np.issubdtype(df[c].dtype, np.number)]
    for name in ("value", "y", "target"):
        if name in numeric:
            return name
    if len(numeric) == 1:
        return numeric[0]
    raise ConfigError(f"which column is the series' value? give it with --target (numeric columns: {numeric})")


@TASKS.register("forecasting", tags={"series", "own_run"})
class Forecasting(Task):
    Config = ForecastingConfig
    primary_metric = "mase"
    folds_refused = ("forecasting is scored by rolling-origin backtests in time, not by folds of shuffled rows; "
                     "train with more windows instead (--set task.windows=4)")
    summary_keys = ["mase", "smape", "mape", "rmse", "wql", "coverage_80", "coverage_95"]

    @property
    def horizon(self) -> int:
        return int(self.state["horizon"])

    # ---- preparing: read, check, choose the candidates (before anything is written)
    @classmethod
    def prepare_run(cls, cfg, say: Say = lambda m: None) -> SeriesData:
        from forgeml.data.sources import read_source
        from forgeml.features.series import default_horizon, read_panel
        from forgeml.models import LEARNERS

        from forgeml.errors import require

        opts = options(cfg)
        require("statsmodels", "forecast", "forecasting (its statistical baselines)")
        if opts.horizon is not None and opts.horizon <= 0:
            raise ConfigError(f"horizon = {opts.horizon}: forecast at least one point (--horizon 12)")
        if cfg.train.privacy is not None:
            raise ConfigError("differential privacy (train.privacy / --epsilon) is not available for forecasting")
        bad_levels = [lv for lv in opts.levels if not 0 < lv < 100]
        if bad_levels:
            raise ConfigError(f"task.levels {bad_levels}: interval levels are percentages between 0 and 100")
        df, implied = read_source(cfg.data.source, cfg.data.sep, cfg.data.encoding)
        declared = df.attrs.get("forecasting", {})  # a bundled set names its id and time columns
        id_col = opts.id_col or declared.get("id_col")
        time_col = opts.time_col or cfg.data.split.time_col or declared.get("time_col")
        known = opts.known or declared.get("known", [])
        target = target_column(df, cfg.data.target, implied, {id_col, time_col})
        panel, time_col = read_panel(df, target, time_col, id_col, known, opts.freq, opts.season, opts.gaps, say)
        horizon = opts.horizon or default_horizon(panel.freq)
        need = 2 * opts.windows * horizon + 2 * horizon
        short = [s.id for s in panel.series if len(s.values) < need]
        if len(short) == len(panel.series):
            longest = max(len(s.values) for s in panel.series)
            who = "the series has" if not id_col else f"series {short[0]!r} has" if len(short) == 1 else "every series has"
            raise DataError(f"{who} fewer than "
                            f"{need} points (the longest: {longest}); the backtest needs 2 x windows ({opts.windows}) x "
                            f"horizon ({horizon}) points plus two horizons to fit on: choose a shorter --horizon or "
                            f"--set task.windows=1")
        if short:
            say(f"[yellow]forecasting: {len(short)} series shorter than {need} points left out of training and scoring: "
                f"{', '.join(map(repr, short[:5]))}{' ...' if len(short) > 5 else ''}[/]")
            from dataclasses import replace

            panel = replace(panel, series=[s for s in panel.series if s.id not in short])
        forecasters = LEARNERS.tagged("forecaster")
        if cfg.model.name == "auto":
            candidates = [n for n in forecasters if "opt_in" not in LEARNERS.get(n).tags]  # opt_in: trained when named
            slow = [n for n in candidates if "many_series" not in LEARNERS.get(n).tags]
            if slow and (len(panel.series) > opts.slow_max_series or panel.season > SLOW_MAX_SEASON):
                candidates = [n for n in candidates if n not in slow]
                why = (f"on {len(panel.series)} series (more than task.slow_max_series = {opts.slow_max_series})"
                       if len(panel.series) > opts.slow_max_series else f"with a season of {panel.season} (more than "
                       f"{SLOW_MAX_SEASON})")
                say(f"[dim]forecasting: {', '.join(slow)} left out {why}: too slow there; --model NAME trains it[/]")
        elif cfg.model.name in forecasters:
            candidates = [cfg.model.name]
        else:
            raise ConfigError(f"model {cfg.model.name!r} does not forecast; choose one of: auto, {', '.join(forecasters)}")
        state = {"horizon": horizon, "freq": panel.freq, "season": panel.season, "windows": opts.windows,
                 "id_col": id_col, "time_col": time_col, "target": target, "known": panel.known, "past": panel.past,
                 "static": panel.static, "levels": sorted(opts.levels)}
        n = len(panel.series)
        say(f"[dim]{sum(len(s.values) for s in panel.series)} points in {n} series{'' if n == 1 else f' (by {id_col!r})'}; "
            f"frequency {panel.freq}, season {panel.season}, horizon {horizon}; backtest: {opts.windows} validation and "
            f"{opts.windows} test window(s) of {horizon} per series"
            f"{'; known covariates ' + str(panel.known) if panel.known else ''}"
            f"{'; past covariates ' + str(panel.past) if panel.past else ''}"
            f"{'; static ' + str(panel.static) if panel.static else ''}[/]")
        return SeriesData(cls(state), panel, target, time_col, candidates, opts, short)

    # ---- training: the backtests, the choice, the run folder
    def train_run(self, cfg, run_dir: Path, data: SeriesData, tracker, say: Say, loop: Callable) -> tuple[dict, dict]:
        """Backtest, choose, score and write the run; returns (metrics, manifest). ``loop``: forgeml's training loop
        (forgeml.train.loop.fit), handed to the learners that train a network with it."""
        from forgeml.evaluate.forecast import mase_scale, score
        from forgeml.models import LEARNERS

        panel, h, w = data.panel, self.horizon, data.opts.windows
        lengths = [len(s.values) for s in panel.series]
        val_origins = [backtest_origins(n, h, w, "val") for n in lengths]
        test_origins = [backtest_origins(n, h, w, "test") for n in lengths]
        fit_panel = cut(panel, [o[0] for o in val_origins])
        refit_panel = cut(panel, [o[0] for o in test_origins])
        actual = {p: np.stack([np.stack([s.values[t:t + h] for t in o]) for s, o in zip(panel.series, origins)])
                  for p, origins in (("val", val_origins), ("test", test_origins))}
        scales = {"val": np.array([mase_scale(s.values[:o[0]], panel.season) for s, o in zip(panel.series, val_origins)]),
                  "test": np.array([mase_scale(s.values[:o[0]], panel.season) for s, o in zip(panel.series, test_origins)])}
        baselines = [n for n in LEARNERS.tagged("forecast_baseline") if n in data.candidates or "many_series" in
                     LEARNERS.get(n).tags]  # a slow one only where it is a candidate (see prepare_run)
        fitted: dict[str, dict] = {}

        levels = self.state["levels"]

        def fit_forecast(name: str, fit_on: "Panel", origins: list[list[int]]):
            """``name`` fitted on ``fit_on``, forecasting from ``origins``: the model, the forecasts [series, windows,
            h], the params, and the model's own quantiles [series, windows, h, 2 x levels] (None if it has none)."""
            learner = LEARNERS.get(name)()
            params = _params(cfg, name)
            model = learner.fit(params, fit_on, h, cfg.train.seed,
                                **({"train": cfg.train, "loop": loop} if "global" in learner.tags else {}),
                                **({"levels": levels} if "quantiles" in learner.tags else {}))
            contexts = contexts_at(panel, origins, h)
            shape = (len(panel.series), len(origins[0]), h)
            own = learner.forecast_quantiles(model, contexts, h, interval_ends(levels))
            return (model, learner.forecast(model, contexts, h).reshape(shape), params,
                    None if own is None else own.reshape(*shape, -1))

        def run_candidate(name: str, part: str) -> np.ndarray:
            tic = time.perf_counter()
            model, pred, params, own = fit_forecast(name, fit_panel if part == "val" else refit_panel,
                                                    val_origins if part == "val" else test_origins)
            fitted.setdefault(name, {})[part] = {"model": model, "pred": pred, "seconds": time.perf_counter() - tic,
                                                 "params": params, "own": own}
            return pred

        def mean_own(part: str, names: list[str]):
            return mean_quantiles([fitted[m][part]["own"] for m in names])

        # 1. validation: every candidate and every baseline
        val_scores = {}
        for name in dict.fromkeys(data.candidates + baselines):
            pred = run_candidate(name, "val")
            val_scores[name] = score(actual["val"], pred, scales["val"])
            tag = "" if name in data.candidates else " (baseline)"
            say(f"  {name}{tag}: val MASE = {val_scores[name]['mase']:.4f} ({fitted[name]['val']['seconds']:.1f} s)")
            tracker.epoch({"epoch": 0, "val_mase": val_scores[name]["mase"]}, f"{name}.")
        ranked = sorted(data.candidates, key=lambda n: val_scores[n]["mase"])
        members = ranked[:data.opts.ensemble] if cfg.model.name == "auto" and data.opts.ensemble >= 2 else []
        if len(members) >= 2:
            val_scores[COMBINATION] = score(actual["val"], np.mean([fitted[m]["val"]["pred"] for m in members], axis=0),
                                            scales["val"])
            say(f"  {COMBINATION} (mean of {', '.join(members)}): val MASE = {val_scores[COMBINATION]['mase']:.4f}")
        kept = min([*data.candidates, *([COMBINATION] if len(members) >= 2 else [])], key=lambda n: val_scores[n]["mase"])
        kept_members = members if kept == COMBINATION else [kept]
        base = min(baselines, key=lambda n: val_scores[n]["mase"])
        reason = (f"the lowest validation MASE of {len(data.candidates) + (len(members) >= 2)} candidates"
                  if cfg.model.name == "auto" else "--model")
        say(f"kept [bold]{kept}[/] ({reason}); baseline: {base} (the best statistical baseline on validation)")

        # intervals, calibrated on the kept model's validation windows (on few series, windows before validation join
        # until there are CALIBRATION_POINTS points): CQR around the members' own quantiles, or split conformal
        # (forecast_backtest); task.intervals auto picks between them by cross-fitting on those windows
        val_pred = np.mean([fitted[m]["val"]["pred"] for m in kept_members], axis=0)

        def forecast_from(ends: list[int]):
            runs = [fit_forecast(m, cut(panel, ends), [[e] for e in ends]) for m in kept_members]
            return np.mean([r[1] for r in runs], axis=0), mean_quantiles([r[3] for r in runs])

        rows = calibration_rows(panel, [o[0] for o in val_origins], h,
                                (actual["val"], val_pred, mean_own("val", kept_members), scales["val"]), forecast_from)
        kind, tried = interval_kind(rows, data.opts.intervals, levels)
        if tried:
            say(f"  intervals: {INTERVAL_KINDS[kind]} (cross-fitted weighted quantile loss on validation: "
                f"{', '.join(f'{INTERVAL_KINDS[k]} {v:.4f}' for k, v in tried.items())})")
        self.state["intervals"] = kind
        self.state["interval_quantiles"] = calibrate(kind, rows, levels)
        self.state["calibration_points"] = int(rows[0].size)
        base_q = interval_quantiles(scaled_errors(actual["val"], fitted[base]["val"]["pred"], scales["val"]), levels)

        # 2. test: refit on fit + validation, forecast the test windows
        scored = dict.fromkeys(kept_members + [base, "seasonal_naive"] +
                               (data.candidates if data.opts.leaderboard else []))
        for name in scored:
            run_candidate(name, "test")
        ids = panel.ids

        def test_metrics(pred, lo_hi: dict) -> dict:
            return score(actual["test"], pred, scales["test"], lo_hi, ids)

        kept_pred = np.mean([fitted[m]["test"]["pred"] for m in kept_members], axis=0)
        kept_bands = bands(kept_pred, scales["test"], self.state["interval_quantiles"], h,
                           own_bands(mean_own("test", kept_members), levels) if kind == "quantile" else None)
        metrics = {"val": _summary(val_scores[kept]), "test": test_metrics(kept_pred, kept_bands)}
        metrics["test"]["tables"] = {"per-series errors": metrics["test"].pop("per_series")}
        base_test = test_metrics(fitted[base]["test"]["pred"], bands(fitted[base]["test"]["pred"], scales["test"], base_q, h))
        base_test.pop("per_series")
        naive_test = score(actual["test"], fitted["seasonal_naive"]["test"]["pred"], scales["test"])
        board = [[n, _r(val_scores[n]["mase"]), _r(score(actual["test"], fitted[n]["test"]["pred"], scales["test"])["mase"])
                  if "test" in fitted.get(n, {}) else None, round(fitted[n]["val"]["seconds"], 2)]
                 for n in dict.fromkeys(data.candidates + baselines)]
        if len(members) >= 2:
            board.append([COMBINATION, _r(val_scores[COMBINATION]["mase"]),
                          _r(metrics["test"]["mase"]) if kept == COMBINATION else None, None])
        metrics["test"]["tables"]["leaderboard (MASE)"] = {"columns": ["model", "val MASE", "test MASE", "val fit seconds"],
                                                           "rows": board}
        metrics.update({"primary_metric": "mase", "summary_keys": list(self.summary_keys), "model": kept,
                        "members": kept_members, "baseline": {"name": base, "val": _summary(val_scores[base]),
                                                              "test": base_test},
                        "references": {"seasonal naive": {"test": _summary(naive_test)}},
                        "candidates": [{"model": n, "val": _summary(val_scores[n]),
                                        "seconds": round(fitted[n]["val"]["seconds"], 3)} for n in data.candidates],
                        "choice": {"kept": kept, "reason": reason, "metric": "mase"},
                        "intervals": {"kind": kind, "calibration_points": self.state["calibration_points"],
                                      **({"cross_fitted_wql": tried} if tried else {})}})
        if data.skipped:
            metrics["skipped_series"] = data.skipped
        m, b, nv = metrics["test"]["mase"], base_test["mase"], naive_test["mase"]
        say(f"test MASE: {kept} {m:.4f} · baseline {base} {b:.4f} · seasonal naive {nv:.4f} "
            f"({100 * (1 - m / nv):+.1f}% vs seasonal naive); 80% interval covers "
            f"{100 * metrics['test'].get('coverage_80', float('nan')):.0f}% of test points")

        # 3. plots, models, manifest, report
        from forgeml import artifacts
        from forgeml.evaluate.report import rerender

        made = self._plots(panel, test_origins, kept_pred, kept_bands, {kept: metrics["test"]["by_step"],
                           f"baseline {base}": base_test["by_step"], "seasonal naive": naive_test["by_step"]},
                           run_dir / "plots")
        metrics["plots"] = [p.stem for p in made]
        files = []
        for name in kept_members:
            folder = run_dir / MODELS / name
            folder.mkdir(parents=True, exist_ok=True)
            LEARNERS.get(name)().save(fitted[name]["test"]["model"], folder)
            files += [str(p.relative_to(run_dir)) for p in folder.iterdir()]
        self.state["members"] = kept_members
        self.state["member_params"] = {n: fitted[n]["test"]["params"].model_dump(mode="json") for n in kept_members}
        keep = lambda mm: {k: mm.get(k) for k in self.summary_keys}  # noqa: E731
        manifest = {
            "format_version": artifacts.FORMAT_VERSION,
            "name": cfg.name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "task": self.name,
            "target": {"name": data.target, **self.state},
            "features": [],
            "preprocessing": {},
            "model": {"name": kept, "file": f"{MODELS}/", "members": kept_members, "tags": ["forecaster"],
                      "accepts": ["series"]},
            "data": {"source": cfg.data.source, **artifacts.source_path(cfg.data.source), "rows": data.rows,
                     "series": len(panel.series), **({"skipped_series": data.skipped} if data.skipped else {})},
            "metrics": {"test": keep(metrics["test"]), "baseline_test": keep(base_test)},
            "choice": metrics["choice"],
            "tracking": {"uri": getattr(tracker, "uri", None), "run_id": getattr(tracker, "run_id", None)},
            "versions": artifacts.library_versions(),
        }
        manifest["signature"] = {"inputs": self.request_fields(), "outputs": self.response_fields()}
        artifacts.write_json(run_dir / "metrics.json", metrics)
        artifacts.write_json(run_dir / artifacts.MANIFEST, manifest)
        rerender(run_dir)
        tracker.final(metrics, run_dir, model_files=files)
        return metrics, manifest

    def _plots(self, panel, origins, pred, lo_hi: dict, curves: dict, folder: Path) -> list[Path]:
        """History and test windows with their intervals (``lo_hi``: level -> [series, windows, h]) for 4 series."""
        from forgeml.evaluate.forecast import by_step_plot, forecast_plot

        h, shown = self.horizon, []
        for i, s in enumerate(panel.series[:4]):
            start = max(0, origins[i][0] - max(4 * panel.season, 3 * h))
            windows = [(s.times[t:t + h], s.values[t:t + h], pred[i, j], {lv: (lo[i, j], hi[i, j]) for lv, (lo, hi)
                                                                           in lo_hi.items()})
                       for j, t in enumerate(origins[i])]
            shown.append({"id": s.id, "times": s.times[start:origins[i][0] + 1], "values": s.values[start:origins[i][0] + 1],
                          "windows": windows})
        return [forecast_plot(shown, f"time ({panel.freq})", folder / "forecasts.png"),
                by_step_plot(curves, folder / "error_by_step.png")]

    # ---- what a client sends and gets back
    def request_fields(self) -> list[dict]:
        from forgeml.tasks.forecast_serve import request_fields

        return request_fields(self.state)

    def response_fields(self) -> dict[str, dict]:
        fields = {"forecast": {"type": "array", "items": {"type": "number"}, "description": f"the next {self.horizon} points"}}
        for lv in self.state.get("levels", []):
            fields[f"lo_{lv}"] = {"type": "array", "items": {"type": "number"}}
            fields[f"hi_{lv}"] = {"type": "array", "items": {"type": "number"}}
        return fields

    @classmethod
    def load_run(cls, run_dir: Path, manifest: dict):
        from forgeml.tasks.forecast_run import ForecastModel

        return ForecastModel(run_dir, manifest)


def mean_quantiles(owns: list):
    """Members' own quantiles, averaged; None unless every member has them."""
    return None if any(o is None for o in owns) else np.mean(owns, axis=0)


def _params(cfg, name: str):
    from forgeml.models import LEARNERS

    params_cls = LEARNERS.get(name).Params
    given = cfg.model.model_dump() if cfg.model.name == name else {"name": name}
    return params_cls.model_validate(given)


def _summary(m: dict) -> dict:
    return {k: m.get(k) for k in ("mase", "smape", "mape", "rmse", "wql", "coverage_80", "coverage_95", "by_step")}


def _r(v) -> Optional[float]:
    return None if v is None else float(f"{v:.4g}")
