"""`forgeml explain RUN`: pick the methods that fit the run, explain the run's test split (or --input), write the
files and `explanations.json`, and add an "Explanations" section to the run's report.

Without --input, by the explanation's kind (forgeml.explain.methods.kind_of): regions (images) -> a grid of a few test
examples per class (Grad-CAM + Integrated Gradients); tokens (text) -> a few test texts with highlighted tokens;
columns (tables) -> global permutation importance on the test split plus per-row attributions (IG for the MLP, LIME
for LightGBM) for a few rows spread over the classes. Anomaly runs (the ``scores``
tag) -> each column's share of the score of the most anomalous test rows (forgeml.explain.anomaly_run).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import pandas as pd

from forgeml import artifacts
from forgeml.errors import ConfigError, DataError
from forgeml.explain.methods import COLUMNS, NAMES, REGIONS, TOKENS, choose, explained, kind_of

RESULT = "explanations.json"
DEFAULT_DIR = "explanations"


@dataclass
class ExplainOptions:
    method: Optional[str] = None  # gradcam | ig | lime | permutation; None: the run's defaults
    rows: int = 6  # tables/text without --input: rows explained one by one (spread over the classes)
    per_class: int = 3  # images without --input: test examples per class in the grid
    max_classes: int = 10  # images: classes shown in the grid (the first ones in label order)
    repeats: int = 5  # permutation importance: shuffles per column
    steps: int = 50  # Integrated Gradients: integration steps
    samples: Optional[int] = None  # LIME: perturbed samples per instance (default 400 for tables, 300 for text)
    max_inputs: int = 200  # --input: at most this many instances explained one by one
    explain_class: Optional[str] = None  # explain this class's probability instead of the predicted class's
    seed: int = 0

    def check(self) -> None:
        for name in ("rows", "per_class", "max_classes", "repeats", "steps", "max_inputs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.samples is not None and self.samples < 10:
            raise ConfigError(f"--samples must be at least 10 (LIME fits a linear model on them), got {self.samples}")


def units_of(model, explained: Optional[str]) -> str:
    if "labels" in model.task.tags:
        which = f"class {explained!r}" if explained is not None else "the predicted class"
        return f"probability of {which}"
    return f"predicted {model.manifest['target']['name']} (its own units)"


TYPICAL_ROW = ("a typical row: numeric columns at their training mean (or the fill value data.clean chose), categorical "
               "columns at their most frequent level, no text")


def baseline_of(model, kind: str) -> str:
    """What the attributions are measured from, in words: the typical row of a table, else what the explained type
    says stands for "nothing there" (FeatureType.absent_description)."""
    if kind == COLUMNS:
        return TYPICAL_ROW
    ftype, _ = explained(model, kind)
    return ftype.absent_description or f"an absent {ftype.name} input"


@contextlib.contextmanager
def _progress(quiet: bool):
    """Rich progress on stderr; yields add(description, total) -> advance()."""
    if quiet:
        yield lambda description, total: (lambda: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as progress:
        def add(description: str, total: int) -> Callable[[], None]:
            task = progress.add_task(description, total=total)
            return lambda: progress.advance(task)

        yield add


def _spread(labels: np.ndarray, n: int) -> list[int]:
    """n row indices taking each class in turn (so a 3 %-positive table still shows positives)."""
    by_class = [list(np.flatnonzero(labels == c)) for c in pd.unique(labels)]
    by_class.sort(key=lambda idx: idx[0])
    picked: list[int] = []
    while len(picked) < n and any(by_class):
        for idx in by_class:
            if idx and len(picked) < n:
                picked.append(int(idx.pop(0)))
    return sorted(picked)


def _truths(model, frame: pd.DataFrame) -> Optional[list]:
    target = model.manifest["target"]["name"]
    if target not in frame.columns:
        return None
    return [None if pd.isna(v) else str(v) for v in frame[target]]


def _subset(arrays: dict, frame: pd.DataFrame, idx: list[int]) -> tuple[dict, pd.DataFrame]:
    return {k: v[idx] for k, v in arrays.items()}, frame.iloc[idx].reset_index(drop=True)


def _explained_index(model, explained: Optional[str]) -> Optional[int]:
    if explained is None:
        return None
    if "labels" not in model.task.tags:
        raise ConfigError("--class picks which class probability to explain; this run is a regression")
    labels = [str(v) for v in model.labels]
    if str(explained) not in labels:
        raise ConfigError(f"--class {explained!r} is not one of the model's classes {labels}")
    return labels.index(str(explained))


def explain(run: Union[str, Path], inputs=None, out: Optional[Union[str, Path]] = None,
            options: Optional[ExplainOptions] = None, say: Callable[[str], None] = lambda m: None,
            quiet: bool = True) -> dict:
    from forgeml.run import load, test_rows
    from forgeml.explain import inputs as inp

    opts = options or ExplainOptions()
    opts.check()
    model = load(run)  # a run without weights stops here with a clear message
    model.require_target("forgeml explain", or_tags=("scores",))
    if "scores" in model.task.tags:  # anomaly scores: each column's share of a row's score (explain/anomaly.py)
        from forgeml.explain.anomaly_run import explain_scores

        out_dir = Path(out) if out else model.run_dir / DEFAULT_DIR
        result = explain_scores(model, inputs, out_dir, opts, say)
        _write(result, out_dir, model.run_dir)
        result["out"] = str(out_dir)
        return result
    methods = choose(model.manifest, opts.method, inputs is not None)
    target_index = _explained_index(model, opts.explain_class)
    from forgeml.explain.attributions import captum_attr

    captum_attr()  # a missing [explain] extra is reported before any work

    if inputs is None:
        frame = test_rows(model)
        if frame is None:
            raise DataError(f"explain without --input uses the run's test split, but {model.manifest['data']['source']} "
                            "can no longer be read; give the rows to explain with --input FILE")
        arrays = model.preprocessor.transform(frame)
        where = f"test split of {model.manifest['data']['source']}"
    else:
        arrays, frame, where = inp.read_input(model, inputs)
    labelled_rows = None
    if "permutation" in methods:  # checked before any work: permutation needs the target column
        from forgeml.explain.permutation import labelled

        labelled_rows = labelled(model, frame, where)
    run_dir = model.run_dir
    out_dir = Path(out) if out else run_dir / DEFAULT_DIR
    kind = kind_of(model.manifest)
    say(f"[bold]explain[/] {run_dir} ({model.model_name}, {kind}): {', '.join(NAMES[m] for m in methods)} on {where}")

    result = {"run": run_dir.name, "model": model.model_name, "task": model.task.name, "kind": kind,
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data": where, "methods": methods,
              "units": units_of(model, opts.explain_class), "baseline": baseline_of(model, kind), "files": []}
    ctx = _Context(model, arrays, frame, inputs is not None, opts, out_dir, result, target_index, say, labelled_rows)
    with _progress(quiet) as add:
        ctx.add_progress = add
        {REGIONS: _images, TOKENS: _texts, COLUMNS: _tables}[kind](ctx, methods)
    _write(result, out_dir, run_dir)
    result["out"] = str(out_dir)
    return result


@dataclass
class _Context:
    model: object
    arrays: dict
    frame: pd.DataFrame
    has_input: bool
    opts: ExplainOptions
    out: Path
    result: dict
    target: Optional[int]
    say: Callable[[str], None]
    labelled: Optional[tuple] = None  # (rows, encoded targets) for permutation importance
    add_progress: Callable = None

    def local(self, arrays, frame, method):
        from forgeml.explain.local import explain_local

        n = len(next(iter(arrays.values())))
        advance = self.add_progress(f"{NAMES[method]} ({n} rows)", n) if method == "lime" and n > 1 else None
        return explain_local(self.model, arrays, frame, method, target=self.target, n_steps=self.opts.steps,
                             n_samples=self.opts.samples, seed=self.opts.seed, advance=advance)

    def picked(self, n: int) -> list[int]:
        total = len(self.frame) if len(self.frame) else len(next(iter(self.arrays.values())))
        if self.has_input:
            if total > self.opts.max_inputs:
                self.say(f"  explaining the first {self.opts.max_inputs} of {total} input rows "
                         "(forgeml.api.explain(..., max_inputs=N) for more)")
            return list(range(min(total, self.opts.max_inputs)))
        labels = None
        if "labels" in self.model.task.tags:
            labels = self.model.task.encode(self.frame[self.model.manifest["target"]["name"]])
        return _spread(labels, n) if labels is not None else list(range(min(n, total)))

    def file(self, name: str) -> Path:
        self.result["files"].append(name)
        return self.out / name


def _index_names(ctx: _Context, idx: list[int]) -> list[str]:
    return [f"{'input' if ctx.has_input else 'test'} row {i}" for i in idx]


# --------------------------------------------------------------------------------------------- tables
def _tables(ctx: _Context, methods: list[str]) -> None:
    from forgeml.explain import render
    from forgeml.explain.permutation import MAX_ROWS, permutation_importance

    model = ctx.model
    if "permutation" in methods:
        frame, y = ctx.labelled
        n = min(len(frame), MAX_ROWS)
        ctx.say(f"  permutation importance: {len(model.features)} columns x {ctx.opts.repeats} shuffles on {n} rows")
        advance = ctx.add_progress("permutation importance", len(model.features) * ctx.opts.repeats)
        perm = permutation_importance(model, frame, y, ctx.opts.repeats, ctx.opts.seed, advance)
        ctx.result["permutation"] = perm
        render.importance_plot(perm, ctx.file("permutation_importance.png"))
        render.write_csv([{k: f[k] for k in ("rank", "feature", "importance", "std")} for f in perm["features"]],
                         ["rank", "feature", "importance", "std"], ctx.file("permutation_importance.csv"))
    local = [m for m in methods if m in ("ig", "lime")]
    if not local:
        return
    idx = ctx.picked(ctx.opts.rows)
    arrays, frame = _subset(ctx.arrays, ctx.frame, idx)
    truths = _truths(model, frame)
    names = _index_names(ctx, idx)
    instances = []
    for method in local:
        ctx.say(f"  {NAMES[method]} on {len(idx)} row(s) ...")
        loc = ctx.local(arrays, frame, method)
        recs = _records(model, loc, idx, names, truths, suffix=f" [{NAMES[method]}]")
        instances += recs
        render.rows_plot(recs[:9], f"attribution ({ctx.result['units']})", ctx.file(f"rows_{method}.png"))
        feats = loc.features
        render.write_csv([{"row": r["index"], "prediction": r["prediction"], **r["attributions"]} for r in recs],
                         ["row", "prediction", *feats], ctx.file(f"attributions_{method}.csv"))
    ctx.result["instances"] = instances


def _records(model, loc, idx, names: list[str], truths, suffix: str = "") -> list[dict]:
    """One explanation record per picked row: its attributions, its true label when known, and a heading."""
    from forgeml.explain import render
    from forgeml.explain.local import record

    recs = []
    for k, i in enumerate(idx):
        rec = {"index": i, **record(model, loc, k)}
        if truths:
            rec["true"] = truths[k]
        rec["heading"] = render.heading(rec, names[k], truths[k] if truths else None) + suffix
        recs.append(rec)
    return recs


# --------------------------------------------------------------------------------------------- text
def _texts(ctx: _Context, methods: list[str]) -> None:
    from forgeml.explain import render

    model = ctx.model
    idx = ctx.picked(ctx.opts.rows)
    arrays, frame = _subset(ctx.arrays, ctx.frame, idx)
    truths = _truths(model, frame)
    names = _index_names(ctx, idx)
    instances = []
    for method in methods:
        ctx.say(f"  {NAMES[method]} on {len(idx)} text(s) ...")
        recs = _records(model, ctx.local(arrays, frame, method), idx, names, truths)
        note = (f"{NAMES[method]}: each token's contribution to the {ctx.result['units']}; green for it, red against it "
                "(hover a token for its value). Baseline: " + ctx.result["baseline"] + ".")
        artifacts.write_text(ctx.file(f"text_{method}.html"), render.text_html(recs, f"{model.run_dir.name}: {NAMES[method]}", note))
        instances += recs
    ctx.result["instances"] = instances


# --------------------------------------------------------------------------------------------- images
def _images(ctx: _Context, methods: list[str]) -> None:
    from forgeml.explain import render
    from forgeml.explain.attributions import region_key, unnormalize
    from forgeml.explain.local import record

    model = ctx.model
    labels = None
    if ctx.has_input:
        idx = ctx.picked(0)
        rows = None
    else:
        labels = model.task.encode(ctx.frame[model.manifest["target"]["name"]]) if "labels" in model.task.tags else None
        if labels is None:
            idx = list(range(min(len(ctx.frame), ctx.opts.per_class * ctx.opts.max_classes)))
            rows = [idx]
        else:
            classes = sorted(set(labels.tolist()))[: ctx.opts.max_classes]
            rows = [[int(i) for i in np.flatnonzero(labels == c)[: ctx.opts.per_class]] for c in classes]
            idx = [i for r in rows for i in r]  # class by class, as the grid shows them
    arrays, frame = _subset(ctx.arrays, ctx.frame, idx)
    truths = _truths(model, frame) if len(frame) == len(idx) else None
    names = _index_names(ctx, idx)
    heats, recs = {}, {}
    for method in methods:
        ctx.say(f"  {NAMES[method]} on {len(idx)} image(s) ...")
        loc = ctx.local(arrays, frame, method)
        heats[method] = loc.values
        for k, i in enumerate(idx):
            rec = record(model, loc, k)
            base = recs.setdefault(i, {"index": i, **{key: rec[key] for key in rec if key in
                                                         ("prediction", "explained", "probability", "probabilities")}})
            if truths:
                base["true"] = truths[k]
            base[method] = {key: rec[key] for key in ("peak", "size", "heatmap", "delta") if key in rec}
    images01 = unnormalize(model, arrays[region_key(model)])
    instances = [recs[i] for i in idx]
    for rec, name in zip(instances, names):
        rec["heading"] = render.heading(rec, name, rec.get("true"))
    if rows is not None:
        position = {i: k for k, i in enumerate(idx)}
        grid_rows = [[position[i] for i in r] for r in rows if r]
        row_labels = [f"true {instances[r[0]].get('true', '')}" for r in grid_rows]
        titles = [_short_title(rec) for rec in instances]
        render.image_grid(images01, heats, titles, grid_rows, row_labels, ctx.file("grid.png"))
    else:
        for k, rec in enumerate(instances[:50]):
            source = _source_name(ctx.frame, model, idx[k])
            rec["file"] = f"input_{idx[k]}.png"
            render.image_panels(images01[k], {m: h[k] for m, h in heats.items()},
                                f"{source}\n{_short_title(rec)}", ctx.file(rec["file"]))
    ctx.result["instances"] = instances


def _short_title(rec: dict) -> str:
    if "probability" in rec:
        p = rec["probabilities"][str(rec["prediction"])]
        truth = f"{rec['true']}→" if rec.get("true") is not None else ""
        return f"{truth}{rec['prediction']} ({p:.2f})"
    return f"{rec['prediction']:.4g}"


def _source_name(frame: pd.DataFrame, model, i: int) -> str:
    ftype, state = explained(model, REGIONS)
    col = ftype.explained_columns(state)[0][0]
    if col in frame.columns and isinstance(frame[col].iloc[i], str):
        return Path(frame[col].iloc[i]).name
    return f"input row {i}"


# --------------------------------------------------------------------------------------------- files
def _write(result: dict, out_dir: Path, run_dir: Path) -> None:
    """explanations.json, minus files of an earlier explain into the same folder that this one did not rewrite;
    the report is re-rendered when the explanations live in the run's own folder."""
    previous = out_dir / RESULT
    if previous.is_file():
        try:
            old = artifacts.read_json(previous).get("files", [])
        except ValueError:
            old = []
        for name in set(old) - set(result["files"]):
            if "/" not in name and "\\" not in name:
                (out_dir / name).unlink(missing_ok=True)
    result["files"].append(RESULT)
    artifacts.write_json(previous, result)
    if out_dir.resolve() == (run_dir / DEFAULT_DIR).resolve() and (run_dir / "metrics.json").is_file():
        from forgeml.evaluate.report import rerender, write_section
        from forgeml.explain.render import report_section

        write_section(run_dir, "80-explanations", report_section(result, out_dir))
        rerender(run_dir)
