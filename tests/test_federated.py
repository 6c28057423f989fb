"""forgeml federate: Flower clients on this machine, partitions, FedAvg/FedProx, the run folder, bad input."""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from conftest import cli, user_error
from forgeml.privacy.partition import describe, label_groups, partition

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # forgeml sets it too; this covers a flwr imported first here
needs_flwr = pytest.mark.skipif(importlib.util.find_spec("flwr") is None, reason="forgeml[federated] is not installed")

# small and quick: 1 torch thread (the suite shares 2 cores), a small MLP, no MLflow
SMALL = {"model": {"name": "mlp", "hidden": [32]}, "tracking": {"uri": "none"},
         "train": {"batch_size": 32, "lr": 3e-3, "threads": 1}}
FLAGS = ["--tracking-uri", "none", "--quiet"]


def _labels(n_per_class=(100, 60, 40)) -> np.ndarray:
    return np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])


# --------------------------------------------------------------------------------------------- partitions
def test_iid_partition_is_balanced_and_covers_every_row_once():
    y = _labels()
    parts = partition(y, 4, "iid", seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))  # every row exactly once
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    for c, total in enumerate((100, 60, 40)):
        counts = [int((y[p] == c).sum()) for p in parts]
        assert max(counts) - min(counts) <= 1 and sum(counts) == total
    assert describe(parts, y)["mean_label_skew"] < 0.02


def test_dirichlet_partition_is_label_skewed_and_alpha_controls_it():
    y = _labels((300, 300, 300, 300))
    skewed = partition(y, 5, "dirichlet", alpha=0.3, seed=0)
    assert sorted(np.concatenate(skewed).tolist()) == list(range(len(y)))
    shares = np.array([[np.mean(y[p] == c) for c in range(4)] for p in skewed])
    # clients' class mixes really differ: some client's top class is far above the pooled 25 %
    assert shares.max() > 0.6 and shares.max(axis=1).min() < shares.max(axis=1).max()
    stats = describe(skewed, y, ["a", "b", "c", "d"])
    assert stats["mean_label_skew"] > 0.3
    assert set(stats["clients"][0]["class_counts"]) == {"a", "b", "c", "d"}
    assert stats["rows"] == [len(p) for p in skewed]
    near_iid = describe(partition(y, 5, "dirichlet", alpha=100.0, seed=0), y)["mean_label_skew"]
    assert near_iid < 0.1 < stats["mean_label_skew"]
    # seeded: the same partition again
    assert all(np.array_equal(a, b) for a, b in zip(skewed, partition(y, 5, "dirichlet", alpha=0.3, seed=0)))


def test_dirichlet_never_leaves_a_client_empty():
    y = _labels((30, 30))
    parts = partition(y, 20, "dirichlet", alpha=0.01, seed=3)
    assert min(len(p) for p in parts) >= 1 and sum(len(p) for p in parts) == 60


def test_regression_targets_partition_by_quantile_bins():
    y = np.linspace(0, 1, 100)
    labels = label_groups(y, classification=False)
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3, 4]


