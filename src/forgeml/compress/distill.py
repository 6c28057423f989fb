"""Knowledge distillation: train a small student to imitate a trained teacher (Hinton, Vinyals & Dean, 2015).

A one-hot label says only which class is right. A teacher's logits also say how wrong the other classes are: this
tweet reads 70/30, that one 99/1. Dividing the logits by a temperature T > 1 before the softmax brings those
relative probabilities out ("dark knowledge"), and a student that matches them gets far more signal per row than the
labels give, so a much smaller model gets close to the teacher's accuracy. The loss mixes both targets:

    classification: alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y)
    regression:     alpha * MSE(student, teacher) + (1 - alpha) * MSE(student, y)

(T^2 keeps the soft term's gradients on the scale of the hard term's as T changes.) Only outputs are shared, so the
student gets its own preprocessing fitted on the same training rows: a word-vocabulary BiLSTM can learn from a MiniLM
teacher that read subword tokens, or from LightGBM. Validation and early stopping use the hard labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ValidationError

from forgeml.config import params_class
from forgeml.errors import ConfigError, DataError
from forgeml.train.loop import FitResult, fit

# Small versions of each torch model: a student is meant to be cheaper than its teacher. A dict student overrides these.
DEFAULT_STUDENTS: dict[str, dict[str, Any]] = {
    "text": {"name": "text", "encoder": "bilstm", "embedding_dim": 64, "hidden": 64, "layers": 1},
    "mlp": {"name": "mlp", "hidden": [64], "text_dim": 32},
    "cnn": {"name": "cnn", "channels": [16, 32], "blocks_per_stage": 1},
}


@dataclass
class Distilled:
    model: torch.nn.Module
    preprocessor: Any  # the student's own Preprocessor
    params: BaseModel
    fit: FitResult
    student: str
    rows: int = 0  # the training rows it learned from (the transfer set)


def parse_student(spec: str) -> dict:
    """``text`` or ``text:embeddings=minilm,hidden=128`` (values read as YAML: numbers, words, [16, 32] lists)."""
    import re

    import yaml

    name, _, rest = spec.partition(":")
    out: dict[str, Any] = {"name": name.strip()}
    for item in filter(None, re.split(r",(?![^\[]*\])", rest)):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"student {spec!r}: options are key=value pairs, e.g. text:embeddings=minilm,hidden=128")
        out[key.strip()] = yaml.safe_load(value)
    return out


def student_params(student: Union[str, dict], task, features) -> BaseModel:
    """The student's model parameters: a model name (its small defaults) or a dict such as {"name": "text", "hidden": 32}.

    Every student handles both tasks, so ``task`` does not change the defaults today; it is part of the signature so
    task-dependent students need no change at the call sites."""
    from forgeml.models import check_supports, supported_types

    overrides = parse_student(student) if isinstance(student, str) else dict(student)
    name = overrides.get("name")
    types = {f.type for f in features}
    fitting = ", ".join(n for n in DEFAULT_STUDENTS if types <= supported_types(n)) or "none"
    if name not in DEFAULT_STUDENTS:
        raise ConfigError(f"unknown student {name!r}; students: {', '.join(DEFAULT_STUDENTS)} (for this data: {fitting})")
    try:
        check_supports(name, features)
    except ConfigError as exc:
        raise ConfigError(f"cannot distil into student {name!r}: {exc}; students that fit this data: {fitting}") from None
    try:
        return params_class(name).model_validate({**DEFAULT_STUDENTS[name], **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid {name} student parameters ({problems}); allowed keys: "
                          f"{', '.join(params_class(name).model_fields)}") from None


TEMPERATURES, ALPHAS = (1.0, 2.0, 4.0, 8.0), (0.5, 0.7, 0.9)  # compress --tune-distill's grid


def search_grid(temperature: float, alpha: float) -> list[tuple[float, float]]:
    """The (T, alpha) pairs --tune-distill trains, the given pair among them: T from 1 to 8 (how much of the teacher's
    ranking of the wrong classes shows), alpha from 0.5 to 0.9 (how much the teacher weighs against the labels)."""
    temperatures = sorted({*TEMPERATURES, float(temperature)})
    alphas = sorted({*ALPHAS, float(alpha)} - {0.0})  # alpha 0 is the labels-only ablation, trained anyway
    return [(t, a) for t in temperatures for a in alphas]


def validation_score(result: "Distilled", task) -> dict:
    """What a student scored on the validation split at its kept epoch: accuracy for classes, the loss otherwise."""
    kept = result.fit.history[result.fit.best_epoch] if result.fit.best_epoch >= 0 else result.fit.history[-1]
    if "labels" in task.tags and "val_accuracy" in kept:
        return {"metric": "val_accuracy", "score": float(kept["val_accuracy"]), "higher_is_better": True}
    return {"metric": "val_loss", "score": float(kept["val_loss"]), "higher_is_better": False}


def distillation_loss(task, temperature: float, alpha: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss on packed targets: column 0 the hard (encoded) label, NaN for an unlabelled transfer row; the
    rest the teacher's raw outputs."""

    def loss(out: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        out, y, teacher = out.float(), packed[:, 0], packed[:, 1:]
        labelled = ~torch.isnan(y)  # unlabelled transfer rows (forgeml.compress.transfer) learn the teacher alone
        target = y.long() if "labels" in task.tags else y
        hard = task.loss(out[labelled], target[labelled]) if labelled.any() else out.sum() * 0
        if "labels" in task.tags:
            t = temperature
            soft = F.kl_div(F.log_softmax(out / t, dim=1), F.log_softmax(teacher / t, dim=1),
                            reduction="batchmean", log_target=True) * (t * t)
        else:
            soft = F.mse_loss(out.squeeze(-1), teacher.squeeze(-1))
        return alpha * soft + (1 - alpha) * hard

    return loss


def distill(teacher_train_raw: np.ndarray, splits, student: Union[str, dict], data_cfg, train_cfg,
            temperature: float = 4.0, alpha: float = 0.7, epochs: int | None = None, progress=None,
            transfer: Optional[tuple] = None) -> Distilled:
    """Train ``student`` on ``splits`` (a forgeml.tasks.supervised.Splits) against the teacher's raw outputs on its training rows
    (logits or standardized values, in ``splits.raw['train']`` order), early-stopping on the validation labels.

    ``transfer``: optional extra training rows (rows DataFrame, encoded labels, teacher raw outputs), e.g. augmented
    copies of the training texts; the student's preprocessing is still fitted on the original training rows."""
    from forgeml.features.preprocess import Preprocessor
    from forgeml.models import get_model

    if not temperature > 0:
        raise ConfigError(f"distillation temperature must be > 0, got {temperature}")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"distillation alpha (weight of the teacher's targets) must be in [0, 1], got {alpha}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    task = splits.task
    params = student_params(student, task, splits.features)

    y = splits.y["train"]
    soft = np.asarray(teacher_train_raw, dtype=np.float32)
    if soft.ndim == 1 and task.out_dim == 1:
        soft = soft[:, None]
    if soft.shape != (len(y), task.out_dim):
        raise DataError(f"teacher outputs have shape {soft.shape}, expected ({len(y)}, {task.out_dim}): one row per training "
                        f"row and {task.out_dim} {'logits' if 'labels' in task.tags else 'value'} for this {task.name} task")
    if not np.isfinite(soft).all():
        raise DataError("teacher outputs contain NaN or infinite values")

    spec = get_model(params.name)
    pre = Preprocessor.fit(splits.raw["train"], splits.features, data_cfg, text_tokenizer=spec.tokenizer_for(params))
    rows = splits.raw["train"]
    if transfer is not None:
        extra_rows, extra_y, extra_soft = transfer
        extra_soft = np.asarray(extra_soft, dtype=np.float32).reshape(len(extra_rows), -1)
        if alpha == 0:  # on the labels alone, unlabelled rows teach nothing: the ablation trains without them
            keep = ~np.isnan(np.asarray(extra_y, dtype=np.float64))
            extra_rows, extra_y, extra_soft = extra_rows[keep].reset_index(drop=True), np.asarray(extra_y)[keep], extra_soft[keep]
        rows = pd.concat([rows, extra_rows], ignore_index=True)
        y, soft = np.concatenate([y, extra_y]), np.concatenate([soft, extra_soft])
    train, val = pre.transform(rows), pre.transform(splits.raw["val"])
    packed = np.concatenate([y.astype(np.float32)[:, None], soft], axis=1)
    cfg = train_cfg if epochs is None else train_cfg.model_copy(update={"epochs": epochs})
    torch.manual_seed(cfg.seed)
    model = spec.build(params, pre.input_shapes(), task.out_dim)
    if "vocabulary" in spec.tags:  # a pretrained table cut to the token ids of the transfer set (the rest read [UNK])
        kept = model.keep_vocabulary(train)
        if kept is not None:
            params = params.model_copy(update={"kept_vocabulary": kept})
    result = fit(model, task, train, packed, val, splits.y["val"], cfg, progress=progress,
                 loss=distillation_loss(task, temperature, alpha))
    return Distilled(model, pre, params, result, params.name, len(rows))
