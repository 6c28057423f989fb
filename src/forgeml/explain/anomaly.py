"""Each feature's share of a row's anomaly score (runs whose task carries the ``scores`` tag).

Two definitions, both reported per raw input a person knows (a table column, an image pixel):

- ``reconstruction`` (learners tagged ``reconstruction``: the autoencoder). The score is the mean squared
  reconstruction error over the D encoded inputs. A column's **contribution** is its squared error divided by D: a
  categorical column's one-hot block is summed, a missing-value indicator counts for its column, an image's channels
  are summed per pixel. A row's contributions add up to its score exactly.
- ``permutation`` (every detector): per-row, conditional occlusion. For a row x and a column j, take the R rows of
  the run's training split (the rows the detector learned "normal" from) nearest to x in all the *other* columns
  (Euclidean distance on the encoded inputs: standardized numerics, 1 per differing categorical level, pixels).
  Column j of x alone is replaced by each of their values, the detector scores the R altered rows, and the
  contribution is ``score(x) - mean_k score(x with column j from neighbour k)``: how much the score drops when that
  one column takes a value that rows like x have. Drawing from rows like x, not from all rows, keeps the altered
  rows close to the data when columns are correlated (the idea of conditional permutation importance, Strobl et al.
  2008). On the biopsies of docs/anomaly.md (LOF, 30 correlated measurements), replacing a column by values of
  random training rows mostly made rows *more* anomalous: negative shares made up 0.71 of the six most anomalous
  test rows' shares, against 0.45 with the R = 20 nearest rows. Images are
  occluded in square patches (one pixel up to 16 x 16 images, 2 x 2 up to 32 x 32, ...), each pixel of a patch
  getting an equal part of the patch's contribution. Deterministic: nothing is drawn at random.

**Shares**: a row's contributions divided by the sum of their absolute values, so that the absolute shares of every
row add up to 1 and rows and detectors can be compared. For ``reconstruction`` every contribution is >= 0, so the
shares are plain fractions of the score. A negative ``permutation`` share means the column's value makes the row look
*more* normal than the values similar rows have.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:  # annotations only: the server asks which methods apply without importing pandas
    import pandas as pd

from forgeml.errors import ConfigError

METHODS = ("reconstruction", "permutation")
NAMES = {"reconstruction": "reconstruction error per column", "permutation": "per-row permutation"}
UNITS = "share of the row's anomaly score (the absolute shares of a row add up to 1)"
MAX_REFERENCE = 2000  # reference rows kept from the training split (a seeded sample beyond that)
MAX_CELLS_SIDE = 16  # permutation on images: at most 16 x 16 patches
CHUNK = 4096  # rows scored at once


def is_scores_run(manifest: dict) -> bool:
    """Does this run's task give anomaly scores (the ``scores`` tag)?"""
    from forgeml.tasks import task_tags

    return "scores" in task_tags(manifest["task"])


def applicable(manifest: dict) -> tuple[str, ...]:
    from forgeml.models import learner_facts

    tags = learner_facts(manifest["model"])[0]
    return METHODS if "reconstruction" in tags else ("permutation",)


def methods_for(manifest: dict, method: Optional[str]) -> list[str]:
    """The methods to run on an anomaly run: the given one, checked, or the default (reconstruction where the
    detector rebuilds its input, else permutation)."""
    ok = applicable(manifest)
    if method is None:
        return [ok[0]]
    if not isinstance(method, str):
        raise ConfigError(f"the explain method must be a string: {' or '.join(ok)}")
    name = method.strip().lower()
    if name in ok:
        return [name]
    from forgeml.explain.methods import METHODS as SUPERVISED

    if name not in (*METHODS, *SUPERVISED):
        raise ConfigError(f"unknown explain method {name!r}; an anomaly run ({manifest['model']['name']}) takes "
                          f"{' or '.join(ok)}")
    model = manifest["model"]["name"]
    why = ("it needs a detector that rebuilds its input (the autoencoder)" if name == "reconstruction" else
           "gradients and class probabilities explain supervised models; an anomaly run is explained by each "
           "column's share of the score")
    raise ConfigError(f"method {name!r} does not apply to this anomaly run ({model}): {why}. Use {' or '.join(ok)}")