def test_fedprox_term_keeps_local_weights_near_the_global_ones():
    import torch

    from forgeml.config import TrainConfig
    from forgeml.privacy.federated_client import local_train
    from forgeml.tasks import fit_task
    import pandas as pd

    rng = np.random.default_rng(0)
    x = {"numeric": rng.normal(size=(200, 4)).astype(np.float32)}
    y = (x["numeric"][:, 0] > 0).astype(np.int64)
    task = fit_task("classification", pd.Series(y))
    cfg = TrainConfig(batch_size=16, lr=0.05, optimizer="sgd", grad_clip=None, threads=1)

    def drift(mu: float) -> float:
        torch.manual_seed(0)
        model = torch.nn.Sequential()
        model.add_module("lin", torch.nn.Linear(4, 2))
        start = [p.detach().clone() for p in model.parameters()]

        class Wrap(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = model

            def forward(self, batch):
                return self.m(batch["numeric"])

        local_train(Wrap(), task, x, y, cfg, epochs=3, seed=0, mu=mu)
        return float(sum((p.detach() - s).pow(2).sum() for p, s in zip(model.parameters(), start)))

    assert drift(10.0) < 0.5 * drift(0.0)


@pytest.mark.skipif(importlib.util.find_spec("opacus") is None, reason="forgeml[privacy] is not installed")
def test_fedprox_pull_reaches_dp_clients_through_the_loop_engine():
    """With DP-SGD the proximal gradient is added after clipping and noise (ClientDPSGD), and still pulls."""
    import pandas as pd
    import torch

    from forgeml.config import TrainConfig
    from forgeml.privacy.federated_client import ClientDPSGD, local_train
    from forgeml.tasks import fit_task

    rng = np.random.default_rng(0)
    x = {"numeric": rng.normal(size=(200, 4)).astype(np.float32)}
    y = (x["numeric"][:, 0] > 0).astype(np.int64)
    task = fit_task("classification", pd.Series(y))
    cfg = TrainConfig(batch_size=16, lr=0.05, optimizer="sgd", threads=1,
                      privacy={"epsilon": 50.0, "delta": 1e-3, "accountant": "rdp"})

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, batch):
            return self.lin(batch["numeric"])

    def drift(mu: float) -> float:
        torch.manual_seed(0)
        model = Linear()
        start = [p.detach().clone() for p in model.parameters()]
        dp = ClientDPSGD(cfg, len(y), planned_epochs=6)
        info = local_train(model, task, x, y, dp.train_config, epochs=3, seed=0, mu=mu, dp=dp)
        assert info["train_loss"] > 0 and dp.report()["steps"] > 0
        dp.close()
        return float(sum((p.detach() - s).pow(2).sum() for p, s in zip(model.parameters(), start)))

    assert drift(10.0) < 0.5 * drift(0.0)


# --------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def federated_run(tmp_path_factory):
    """One FedAvg run on a real data set (breast cancer, 3 IID clients, 3 rounds) shared by the checks below."""
    from forgeml import api

    root = tmp_path_factory.mktemp("fed")
    return api.federate({"data": {"source": "bundled:breast_cancer"}, "name": "bc", "runs_dir": str(root), **SMALL},
                        clients=3, rounds=3, local_epochs=2, quiet=True)


@needs_flwr
def test_federated_model_learns_and_is_compared_with_central(federated_run):
    m = federated_run.metrics
    fed = m["federated"]
    # 37 % of the test rows are the minority class: chance is 0.63 at best
    assert m["test"]["accuracy"] > 0.9
    assert fed["central"]["test"]["accuracy"] > 0.9 and fed["central"]["epochs"] == 6  # rounds x local epochs
    assert [r["round"] for r in fed["rounds"]] == [1, 2, 3]
    assert all(r["val_loss"] > 0 and r["client_train_loss"] > 0 for r in fed["rounds"])
    # each round's validation numbers are the global model's on the validation split, and it learns: the kept round
    # is well above always predicting the validation split's majority class
    supports = [c["support"] for c in m["val"]["per_class"].values()]
    assert sum(supports) == json.loads((federated_run.run_dir / "manifest.json").read_text())["data"]["rows"]["val"]
    kept = fed["rounds"][fed["kept_round"] - 1]
    assert kept["val_accuracy"] > max(supports) / sum(supports) + 0.2
    assert kept["val_accuracy"] == pytest.approx(m["val"]["accuracy"])  # the kept round's model is the run's model
    assert fed["rounds"][-1]["val_loss"] < fed["rounds"][0]["val_loss"]
    assert 1 <= fed["kept_round"] <= 3
    part = fed["partition"]
    assert part["method"] == "iid" and [c["num-examples"] for c in fed["clients"]] == part["rows"]
    rows = json.loads((federated_run.run_dir / "manifest.json").read_text())["data"]["rows"]["train"]
    assert sum(part["rows"]) == rows and max(part["rows"]) - min(part["rows"]) <= 1
    assert all(sum(c["class_counts"].values()) == c["rows"] for c in part["clients"])
    assert [c["client"] for c in fed["clients"]] == [0, 1, 2]


@needs_flwr
def test_federated_run_folder_loads_predicts_and_reports(federated_run):
    from forgeml import api

    run = federated_run.run_dir
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["federated"]["rounds"] == federated_run.metrics["federated"]["rounds"]
    assert (run / "plots" / "federated_rounds.png").stat().st_size > 5000
    html = (run / "report.html").read_text()
    assert "Federated learning" in html and "centralized" in html
    assert json.loads((run / "manifest.json").read_text())["federated"]["clients"] == 3
    model = api.load(run)
    df = api.test_rows(model)
    pred = model.predict(df.drop(columns=["diagnosis"]))
    assert len(pred) == len(df) and len([c for c in pred.columns if c.startswith("proba_")]) == 2
    again = api.evaluate(run)  # replays the run's split: the same test accuracy as recorded
    assert again["accuracy"] == pytest.approx(federated_run.metrics["test"]["accuracy"])


