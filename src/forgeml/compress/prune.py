"""Structured pruning: physically remove CNN channels or MLP hidden neurons, then fine-tune briefly to recover.

Why torch-pruning rather than torch.nn.utils.prune: the latter only masks weights to zero, so every tensor keeps its
shape and the model gets neither smaller nor faster. torch-pruning removes the channels, and through its dependency
graph also the matching slices of every coupled layer (the next layer's inputs, BatchNorm/LayerNorm, both sides of a
residual addition), so the result is a genuinely narrower network: fewer parameters, fewer FLOPs, real speed-up.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from forgeml.errors import ConfigError

def prunable() -> list[str]:
    """The learners whose channels/neurons can be removed (tag ``prunable``)."""
    from forgeml.core import LEARNERS

    return LEARNERS.tagged("prunable")


def _check(model_name: str, ratio: float) -> None:
    if model_name not in prunable():
        raise ConfigError(f"pruning supports the models {', '.join(prunable())}; {model_name!r} is not one of them")
    if not 0 < ratio < 1:  # also rejects NaN
        raise ConfigError(f"pruning ratio must be strictly between 0 and 1 (e.g. 0.5 removes half the channels), got {ratio}")


def _width(layer: nn.Module) -> int:
    return layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features


def _kept(width: int, ratio: float) -> int:
    return max(1, int(width * (1 - ratio) + 0.5))  # round half up, never below one channel


def prune(model: nn.Module, model_name: str, ratio: float, example: dict[str, torch.Tensor]) -> nn.Module:
    """Remove `ratio` of every Conv2d's output channels (cnn) or every hidden Linear's neurons (mlp), uniformly per
    layer, lowest L2 magnitude first; inputs and the output layer's outputs are kept. Returns a pruned copy in eval
    mode on CPU (`model` itself is left untouched)."""
    import torch_pruning as tp

    _check(model_name, ratio)
    model = copy.deepcopy(model).cpu().eval()
    example = {k: v.cpu() for k, v in example.items()}
    output = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    # torch-pruning has no EmbeddingBag handler and would treat its weight as a loose parameter: declare and freeze it
    bags = [m.weight for m in model.modules() if isinstance(m, nn.EmbeddingBag)]
    ignored = [output, *(m for m in model.modules() if isinstance(m, nn.Embedding)), *bags]
    roots = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not output]
    # torch-pruning keeps int(width * (1 - r)) channels: a floor, and float error can make it drop one more
    # (10 * (1 - 0.8) = 1.9999...). Asking it for the rounded target plus half a channel keeps exactly that target.
    ratios = {m: 1 - (_kept(_width(m), ratio) + 0.5) / _width(m) for m in roots}
    with torch.enable_grad():  # the dependency graph is traced through autograd; callers may be under no_grad
        pruner = tp.pruner.BasePruner(
            model, example, importance=tp.importance.GroupMagnitudeImportance(p=2), global_pruning=False,
            pruning_ratio=ratio, pruning_ratio_dict=ratios, ignored_layers=ignored, unwrapped_parameters=[(w, 1) for w in bags],
            forward_fn=lambda m, x: m(x),  # our models take the batch dict as one argument, not as **kwargs
        )
        pruner.step()
    return model.eval()


def pruned_params(model_name: str, params, model: nn.Module):
    """A copy of `params` with the pruned widths (the learner's ``widths`` hook: cnn channels, mlp hidden) if
    ``get_model(model_name).build(new_params, shapes, out_dim)`` builds exactly `model` (same state_dict keys and
    shapes); else None."""
    from forgeml.models import get_model

    read_widths = getattr(get_model(model_name), "widths", None)
    if read_widths is None:
        return None
    try:
        widths, shapes = read_widths(params, model)
        out_dim = [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
        new = type(params).model_validate({**params.model_dump(), **widths})
        rebuilt = get_model(model_name).build(new, shapes, out_dim)
    except (AttributeError, IndexError, TypeError, ValueError):  # not the registered architecture
        return None
    ours, theirs = model.state_dict(), rebuilt.state_dict()
    if ours.keys() != theirs.keys() or any(ours[k].shape != theirs[k].shape for k in ours):
        return None
    return new


def fine_tune(model, task, data, train_cfg, epochs: int, lr_scale: float = 0.2, progress=None):
    """A short recovery fine-tune on the training split, validated on the validation split; the best epoch by
    val_loss is kept. `data` is a forgeml.tasks.supervised.Prepared. Returns fit's FitResult."""
    from forgeml.train.loop import fit

    if epochs < 1 or not lr_scale > 0:
        raise ConfigError(f"fine-tuning needs epochs >= 1 and lr_scale > 0, got epochs={epochs}, lr_scale={lr_scale}")
    cfg = train_cfg.model_copy(update={"epochs": epochs, "lr": train_cfg.lr * lr_scale, "warmup": 0.0, "early_stopping": None})
    return fit(model, task, data.enc["train"], data.y["train"], data.enc["val"], data.y["val"], cfg, progress=progress)
