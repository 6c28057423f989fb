"""The Captum glue: attributions of one model output to the inputs a person knows.

What is explained: for classification the predicted probability of the explained class (by default the predicted
class), for regression the prediction in the target's own units. Integrated Gradients and LIME attributions are in
those units (IG's sum over the inputs equals output(x) - output(baseline), Captum reports the gap as `delta`).
Grad-CAM follows the paper (gradient-weighted activations of the last convolutional stage, ReLU, upsampled, scaled to
[0, 1] per image) with one change: it explains the class's logit minus the mean of the other classes' logits rather
than the bare logit, so the map shows evidence for the class against the others.

Baselines ("feature absent"): for heat-maps what the type says (FeatureType.absent_input: a black image); for tokens
padding; for tables a typical row (FeatureType.typical_values: every numeric column at the value a missing entry
would get, the training mean unless data.clean says otherwise, every categorical column at its most frequent training
level, no text).

Tables are reported per raw column: a categorical column's attribution is the sum over its embedding dimensions, the
text columns of a table model are one group (their mean word embedding), a missing-value indicator counts for its
column. Text models are reported per token, images per pixel.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from forgeml.errors import ConfigError, require
from forgeml.explain.methods import REGIONS, TOKENS, differentiable, explained


def captum_attr():
    return require("captum.attr", "explain", "forgeml explain")


# --------------------------------------------------------------------------------------------- the explained output
def _units(model) -> Callable[[torch.Tensor], torch.Tensor]:
    if "labels" in model.task.tags:
        return lambda out: torch.softmax(out.float(), dim=-1)
    scale = float(model.task.state["std"])  # the target was standardized; attributions in its own units
    return lambda out: out.float() * scale


def network(model):
    """The trained model as a torch module: the network itself, or what a ``gradients`` learner offers."""
    return model.estimator if "torch" in model.learner.tags else model.learner.network(model.estimator)


def torch_forward(model, keys: list[str], contrast: bool = False) -> Callable:
    net, units = network(model), _units(model)

    def forward(*tensors):
        out = net(dict(zip(keys, tensors)))
        if contrast and "labels" in model.task.tags and out.shape[-1] > 1:
            out = out.float()  # each class's logit minus the mean of the others' (log-odds for two classes)
            return out - (out.sum(dim=-1, keepdim=True) - out) / (out.shape[-1] - 1)
        return units(out)

    return forward


def _lightgbm_forward(model, keys: list[str]) -> Callable:
    """A learner with its own raw outputs (LightGBM, tfidf_linear), as a function of tensors."""
    units = _units(model)

    def forward(*tensors):
        arrays = {k: t.detach().cpu().numpy() for k, t in zip(keys, tensors)}  # below: a regression's [N] -> [N, 1]
        return units(torch.from_numpy(model.learner.raw(model.estimator, arrays, model.task)).reshape(len(tensors[0]), -1))

    return forward


def has_gradients(model) -> bool:
    """Whether the model's outputs have gradients (explain.methods.differentiable)."""
    return differentiable(model.learner.tags)


def forward_for(model, keys: list[str]) -> Callable:
    return torch_forward(model, keys) if has_gradients(model) else _lightgbm_forward(model, keys)


def tensors(arrays: dict[str, np.ndarray], keys: list[str]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(arrays[k])) for k in keys)


def predict(model, arrays: dict[str, np.ndarray], batch: int = 256) -> np.ndarray:
    """The explained outputs [N, classes] (probabilities) or [N, 1] (target units, without the mean)."""
    keys = list(arrays)
    forward = forward_for(model, keys)
    n = len(next(iter(arrays.values())))
    outs = []
    with torch.no_grad():
        for i in range(0, n, batch):
            outs.append(forward(*tensors({k: v[i:i + batch] for k, v in arrays.items()}, keys)).numpy())
    return np.concatenate(outs).astype(np.float64)


