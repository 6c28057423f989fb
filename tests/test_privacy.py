"""Differential privacy (train.privacy / --epsilon): DP-SGD with Opacus spends at most its budget, learns, reports what
it spent, replaces BatchNorm with a notice, and the trained model loads, predicts and exports like any other."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from forgeml import api

from conftest import cli, user_error

pytest.importorskip("opacus")

TRACK = ["--tracking-uri", "none", "--quiet"]


@pytest.fixture(scope="module")
def dp_cnn(tmp_path_factory):
    """A small CNN (BatchNorm in every block) trained on digits with epsilon 4."""
    said = []
    run = api.train({"name": "dp-cnn", "runs_dir": str(tmp_path_factory.mktemp("dp") / "runs"), "tracking": {"uri": "none"},
                     "data": {"source": "bundled:digits"}, "model": {"name": "cnn", "channels": [8, 16], "dropout": 0.0},
                     "train": {"epochs": 8, "batch_size": 128, "optimizer": "adamw", "lr": 0.01, "schedule": "constant", "weight_decay": 0.0,
                               "early_stopping": None, "privacy": {"epsilon": 4.0}}},
                    say=said.append)
    return run, said


def test_dp_training_spends_at_most_its_budget_and_learns(dp_cnn):
    run, said = dp_cnn
    p = run.metrics["privacy"]
    assert 0 < p["epsilon"] <= p["target_epsilon"] == 4.0
    assert p["epsilon"] > 0.9 * p["target_epsilon"]  # all planned epochs ran: nearly the whole budget is spent
    assert p["noise_multiplier"] > 0.3 and p["max_grad_norm"] == 1.0 and p["accountant"] == "prv"
    n_train = run.manifest["data"]["rows"]["train"]
    assert p["delta"] == pytest.approx(1e-5) and p["delta"] < 1 / n_train
    assert p["sample_rate"] == pytest.approx(1 / np.ceil(n_train / 128))
    assert p["steps"] == 8 * np.ceil(n_train / 128)
    assert run.metrics["test"]["accuracy"] > 0.5  # 10 classes: chance is 0.1
    saved = json.loads((run.run_dir / "metrics.json").read_text())["privacy"]
    assert saved["epsilon"] == p["epsilon"] and run.manifest["privacy"]["epsilon"] == p["epsilon"]
    assert any("spent epsilon" in line for line in said)
    assert "Differential privacy" in (run.run_dir / "report.html").read_text()


def test_batchnorm_is_replaced_with_a_notice_and_the_model_loads_the_same_layers(dp_cnn):
    run, said = dp_cnn
    notice = next(line for line in said if "replaced" in line)
    assert "BatchNorm2d -> GroupNorm" in notice and "stem.1" in notice
    assert {(r["from"], r["to"]) for r in run.manifest["model"]["dp_fixed"]} == {("BatchNorm2d", "GroupNorm")}
    assert run.manifest["model"]["dp_fixed"] == run.metrics["privacy"]["replaced_layers"]

    model = api.load(run.run_dir)
    layers = {type(m).__name__ for m in model.estimator.modules()}
    assert "GroupNorm" in layers and "BatchNorm2d" not in layers
    from forgeml.data.bundled import load_bundled

    rows = load_bundled("digits")[0].iloc[:200]
    pred = model.predict(rows)
    assert (pred["prediction"].to_numpy() == rows["label"].to_numpy()).mean() > 0.5
    assert api.evaluate(run.run_dir)["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])


def test_dp_model_exports_to_onnx_with_parity(dp_cnn):
    pytest.importorskip("onnxruntime")
    run, _ = dp_cnn
    info = api.export(run.run_dir)
    assert info["parity"]["rows"] > 50 and info["parity"]["max_abs_diff"] < 1e-4


def test_compress_refuses_to_retrain_a_dp_model_without_dp(dp_cnn, capsys):
    run, _ = dp_cnn
    assert "void the guarantee" in user_error(capsys, "compress", run.run_dir, "--prune", "0.5")


def test_cli_epsilon_on_a_table_trains_the_dp_default_alone(in_tmp, capsys):
    """--epsilon with model auto: the linear model (the DP default), not the MLP and LightGBM auto trains without
    privacy; the statistics the preprocessing learned from the private rows are named."""
    code = cli("train", "--data", "bundled:breast_cancer", "--epsilon", "2", "--delta", "1e-6", "--max-grad-norm", "0.5",
               "--epochs", "10", "--batch-size", "64", "--name", "bc", "--tracking-uri", "none")
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0, err
    assert "model: auto -> linear" in err and "epsilon does not cover them" in err and "mean radius" in err
    metrics = json.loads((in_tmp / "runs" / "bc" / "metrics.json").read_text())
    p = metrics["privacy"]
    assert p["epsilon"] <= 2 and p["delta"] == 1e-6 and p["max_grad_norm"] == 0.5 and "share" not in p
    assert p["replaced_layers"] == []  # one Linear layer: nothing to replace
    assert [c["model"] for c in metrics["candidates"]] == ["linear"]
    assert metrics["baseline"]["name"] == "lightgbm"  # the (non-private) baseline is still there, for reference
    assert metrics["test"]["roc_auc"] > 0.9  # well above chance (0.5) on 569 real rows
    manifest = json.loads((in_tmp / "runs" / "bc" / "manifest.json").read_text())
    private = manifest["data"]["preparation"]["private_preprocessing"]
    assert private["covered_by_epsilon"] == [] and private["fitted_on_private_rows"][0]["type"] == "numeric"
    assert len(private["fitted_on_private_rows"][0]["columns"]) == 30
    config = (in_tmp / "runs" / "bc" / "config.yaml").read_text()
    assert "epochs: 10" in config and "batch_size: 64" in config and "optimizer: sgd" in config  # DP defaults, flags kept
    assert len(api.predict(in_tmp / "runs" / "bc", "bundled:breast_cancer")) == 569


@pytest.mark.slow
def test_a_resumed_dp_run_accounts_for_every_step(in_tmp, monkeypatch):
    from forgeml.tracking import Tracker

    cfg = {"data": {"source": "bundled:iris"}, "model": {"name": "mlp", "hidden": [16]}, "tracking": {"uri": "none"},
           "train": {"epochs": 4, "batch_size": 16, "lr": 0.01, "early_stopping": None,
                     "privacy": {"epsilon": 3.0, "accountant": "rdp"}}}
    straight = api.train({**cfg, "name": "straight"}, quiet=True)

    original = Tracker.epoch

    def crash_after_two(self, logs, prefix=""):
        original(self, logs, prefix)
        if logs["epoch"] == 1:
            raise KeyboardInterrupt  # killed after the second epoch's checkpoint
    monkeypatch.setattr(Tracker, "epoch", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        api.train({**cfg, "name": "resumed"}, quiet=True)
    monkeypatch.setattr(Tracker, "epoch", original)
    resumed = api.train({**cfg, "name": "resumed"}, resume=True, quiet=True)

    a, b = resumed.metrics["privacy"], straight.metrics["privacy"]
    assert a["steps"] == b["steps"] == 4 * np.ceil(resumed.manifest["data"]["rows"]["train"] / 16)
    assert a["epsilon"] == pytest.approx(b["epsilon"]) and a["epsilon"] <= 3.0
    assert [h["val_loss"] for h in resumed.metrics["history"]] == pytest.approx([h["val_loss"] for h in straight.metrics["history"]])


def test_early_stopping_spends_less_than_the_budget(in_tmp):
    run = api.train({"name": "es", "data": {"source": "bundled:iris"}, "model": {"name": "mlp", "hidden": [16]},
                     "tracking": {"uri": "none"},
                     "train": {"epochs": 40, "batch_size": 16, "lr": 1e-5, "early_stopping": {"patience": 1, "min_delta": 1.0},
                               "privacy": {"epsilon": 3.0, "accountant": "rdp"}}}, quiet=True)
    p = run.metrics["privacy"]
    assert run.metrics["training"]["stopped_early"] and run.metrics["training"]["epochs_run"] == 2
    assert p["steps"] == 2 * np.ceil(run.manifest["data"]["rows"]["train"] / 16)
    assert p["epsilon"] < 0.7 * 3.0 and p["accountant"] == "rdp"  # spent by the steps taken, not the 40 planned


def test_make_private_is_reusable_with_any_data_loader():
    """The building block federated learning uses: a plain model, optimizer and DataLoader."""
    from torch.utils.data import DataLoader, TensorDataset

    from forgeml.privacy.dp import make_compatible, make_private

    torch.manual_seed(0)
    x = torch.randn(400, 5)
    y = (x[:, 0] > 0).long()
    model, replaced = make_compatible(torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.LayerNorm(16),
                                                          torch.nn.ReLU(), torch.nn.Linear(16, 2)))
    assert replaced == []
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    private = make_private(model, optimizer, DataLoader(TensorDataset(x, y), batch_size=50), epsilon=5.0, delta=1e-4,
                           epochs=5, accountant="rdp")
    for _ in range(5):
        for xb, yb in private.data_loader:
            F.cross_entropy(model(xb), yb).backward()
            private.optimizer.step()
            private.optimizer.zero_grad()
    spent = private.spent()
    assert spent["steps"] == 40 and 0 < spent["epsilon"] <= 5.0
    private.close()
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]  # no _module.
    assert (model(x).argmax(1) == y).float().mean() > 0.8


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, message", [
    (["--epsilon", "0"], "epsilon is the privacy budget and must be a number > 0"),
    (["--epsilon", "-1"], "must be a number > 0"),
    (["--epsilon", "3", "--delta", "0"], "delta must be between 0 and 1"),
    (["--epsilon", "3", "--delta", "1.5"], "delta must be between 0 and 1"),
    (["--delta", "1e-5"], "give its budget with --epsilon"),
    (["--epsilon", "3", "--model", "lightgbm"], "lightgbm cannot be trained with differential privacy"),
    (["--epsilon", "3", "--precision", "fp16"], "DP-SGD trains in fp32"),
    (["--epsilon", "3", "--balance", "smote"], "one row would count several times"),
    (["--epsilon", "3", "--balance", "class_weights"], "each row's gradient depends on the other rows"),
])
def test_bad_privacy_options_are_clear_errors(in_tmp, capsys, args, message):
    msg = user_error(capsys, "train", "--data", "bundled:iris", *args, *TRACK)
    assert message in msg


def test_incompatible_training_options_are_clear_errors(in_tmp, capsys):
    (in_tmp / "cfg.yaml").write_text("train: {grad_accum: 2, privacy: {epsilon: 3}}\n")
    assert "grad_accum > 1 does not work with privacy" in user_error(capsys, "train", "--data", "bundled:iris", "--config",
                                                                     "cfg.yaml", *TRACK)
    (in_tmp / "cfg.yaml").write_text("train: {l1: 0.001, privacy: {epsilon: 3}}\n")
    assert "l1 does not work with privacy" in user_error(capsys, "train", "--data", "bundled:iris", "--config", "cfg.yaml", *TRACK)


def test_a_layer_that_cannot_be_made_private_is_named(in_tmp, capsys, monkeypatch):
    """Spectral normalization keeps buffers (its power-iteration vectors) in a trainable layer: Opacus cannot fix it."""
    from forgeml import models

    spec = models.get_model("mlp")

    def build(params, shapes, out_dim):
        return torch.nn.Sequential(torch.nn.utils.spectral_norm(torch.nn.Linear(shapes["numeric"], 8)), torch.nn.ReLU(),
                                   torch.nn.Linear(8, out_dim))

    monkeypatch.setattr(spec, "build", lambda p, s, o: _Wrap(build(p, s, o)))
    msg = user_error(capsys, "train", "--data", "bundled:iris", "--model", "mlp", "--epsilon", "3", *TRACK)
    assert "cannot be trained with differential privacy" in msg
    assert "net.0 (Linear)" in msg and "buffers" in msg and "net.2" not in msg


class _Wrap(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, batch):
        return self.net(batch["numeric"])


@pytest.mark.parametrize("name, params, shapes, inputs, layer", [
    ("text", {"encoder": "transformer"}, {"text_vocab": 50}, {"tokens": np.random.randint(1, 50, (4, 9))},
     "encoder.layers.0.self_attn (DPMultiheadAttention)"),
    ("mlp", {}, {"numeric": 2, "categorical": [], "text_vocab": 50},
     {"numeric": np.random.randn(4, 2).astype("float32"), "tokens": np.random.randint(1, 50, (4, 9))}, "text (EmbeddingBag)"),
])
def test_builtin_layers_opacus_fails_on_are_named(name, params, shapes, inputs, layer):
    """Layers that pass Opacus' validation but fail in its per-row gradient hooks are found by one probe pass."""
    from forgeml.config import params_class
    from forgeml.errors import ConfigError
    from forgeml.models import get_model
    from forgeml.privacy.dp import make_compatible

    model = get_model(name).build(params_class(name)(**params), shapes, 3)
    with pytest.raises(ConfigError, match="cannot be trained with differential privacy") as err:
        make_compatible(model, inputs, np.array([0, 1, 2, 0]), lambda out, y: F.cross_entropy(out, y))
    assert layer in str(err.value)


