"""Learners: the model families forgeml trains, each registered by its own module in ``LEARNERS``.

A torch network registers a builder with the feature types it accepts and its tags:

    class MLPParams(Strict):                      # its parameters, beside it: config's model: {name: mlp, ...}
        name: Literal["mlp"] = "mlp"
        hidden: list[int] = [256, 128]

    @register_model("mlp", supports={"numeric", "categorical", "text"}, params=MLPParams, tags={"prunable", "quantize:static"})
    def build(params, shapes, out_dim) -> nn.Module: ...

``shapes`` comes from Preprocessor.input_shapes(); networks take the dict of input tensors it produces. A learner
that is not a torch network (LightGBM, IsolationForest...) subclasses ``core.Learner`` and registers itself.

Tags the code asks for (never a learner's name):
- ``torch``: a torch network trained by forgeml's loop (weights in model.safetensors); without it, the learner saves
  its own files and trains with its own ``fit``;
- ``pretrained``: the builder takes ``pretrained=`` (False when a run's own weights are loaded);
- ``dp``: DP-SGD can train it; ``sample_weights``: it takes per-row weights (class weights for trees);
- ``prunable``: channels/neurons can be removed (forgeml.compress.prune); ``quantize:static`` / ``quantize:dynamic``:
  the int8 methods it supports (the first listed is the default); ``distill``: it can be a distillation student;
  ``vocabulary``: its network's ``keep_vocabulary(arrays)`` cuts a pretrained embedding table to the token ids the
  data uses and returns the rows kept (the params key ``kept_vocabulary``), or None when there is nothing to cut;
- ``dp_default`` / ``dp_candidate``: what ``model: auto`` trains under train.privacy (the default alone; with
  privacy.select the candidates too);
- ``detector`` / ``clusterer``: the anomaly / clustering families train it; ``onehot``: it takes one float matrix with
  categoricals one-hot (forgeml.models.detectors.detector_matrix), which its exported graph builds the same way.
- ``reports_rounds``: its ``fit`` takes ``on_epoch=`` and reports its validation loss every few boosting rounds as a
  network reports epochs (forgeml tune prunes on it);
- ``ensemble_member``: the table ensemble may train it (forgeml.models.ensemble); ``ensemble``: the learner model auto
  trains on tables under presets medium and best; ``narrates``: its ``fit`` takes ``say=`` to print its steps.

A fitted model whose training saw the validation rows (the bagged ensemble) carries its out-of-fold outputs on them as
``validation_raw``; the pipeline chooses and sets thresholds on those instead of its in-fold outputs.
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np

from forgeml.core import LEARNERS, Learner
from forgeml.errors import ConfigError


class TorchLearner(Learner):
    """A torch network trained by forgeml's loop."""

    def __init__(self, name: str, accepts: set[str], build: Callable, tags: set[str], params: type,
                 text_tokenizer: Union[str, Callable] = "words", widths: Optional[Callable] = None):
        self.name, self.accepts, self.build, self.Params = name, frozenset(accepts), build, params
        self.tags = frozenset({"torch", "dp", *tags})
        self.text_tokenizer = text_tokenizer
        self.widths = widths  # prunable networks: (params, network) -> (its widths as params, the shapes it was built on)

    def tokenizer_for(self, params) -> str:
        """The text tokenizer this network's inputs need ("words" or "minilm")."""
        return self.text_tokenizer(params) if callable(self.text_tokenizer) else self.text_tokenizer

    def raw(self, model, arrays: dict, task=None) -> np.ndarray:
        from forgeml.models.inference import predict_raw

        return predict_raw(model, arrays, device=next(model.parameters()).device)


def register_model(name: str, supports: set[str], params: type, text_tokenizer: Union[str, Callable] = "words",
                   tags: set[str] = frozenset(), widths: Optional[Callable] = None):
    """Register a torch network's builder (see the module docstring). ``params``: its parameter class, beside it in
    its module (config's ``model:`` section validates against it). ``widths`` reads a (pruned) network's layer
    widths back into its parameters, so that compress can rebuild it from params (forgeml.compress.prune)."""

    def deco(fn):
        LEARNERS.add(name, TorchLearner(name, supports, fn, set(tags), params, text_tokenizer, widths))
        return fn

    return deco