def targets_for(model, outputs: np.ndarray, target: Optional[int] = None) -> np.ndarray:
    """Which output to explain per row: the predicted class (or the given class index); 0 for regression."""
    if "labels" not in model.task.tags:
        return np.zeros(len(outputs), dtype=np.int64)
    if target is not None:
        return np.full(len(outputs), target, dtype=np.int64)
    return outputs.argmax(axis=1).astype(np.int64)


def chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


# --------------------------------------------------------------------------------------------- regions (images)
def region_key(model) -> str:
    """The model input a heat-map is drawn over (the first input of the type explained as regions)."""
    ftype, state = explained(model, REGIONS)
    return ftype.model_inputs(state)[0]


def _last_conv_stage(net: torch.nn.Module) -> torch.nn.Module:
    """The CNN's last convolutional stage: its last residual block, else the last Conv2d."""
    blocks = getattr(net, "blocks", None)
    if isinstance(blocks, torch.nn.Sequential) and len(blocks):
        return blocks[-1]
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ConfigError("Grad-CAM needs a convolutional layer; this model has none")
    return convs[-1]


def gradcam(model, image: np.ndarray, targets: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Grad-CAM heat-maps [N, H, W] (>= 0), upsampled bilinearly from the last stage to the input size."""
    ca = captum_attr()
    net = model.estimator
    # the class's logit against the others', not the bare logit: what all classes' logits share cancels out of the map
    # (with a global-average-pooling head, a bare logit's map can light up the evidence for the *other* class); unlike
    # the log-probability, its gradient does not vanish when the model is very sure
    layer_gc = ca.LayerGradCam(torch_forward(model, [region_key(model)], contrast=True), _last_conv_stage(net))
    maps = []
    for s in chunks(len(image), chunk):
        x = torch.from_numpy(np.ascontiguousarray(image[s]))
        cam = layer_gc.attribute(x, target=torch.from_numpy(targets[s]), relu_attributions=True)
        up = ca.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
        maps.append(up[:, 0].detach().numpy())
    maps = np.concatenate(maps).astype(np.float64)
    top = maps.reshape(len(maps), -1).max(axis=1)
    return maps / np.where(top > 0, top, 1.0)[:, None, None]  # Grad-CAM's scale means nothing: 1 = the hottest spot


def absent_region(model) -> torch.Tensor:
    """What the type says means "nothing there" (a black image), in the model's normalized space."""
    ftype, state = explained(model, REGIONS)
    return torch.from_numpy(np.ascontiguousarray(ftype.absent_input(state)[region_key(model)]))


def ig_image(model, image: np.ndarray, targets: np.ndarray, n_steps: int = 32, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Integrated Gradients from the absent input (a black image): per-pixel attributions [N, H, W] (summed over
    channels), deltas [N]."""
    ca = captum_attr()
    ig = ca.IntegratedGradients(torch_forward(model, [region_key(model)]))
    base = absent_region(model)
    maps, deltas = [], []
    for s in chunks(len(image), chunk):
        x = torch.from_numpy(np.ascontiguousarray(image[s]))
        attr, delta = ig.attribute(x, baselines=base.expand_as(x), target=torch.from_numpy(targets[s]), n_steps=n_steps,
                                   internal_batch_size=chunk * 8, return_convergence_delta=True)
        maps.append(attr.sum(dim=1).detach().numpy())
        deltas.append(delta.detach().numpy())
    return np.concatenate(maps).astype(np.float64), np.concatenate(deltas).astype(np.float64)


def unnormalize(model, image: np.ndarray) -> np.ndarray:
    """Model-space inputs back to [0, 1] pictures [N, C, H, W] for display (FeatureType.displayable)."""
    ftype, state = explained(model, REGIONS)
    return ftype.displayable(state, image)


# --------------------------------------------------------------------------------------------- tokens (text)
def token_key(model) -> str:
    """The model input holding the token ids (the first input of the type explained per token)."""
    ftype, state = explained(model, TOKENS)
    return ftype.model_inputs(state)[0]


def word_positions(model, arrays: dict) -> np.ndarray:
    """[N, L] True where a real token (not padding, not [CLS]/[SEP]) sits (FeatureType.token_positions)."""
    ftype, state = explained(model, TOKENS)
    return ftype.token_positions(state, arrays)


def _text_embedding(net: torch.nn.Module) -> torch.nn.Module:
    if hasattr(net, "embed"):  # forgeml's BiLSTM / transformer text models
        return net.embed
    if hasattr(net, "encoder") and hasattr(net.encoder, "embeddings"):  # MiniLM
        return net.encoder.embeddings.word_embeddings
    raise ConfigError("Integrated Gradients for text needs the model's word embedding layer; this model has none")


def _text_inputs(model, arrays: dict, s: slice):
    key = token_key(model)
    ids = torch.from_numpy(arrays[key][s])
    extra = tuple(torch.from_numpy(arrays[k][s]) for k in arrays if k != key)
    base = torch.where(torch.from_numpy(word_positions(model, {k: v[s] for k, v in arrays.items()})), 0, ids)
    return key, ids, extra, base


def ig_tokens(model, arrays: dict, targets: np.ndarray, n_steps: int = 50, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Integrated Gradients on the word embeddings, from empty text: per-token attributions [N, L], deltas [N]."""
    ca = captum_attr()
    key = token_key(model)
    keys = [key, *[k for k in arrays if k != key]]
    lig = ca.LayerIntegratedGradients(torch_forward(model, keys), _text_embedding(model.estimator))
    out, deltas = [], []
    n = len(arrays[key])
    for s in chunks(n, chunk):
        _, ids, extra, base = _text_inputs(model, arrays, s)
        attr, delta = lig.attribute(ids, baselines=base, target=torch.from_numpy(targets[s]), n_steps=n_steps,
                                    additional_forward_args=extra or None, internal_batch_size=chunk * 10,
                                    return_convergence_delta=True)
        out.append(attr.sum(dim=-1).detach().numpy())
        deltas.append(delta.detach().numpy())
    return np.concatenate(out).astype(np.float64) * word_positions(model, arrays), np.concatenate(deltas).astype(np.float64)


def _lime(forward, n_features: int):
    ca = captum_attr()
    from captum._utils.models.linear_model import SkLearnLinearRegression

    width2 = 0.75 ** 2 * max(1, n_features)  # LIME's default kernel width, 0.75 * sqrt(features)

    def similarity(original, perturbed, interpretable, **kwargs):
        switched_off = float((1 - interpretable).sum())
        return math.exp(-switched_off / width2)

    return ca.Lime(forward, interpretable_model=SkLearnLinearRegression(), similarity_func=similarity)


def seeded(seed: int, fn: Callable):
    """Run fn with torch's RNG seeded (LIME samples with it), leaving the caller's RNG state as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return fn()


def lime_tokens(model, arrays: dict, targets: np.ndarray, n_samples: int = 300, seed: int = 0,
                advance: Optional[Callable[[], None]] = None) -> np.ndarray:
    """LIME with words switched off (replaced by padding): per-token attributions [N, L]."""
    key = token_key(model)
    keys = [key, *[k for k in arrays if k != key]]
    forward = forward_for(model, keys)
    real = word_positions(model, arrays)
    out = np.zeros(arrays[key].shape, dtype=np.float64)
    for i in range(len(out)):
        n_words = int(real[i].sum())
        if n_words == 0:
            if advance:
                advance()
            continue
        _, ids, extra, base = _text_inputs(model, arrays, slice(i, i + 1))
        mask = torch.full_like(ids, n_words)  # padding and special tokens: one group that never changes
        mask[0, torch.from_numpy(real[i])] = torch.arange(n_words)
        lime = _lime(forward, n_words)
        coef = seeded(seed + i, lambda: lime.attribute(
            ids, baselines=base, target=int(targets[i]), additional_forward_args=extra or None, feature_mask=mask,
            n_samples=n_samples, perturbations_per_eval=min(64, n_samples), return_input_shape=False))
        out[i, real[i]] = coef[0, :n_words].detach().numpy()
        if advance:
            advance()
    return out