def test_bilstm_text_model_is_made_compatible():
    from forgeml.config import params_class
    from forgeml.models import get_model
    from forgeml.privacy.dp import make_compatible

    model = get_model("text").build(params_class("text")(embedding_dim=16, hidden=8), {"text_vocab": 50}, 2)
    fixed, replaced = make_compatible(model, {"tokens": np.random.randint(1, 50, (4, 9))}, np.array([0, 1, 1, 0]),
                                      lambda out, y: F.cross_entropy(out, y))
    assert replaced == [{"layer": "encoder", "from": "LSTM", "to": "DPLSTM", "rebuild": False}]


@pytest.mark.slow
def test_dp_bilstm_loads_as_a_plain_lstm_and_exports(in_tmp):
    """DPLSTM computes nn.LSTM's function under nn.LSTM's parameter names: the trained weights load into the text
    model's own nn.LSTM (no Opacus needed) and export to ONNX with variable-length inputs."""
    import pandas as pd

    rng = np.random.default_rng(0)
    words = {0: "bad awful poor dull", 1: "good great fine nice"}
    rows = [{"text": " ".join(rng.choice(("the film a plot was it and " + words[i % 2]).split(), size=rng.integers(4, 12))),
             "label": ("neg", "pos")[i % 2]} for i in range(300)]
    pd.DataFrame(rows).to_csv("reviews.csv", index=False)
    run = api.train({"name": "dp-text", "tracking": {"uri": "none"}, "data": {"source": "reviews.csv", "target": "label"},
                     "model": {"name": "text", "embedding_dim": 16, "hidden": 16},
                     "train": {"epochs": 3, "batch_size": 32, "lr": 0.02, "early_stopping": None,
                               "privacy": {"epsilon": 8.0, "accountant": "rdp"}}}, quiet=True)
    assert run.metrics["privacy"]["replaced_layers"] == [{"layer": "encoder", "from": "LSTM", "to": "DPLSTM", "rebuild": False}]
    assert run.manifest["model"]["dp_fixed"] == []
    model = api.load(run.run_dir)
    assert type(model.estimator.encoder) is torch.nn.LSTM
    assert api.evaluate(run.run_dir)["log_loss"] == pytest.approx(run.metrics["test"]["log_loss"], rel=1e-5)
    pytest.importorskip("onnxruntime")
    assert api.export(run.run_dir)["parity"]["max_abs_diff"] < 1e-4