@needs_flwr
def test_cli_dirichlet_fedprox_run(in_tmp, capsys):
    (in_tmp / "small.yaml").write_text("model: {name: mlp, hidden: [32]}\ntrain: {threads: 1}\n")
    code = cli("federate", "--data", "bundled:iris", "--clients", "3", "--rounds", "3", "--local-epochs", "3",
               "--partition", "dirichlet", "--alpha", "0.5", "--strategy", "fedprox", "--mu", "0.05",
               "--config", "small.yaml", "--lr", "0.01", "--batch-size", "16", "--no-central", *FLAGS)
    out = capsys.readouterr().out
    assert code == 0
    assert "mlp federated (fedprox)" in out and "centralized" not in out
    m = json.loads((in_tmp / "runs" / "iris-federated" / "metrics.json").read_text())
    fed = m["federated"]
    assert fed["options"]["strategy"] == "fedprox" and fed["options"]["mu"] == 0.05 and fed["central"] is None
    assert fed["partition"]["method"] == "dirichlet" and fed["partition"]["mean_label_skew"] > 0.15
    assert m["test"]["accuracy"] > 0.6  # 3 balanced classes: chance is 0.33


# --------------------------------------------------------------------------------------------- optional engines
@needs_flwr
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("opacus") is None or importlib.util.find_spec("forgeml.privacy.dp") is None,
                    reason="forgeml[privacy] is not installed")
def test_dp_clients_stay_within_the_budget(in_tmp):
    from forgeml import api

    r = api.federate({"data": {"source": "bundled:breast_cancer"}, "name": "dp", **SMALL,
                      "train": {**SMALL["train"], "privacy": {"epsilon": 4.0, "accountant": "rdp"}}},
                     clients=2, rounds=2, quiet=True)
    p = r.metrics["privacy"]
    assert 0 < p["epsilon"] <= 4.0 and p["noise_multiplier"] > 0 and p["delta"] < 1 / 400
    clients = r.metrics["federated"]["clients"]
    assert all(0 < c["epsilon"] <= 4.0 for c in clients)
    assert r.metrics["federated"]["central"]["privacy"]["epsilon"] <= 4.0  # the central comparison is private too
    assert r.metrics["test"]["accuracy"] > 0.7
    assert api.load(r.run_dir).predict(api.test_rows(api.load(r.run_dir)).head(3)).shape[0] == 3


@needs_flwr
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (Flower's simulation engine)")
def test_flower_simulation_engine_matches_the_local_engine(in_tmp):
    """Flower's Ray-based Simulation Engine runs the same algorithm: the same rounds, to float rounding."""
    from forgeml import api

    common = {"data": {"source": "bundled:iris"}, **SMALL}
    runs = {engine: api.federate({**common, "name": engine}, clients=2, rounds=2, central=False, engine=engine, quiet=True)
            for engine in ("local", "simulation")}
    a, b = (runs[e].metrics["federated"]["rounds"] for e in ("local", "simulation"))
    assert [r["val_loss"] for r in a] == pytest.approx([r["val_loss"] for r in b], rel=1e-4)


# --------------------------------------------------------------------------------------------- bad input
@needs_flwr
@pytest.mark.parametrize("args, expected", [
    (["--clients", "0"], "--clients must be at least 1"),
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--partition", "dirichlet", "--alpha", "0"], "--alpha must be a number > 0"),
    (["--partition", "shards"], "unknown --partition 'shards'"),
    (["--strategy", "fedsgd"], "unknown --strategy 'fedsgd'"),
    (["--model", "lightgbm"], "lightgbm cannot be federated"),
    (["--clients", "5000"], "5000 clients but the training split has only"),
    (["--epsilon", "0"], "epsilon is the privacy budget and must be a number > 0"),
    (["--delta", "1e-5"], "give its budget with --epsilon"),
])
def test_bad_input_is_one_clear_error(in_tmp, capsys, args, expected):
    message = user_error(capsys, "federate", "--data", "bundled:iris", *args, *FLAGS)
    assert expected in message
    assert not (in_tmp / "runs" / "iris-federated").exists()  # nothing written
