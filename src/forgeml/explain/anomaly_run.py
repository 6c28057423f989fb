"""`forgeml explain RUN` on an anomaly run: each column's share of the score of the most anomalous test rows (or of
every --input row), written as files beside the other explanations (see forgeml.explain.anomaly for the definitions).

Files per method M: ``shares_M.csv`` (one row per explained row: its score, flag, true label when known, and one
column per feature), ``rows_M.png`` (per-row bar charts), ``mean_share_M.png`` (the mean share per feature over the
explained rows); for images ``grid_M.png`` (each row's image beside the heat-map of its pixels' shares).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from forgeml.errors import ConfigError, DataError
from forgeml.explain import anomaly as an
from forgeml.explain.methods import COLUMNS, REGIONS

NEIGHBOURS = 20  # permutation: reference rows per column (--samples)


def _check(opts) -> None:
    if opts.explain_class is not None:
        raise ConfigError("--class picks which class probability to explain; an anomaly run gives scores, not classes")


def _rows(model, inputs, opts, methods: list[str]):
    """(encoded rows, their DataFrame, their indices, description, the training rows or None)."""
    from forgeml.explain import inputs as inp
    from forgeml.run import split_rows

    splits = None
    if inputs is None:
        splits = split_rows(model)
        if splits is None:
            raise DataError(f"explain without --input uses the run's test split, but {model.manifest['data']['source']} "
                            "can no longer be read; give the rows to explain with --input FILE")
        frame = splits["test"]
        arrays = model.preprocessor.transform(frame)
        order = np.argsort(-an.scores(model, arrays), kind="stable")
        idx = [int(i) for i in order[: opts.rows]]
        where = f"test split of {model.manifest['data']['source']} (the {len(idx)} highest scores of {len(frame)} rows)"
    else:
        arrays, frame, where = inp.read_input(model, inputs)
        n = len(next(iter(arrays.values())))
        idx = list(range(min(n, opts.max_inputs)))
        if "permutation" in methods:
            splits = split_rows(model)
    arrays = {k: v[idx] for k, v in arrays.items()}
    frame = frame.iloc[idx].reset_index(drop=True) if len(frame) else frame
    train = splits["train"] if splits is not None else None
    return arrays, frame, idx, where, train


def _truths(model, frame: pd.DataFrame) -> Optional[list]:
    label = model.manifest["target"].get("name")
    if not label or label not in frame.columns:
        return None
    return [None if pd.isna(v) else str(v) for v in frame[label]]


def heading(rec: dict, where: str, truth: Optional[str]) -> str:
    flag = "anomaly" if rec["is_anomaly"] else "normal"
    return f"{where}: score {rec['score']:.4g} ({flag})" + (f", true {truth}" if truth is not None else "")


def explain_scores(model, inputs, out: Path, opts, say: Callable[[str], None] = lambda m: None) -> dict:
    """Explain an anomaly run; returns the dict written to explanations.json (the caller writes it)."""
    _check(opts)
    methods = an.methods_for(model.manifest, opts.method)
    arrays, frame, idx, where, train = _rows(model, inputs, opts, methods)
    image = bool(model.preprocessor.input_shapes().get("image"))  # a heat-map per row besides (or instead of) columns
    kind = REGIONS if image else COLUMNS  # the explanations' kind, as forgeml.explain.methods.kind_of names them
    neighbours = opts.samples or NEIGHBOURS
    reference = an.reference_arrays(model, train, opts.seed) if "permutation" in methods else None
    say(f"[bold]explain[/] {model.run_dir} ({model.model_name}, anomaly scores): "
        f"{', '.join(an.NAMES[m] for m in methods)} on {len(idx)} row(s) of {where}")
    truths = _truths(model, frame)
    values = an.table_values(model, frame) if len(frame) == len(idx) else None
    names = [f"{'input' if inputs is not None else 'test'} row {i}" for i in idx]
    result = {"run": model.run_dir.name, "model": model.model_name, "task": model.task.name, "kind": kind,
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data": where, "methods": methods,
              "units": an.UNITS, "threshold": model.task.state.get("threshold"), "shares": {}, "files": []}
    instances = []
    for method in methods:
        sh = an.explain_rows(model, arrays, method, reference, neighbours, opts.seed)
        result["baseline"] = sh.reference
        recs = []
        for k, i in enumerate(idx):
            rec = {"index": i, **an.record(model, sh, k, values[k] if values else None)}
            if truths:
                rec["true"] = truths[k]
            rec["heading"] = heading(rec, names[k], truths[k] if truths else None)
            recs.append(rec)
        instances += recs
        summary = {"reference": sh.reference, "neighbours": neighbours if method == "permutation" else None,
                   "rows": len(recs), "mean_shares": _mean_shares(sh)}
        result["shares"][method] = summary
        _files(model, method, recs, summary, arrays, image, result, out)
    result["instances"] = instances
    return result


def _mean_shares(sh: an.Shares) -> dict:
    """The mean share per table column over the explained rows, largest first (image-only runs: none)."""
    t = sh.units.n_table
    shares = sh.shares
    mean = {n: float(shares[:, j].mean()) for j, n in enumerate(sh.units.names[:t])} if len(shares) else {}
    if t and sh.units.image is not None and len(shares):  # a table beside an image: the pixels as one entry
        mean["image (all pixels)"] = float(shares[:, t:].sum(axis=1).mean())
    return {k: round(v, 6) + 0.0 for k, v in sorted(mean.items(), key=lambda kv: -abs(kv[1]))}


def _files(model, method: str, recs: list[dict], summary: dict, arrays: dict, image: bool, result: dict,
           out: Path) -> None:
    from forgeml.explain import anomaly_render as ar
    from forgeml.explain import render

    def file(name: str) -> Path:
        result["files"].append(name)
        return out / name

    table = list(recs[0].get("attributions", {})) if recs else []
    rows = []
    for r in recs:
        row = {"row": r["index"], "score": r["score"], "is_anomaly": r["is_anomaly"], "true": r.get("true")}
        if image:
            row |= {"image_share": r["image_share"], "peak_row": r["peak"][0], "peak_col": r["peak"][1]}
        rows.append(row | r.get("attributions", {}))
    columns = ["row", "score", "is_anomaly", *(["true"] if any("true" in r for r in recs) else []),
               *(["image_share", "peak_row", "peak_col"] if image else []), *table]
    render.write_csv(rows, columns, file(f"shares_{method}.csv"))
    if not recs:
        return
    if image:
        from forgeml.explain.attributions import unnormalize

        images01 = unnormalize(model, arrays["image"])
        ar.image_grid(images01, [np.asarray(r["heatmap"]) for r in recs], [r["heading"] for r in recs],
                      an.NAMES[method], file(f"grid_{method}.png"))
    if table:
        render.rows_plot(recs[:9], f"share of the row's anomaly score ({an.NAMES[method]})", file(f"rows_{method}.png"))
        ar.mean_share_plot(summary["mean_shares"], f"{an.NAMES[method]}: mean share over the {len(recs)} explained rows",
                           file(f"mean_share_{method}.png"))
