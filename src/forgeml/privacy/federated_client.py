"""A federated client: Flower's ``ClientApp`` around forgeml's training loop.

Each round a client loads the global weights, trains ``local_epochs`` passes over its own rows with
``forgeml.train.loop.fit`` (the same loop as ``forgeml train``; no validation, no checkpoints, a constant learning
rate and a fresh optimizer, as a FedAvg client trains), and replies with its weights and row count. What federation
adds to the loop is small and lives here:

- FedProx's proximal term mu/2 * ||w - w_global||^2 is added to the task's loss by ``ProximalTask``, a Task that
  wraps the family's own and changes only its training step;
- with DP-SGD, ``ClientDPSGD`` (the loop's DP-SGD engine) calibrates the noise for every local epoch of every round,
  and adds FedProx's proximal gradient after the rows' gradients were clipped and noised (it depends on no row, so
  it costs no privacy); the accountant's history is carried across rounds in the client's Flower context.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from forgeml.privacy.dp import DPSGD


class ProximalTask:
    """The wrapped task with FedProx's mu/2 * ||w - w_global||^2 added to its training loss; ``w_global`` is the
    model's trainable weights when the wrapper is made (the global model the client just loaded). Everything else
    (outputs, metrics, parameter groups, ...) is the wrapped task's."""

    def __init__(self, task, model, mu: float):
        self.task, self.mu = task, mu
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.anchor = [p.detach().clone() for p in self.params]

    def __getattr__(self, name: str):
        if name == "task":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.task, name)

    def step(self, model, batch: dict, **kwargs):
        for name, loss in self.task.step(model, batch, **kwargs):
            yield name, loss + self.mu / 2 * sum((p - a).pow(2).sum() for p, a in zip(self.params, self.anchor))


class ClientDPSGD(DPSGD):
    """DP-SGD for one client's local epochs: the noise is calibrated for ``planned_epochs`` passes over its rows (all
    rounds x local epochs, not just this round's), so the whole federation stays within the client's budget. With
    ``pull_toward``, FedProx's proximal gradient mu * (w - w_global) joins the private gradient after clipping and
    noise, just before the optimizer steps."""

    def __init__(self, train_cfg, rows: int, planned_epochs: int):
        super().__init__(train_cfg, rows)
        self.planned_epochs = planned_epochs
        self.mu, self.params, self.anchor = 0.0, [], []

    def pull_toward(self, model, mu: float) -> None:
        """Pull the weights toward their current values (the global model) with strength ``mu``."""
        self.mu = mu
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.anchor = [p.detach().clone() for p in self.params]

    def attach(self, model, optimizer, rows: int, batch_size: int, epochs: int):
        private, steps = super().attach(model, optimizer, rows, batch_size, self.planned_epochs)
        if self.mu > 0:  # Opacus steps its original optimizer once the private gradient is in p.grad
            private.original_optimizer.register_step_pre_hook(self.add_proximal_gradient)
        return private, steps

    def add_proximal_gradient(self, optimizer, args, kwargs) -> None:
        for p, a in zip(self.params, self.anchor):
            if p.grad is not None:
                p.grad.add_(p.detach() - a, alpha=self.mu)


def local_train(model, task, x: dict, y: np.ndarray, train_cfg, epochs: int, seed: int, mu: float = 0.0,
                dp: Optional[ClientDPSGD] = None, loss: Optional[Callable] = None) -> dict:
    """A client's local epochs through forgeml's loop: shuffled mini-batches, the task's loss (or ``loss``, e.g. class
    weights) plus FedProx's proximal term when ``mu`` > 0, the config's optimizer at a constant learning rate, no
    validation (the server validates the global model). ``dp`` trains with DP-SGD instead (``ClientDPSGD``; its
    ``train_config`` is then the config to pass). Returns the mean training loss over the local epochs."""
    from forgeml.train.loop import fit

    cfg = train_cfg.model_copy(update={"epochs": epochs, "seed": seed, "schedule": "constant", "early_stopping": None})
    if mu > 0 and dp is not None:
        dp.pull_toward(model, mu)
    elif mu > 0:
        task = ProximalTask(task, model, mu)
    result = fit(model, task, x, y, None, None, cfg, loss=loss, privacy=dp)
    losses = [h["train_loss"] for h in result.history]
    return {"train_loss": sum(losses) / len(losses), "rows": len(y)}


@dataclass
class ClientData:
    """What every client needs to train (pickled to Ray actors by the simulation engine)."""

    model_name: str
    params: Any
    shapes: dict
    task: Any
    train_cfg: Any
    parts: list  # per client: (x dict, y array)
    seed: int
    threads: Optional[int] = None
    loss: Optional[Callable] = None  # data.balance's class-weighted / focal loss; None: the task's
    planned_epochs: int = 1  # rounds x local epochs: what DP noise is calibrated for
    dp_fixed: bool = False  # layers replaced for DP-SGD (BatchNorm -> GroupNorm, ...): clients rebuild the same

    def build(self):
        """A fresh network of the run's architecture (with the DP replacements the server made)."""
        from forgeml.models import get_model

        model = get_model(self.model_name).build(self.params, self.shapes, self.task.out_dim)
        if self.dp_fixed:
            from forgeml.privacy.dp import rebuild

            model = rebuild(model)
        return model


def client_train(data: ClientData, msg, context):
    """The ``ClientApp``'s train function: global weights in, local epochs, local weights and row count out."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    k = int(context.node_config["partition-id"])
    config = msg.content["config"]
    rnd = int(config["server-round"])
    model = data.build()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = data.parts[k]
    seed = int(np.random.SeedSequence([data.seed, rnd, k]).generate_state(1)[0])
    train_cfg = data.train_cfg.model_copy(update={"threads": data.threads}) if data.threads else data.train_cfg
    dp = None
    if train_cfg.privacy is not None:
        dp = ClientDPSGD(train_cfg, len(y), data.planned_epochs)
        train_cfg = dp.train_config
    info = local_train(model, data.task, x, y, train_cfg, int(config["local-epochs"]), seed, loss=data.loss,
                       mu=float(config.get("proximal-mu", 0.0)), dp=dp)
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    metrics = {"num-examples": int(len(y)), "train_loss": float(info["train_loss"]), "client": k}
    if dp is not None:
        metrics.update(account(dp, context))
        dp.close()
    return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(metrics)}), reply_to=msg)


def account(dp: DPSGD, context) -> dict:
    """Carry a client's privacy accounting across rounds in its Flower context (which outlives one round): the
    accountant's history of (noise multiplier, sample rate, steps) is restored before this round's steps were
    added, so the epsilon reported is what all rounds so far spent on this client's rows."""
    from flwr.app import ConfigRecord

    engine = dp.private.engine
    now = [tuple(h) for h in engine.accountant.history]
    if "dp" in context.state:
        rec = context.state["dp"]
        engine.accountant.history = [(float(a), float(b), int(c)) for a, b, c in
                                     zip(rec["noise"], rec["rate"], rec["steps"])] + now
    hist = engine.accountant.history
    context.state["dp"] = ConfigRecord({"noise": [float(h[0]) for h in hist], "rate": [float(h[1]) for h in hist],
                                        "steps": [int(h[2]) for h in hist]})
    spent = dp.private.spent()
    return {"epsilon": float(spent["epsilon"]), "noise_multiplier": float(spent["noise_multiplier"]),
            "sample_rate": float(spent["sample_rate"]), "steps": int(spent["steps"])}


def client_app(data: ClientData):
    """Flower's ``ClientApp`` whose train function is ``client_train`` on ``data``."""
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg, context):
        return client_train(data, msg, context)

    return app
