"""Attributions per table column (Integrated Gradients through the MLP's input layer, LIME for any model) and what
they are measured from: the typical row, the training spread. Images and text are in forgeml.explain.attributions."""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from forgeml.errors import ConfigError
from forgeml.explain.attributions import captum_attr, chunks, forward_for, seeded, tensors, torch_forward
from forgeml.explain.methods import REGIONS
from forgeml.features import present


def column_types(model) -> list[tuple]:
    """(type, state) of the run's inputs explained per column, in input order (heat-map inputs are not)."""
    return [(t, s) for t, s in present(model.preprocessor.state) if t.explains_as != REGIONS]


def table_groups(model) -> tuple[list[str], dict[str, np.ndarray]]:
    """Raw feature names (in the features' order; a type may group its columns, FeatureType.explained_columns), and
    for each encoded input the group (feature) index of each of its columns (FeatureType.input_owners)."""
    named: dict[str, str] = {}  # raw column -> the name its attributions are reported under
    for ftype, state in column_types(model):
        named.update({c: name for name, columns in ftype.explained_columns(state) for c in columns})
    names: list[str] = []
    for f in model.manifest["features"]:
        if f["name"] in named and named[f["name"]] not in names:
            names.append(named[f["name"]])
    index = {n: i for i, n in enumerate(names)}
    by_length = sorted(names, key=len, reverse=True)

    def owner(column: str) -> int:  # an encoded column belongs to the raw feature it is named after (age_missing -> age)
        if column in index:
            return index[column]
        return index[next(n for n in by_length if column.startswith(n))]

    groups: dict[str, np.ndarray] = {}
    for ftype, state in column_types(model):
        for key, owners in ftype.input_owners(state).items():
            groups[key] = np.array([owner(c) for c in owners], dtype=np.int64)
    return names, groups


def typical_row(model):
    """The reference row: each column at its type's typical value (FeatureType.typical_values: numerics at the value
    a missing entry gets, the training mean by default or the median/mode/constant data.clean chose; categoricals at
    their most frequent training level; text empty). As a raw one-row DataFrame, so the run's own preprocessing
    (clipping, scaling, indicators) encodes it."""
    import pandas as pd

    row: dict = {}
    for ftype, state in column_types(model):
        row.update(ftype.typical_values(state))
    return pd.DataFrame([row])


def table_baseline(model) -> dict[str, np.ndarray]:
    """The typical row, encoded: Integrated Gradients' reference and LIME's "switched off" centre."""
    return model.preprocessor.transform(typical_row(model))


def _mlp_layout(net, groups: dict[str, np.ndarray]) -> np.ndarray:
    """The group of each input position of the MLP's first Linear layer (the network's input_layout)."""
    if not (hasattr(net, "net") and hasattr(net, "input_layout")):
        raise ConfigError("Integrated Gradients for tables knows forgeml's MLP layout; use --method lime for this model")
    parts = [np.full(width, groups[key][0 if column is None else column]) for key, column, width in net.input_layout()]
    return np.concatenate(parts)


def ig_table(model, arrays: dict, targets: np.ndarray, n_steps: int = 50, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Integrated Gradients from the typical row, taken at the input of the MLP's first layer (numerics, embedding
    vectors, text vector), summed per raw column: [N, features], deltas [N]."""
    ca = captum_attr()
    names, groups = table_groups(model)
    keys = list(arrays)
    net = model.estimator
    layout = _mlp_layout(net, groups)
    lig = ca.LayerIntegratedGradients(torch_forward(model, keys), net.net[0])
    base = table_baseline(model)
    out, deltas = [], []
    for s in chunks(len(next(iter(arrays.values()))), chunk):
        x = tensors({k: v[s] for k, v in arrays.items()}, keys)
        b = tuple(torch.from_numpy(base[k]).expand_as(t).contiguous() for k, t in zip(keys, x))
        attr, delta = lig.attribute(x, baselines=b, target=torch.from_numpy(targets[s]), n_steps=n_steps,
                                    attribute_to_layer_input=True, return_convergence_delta=True)
        attr = attr[0] if isinstance(attr, (tuple, list)) else attr
        per = np.zeros((attr.shape[0], len(names)))
        np.add.at(per.T, layout, attr.detach().numpy().T.astype(np.float64))
        out.append(per)
        deltas.append(delta.detach().numpy())
    return np.concatenate(out), np.concatenate(deltas).astype(np.float64)


def lime_table(model, arrays: dict, targets: np.ndarray, n_samples: int = 400, seed: int = 0,
               advance: Optional[Callable[[], None]] = None) -> np.ndarray:
    """LIME as it works on tables (Ribeiro et al.'s tabular explainer): each sample switches a random set of columns
    off, and a switched-off column takes a random value from the training distribution, as its type draws it
    (FeatureType.switched_off: numerics ~ normal around the typical value with the training spread; categoricals a
    random known level; text empty, the typical row's). A weighted linear fit of the output on the on/off pattern
    gives one coefficient per raw column: [N, features].

    Random replacements rather than one reference value: a single "typical row" can sit on the same side of a tree's
    split as the row itself, and then the deciding column looks irrelevant. Works for any model (LightGBM included):
    it only calls the model's forward on perturbed rows."""
    ca = captum_attr()
    from captum._utils.models.linear_model import SkLearnLinearRegression

    names, groups = table_groups(model)
    keys = list(arrays)
    forward = forward_for(model, keys)
    typed = {key: (t, s) for t, s in column_types(model) for key in t.model_inputs(s)}  # model input -> its type
    owners = [torch.from_numpy(groups[k] if len(groups[k]) == arrays[k].shape[1] else np.full(arrays[k].shape[1], groups[k][0]))
              for k in keys]
    width2 = 0.75 ** 2 * len(names)  # LIME's default kernel width, 0.75 * sqrt(features), on the on/off distance
    centre = {k: torch.from_numpy(v) for k, v in table_baseline(model).items()}

    def perturb(original, **kwargs):
        return torch.bernoulli(torch.full((1, len(names)), 0.5)).long()

    def replace(sample, original, **kwargs):
        out = []
        for k, x, owner in zip(keys, original, owners):
            keep = sample[0][owner].bool().unsqueeze(0)
            ftype, state = typed[k]
            other = ftype.switched_off(state, k, centre[k], x)
            out.append(torch.where(keep, x, other))
        return tuple(out)

    def similarity(original, perturbed, interpretable, **kwargs):
        return math.exp(-float((1 - interpretable).sum()) / width2)

    lime = ca.LimeBase(forward, SkLearnLinearRegression(), similarity_func=similarity, perturb_func=perturb,
                       perturb_interpretable_space=True, from_interp_rep_transform=replace, to_interp_rep_transform=None)
    out = np.zeros((len(next(iter(arrays.values()))), len(names)))
    for i in range(len(out)):
        x = tensors({k: v[i:i + 1] for k, v in arrays.items()}, keys)
        coef = seeded(seed + i, lambda: lime.attribute(x, target=int(targets[i]), n_samples=n_samples,
                                                        perturbations_per_eval=min(100, n_samples)))
        out[i] = coef.reshape(-1).detach().numpy()
        if advance:
            advance()
    return out
