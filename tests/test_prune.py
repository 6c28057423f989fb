"""Structured pruning: channels/neurons really removed, rebuildable from config params, fine-tuning recovers accuracy."""
import numpy as np
import pandas as pd
import pytest
import torch

from forgeml import api
from forgeml.compress.prune import fine_tune, prunable, prune, pruned_params
from forgeml.config import build_config
from forgeml.models.cnn import CNNParams
from forgeml.models.mlp import MLPParams
from forgeml.errors import ConfigError
from forgeml.models import get_model
from forgeml.train.loop import fit, predict_raw

from conftest import fast_train

# one thread: fit() sets torch's thread count, and on a small shared machine one is much faster for these tiny models
TRAIN = fast_train(epochs=5, lr=3e-3, threads=1)


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits():
    return api.prepare(build_config({"data": {"source": "bundled:digits"}, "model": {"name": "cnn"}, "tracking": {"uri": "none"}}))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """numeric + categorical + text columns, so the MLP has embeddings and an EmbeddingBag in front of its hidden layers."""
    rng = np.random.default_rng(0)
    n = 300
    amount = rng.normal(0, 1, n)
    plan = rng.choice(["basic", "pro", "team"], n)
    words = rng.choice(["great support", "terrible latency", "fine overall"], n)
    label = np.where(amount + (plan == "pro") - 1.5 * (words == "terrible latency") < 0, "yes", "no")
    path = tmp_path_factory.mktemp("prune") / "mixed.csv"
    pd.DataFrame({"amount": amount, "plan": plan, "notes": [f"customer says {w}" for w in words], "churn": label}).to_csv(path, index=False)
    return api.prepare(build_config({"data": {"source": str(path), "target": "churn"}, "model": {"name": "mlp"}, "tracking": {"uri": "none"}}))


def _example(data, n=8):
    return {k: torch.from_numpy(v[:n]) for k, v in data.enc["train"].items()}


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def _build(name, params, data):
    torch.manual_seed(0)
    return get_model(name).build(params, data.preprocessor.input_shapes(), data.task.out_dim).eval()


def _accuracy(model, data):
    return float((predict_raw(model, data.enc["test"]).argmax(1) == data.y["test"]).mean())


def _rebuilds_exactly(name, params, pruned, data, expected):
    new = pruned_params(name, params, pruned)
    assert new is not None and new == expected
    rebuilt = get_model(name).build(new, data.preprocessor.input_shapes(), data.task.out_dim).eval()
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    x = _example(data, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), pruned(x))


def test_pruning_half_the_cnn_channels_removes_them(digits):
    params = CNNParams(channels=[64, 128])
    model = _build("cnn", params, digits)
    before, x = _n_params(model), _example(digits)
    with torch.no_grad():  # prune traces through autograd itself
        out = model(x)
        pruned = prune(model, "cnn", 0.5, x)
        assert pruned(x).shape == out.shape
    after = _n_params(pruned)
    assert before / after >= 2.5, (before, after)
    assert not pruned.training and next(pruned.parameters()).device.type == "cpu"
    assert _n_params(model) == before  # the caller's model is untouched
    assert [m.out_channels for m in pruned.modules() if isinstance(m, torch.nn.Conv2d)] == [32, 32, 32, 64, 64, 64]
    assert pruned.head[-1].out_features == 10 and pruned.stem[0].in_channels == 1


@pytest.mark.parametrize("channels, blocks, ratio, expected", [
    ([64, 128], 1, 0.5, [32, 64]),
    ([16, 24, 40], 2, 0.3, [11, 17, 28]),  # rounded, not floored: 16*0.7 = 11.2, 24*0.7 = 16.8, 40*0.7 = 28
    ([10, 20], 1, 0.8, [2, 4]),  # 10*(1-0.8) is 1.9999... in floating point
])
def test_pruned_cnn_rebuilds_from_params(digits, channels, blocks, ratio, expected):
    params = CNNParams(channels=channels, blocks_per_stage=blocks)
    pruned = prune(_build("cnn", params, digits), "cnn", ratio, _example(digits))
    _rebuilds_exactly("cnn", params, pruned, digits, params.model_copy(update={"channels": expected}))


