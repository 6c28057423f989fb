"""A weighted ensemble of table learners: k-fold bagging, then greedy ensemble selection (Caruana et al., 2004).

Members are the learners tagged ``ensemble_member`` (LightGBM, LightGBM-XT, CatBoost). On a table with fewer than
``bag_below`` rows (train + validation), the two splits are pooled and cut into ``folds`` folds: each member trains
``folds`` times, each time early-stopping on the fold it leaves out, so every pooled row gets an out-of-fold
prediction and the weights are chosen on all of them, not on one small validation split. On a larger table each
member trains once and the validation split chooses. Selection adds, ``rounds`` times and with replacement, the member
that most improves the run's primary metric on those predictions; the weights are the counts of the best round.
The ensemble predicts the weighted mean of its members' probabilities (values, for regression), each member the mean
of its fold models.

It is one artifact: ``ensemble/ensemble.json`` (members, weights, scores) with each fold model saved by its own
learner under ``ensemble/<member>/<fold>/``; its ONNX graph joins every fold model's graph (forgeml.models
.ensemble_graph). The pipeline takes the out-of-fold outputs on the validation rows (``validation_raw``) for the
choice and the thresholds, since the fold models saw those rows."""
from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np
from pydantic import Field, field_validator

from forgeml.config.base import Strict
from forgeml.core import LEARNERS, Learner, better
from forgeml.errors import RunError

FOLDER = "ensemble"
INDEX = f"{FOLDER}/ensemble.json"
NEEDS = {"catboost": ("catboost", "tables")}  # members whose package is an extra: module, extra


class TimeBudgetError(RunError):
    """--time-limit is too short for the first member; the message says what it would need."""

    nothing_trained = True  # the pipeline removes the run folder it had started


class EnsembleParams(Strict):
    """Tables: a weighted ensemble of boosted-tree learners (k-fold bagged on small tables), weights chosen greedily
    on out-of-fold predictions."""

    name: Literal["ensemble"] = "ensemble"
    members: Optional[list[str]] = Field(None, description="learners tagged ensemble_member, most valuable first (a time "
                                                           "limit trains them in this order); None: lightgbm, catboost "
                                                           "(when installed), lightgbm_xt")
    folds: Optional[int] = Field(None, ge=2, le=20, description="k-fold bagging over train + validation rows; None: 5 "
                                                               "below bag_below rows, else none (the validation split)")
    bag_below: int = Field(20_000, ge=0, description="bag tables with fewer rows than this (train + validation)")
    rounds: int = Field(25, gt=0, description="greedy selection steps, with replacement")
    exportable: bool = Field(True, description="members trained so the ensemble exports to one ONNX graph (CatBoost "
                                               "reads categorical codes as numbers); false: CatBoost's native categoricals")
    time_limit: Optional[float] = Field(None, gt=0, description="seconds for training the members (set from train.time_limit)")

    @field_validator("members")
    @classmethod
    def _members(cls, members):
        if members is None:
            return None
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {members}; name two or more of "
                             f"{', '.join(LEARNERS.tagged('ensemble_member'))}, or train the single model with --model NAME")
        able = LEARNERS.tagged("ensemble_member")
        for name in members:
            if name not in able:
                raise ValueError(f"{name!r} cannot be an ensemble member; members: {', '.join(able)}")
            if name in NEEDS and importlib.util.find_spec(NEEDS[name][0]) is None:
                raise ValueError(f"ensemble member {name!r} needs the '{NEEDS[name][0]}' package: "
                                 f"pip install 'forgeml[{NEEDS[name][1]}]'")
        if len(set(members)) < len(members):
            raise ValueError(f"ensemble members are named twice: {members}")
        return members

    @classmethod
    def for_presets(cls, presets: str) -> "EnsembleParams":
        """model auto's settings: best bags more folds on larger tables and selects longer."""
        return cls(folds=8, bag_below=100_000, rounds=50) if presets == "best" else cls()

    def member_names(self) -> list[str]:
        if self.members is not None:
            return self.members
        return [n for n in ("lightgbm", "catboost", "lightgbm_xt")
                if n not in NEEDS or importlib.util.find_spec(NEEDS[n][0]) is not None]


