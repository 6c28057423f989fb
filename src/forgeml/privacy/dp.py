"""Differentially private training (DP-SGD) with Opacus.

DP-SGD (Abadi et al., 2016) changes three things in a training step: each batch is drawn by Poisson sampling
(every row joins with probability q = batch_size / rows), each row's gradient is clipped to an L2 norm of at most
C (``max_grad_norm``), and Gaussian noise with standard deviation sigma * C is added to the sum before the step.
Opacus picks sigma (the noise multiplier) so that the planned number of steps spends at most (epsilon, delta), and
its accountant (PRV by default, or RDP) reports what the steps actually taken spent.

Reusable pieces (forgeml.privacy.federated_client uses them in each Flower client)::

    from forgeml.privacy.dp import make_compatible, make_private

    model, replaced = make_compatible(model)          # BatchNorm -> GroupNorm, nn.LSTM -> DPLSTM, ...; ConfigError
                                                      # naming the layers that cannot be made compatible
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)   # build the optimizer on the *fixed* model
    private = make_private(model, optimizer, data_loader, epsilon=3.0, delta=1e-5, max_grad_norm=1.0, epochs=10)
    for x, y in private.data_loader:                  # Poisson-sampled batches (their size varies)
        loss_fn(model(x), y).backward()               # `model` itself: hooks compute per-row gradients
        private.optimizer.step()                      # clip each row's gradient, add noise, step
        private.optimizer.zero_grad()
    private.spent()   # {"epsilon": spent so far, "delta", "noise_multiplier", "max_grad_norm", "steps", ...}
    private.close()   # remove the hooks: `model` is a plain nn.Module again

The model is never wrapped (Opacus' ``wrap_model=False``): its state_dict keeps its own names (no ``_module.``
prefix), so the trained weights save and load like any other forgeml model. ``DPSGD`` is the adapter that
forgeml.train.loop.fit uses (``fit(..., privacy=DPSGD(...))``).
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from forgeml.errors import ConfigError, require
from forgeml.core import ENGINES, Engine

FEATURE = "train.privacy (DP-SGD)"
# Layers Opacus replaces with a re-implementation of the same function under the same parameter names.
SAME_FUNCTION = ("LSTM", "GRU", "RNN")


def _opacus():
    return require("opacus", "privacy", FEATURE)


# Expected warnings that say nothing a user can act on: secure_mode is off (docs/privacy.md), the accountant's choice
# of Renyi orders, and PyTorch's note that Opacus' backward hook on the first layer sees no input gradient.
QUIET = ("Secure RNG turned off", "Optimal order is the", "Full backward hook is firing")


@contextmanager
def _quiet():
    with warnings.catch_warnings():
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
        yield


def default_delta(rows: int) -> float:
    """delta when none is given: 1e-5, or 0.1/rows on more than 10,000 rows, so it always stays a tenth of the 1/rows
    that Opacus asks delta to be below (a mechanism leaking one whole row with probability 1/rows is no protection)."""
    return min(1e-5, 0.1 / max(1, rows))


# --------------------------------------------------------------------------------------------- compatible layers
def make_compatible(model: nn.Module, sample: Optional[dict] = None, target: Optional[np.ndarray] = None,
                    loss: Optional[Callable] = None) -> tuple[nn.Module, list[dict]]:
    """A copy of ``model`` that DP-SGD can train: Opacus' ModuleValidator.fix replaces the layers it knows how to
    (BatchNorm -> GroupNorm, nn.LSTM/GRU -> DPLSTM/DPGRU, MultiheadAttention -> DPMultiheadAttention). Returns the
    fixed model and the replacements ({layer, from, to, rebuild}). ``rebuild`` is False for the recurrent layers:
    Opacus' DPLSTM/DPGRU/DPRNN compute the same function as nn.LSTM/GRU/RNN under the same parameter names, so the
    trained weights load into the original layer (and export to ONNX as one); True where the architecture changed
    (BatchNorm -> GroupNorm), which loading must repeat (``rebuild``).

    Raises ConfigError naming the layers that remain incompatible. With ``sample`` rows (input arrays), their
    ``target`` and the training ``loss``, one forward/backward pass on two rows also checks that every trainable
    parameter gets a per-row gradient (catching layers that pass validation but fail in Opacus' hooks); nothing
    is updated, so the check spends no privacy budget."""
    opacus = _opacus()
    model.train()
    before = {name: type(m).__name__ for name, m in model.named_modules()}
    with _quiet():
        fixed = opacus.validators.ModuleValidator.fix(model)
        fixed.train()
        _one_name_per_tensor(fixed)
        replaced = [{"layer": name, "from": before[name], "to": type(m).__name__, "rebuild": before[name] not in SAME_FUNCTION}
                    for name, m in fixed.named_modules() if name in before and before[name] != type(m).__name__]
        problems = unsupported_layers(fixed)
        if not problems and sample is not None:
            problems = _probe(fixed, sample, target, loss)
    if problems:
        raise ConfigError(
            "these layers cannot be trained with differential privacy (Opacus), even after the automatic "
            "replacements:\n  " + "\n  ".join(problems) +
            "\nchoose another model (model: mlp without text columns, cnn, or text with encoder: bilstm), "
            "or train without train.privacy")
    return fixed, replaced


def describe_replacements(replaced: list[dict]) -> str:
    """One line per kind of replacement, e.g. 'BatchNorm2d -> GroupNorm (7 layers: stem.1, blocks.0.bn1, ...)'."""
    kinds: dict[tuple, list[str]] = {}
    for r in replaced:
        kinds.setdefault((r["from"], r["to"]), []).append(r["layer"])
    parts = []
    for (a, b), layers in kinds.items():
        shown = ", ".join(layers[:4]) + (", ..." if len(layers) > 4 else "")
        parts.append(f"{a} -> {b} ({len(layers)} layer{'s' if len(layers) > 1 else ''}: {shown})")
    return "; ".join(parts)


def _label(name: str, module: nn.Module) -> str:
    return f"{name or '(the model itself)'} ({type(module).__name__})"


def unsupported_layers(model: nn.Module) -> list[str]:
    """'layer (Type): why' for every trainable layer Opacus rejects (its validators, and layers holding buffers such
    as running statistics, which would leak unprotected batch information)."""
    opacus = _opacus()
    from opacus.utils.module_utils import trainable_modules

    validators = opacus.validators.ModuleValidator.VALIDATORS
    problems = []
    for name, m in trainable_modules(model):
        reasons = [str(e).split(". ")[0].rstrip(".") for e in (validators[type(m)](m) if type(m) in validators else [])]
        buffers = [b for b, _ in m.named_buffers()]
        if buffers:
            reasons.append(f"a trainable layer with buffers ({', '.join(buffers[:3])}), which DP-SGD cannot keep private")
        if reasons:
            problems.append(f"{_label(name, m)}: {'; '.join(reasons)}")
    return problems


def _probe(model: nn.Module, sample: dict, target: np.ndarray, loss: Callable) -> list[str]:
    """One forward/backward pass on two rows with Opacus' per-row gradient hooks; the layers that fail or get no
    per-row gradient. Forward pre-hooks and backward hooks registered before Opacus' own ones record which layer was
    running when something failed."""
    from opacus.grad_sample.utils import prepare_module
    from opacus.utils.module_utils import trainable_modules

    names = {m: name for name, m in model.named_modules()}
    stack: list[nn.Module] = []

    def enter(m, *_):  # hooks must return None (a value would replace the layer's input/output)
        stack.append(m)

    def leave(m, *_):
        stack.pop()

    handles = [m.register_forward_pre_hook(enter) for m in names] + [m.register_forward_hook(leave) for m in names]
    handles += [m.register_full_backward_pre_hook(enter) for _, m in trainable_modules(model)]
    hooks = prepare_module(model, grad_sample_mode="hooks", wrap_model=False, batch_first=True, loss_reduction="mean")
    device = next(model.parameters()).device
    rows = min(2, len(target))
    batch = {k: torch.from_numpy(np.ascontiguousarray(v[:rows])).to(device) for k, v in sample.items()}
    problems = []
    try:
        try:
            loss(model(batch), torch.from_numpy(np.asarray(target[:rows])).to(device)).backward()
        except Exception as exc:  # noqa: BLE001 -- any failure here means the layer cannot be trained privately
            where = _label(names[stack[-1]], stack[-1]) if stack else "the model"
            problems.append(f"{where}: per-row gradients fail ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        else:
            for name, m in trainable_modules(model):
                missing = [p for p in m.parameters(recurse=False) if p.requires_grad and getattr(p, "grad_sample", None) is None]
                if missing:
                    problems.append(f"{_label(name, m)}: gets no per-row gradient (a trainable layer the forward pass "
                                    "does not use; freeze it or remove it)")
    finally:
        hooks.cleanup()
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    return problems


def rebuild(model: nn.Module, layers: Optional[list[dict]] = None) -> nn.Module:
    """A freshly built model with the layers DP training used. ``layers``: the replacements listed in a run's manifest
    (model.dp_fixed: the ``rebuild`` entries of make_compatible), repeated so the saved weights load into it. None:
    all of Opacus' replacements (the model a DP-SGD client trains, e.g. in federated learning)."""
    from forgeml.models import rebuild_layers

    opacus = _opacus()
    with _quiet():
        if layers is None:
            return _one_name_per_tensor(opacus.validators.ModuleValidator.fix(model))
        return rebuild_layers(model, layers)


def _one_name_per_tensor(model: nn.Module) -> nn.Module:
    """Opacus' DPLSTM registers every LSTM weight twice: under nn.LSTM's name (weight_ih_l0) and its cell's
    (l0.ih.weight). Its own filter of the second name misses when the DPLSTM sits inside a model, and safetensors
    refuses to save tensors that share memory. Hooks on the model keep nn.LSTM's names in its state_dict and give the
    cells' names back on load."""
    aliases = {}  # the cell's name -> nn.LSTM's name, both full paths in the model
    for path, m in model.named_modules():
        for old, new in getattr(m, "old_to_new", {}).items():  # opacus.layers.param_rename.RenameParamsMixin
            aliases[f"{path}.{old}" if path else old] = f"{path}.{new}" if path else new
    if not aliases:
        return model

    def drop(module, state_dict, prefix, local_metadata):
        for old in aliases:
            state_dict.pop(prefix + old, None)

    def restore(module, state_dict, prefix, *args):
        for old, new in aliases.items():
            if prefix + new in state_dict and prefix + old not in state_dict:
                state_dict[prefix + old] = state_dict[prefix + new]

    model.register_state_dict_post_hook(drop)
    model.register_load_state_dict_pre_hook(restore)
    return model


# --------------------------------------------------------------------------------------------- privacy engine
@dataclass
class Private:
    """The objects make_private returns: train ``model`` with ``optimizer`` on batches from ``data_loader``."""

    model: nn.Module  # the model passed in, with per-row gradient hooks attached
    optimizer: Any  # opacus DPOptimizer: clips each row's gradient to max_grad_norm, adds noise, steps
    data_loader: Any  # opacus DPDataLoader: Poisson sampling with rate 1 / len(original loader)
    engine: Any  # opacus PrivacyEngine; its accountant records every step taken
    hooks: Any
    target_epsilon: float
    delta: float
    max_grad_norm: float
    accountant: str

    @property
    def noise_multiplier(self) -> float:
        return float(self.optimizer.noise_multiplier)

    @property
    def sample_rate(self) -> float:
        return float(self.data_loader.sample_rate)

    @property
    def steps(self) -> int:
        return int(sum(steps for _, _, steps in self.engine.accountant.history))

    def epsilon(self) -> float:
        """epsilon spent by the steps taken so far (an upper bound at this delta)."""
        if not self.steps:
            return 0.0
        with _quiet():
            return float(self.engine.get_epsilon(self.delta))

    def spent(self) -> dict:
        return {"epsilon": self.epsilon(), "delta": self.delta, "noise_multiplier": self.noise_multiplier,
                "max_grad_norm": self.max_grad_norm, "target_epsilon": self.target_epsilon,
                "accountant": self.accountant, "steps": self.steps, "sample_rate": self.sample_rate}

    def close(self) -> None:
        """Remove the per-row gradient hooks (the model is a plain nn.Module again)."""
        if self.hooks is not None:
            self.hooks.cleanup()
            self.hooks = None


def make_private(model: nn.Module, optimizer: torch.optim.Optimizer, data_loader, *, epsilon: float, delta: float,
                 max_grad_norm: float = 1.0, epochs: int, accountant: str = "prv") -> Private:
    """Opacus' PrivacyEngine.make_private_with_epsilon: noise calibrated so that ``epochs`` passes over
    ``data_loader`` (Poisson-sampled) spend at most (epsilon, delta). ``model`` must already be compatible
    (make_compatible) and ``optimizer`` built on its parameters."""
    opacus = _opacus()
    if not 0 < epsilon < math.inf:
        raise ConfigError(f"epsilon must be a number > 0, got {epsilon}")
    if not 0 < delta < 1:
        raise ConfigError(f"delta must be between 0 and 1 (exclusive), got {delta}")
    problems = unsupported_layers(model)
    if problems:
        raise ConfigError("these layers cannot be trained with differential privacy: " + "; ".join(problems)
                          + " (make_compatible replaces the ones Opacus can fix)")
    model.train()
    warnings.filterwarnings("ignore", message=QUIET[-1])  # raised in the caller's backward passes, later
    with _quiet():  # secure_mode (a cryptographic RNG, torchcsprng) is off: see docs/privacy.md
        engine = opacus.PrivacyEngine(accountant=accountant)
        try:
            hooks, optimizer, loader = engine.make_private_with_epsilon(
                module=model, optimizer=optimizer, data_loader=data_loader, target_epsilon=epsilon, target_delta=delta,
                epochs=epochs, max_grad_norm=max_grad_norm, poisson_sampling=True, wrap_model=False)
        except ValueError as exc:
            if "budget is too low" not in str(exc):
                raise
            from forgeml.privacy.budget import too_small

            raise too_small(epsilon, epochs, len(data_loader), delta, accountant) from None
    return Private(model, optimizer, loader, engine, hooks, float(epsilon), float(delta), float(max_grad_norm), accountant)


# --------------------------------------------------------------------------------------------- forgeml's loop
@ENGINES.register("dp-sgd", tags={"privacy"})
class DPSGD(Engine):
    """DP-SGD for forgeml.train.loop.fit (``fit(..., privacy=DPSGD(...))``): fit calls ``attach`` once after making
    its optimizer, draws each epoch's batches from ``batches()`` (Poisson-sampled row indices into its in-memory
    tensors), and checkpoints ``state_dict()`` (the accountant's history) so a resumed run accounts for every step.

    ``train_config`` is the loop config to train with: per-row clipping at max_grad_norm replaces train.grad_clip,
    and precision is fp32. The model must come from ``make_compatible`` first (``prepare``)."""

    def __init__(self, train_cfg, rows: int, models: int = 1):
        self.cfg = train_cfg.privacy
        self.rows = rows
        # several models trained on the same rows compose: each gets 1/models of (epsilon, delta), so that all of
        # them together spend at most the budget (basic sequential composition)
        self.models = models
        self.epsilon = self.cfg.epsilon / models
        self.delta = (self.cfg.delta if self.cfg.delta is not None else default_delta(rows)) / models
        self.train_config = train_cfg.model_copy(update={"grad_clip": None, "precision": "fp32"})
        self.replaced: list[dict] = []
        self.private: Optional[Private] = None
        self._report: Optional[dict] = None

    def prepare(self, model: nn.Module, train: dict, y_train: np.ndarray, loss: Callable) -> nn.Module:
        model, self.replaced = make_compatible(model, train, y_train, loss)
        return model

    def check(self) -> None:
        """Refuse, before anything is written, a budget that no amount of noise reaches for the planned epochs."""
        from opacus.accountants.utils import get_noise_multiplier

        batches = math.ceil(self.rows / self.train_config.batch_size)
        try:
            with _quiet():
                get_noise_multiplier(target_epsilon=self.epsilon, target_delta=self.delta, sample_rate=1 / batches,
                                     epochs=self.train_config.epochs, accountant=self.cfg.accountant)
        except ValueError as exc:
            if "budget is too low" not in str(exc):
                raise
            from forgeml.privacy.budget import too_small

            raise too_small(self.epsilon, self.train_config.epochs, batches, self.delta, self.cfg.accountant) from None

    def notes(self) -> list[str]:
        """What a user should know before training (printed by forgeml train)."""
        notes = []
        if self.replaced:
            notes.append(f"layers replaced to make the model DP-compatible: {describe_replacements(self.replaced)}")
        if self.delta >= 1 / self.rows:
            notes.append(f"delta {self.delta:g} is not below 1/rows = {1 / self.rows:.2g}: the guarantee then allows "
                         "leaking a whole row; Opacus recommends delta < 1/rows")
        return notes

    def attach(self, model: nn.Module, optimizer, rows: int, batch_size: int, epochs: int) -> tuple[Any, int]:
        """Make the optimizer private; returns it and the number of steps per epoch."""
        from torch.utils.data import DataLoader, TensorDataset

        rows_loader = DataLoader(TensorDataset(torch.arange(rows)), batch_size=batch_size)  # yields row indices
        self.private = make_private(model, optimizer, rows_loader, epsilon=self.epsilon, delta=self.delta,
                                    max_grad_norm=self.cfg.max_grad_norm, epochs=epochs, accountant=self.cfg.accountant)
        return self.private.optimizer, len(self.private.data_loader)

    def batches(self):
        """One epoch of Poisson-sampled batches: tensors of row indices (sizes vary around batch_size; may be empty)."""
        for (idx,) in self.private.data_loader:
            yield idx

    def state_dict(self) -> dict:
        return {"history": [list(h) for h in self.private.engine.accountant.history]}

    def load_state_dict(self, state: dict) -> None:
        self.private.engine.accountant.history = [tuple(h) for h in state["history"]]

    def report(self) -> dict:
        """The privacy actually spent (metrics.json "privacy"), with the layer replacements."""
        if self._report is None or self._report["steps"] != self.private.steps:  # the accountant takes a moment
            self._report = {**self.private.spent(), "replaced_layers": self.replaced}
            if self.models > 1:
                self._report["share"] = {"models": self.models, "budget_epsilon": self.cfg.epsilon,
                                         "how": f"each of {self.models} models trained on these rows got 1/{self.models} "
                                                "of epsilon and delta (sequential composition)"}
        return self._report

    def summary(self) -> str:
        r = self.report()
        return (f"spent epsilon {r['epsilon']:.3f} of {r['target_epsilon']:g} (delta {r['delta']:.2g}, {r['accountant']} "
                f"accountant) in {r['steps']} steps; noise multiplier {r['noise_multiplier']:.3f}, per-row clipping at "
                f"{r['max_grad_norm']:g}, sample rate {r['sample_rate']:.4f}")

    def close(self) -> None:
        if self.private is not None:
            self.private.close()