def test_pruned_mlp_with_categorical_numeric_and_text_inputs_rebuilds_from_params(table):
    params = MLPParams(hidden=[64, 32])
    model = _build("mlp", params, table)
    pruned = prune(model, "mlp", 0.5, _example(table))
    assert _n_params(pruned) < _n_params(model)
    # inputs untouched: same embeddings, same first-layer inputs; only hidden widths shrink
    assert [e.weight.shape for e in pruned.embeddings] == [e.weight.shape for e in model.embeddings]
    assert pruned.text.weight.shape == model.text.weight.shape
    assert pruned.net[0].in_features == model.net[0].in_features and pruned.net[-1].out_features == 2
    _rebuilds_exactly("mlp", params, pruned, table, params.model_copy(update={"hidden": [32, 16]}))


def test_the_weakest_channels_are_the_ones_removed(digits):
    params = CNNParams(channels=[16, 32])
    model = _build("cnn", params, digits)
    block, dead = model.blocks[1], torch.arange(0, 32, 2)  # an inner channel group of the second stage: conv1 -> bn1 -> conv2
    with torch.no_grad():
        for p in (block.conv1.weight, block.bn1.weight, block.bn1.bias):
            p[dead] = 0
        block.conv2.weight[:, dead] = 0
    pruned = prune(model, "cnn", 0.5, _example(digits)).blocks[1]
    # exactly the 16 zeroed channels went (what is left is alive in conv1, bn1 and conv2's inputs)
    assert pruned.conv1.out_channels == 16 and (pruned.bn1.weight != 0).all()
    assert (pruned.conv1.weight.abs().sum(dim=(1, 2, 3)) > 0).all() and (pruned.conv2.weight.abs().sum(dim=(0, 2, 3)) > 0).all()


def test_pruned_params_is_none_for_another_architecture(digits, table):
    mlp = _build("mlp", MLPParams(hidden=[8]), table)
    assert pruned_params("cnn", CNNParams(), mlp) is None
    cnn = _build("cnn", CNNParams(channels=[8, 16]), digits)
    assert pruned_params("cnn", CNNParams(channels=[8, 16], blocks_per_stage=2), cnn) is None
    assert pruned_params("text", CNNParams(), cnn) is None


def test_fine_tuning_recovers_the_accuracy_lost_to_pruning(digits):
    params = CNNParams(channels=[16, 32])
    model = _build("cnn", params, digits)
    cfg = build_config({"data": {"source": "bundled:digits"}, "train": TRAIN}).train
    fit(model, digits.task, digits.enc["train"], digits.y["train"], digits.enc["val"], digits.y["val"], cfg)
    base = _accuracy(model, digits)
    assert base > 0.93
    pruned = prune(model, "cnn", 0.5, _example(digits))
    hurt = _accuracy(pruned, digits)
    result = fine_tune(pruned, digits.task, digits, cfg, epochs=4, lr_scale=1.0)
    recovered = _accuracy(pruned, digits)
    assert len(result.history) == 4 and result.monitor == "val_loss" and cfg.epochs == TRAIN["epochs"]  # cfg not mutated
    assert recovered > hurt + 0.2 and recovered >= base - 0.04, (base, hurt, recovered)


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.1, float("nan")])
def test_ratio_outside_zero_one_is_a_config_error(digits, ratio):
    model = _build("cnn", CNNParams(channels=[8, 16]), digits)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        prune(model, "cnn", ratio, _example(digits))


def test_unsupported_model_is_a_config_error_naming_the_supported_ones(digits):
    model = _build("cnn", CNNParams(channels=[8, 16]), digits)
    with pytest.raises(ConfigError) as err:
        prune(model, "text", 0.5, _example(digits))
    assert prunable() == ["cnn", "mlp"] and all(name in str(err.value) for name in prunable()) and "'text'" in str(err.value)