class Ensemble:
    """The trained ensemble: per member its fold models and weight; ``summary`` for the report."""

    def __init__(self, members: list[dict], summary: dict, validation_raw: Optional[np.ndarray] = None):
        self.members = members  # [{"name", "weight", "models": [...]}], weights > 0 only
        self.summary = summary
        self.validation_raw = validation_raw  # out-of-fold outputs on the validation rows (bagged), for the pipeline


def member_params(name: str, params: EnsembleParams):
    member = LEARNERS.get(name).Params()
    if "native_categoricals" in type(member).model_fields:
        member = member.model_copy(update={"native_categoricals": not params.exportable})
    return member


def combine(task, raws: list[np.ndarray], weights) -> np.ndarray:
    """The weighted mean of members' outputs as raw outputs: log of the mean probability (classification), or the
    mean standardized value."""
    if "labels" in task.tags:
        p = sum(w * _softmax(r) for r, w in zip(raws, weights))
        return np.log(np.clip(p, 1e-15, None))
    return sum(w * r for r, w in zip(raws, weights))


def _softmax(raw: np.ndarray) -> np.ndarray:
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def select(task, outputs: dict[str, np.ndarray], y, rounds: int) -> tuple[dict[str, float], float]:
    """Greedy ensemble selection with replacement: (weights by member, the best round's score)."""
    metric = task.primary_metric
    score = scorer(task, y)
    names = list(outputs)
    counts = dict.fromkeys(names, 0)
    best_counts, best_score = None, None
    for _ in range(rounds):
        pick, pick_score = None, None
        for name in names:
            trial = {**counts, name: counts[name] + 1}
            s = score(combine(task, [outputs[n] for n in names], [trial[n] / sum(trial.values()) for n in names]))
            if s is not None and (pick_score is None or better(metric, s, pick_score)):
                pick, pick_score = name, s
        if pick is None:  # the metric is n/a (one class in y): equal weights
            return {n: 1 / len(names) for n in names}, None
        counts[pick] += 1
        if best_score is None or better(metric, pick_score, best_score):
            best_counts, best_score = dict(counts), pick_score
    total = sum(best_counts.values())
    return {n: c / total for n, c in best_counts.items()}, best_score


def scorer(task, y: np.ndarray) -> Callable[[np.ndarray], Optional[float]]:
    """The primary metric of raw outputs on ``y``: computed alone for the usual metrics (the selection scores ~75
    combinations), else through the task's full metrics."""
    from sklearn.metrics import roc_auc_score

    metric = task.primary_metric
    if metric == "roc_auc" and task.out_dim == 2:
        return lambda raw: float(roc_auc_score(y, raw[:, 1] - raw[:, 0])) if len(np.unique(y)) == 2 else None
    if metric == "accuracy":
        return lambda raw: float((raw.argmax(axis=1) == y).mean())
    if metric == "rmse":  # standardized values: the same order as rmse on the target's scale
        return lambda raw: float(np.sqrt(np.mean((np.ravel(raw) - y) ** 2))) * task.state.get("std", 1.0)
    return lambda raw: task.metrics(y, task.outputs(raw)).get(metric)


def _folds(task, y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if "labels" in task.tags and np.bincount(y).min() >= k:
        split = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    else:
        split = KFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)))
    return [held for _, held in split]


def _take(arrays: dict, rows: np.ndarray) -> dict:
    return {k: v[rows] for k, v in arrays.items()}


