"""The four interfaces every task family plugs into, and their registries.

- **Task** (supervised, anomaly, ...): how its data is split and prepared, what one training step computes, how raw
  outputs become predictions, how it is evaluated, which baseline stands beside it, what its requests look like.
- **FeatureType** (numeric, categorical, text, image, ...): detection, fitting, encoding, the ONNX preprocessing,
  the request field. The switch on feature type exists once: in the feature-type modules.
- **Learner** (a torch network trained by our loop, LightGBM, IsolationForest, ...): fit, raw outputs, save/load
  without pickle, export of its core to ONNX.
- **Engine** (local, DP-SGD, ...): how batches are drawn, how the model and optimizers are wrapped.

Capabilities are **tags** on the implementations (``"prunable" in learner.tags``), never checks on their names. This
module imports nothing else from forgeml, so every package may depend on it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Iterator, Optional, TypeVar

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


def has_tag(obj: Any, tag: str) -> bool:
    return tag in getattr(obj, "tags", ())


# --------------------------------------------------------------------------------------------- metric direction
LOWER_IS_BETTER = {"loss", "log_loss", "ece", "mae", "rmse", "mse", "mape", "smape", "mase", "fpr"}


def better(metric: str, a: float, b: float, min_delta: float = 0.0) -> bool:
    """Is a better than b for this metric (by more than min_delta)? ``val_``/``test_`` prefixes are ignored."""
    name = metric.removeprefix("val_").removeprefix("test_")
    if name in LOWER_IS_BETTER:
        return a < b - min_delta
    return a > b + min_delta


# --------------------------------------------------------------------------------------------- the interfaces
@dataclass
class Signature:
    """What a served model takes and answers: request fields (name -> JSON type), response fields, ONNX names."""

    inputs: dict[str, str]
    outputs: dict[str, str]
    onnx_inputs: list[str] = field(default_factory=list)
    onnx_outputs: list[str] = field(default_factory=list)


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


class FeatureType:
    """One kind of input column. ``detect`` looks at a column; the preprocessor fits/encodes each type."""

    name: str
    tags: frozenset = frozenset()

    @staticmethod
    def detect(series) -> bool:
        raise NotImplementedError


class Learner:
    """A model family. Tags say what it supports (``torch``, ``prunable``, ``quantizable``, ``dp``, ``distillable``...)
    and which feature types it accepts (``accepts``)."""

    name: str
    tags: frozenset = frozenset()
    accepts: frozenset = frozenset()


class Engine:
    """How training runs: the order of batches and the wrapping of model and optimizers (local, DP-SGD...)."""

    name: str
    tags: frozenset = frozenset()

    def batches(self, n: int, batch_size: int, generator) -> Iterator:
        raise NotImplementedError

    def wrap(self, model, optimizers: dict):
        return model, optimizers

    is_main: bool = True


@dataclass
class Examples:
    """Training examples as tensors/arrays: ``len()`` and ``take(idx)`` -> a batch dict (rows, windows, clips...)."""

    arrays: dict[str, Any]
    target: Optional[Any] = None

    def __len__(self) -> int:
        first = next(iter(self.arrays.values()))
        return len(first)

    def take(self, idx) -> dict[str, Any]:
        batch = {k: v[idx] for k, v in self.arrays.items()}
        if self.target is not None:
            batch["y"] = self.target[idx]
        return batch