def get_model(name: str) -> Learner:
    try:
        return LEARNERS.get(name)
    except KeyError as exc:
        raise ConfigError(f"model: {exc}") from None


def learner_facts(model: dict) -> tuple[frozenset, frozenset]:
    """(tags, accepted feature types) of a run's learner (its manifest's ``model``): as training recorded them, so a
    server answers without importing the learner's module (torch); a run from before that, from the registry."""
    if "tags" in model and "accepts" in model:
        return frozenset(model["tags"]), frozenset(model["accepts"])
    learner = get_model(model["name"])
    return learner.tags, learner.accepts


def supported_types(name: str) -> frozenset[str]:
    return get_model(name).accepts


def raw_outputs(estimator, name: str, arrays: dict, task) -> np.ndarray:
    """A trained learner's raw outputs (logits or standardized values) on encoded inputs."""
    return get_model(name).raw(estimator, arrays, task)


def resolve_auto(feature_types: set[str], privacy=None, presets: str = "fast") -> list[str]:
    """Candidate models for `model: auto`, from the feature types present and the presets (tables: ``fast`` trains
    mlp and lightgbm, the others the weighted ensemble, forgeml.models.ensemble). Under ``privacy`` (train.privacy): the
    learner tagged ``dp_default`` (a linear model: under DP-SGD, few parameters keep their accuracy), alone; with
    ``privacy.select`` also those tagged ``dp_candidate`` and the usual networks that DP-SGD can train. Data none of
    them takes (text) gets the usual networks."""
    usual = _usual(feature_types)
    if privacy is None:
        tables = LEARNERS.tagged("ensemble")
        if presets != "fast" and usual == ["mlp", "lightgbm"] and tables:
            return tables[:1]
        return usual
    takes = lambda tag: [n for n in LEARNERS.tagged(tag) if feature_types <= LEARNERS.get(n).accepts]  # noqa: E731
    trainable = [n for n in usual if "dp" in LEARNERS.get(n).tags]
    if not takes("dp_default"):
        return trainable
    if not privacy.select:
        return takes("dp_default")
    return takes("dp_default") + takes("dp_candidate") + [n for n in trainable if n not in takes("dp_default")]


def _usual(feature_types: set[str]) -> list[str]:
    if feature_types == {"image"}:  # the CNN and a linear model on the pixels (images' baseline): the better is kept
        return ["cnn", "pixels_linear"]
    if "image" in feature_types:
        return ["cnn"]
    if feature_types == {"text"}:  # the network and TF-IDF + a linear model (text's baseline): the better is kept
        return ["text", "tfidf_linear"]
    if "text" in feature_types:  # the MLP and LightGBM on the columns + a TF-IDF of the text (their baseline)
        return ["mlp", "lightgbm_tfidf"]
    return ["mlp", "lightgbm"]


def check_supports(name: str, features) -> None:
    allowed = supported_types(name)
    bad = [f for f in features if f.type not in allowed]
    if bad:
        f = bad[0]
        raise ConfigError(
            f"model {name!r} accepts {', '.join(sorted(allowed))} features, but {f.name!r} is {f.type}; "
            f"choose another model (e.g. model: auto) or set data.features.{f.name}: ignore"
        )


def rebuild_layers(model, layers: list[dict]):
    """Repeat, on a freshly built network, the layer replacements a run's training made (model.dp_fixed in the
    manifest: e.g. BatchNorm -> GroupNorm for DP-SGD), so its saved weights load. Uses Opacus' own fixers."""
    from forgeml.errors import RunError, require

    fixers = require("opacus", "privacy", "a run trained with DP-SGD").validators.ModuleValidator.FIXERS
    for r in layers:
        parent, _, child = r["layer"].rpartition(".")
        holder = model.get_submodule(parent)
        new = fixers[type(getattr(holder, child))](getattr(holder, child))
        if type(new).__name__ != r["to"]:
            raise RunError(f"this run's layer {r['layer']} was trained as {r['to']}, but this Opacus makes it "
                           f"{type(new).__name__}; load it with the Opacus version it was trained with")
        setattr(holder, child, new)
    return model
