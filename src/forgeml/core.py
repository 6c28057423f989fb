"""The interfaces every task family plugs into, and their registries.

- **Task** (supervised, anomaly, ...): how its data is split and prepared, what one training step computes, how raw
  outputs become predictions, how it is evaluated, which baseline stands beside it.
- **Learner** (a torch network trained by our loop, LightGBM, IsolationForest, ...): fit, raw outputs, save/load
  without pickle, export of its core to ONNX.
- **Engine** (DP-SGD, ...): how the loop's batches are drawn and its optimizer wrapped; without one the loop trains
  locally.

Feature types (numeric, categorical, text, image) are not an interface yet: their switch still lives in
forgeml.data.preprocess, forgeml.export.onnx and forgeml.data.records (docs/architecture.md, "What is left").

Capabilities are **tags** on the implementations (``"prunable" in learner.tags``), never checks on their names. This
module imports nothing else from forgeml, so every package may depend on it.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """A name that no implementation registered (the message lists those that did)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> implementation, filled by a decorator in the implementation's own module. ``builtin`` names the modules
    that register the built-in implementations; they are imported on first lookup (plugins import their own)."""

    def __init__(self, kind: str, builtin: Iterable[str] = ()):
        self.kind = kind
        self.builtin = tuple(builtin)
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, **attrs: Any) -> Callable[[T], T]:
        """``@REGISTRY.register("name", tags={...})``: sets ``name`` (and the given attributes) on the class."""

        def deco(obj: T) -> T:
            obj.name = name
            for key, value in attrs.items():
                setattr(obj, key, frozenset(value) if isinstance(value, (set, frozenset)) else value)
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        """Register an instance (the decorator registers classes)."""
        self._items[name] = obj
        return obj

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.builtin:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise UnknownName(f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._items))}")
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._items.items())

    def tagged(self, tag: str) -> list[str]:
        """The names of the implementations that carry ``tag``."""
        return [name for name, obj in self.items() if tag in getattr(obj, "tags", ())]


# The registries. Each lists the modules that register the built-in implementations (imported on first lookup);
# a plugin registers itself by importing the registry and decorating its class.
TASKS: Registry = Registry("task", builtin=(
    "forgeml.tasks.classification", "forgeml.tasks.regression", "forgeml.tasks.anomaly"))
LEARNERS: Registry = Registry("model", builtin=(
    "forgeml.models.mlp", "forgeml.models.cnn", "forgeml.models.text", "forgeml.models.minilm", "forgeml.models.gbdt",
    "forgeml.models.detectors", "forgeml.models.autoencoder", "forgeml.models.deep_svdd"))
ENGINES: Registry = Registry("engine", builtin=("forgeml.privacy.dp",))


# --------------------------------------------------------------------------------------------- metric direction
LOWER_IS_BETTER = {"loss", "log_loss", "ece", "mae", "rmse", "mse", "mape", "smape", "mase", "fpr"}


def better(metric: str, a: float, b: float, min_delta: float = 0.0) -> bool:
    """Is a better than b for this metric (by more than min_delta)? ``val_``/``test_`` prefixes are ignored."""
    name = metric.removeprefix("val_").removeprefix("test_")
    if name in LOWER_IS_BETTER:
        return a < b - min_delta
    return a > b + min_delta


# --------------------------------------------------------------------------------------------- the interfaces
class Task:
    """One task family. ``state`` is what the task fitted on the training split (labels, target scale, threshold...);
    it is JSON and goes into the manifest, so a loaded run rebuilds the task as ``Task(state)``."""

    name: str
    tags: frozenset = frozenset()
    primary_metric: str  # chooses between candidate learners on validation
    needs_target: bool = True

    def __init__(self, state: dict[str, Any]):
        self.state = state

    def step(self, model, batch: dict) -> Iterator[tuple[str, Any]]:
        """What one training step computes: ``(optimizer_name, loss)`` pairs (one for most tasks, two for a GAN).
        The loop backpropagates each loss and steps that optimizer before asking for the next pair."""
        raise NotImplementedError

    def parameter_groups(self, model) -> dict[str, Any]:
        """Optimizer name -> the module it trains (the loop builds one optimizer and schedule per entry)."""
        return {"model": model}

    def validation_loss(self, raw, y) -> float:
        """The loss on validation outputs (raw network outputs as numpy), logged as val_loss every epoch."""
        raise NotImplementedError

    def outputs(self, raw) -> dict[str, Any]:
        """Raw model outputs -> predictions (``pred`` and task-specific keys such as ``proba`` or ``score``)."""
        raise NotImplementedError

    def metrics(self, y, outputs: dict) -> dict[str, Any]:
        raise NotImplementedError

    def summary_keys(self) -> list[str]:
        """The metrics shown in tables and stored in the manifest's summary."""
        raise NotImplementedError


class Learner:
    """A model family. Tags say what it supports (``torch``, ``prunable``, ``quantizable``, ``dp``, ``distillable``...)
    and which feature types it accepts (``accepts``)."""

    name: str
    tags: frozenset = frozenset()
    accepts: frozenset = frozenset()


class Engine:
    """How the loop trains when it does not train locally (forgeml.train.loop.fit(..., privacy=engine)): ``attach``
    wraps the optimizer once and says how many steps an epoch has, ``batches`` draws one epoch's row indices, and
    the state goes into each checkpoint so a resumed run continues it."""

    name: str
    tags: frozenset = frozenset()

    def attach(self, model, optimizer, rows: int, batch_size: int, epochs: int) -> tuple[Any, int]:
        raise NotImplementedError

    def batches(self) -> Iterator:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError
