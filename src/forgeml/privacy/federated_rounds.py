"""The federated rounds: the Flower strategy runs ``rounds`` rounds over one of two engines, and the server
validates the global model after each, keeping the best round.

- ``local`` (default): each Flower ``Message`` goes straight to the ``ClientApp`` in this process, one client after
  another (``local_grid_class``: a Flower ``Grid`` of our own);
- ``simulation``: Flower's Simulation Engine (``flwr.simulation.run_simulation``, Ray actors).
"""
from __future__ import annotations

import contextlib
import functools
import os
import random
import time
from typing import Any, Callable, Optional

from forgeml.errors import RunError
from forgeml.privacy.federated_client import ClientData, client_app
from forgeml.privacy.federated_strategy import FederatedOptions, make_strategy

RUN_ID, SERVER_NODE_ID, FIRST_CLIENT_NODE_ID = 1, 1, 1001  # LocalGrid: one run, the server is node 1 (as in Flower)


def local_grid_class():
    """The ``LocalGrid`` class (built on first use: Flower is an optional dependency)."""
    from flwr.app import Context, Message, RecordDict
    from flwr.serverapp import Grid

    class LocalGrid(Grid):
        """Flower's ``Grid`` for clients living in this process: each message goes straight to the ``ClientApp``
        (one client after another, no threads or processes), and its reply comes back in order."""

        def __init__(self, client_app, num_nodes: int, on_reply: Optional[Callable[[int, Any], None]] = None):
            try:  # who is sending: Flower's ServerApp runtime (and run_simulation) set this before a strategy runs
                from flwr.supercore.task_identity import TaskIdentity

                TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN_ID, SERVER_NODE_ID
            except ImportError:  # Flower versions before the task identity
                pass
            self._app = client_app
            self._contexts = {
                FIRST_CLIENT_NODE_ID + k: Context(run_id=RUN_ID, node_id=FIRST_CLIENT_NODE_ID + k, state=RecordDict(),
                                                  node_config={"partition-id": k, "num-partitions": num_nodes}, run_config={})
                for k in range(num_nodes)
            }
            self._replies: dict[str, Message] = {}
            self._sent = 0
            self._on_reply = on_reply
            self._run = None

        def set_run(self, run) -> None:
            self._run = run

        @property
        def run(self):
            return self._run

        def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
            return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

        def get_node_ids(self):
            return list(self._contexts)

        def push_messages(self, messages):
            ids = []
            for i, msg in enumerate(messages):
                reply = self._app(msg, self._contexts[msg.metadata.dst_node_id])
                self._sent += 1
                key = str(self._sent)
                self._replies[key] = reply
                ids.append(key)
                if self._on_reply:
                    self._on_reply(i + 1, reply)
            return ids

        def pull_messages(self, message_ids):
            return [self._replies.pop(i) for i in message_ids if i in self._replies]

        def send_and_receive(self, messages, *, timeout=None):
            return self.pull_messages(self.push_messages(messages))

    return LocalGrid


def run_rounds(opts: FederatedOptions, client_data: ClientData, server_model, task, data, monitor: str, tracker,
               quiet: bool) -> dict:
    """Run the Flower strategy for ``opts.rounds`` rounds; evaluate the global model on validation after each.
    Returns the per-round logs, the kept round and its weights, the clients' last reports and the seconds taken."""
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord

    from forgeml.progress import TrainProgress
    from forgeml.tasks import better
    from forgeml.train.loop import evaluate_split

    progress = TrainProgress("federated rounds", quiet)
    progress.start(opts.rounds, opts.clients)
    rounds: list[dict] = []
    best = {"round": -1, "score": None, "state": None}
    clock = {"t": time.perf_counter()}
    strategy = make_strategy(opts)

    def evaluate_fn(server_round: int, arrays) -> Optional[MetricRecord]:
        if server_round == 0:
            return None  # the random initial model: nothing to learn from
        state = arrays.to_torch_state_dict()
        server_model.load_state_dict(state)
        m = evaluate_split(server_model, task, data.enc["val"], data.y["val"], 512, next(server_model.parameters()).device,
                           "fp32", monitor)
        logs = {"round": server_round, **{f"val_{k}": float(v) for k, v in m.items() if isinstance(v, (int, float)) and k != "n"}}
        if "train_loss" in getattr(strategy, "last_train_metrics", {}):
            logs["client_train_loss"] = float(strategy.last_train_metrics["train_loss"])
        spent = [c["epsilon"] for c in getattr(strategy, "last_client_metrics", []) if "epsilon" in c]
        if spent:
            logs["client_epsilon_max"] = float(max(spent))
        logs["seconds"] = round(time.perf_counter() - clock["t"], 3)
        clock["t"] = time.perf_counter()
        rounds.append(logs)
        score = logs.get(monitor)
        if score is None:
            raise RunError(f"early_stopping.monitor {monitor!r} is not computed per round; use val_loss or val_accuracy")
        if best["round"] < 0 or better(monitor, score, best["score"]):
            best.update(round=server_round, score=score, state={k: v.detach().clone() for k, v in state.items()})
        tracker.epoch({"epoch": server_round, **{k: v for k, v in logs.items() if k not in ("round", "seconds")}}, "federated.")
        progress.epoch(server_round - 1, {"val_loss": logs["val_loss"], **logs}, monitor if monitor != "val_loss" else
                       ("val_accuracy" if "val_accuracy" in logs else "val_loss"))
        return MetricRecord({k: v for k, v in logs.items() if isinstance(v, float)})

    def on_reply(done: int, reply) -> None:
        if not reply.has_error():
            progress.step(done, float(reply.content["metrics"]["train_loss"]))

    initial = ArrayRecord({k: v.detach().cpu() for k, v in server_model.state_dict().items()})
    train_config = ConfigRecord({"local-epochs": opts.local_epochs})
    saved_random = random.getstate()
    random.seed(client_data.seed)  # Flower samples (all) clients with `random`: a fixed order, reproducible sums
    tic = time.perf_counter()
    calibrate = calibrate_once() if client_data.train_cfg.privacy is not None else contextlib.nullcontext()
    try:
        with calibrate:
            if opts.engine == "local":
                grid = local_grid_class()(client_app(client_data), opts.clients, on_reply)
                strategy.start(grid=grid, initial_arrays=initial, num_rounds=opts.rounds, train_config=train_config,
                               evaluate_fn=evaluate_fn)
            else:
                simulate(opts, client_data, strategy, initial, train_config, evaluate_fn)
    finally:
        random.setstate(saved_random)
        progress.close()
    if len(rounds) != opts.rounds:
        raise RuntimeError(f"Flower ran {len(rounds)} of {opts.rounds} rounds")
    clients = sorted(({k: (int(v) if k in ("client", "num-examples", "steps") else v) for k, v in c.items()}
                      for c in strategy.last_client_metrics), key=lambda c: c["client"])
    return {"rounds": rounds, "kept_round": best["round"], "best_state": best["state"], "clients": clients,
            "seconds": time.perf_counter() - tic}


@contextlib.contextmanager
def calibrate_once():
    """Remember Opacus' noise calibration for this run. Each round, every DP client makes a fresh optimizer private
    with ``make_private_with_epsilon``, which searches for the noise multiplier of (epsilon, delta, sample rate,
    epochs): the same answer every round, and seconds of work each time. A pure function of scalars, so it is cached
    while the rounds run (in this process; Ray actors calibrate for themselves) and restored afterwards."""
    try:
        import opacus.privacy_engine as engine
    except ImportError:
        yield
        return
    original = engine.get_noise_multiplier
    engine.get_noise_multiplier = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        engine.get_noise_multiplier = original


def simulate(opts: FederatedOptions, client_data: ClientData, strategy, initial, train_config, evaluate_fn) -> None:
    """Flower's Simulation Engine: the ServerApp runs in a thread here, each ClientApp in a Ray actor (one CPU each)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from Ray either
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    done = {}
    server = ServerApp()

    @server.main()
    def main(grid, context) -> None:
        done["result"] = strategy.start(grid=grid, initial_arrays=initial, num_rounds=opts.rounds,
                                        train_config=train_config, evaluate_fn=evaluate_fn)

    cpus = max(1, min(opts.clients, os.cpu_count() or 1))
    run_simulation(server_app=server, client_app=client_app(client_data), num_supernodes=opts.clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": cpus, "logging_level": "error", "log_to_driver": False}})
    if "result" not in done:
        raise RuntimeError("Flower's simulation ended without finishing the rounds (see the errors above)")