def fit_ensemble(params: EnsembleParams, task, train: dict, y_train, val: dict, y_val, seed: int, threads,
                 sample_weight=None, say: Callable[[str], None] = lambda m: None) -> Ensemble:
    n_val = len(y_val)
    pool = {k: np.concatenate([train[k], val[k]]) for k in train}
    y_pool = np.concatenate([y_train, y_val])
    k = params.folds or (5 if len(y_pool) < params.bag_below else 0)
    if k:
        held_out = _folds(task, y_pool, k, seed)
        weights_pool = None if sample_weight is None else np.concatenate([sample_weight, np.ones(n_val)])
        fits = [(np.setdiff1d(np.arange(len(y_pool)), held), held) for held in held_out]
    y_sel = y_pool if k else y_val
    tic = time.perf_counter()
    trained: dict[str, dict] = {}
    for name in params.member_names():
        learner = LEARNERS.get(name)
        mp = member_params(name, params)
        started = time.perf_counter()
        models, oof = [], None
        steps = fits if k else [(None, None)]
        left = None if params.time_limit is None else params.time_limit - (time.perf_counter() - tic)
        if left is not None and trained and _expected(trained) * len(steps) > left:
            say(f"  ensemble: time limit: {name} not trained (it would need about {_expected(trained) * len(steps):.1f} s, "
                f"{max(left, 0):.1f} s left)")
            continue
        for i, (rows, held) in enumerate(steps):
            left = None if params.time_limit is None else params.time_limit - (time.perf_counter() - tic)
            per_fold = (time.perf_counter() - started) / i if i else _expected(trained)
            if left is not None and per_fold is not None and per_fold > left:
                break
            w = sample_weight if "sample_weights" in learner.tags else None
            if k:
                w = None if w is None else weights_pool[rows]
                m = learner.fit(mp, task, _take(pool, rows), y_pool[rows], _take(pool, held), y_pool[held], seed + i,
                                threads, sample_weight=w)
                raw = learner.raw(m, _take(pool, held), task)
                oof = np.zeros((len(y_pool), *raw.shape[1:])) if oof is None else oof
                oof[held] = raw
            else:
                m = learner.fit(mp, task, train, y_train, val, y_val, seed, threads, sample_weight=w)
                oof = learner.raw(m, val, task)
            models.append(m)
            if params.time_limit is not None and not trained and i == 0:
                need = (time.perf_counter() - started) * len(steps)
                if need > params.time_limit:
                    raise TimeBudgetError(
                        f"--time-limit is too short for this table: {params.time_limit:.2f} s were left for the ensemble, "
                        f"and its first member ({name}) alone needs about {need:.1f} s ({len(steps)} fits); raise the "
                        f"limit by at least {math.ceil(need - params.time_limit) + 1} s, or use --presets fast")
        if len(models) < len(steps):
            say(f"  ensemble: time limit: {name} not trained (the limit came after {len(models)} of {len(steps)} fits)")
            break
        s = task.metrics(y_sel, task.outputs(oof)).get(task.primary_metric)
        trained[name] = {"models": models, "oof": oof, "seconds": time.perf_counter() - started, "score": s}
        say(f"    {name}: {'out-of-fold' if k else 'val'} {task.primary_metric} = "
            f"{'n/a' if s is None else f'{s:.4f}'} ({trained[name]['seconds']:.1f} s, {len(models)} fit(s))")
    if len(trained) < 2:
        raise TimeBudgetError(f"--time-limit {params.time_limit:g} s left time for one ensemble member only "
                              f"({', '.join(trained)}); give more time, or train it alone with --model {next(iter(trained))}")
    weights, score = select(task, {n: t["oof"] for n, t in trained.items()}, y_sel, params.rounds)
    members = [{"name": n, "weight": weights[n], "models": t["models"]} for n, t in trained.items() if weights[n] > 0]
    summary = {"folds": k, "rows": len(y_sel), "metric": task.primary_metric, "ensemble_score": score,
               "members": [{"name": n, "score": t["score"], "weight": round(weights[n], 4), "fits": len(t["models"]),
                            "seconds": round(t["seconds"], 3)} for n, t in trained.items()]}
    say(f"    ensemble: {'out-of-fold' if k else 'val'} {task.primary_metric} = "
        f"{'n/a' if score is None else f'{score:.4f}'}; weights " + ", ".join(f"{n} {w:.2f}" for n, w in weights.items() if w))
    val_raw = combine(task, [trained[m["name"]]["oof"][-n_val:] for m in members], [m["weight"] for m in members]) if k else None
    return Ensemble(members, summary, val_raw)


