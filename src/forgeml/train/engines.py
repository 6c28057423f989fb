"""Engines: how forgeml's loop draws batches and wraps the optimizer. Without one, the loop trains locally (shuffled
batches, one process); an engine such as DP-SGD (forgeml.privacy.dp, registered as ``dp-sgd``) replaces the batches
and makes the optimizer private. Engines register here; the loop and the pipeline never import them by name."""
from __future__ import annotations

from typing import Optional

from forgeml.core import ENGINES


def engine_for(train_cfg, rows: int, models: int = 1) -> Optional[object]:
    """The engine a training config asks for (``train.privacy`` -> DP-SGD), built for ``rows`` training rows and one
    of ``models`` models trained on those rows (DP-SGD gives each an equal share of the budget)."""
    if train_cfg.privacy is not None:
        return ENGINES.get("dp-sgd")(train_cfg, rows, models)
    return None


def trains_with(learner, train_cfg) -> bool:
    """Can this learner be trained under the config's engine? (DP-SGD needs a learner tagged ``dp``.)"""
    return train_cfg.privacy is None or "dp" in learner.tags