# --------------------------------------------------------------------------------------------- the units
@dataclass
class Units:
    """What a row's contributions are reported for: the table columns, then the image's cells (patches of
    ``patch`` x ``patch`` pixels, row-major)."""

    names: list[str]
    # per table input (numeric, categorical codes, date parts), the unit of each of its encoded columns (a
    # missing-value indicator or a date part: its raw column), in the feature types' order
    table: dict[str, np.ndarray]
    image: Optional[tuple[int, int, int]]  # (C, H, W)
    patch: int = 1

    @property
    def n_table(self) -> int:
        return len(self.names) - self.n_cells

    @property
    def grid(self) -> tuple[int, int]:
        if self.image is None:
            return 0, 0
        return math.ceil(self.image[1] / self.patch), math.ceil(self.image[2] / self.patch)

    @property
    def n_cells(self) -> int:
        rows, cols = self.grid
        return rows * cols

    def cell(self, c: int) -> tuple[slice, slice]:
        cols = self.grid[1]
        r0, c0 = (c // cols) * self.patch, (c % cols) * self.patch
        return slice(r0, r0 + self.patch), slice(c0, c0 + self.patch)

    def heat(self, values: np.ndarray) -> np.ndarray:
        """[n_cells] per-cell values -> [H, W] per pixel, each pixel an equal part of its cell's value."""
        _, h, w = self.image
        out = np.zeros((h, w), dtype=np.float64)
        for c in range(self.n_cells):
            rows, cols = self.cell(c)
            block = out[rows, cols]
            out[rows, cols] = values[c] / block.size
        return out


def units_for(model, patch: int = 1) -> Units:
    from forgeml.explain.tables import table_groups

    names, groups = table_groups(model)
    shapes = model.preprocessor.input_shapes()
    image = tuple(int(s) for s in shapes["image"]) if shapes.get("image") else None
    units = Units(list(names), {key: owners for key, owners in groups.items() if len(owners)}, image, patch)
    units.names += [f"pixel {units.cell(c)[0].start},{units.cell(c)[1].start}" for c in range(units.n_cells)]
    return units


def permutation_patch(model) -> int:
    shape = model.preprocessor.input_shapes().get("image")
    return max(1, math.ceil(max(shape[1:]) / MAX_CELLS_SIDE)) if shape else 1


# --------------------------------------------------------------------------------------------- scores
def scores(model, arrays: dict) -> np.ndarray:
    """The run's anomaly score per row (higher = more anomalous), float64 [N]."""
    n = len(next(iter(arrays.values())))
    out = [model.task.outputs(model.learner.raw(model.estimator, {k: v[i:i + CHUNK] for k, v in arrays.items()},
                                                model.task))["score"] for i in range(0, n, CHUNK)]
    return np.concatenate(out) if out else np.zeros(0)


@dataclass
class Shares:
    method: str
    units: Units
    scores: np.ndarray  # [N]
    contributions: np.ndarray  # [N, units], in score units
    reference: str  # what the contributions are measured against

    @property
    def shares(self) -> np.ndarray:
        total = np.abs(self.contributions).sum(axis=1, keepdims=True)
        return np.divide(self.contributions, total, out=np.zeros_like(self.contributions), where=total > 0)


def reconstruction(model, arrays: dict) -> Shares:
    """Each column's squared reconstruction error / D (see the module doc); rows add up to the score."""
    import torch

    net = model.estimator
    device = next(net.parameters()).device
    n = len(next(iter(arrays.values())))
    parts = []
    with torch.no_grad():
        for i in range(0, n, CHUNK):
            batch = {k: torch.from_numpy(np.ascontiguousarray(v[i:i + CHUNK])).to(device) for k, v in arrays.items()}
            parts.append(net.score_parts(batch).double().cpu().numpy())
    parts = np.concatenate(parts)
    units = units_for(model, patch=1)
    out = np.zeros((n, len(units.names)))
    start = 0
    for owners in units.table.values():  # FlatInputs.per_column: numerics, categoricals, pixels
        np.add.at(out.T, owners, parts[:, start:start + len(owners)].T)
        start += len(owners)
    out[:, units.n_table:] = parts[:, start:]
    return Shares("reconstruction", units, scores(model, arrays), out,
                  "a perfect reconstruction (every column's squared error at 0)")


def permutation(model, arrays: dict, reference: dict, neighbours: int = 20,
                reference_name: str = "reference rows") -> Shares:
    """Per-row occlusion: each column (image patch) replaced by its value in the ``neighbours`` reference rows
    nearest to the row in the other columns (see the module doc)."""
    units = units_for(model, permutation_patch(model))
    n = len(next(iter(arrays.values())))
    k = min(neighbours, len(next(iter(reference.values()))))
    base = scores(model, arrays)
    out = np.zeros((n, len(units.names)))
    u = len(units.names)
    for i in range(n):
        dist = unit_distances(units, {key: v[i:i + 1] for key, v in arrays.items()}, reference)
        near = np.argsort(dist.sum(axis=1, keepdims=True) - dist, axis=0, kind="stable")[:k]  # [k, units]
        batch = {key: np.repeat(v[i:i + 1], u * k, axis=0) for key, v in arrays.items()}
        for j in range(u):
            rows = slice(j * k, (j + 1) * k)
            refs = {key: v[near[:, j]] for key, v in reference.items()}
            if j < units.n_table:
                for key, owners in units.table.items():
                    if (cols := np.flatnonzero(owners == j)).size:
                        batch[key][rows, cols] = refs[key][:, cols]
            else:
                r, c = units.cell(j - units.n_table)
                batch["image"][rows, :, r, c] = refs["image"][:, :, r, c]
        out[i] = base[i] - scores(model, batch).reshape(u, k).mean(axis=1)
    what = "column" if units.n_table else ("pixel" if units.patch == 1 else f"{units.patch}x{units.patch} patch")
    if len(next(iter(reference.values()))) == 1:
        return Shares("permutation", units, base, out, f"each {what}'s value in {reference_name}")
    return Shares("permutation", units, base, out, f"each {what}'s values in the {k} of the {reference_name} nearest "
                  f"to the row in the other {what}s")


def unit_distances(units: Units, row: dict, reference: dict) -> np.ndarray:
    """[n_ref, units]: each unit's part of the squared distance between one row and each reference row, on the
    encoded inputs (standardized numerics and date parts; a categorical column counts 1 where the levels differ, as
    any integer code does; pixels)."""
    n_ref = len(next(iter(reference.values())))
    out = np.zeros((n_ref, len(units.names)))
    for key, owners in units.table.items():
        if np.issubdtype(np.asarray(reference[key]).dtype, np.integer):  # codes: equal or not
            diff = (reference[key] != row[key]).astype(np.float64)
        else:
            diff = np.nan_to_num((np.asarray(reference[key], dtype=np.float64) - row[key]) ** 2)
        np.add.at(out.T, owners, diff.T)
    if units.image is not None:
        diff = ((np.asarray(reference["image"], dtype=np.float64) - row["image"]) ** 2).sum(axis=1)  # [n_ref, H, W]
        for c in range(units.n_cells):
            r, q = units.cell(c)
            out[:, units.n_table + c] = diff[:, r, q].reshape(n_ref, -1).sum(axis=1)
    return out


def explain_rows(model, arrays: dict, method: str, reference: Optional[tuple[dict, str]] = None,
                 neighbours: int = 20, seed: int = 0) -> Shares:
    if method == "reconstruction":
        return reconstruction(model, arrays)
    ref, name = reference if reference is not None else reference_arrays(model, None, seed)
    return permutation(model, arrays, ref, neighbours, name)


# --------------------------------------------------------------------------------------------- the reference rows
def reference_arrays(model, train: Optional[pd.DataFrame], seed: int = 0) -> tuple[dict, str]:
    """The encoded reference rows for permutation: the training split (at most MAX_REFERENCE rows, a seeded sample),
    or, when it cannot be read, the typical row (numerics at their training mean or fill value, categoricals at
    their most frequent level, images at the mean training pixel)."""
    if train is not None and len(train):
        if len(train) > MAX_REFERENCE:
            keep = np.sort(np.random.default_rng(seed).permutation(len(train))[:MAX_REFERENCE])
            train = train.iloc[keep].reset_index(drop=True)
        return model.preprocessor.transform(train), f"{len(train)} rows of the training split"
    from forgeml.explain.tables import table_baseline

    shapes = model.preprocessor.input_shapes()
    ref = table_baseline(model) if (shapes["numeric"] or shapes["categorical"] or shapes.get("datetime")) else {}
    if shapes.get("image"):
        ref["image"] = np.zeros((1, *shapes["image"]), dtype=np.float32)  # normalized pixels: 0 is the training mean
    return ref, "the typical row (the training data could not be read)"


# --------------------------------------------------------------------------------------------- records
def record(model, sh: Shares, k: int, values: Optional[dict] = None, digits: int = 6) -> dict:
    """Row k of an explanation as JSON-able data: score, flag, shares (and contributions) per column, or a heat-map
    of shares per pixel."""
    threshold = model.task.state.get("threshold")
    score = float(sh.scores[k])
    rec = {"method": sh.method, "score": round(score, digits) + 0.0,
           "is_anomaly": bool(threshold is not None and score >= threshold)}
    shares, contrib, units = sh.shares[k], sh.contributions[k], sh.units
    t = units.n_table
    if t:
        rec["attributions"] = {n: round(float(v), digits) + 0.0 for n, v in zip(units.names[:t], shares[:t])}
        rec["contributions"] = {n: round(float(v), digits) + 0.0 for n, v in zip(units.names[:t], contrib[:t])}
        rec["top"] = [units.names[j] for j in np.argsort(-np.abs(shares[:t]), kind="stable")[:5]]
    if units.image is not None:
        heat = units.heat(shares[t:])
        peak = np.unravel_index(int(np.argmax(np.abs(heat))), heat.shape)
        rec["image_share"] = round(float(shares[t:].sum()), digits) + 0.0
        rec["peak"] = [int(peak[0]), int(peak[1])]
        rec["size"] = list(heat.shape)
        rec["heatmap"] = (np.round(heat, digits) + 0.0).tolist()
    if values is not None:
        from forgeml.explain.local import json_value

        rec["values"] = {c: json_value(v) for c, v in values.items()}
    return rec


def table_values(model, frame: pd.DataFrame) -> Optional[list[dict]]:
    cols = [c for c in model.features if c in frame.columns and model.preprocessor.state.get("image", {}).get("column") != c]
    return frame[cols].to_dict(orient="records") if cols else None