def _expected(trained: dict) -> Optional[float]:
    """A member's expected time per fit before its first: the slowest per-fit time so far (None before any)."""
    return max((t["seconds"] / len(t["models"]) for t in trained.values()), default=None)


def report_section(run_dir: Path, summary: dict) -> None:
    """The report's "Ensemble" section: each member's score (out-of-fold or validation), weight, fits and time."""
    from forgeml.evaluate.html import table
    from forgeml.evaluate.report import write_section

    where = f"out-of-fold over {summary['rows']} rows ({summary['folds']}-fold bagging)" if summary["folds"] else \
        f"on the {summary['rows']} validation rows"
    rows = [[m["name"], m["score"], m["weight"], m["fits"], m["seconds"]] for m in summary["members"]]
    rows.append(["ensemble (kept)", summary["ensemble_score"], 1.0, sum(m["fits"] for m in summary["members"]),
                 round(sum(m["seconds"] for m in summary["members"]), 3)])
    write_section(run_dir, "35-ensemble", [
        "<h2>Ensemble</h2>", f"<p class=note>{summary['metric']} {where}; weights chosen greedily on the same rows "
        "(so the ensemble's own score there is optimistic: the test metrics above are not).</p>",
        table(["member", summary["metric"], "weight", "fits", "train seconds"], rows)])


@LEARNERS.register("ensemble", tags={"trees", "sample_weights", "own_files", "ensemble", "narrates"},
                   accepts={"numeric", "categorical", "datetime"})
class WeightedEnsemble(Learner):
    Params = EnsembleParams
    file = INDEX

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None, say=None):
        return fit_ensemble(params, task, train, y_train, val, y_val, seed, threads, sample_weight, say or (lambda m: None))

    @staticmethod
    def raw(model: Ensemble, arrays: dict, task) -> np.ndarray:
        raws, weights = [], []
        for m in model.members:
            learner = LEARNERS.get(m["name"])
            outs = [learner.raw(est, arrays, task) for est in m["models"]]
            raws.append(combine(task, outs, [1 / len(outs)] * len(outs)))
            weights.append(m["weight"])
        return combine(task, raws, weights)

    @staticmethod
    def save(model: Ensemble, run_dir: Path) -> None:
        from forgeml.artifacts import write_text

        for m in model.members:
            learner = LEARNERS.get(m["name"])
            for i, est in enumerate(m["models"]):
                folder = run_dir / FOLDER / m["name"] / str(i)
                folder.mkdir(parents=True, exist_ok=True)
                learner.save(est, folder)
        index = {"members": [{"name": m["name"], "weight": m["weight"], "fits": len(m["models"]),
                              "file": LEARNERS.get(m["name"]).file} for m in model.members], "summary": model.summary}
        write_text(run_dir / INDEX, json.dumps(index, indent=1))
        report_section(run_dir, model.summary)

    @staticmethod
    def load(run_dir: Path) -> Ensemble:
        index = json.loads((run_dir / INDEX).read_text())
        members = [{"name": m["name"], "weight": m["weight"],
                    "models": [LEARNERS.get(m["name"]).load(run_dir / FOLDER / m["name"] / str(i)) for i in range(m["fits"])]}
                   for m in index["members"]]
        return Ensemble(members, index["summary"])

    @staticmethod
    def export_core(model: Ensemble, input_shapes: dict, min_opset: int):
        from forgeml.models.ensemble_graph import joined

        return joined(model, input_shapes, min_opset)
