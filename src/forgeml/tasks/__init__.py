"""Tasks: how a target is encoded, which loss trains it, how outputs become predictions and metrics.

Add one by writing a module with a ``Task`` subclass decorated with ``@register_task("name")``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

TASKS: dict[str, type["Task"]] = {}


def register_task(name: str):
    def deco(cls):
        cls.name = name
        TASKS[name] = cls
        return cls

    return deco


class Task:
    name: str
    primary_metric: str  # used to choose between candidate models on validation

    def __init__(self, state: dict[str, Any]):
        self.state = state

    @classmethod
    def fit(cls, y: pd.Series) -> "Task":
        raise NotImplementedError

    def encode(self, y: pd.Series) -> np.ndarray:
        raise NotImplementedError

    @property
    def out_dim(self) -> int:
        raise NotImplementedError

    def loss(self, out, y):
        raise NotImplementedError

    def outputs(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Raw model outputs (logits or standardized values) to {'pred': encoded predictions, 'proba'?: ...}."""
        raise NotImplementedError

    def decode(self, pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def metrics(self, y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        raise NotImplementedError

    def quick_metrics(self, y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        """Cheap metrics computed every epoch (the full suite runs once, at the end)."""
        raise NotImplementedError


def make_task(name: str, state: dict) -> Task:
    _load_builtin()
    return TASKS[name](state)


def fit_task(name: str, y: pd.Series) -> Task:
    _load_builtin()
    return TASKS[name].fit(y)


def _load_builtin():
    from forgeml.tasks import classification, regression  # noqa: F401  (registers)


LOWER_IS_BETTER = {"loss", "log_loss", "ece", "mae", "rmse", "mse"}


def better(metric: str, a: float, b: float, min_delta: float = 0.0) -> bool:
    """Is a better than b for this metric (by more than min_delta)?"""
    name = metric.removeprefix("val_").removeprefix("test_")
    if name in LOWER_IS_BETTER:
        return a < b - min_delta
    return a > b + min_delta
