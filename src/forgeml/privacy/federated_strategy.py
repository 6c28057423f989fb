"""What ``forgeml federate`` adds to a training config, and the Flower server side: importing Flower quietly and the
strategy (FedAvg or FedProx) that averages the clients' weights."""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

from forgeml.errors import ConfigError, require

STRATEGIES = ("fedavg", "fedprox")
ENGINES = ("local", "simulation")


@dataclass
class FederatedOptions:
    """What ``forgeml federate`` adds to a training config (validated before any data are read)."""

    clients: int = 5
    rounds: int = 10
    partition: str = "iid"  # iid | dirichlet
    alpha: float = 0.5  # Dirichlet concentration: small = each client sees few classes
    strategy: str = "fedavg"  # fedavg | fedprox
    mu: float = 0.1  # FedProx proximal weight
    local_epochs: int = 1
    engine: str = "local"  # local | simulation
    central: bool = True  # also train centrally with the same budget, for the comparison
    flower_log_level: str = "ERROR"

    def check(self) -> None:
        from forgeml.privacy.partition import PARTITIONS

        if not isinstance(self.clients, int) or self.clients < 1:
            raise ConfigError(f"--clients must be at least 1, got {self.clients}")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"--rounds must be at least 1, got {self.rounds}")
        if not isinstance(self.local_epochs, int) or self.local_epochs < 1:
            raise ConfigError(f"--local-epochs must be at least 1, got {self.local_epochs}")
        if self.partition not in PARTITIONS:
            raise ConfigError(f"unknown --partition {self.partition!r}; choose one of: {', '.join(PARTITIONS)}")
        if not self.alpha > 0 or not math.isfinite(self.alpha):
            raise ConfigError(f"--alpha must be a number > 0 (the Dirichlet concentration; 0.1 = very skewed, "
                              f"100 = nearly IID), got {self.alpha}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown --strategy {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if not self.mu >= 0 or not math.isfinite(self.mu):
            raise ConfigError(f"--mu must be >= 0 (FedProx's proximal weight), got {self.mu}")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown --engine {self.engine!r}; choose one of: {', '.join(ENGINES)}")


def import_flower(log_level: str = "ERROR"):
    """Import Flower quietly: no telemetry, and only ``log_level`` and above in its log (its INFO lines would bury
    our progress)."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    flwr = require("flwr", "federated", "forgeml federate")
    require("flwr.serverapp.strategy", "federated", "forgeml federate (Flower 1.41 or newer: the Message API)")
    logging.getLogger("flwr").setLevel(getattr(logging, log_level.upper(), logging.ERROR))
    return flwr


def make_strategy(opts: FederatedOptions):
    """FedAvg or FedProx from Flower, sampling every client each round. A client that fails fails the run: averaging
    the clients that happened to succeed would hide the error. After each round the strategy keeps the clients'
    metrics averaged by rows (``last_train_metrics``: train_loss) and each client's own (``last_client_metrics``)."""
    from flwr.serverapp.strategy import FedAvg, FedProx

    base = FedProx if opts.strategy == "fedprox" else FedAvg
    n = opts.clients

    class AllClients(base):
        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            failed = [m for m in replies if m.has_error()]
            if failed:
                raise RuntimeError(f"{len(failed)} of {n} federated clients failed in round {server_round}: "
                                   f"{failed[0].error.reason}")
            if len(replies) < n:
                raise RuntimeError(f"only {len(replies)} of {n} federated clients answered in round {server_round}")
            arrays, metrics = super().aggregate_train(server_round, replies)
            self.last_train_metrics = dict(metrics or {})
            self.last_client_metrics = [dict(m.content["metrics"]) for m in replies]
            return arrays, metrics

    kwargs = {"proximal_mu": opts.mu} if opts.strategy == "fedprox" else {}
    return AllClients(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n, min_evaluate_nodes=0,
                      min_available_nodes=n, **kwargs)
