"""The training loop's knobs do what they say: accumulation, L1, schedules, early stopping, precision."""
import math

import numpy as np
import pytest
import torch

from forgeml.config import TrainConfig
from forgeml.tasks import fit_task
from forgeml.train.loop import fit
from forgeml.train.optim import make_optimizer, make_schedule
from forgeml.precision import resolve_precision
import pandas as pd


class Linear(torch.nn.Module):
    def __init__(self, d=10, k=3):
        super().__init__()
        self.fc = torch.nn.Linear(d, k)

    def forward(self, batch):
        return self.fc(batch["numeric"])


@pytest.fixture
def data():
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    x, y = load_wine(return_X_y=True)
    x = StandardScaler().fit_transform(x).astype(np.float32)
    task = fit_task("classification", pd.Series(y))
    idx = np.random.default_rng(0).permutation(len(y))
    tr, va = idx[:130], idx[130:]
    return task, {"numeric": x[tr]}, y[tr], {"numeric": x[va]}, y[va]


def _cfg(**kw):
    base = dict(epochs=3, batch_size=16, lr=0.05, early_stopping=None, grad_clip=None, weight_decay=0.0, schedule="constant")
    return TrainConfig(**{**base, **kw})


def _fit(data, model, **kw):
    task, xt, yt, xv, yv = data
    return fit(model, task, xt, yt, xv, yv, _cfg(**kw))


def test_gradient_accumulation_matches_a_bigger_batch(data):
    torch.manual_seed(0)
    a = Linear(13)
    b = Linear(13)
    b.load_state_dict(a.state_dict())
    _fit(data, a, epochs=1, batch_size=128, optimizer="sgd", momentum=0.0)
    _fit(data, b, epochs=1, batch_size=64, grad_accum=2, optimizer="sgd", momentum=0.0)
    # 130 rows: one step over 128 rows vs two accumulated halves of 64 (+2 leftover rows in a final step for both)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)


def test_l1_drives_weights_towards_zero(data):
    torch.manual_seed(0)
    plain, sparse = Linear(13), Linear(13)
    sparse.load_state_dict(plain.state_dict())
    _fit(data, plain, epochs=20)
    _fit(data, sparse, epochs=20, l1=0.2)
    assert sparse.fc.weight.abs().sum() < 0.5 * plain.fc.weight.abs().sum()


def test_early_stopping_stops_and_restores_the_best_epoch(data):
    from forgeml.config import EarlyStopping

    torch.manual_seed(0)
    result = _fit(data, Linear(13), epochs=200, lr=0.5, early_stopping=EarlyStopping(monitor="val_loss", patience=3))
    assert result.stopped_early and len(result.history) < 200
    best = min(result.history, key=lambda h: h["val_loss"])
    assert result.best_epoch == best["epoch"]
    assert len(result.history) == result.best_epoch + 1 + 3


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_schedules_warm_up_and_decay(schedule):
    model = Linear()
    cfg = _cfg(schedule=schedule, warmup=0.1, lr=1.0)
    opt = make_optimizer(model, cfg)
    sched = make_schedule(opt, cfg, 100)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    peak = int(np.argmax(lrs))
    assert 0 < peak < 50 and lrs[0] < lrs[peak] and lrs[-1] < 0.05 * max(lrs)


def _output_dtypes(model) -> list:
    """The dtype of the layer's output at every forward call (training steps and validation)."""
    seen = []
    model.fc.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    return seen


def test_precision_defaults_to_fp32_on_cpu_and_bf16_autocast_runs(data):
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    torch.manual_seed(0)
    model = Linear(13)
    dtypes = _output_dtypes(model)
    with pytest.warns(UserWarning, match="no native"):
        result = _fit(data, model, epochs=2, precision="bf16")
    assert result.precision == "bf16" and np.isfinite(result.history[-1]["val_loss"])
    # autocast really ran: the linear layer computed in bfloat16 in every training and validation forward
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert model.fc.weight.dtype == torch.float32  # the weights themselves stay fp32
    plain = Linear(13)
    fp32_dtypes = _output_dtypes(plain)
    _fit(data, plain, epochs=1)
    assert set(fp32_dtypes) == {torch.float32}


def test_fp16_autocast_with_loss_scaling_trains(data, tmp_path):
    """fp16 runs under autocast with a real GradScaler: the scale it keeps (saved in the checkpoint) has moved from its
    initial value or counted clean steps, which only happens when scaler.update() runs with the scaler enabled."""
    import json

    torch.manual_seed(0)
    model = Linear(13)
    dtypes = _output_dtypes(model)
    with pytest.warns(UserWarning, match="no native"):
        result = fit(model, *data, _cfg(epochs=3, precision="fp16"), checkpoint_dir=tmp_path)
    assert result.precision == "fp16" and set(dtypes) == {torch.float16}
    assert result.history[-1]["val_accuracy"] > 0.8  # it learned: wine, 3 classes, 48 validation rows
    scaler = json.loads((tmp_path / "last.json").read_text())["scaler"]
    assert scaler is not None, "fp16 trained without loss scaling"
    steps = 3 * math.ceil(130 / 16)
    assert scaler["scale"] != 65536.0 or scaler["_growth_tracker"] == steps


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mixed_precision_on_gpu(data):
    torch.manual_seed(0)
    result = _fit(data, Linear(13), epochs=3, device="cuda")
    assert result.precision in ("bf16", "fp16") and result.history[-1]["val_accuracy"] > 0.8


def test_train_threads_limits_the_native_thread_pools_during_the_run_only(in_tmp):
    """train.threads bounds BLAS/OpenMP (NumPy, scikit-learn: the baselines, the metrics) as it bounds torch, while
    the run trains; the process's own limits come back afterwards."""
    from threadpoolctl import threadpool_info

    from forgeml import api

    before = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    seen = []
    api.train({"name": "t", "data": {"source": "bundled:breast_cancer"}, "model": {"name": "mlp", "hidden": [8]},
               "train": {"epochs": 1, "threads": 1}, "tracking": {"uri": "none"}}, quiet=True,
              on_epoch=lambda name, logs: seen.append([i["num_threads"] for i in threadpool_info()]))
    assert seen and all(n == 1 for n in seen[0])
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert before and {k: after[k] for k in before} == before  # libraries loaded during the run may join the list


def test_usable_cpus_follow_the_affinity_mask_and_the_cgroup_quota(tmp_path, monkeypatch):
    import os

    from forgeml.train.threads import usable_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert usable_cpus(tmp_path) == 4  # no quota files: the mask
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(tmp_path) == 4  # v2, unlimited
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert usable_cpus(tmp_path) == 2  # v2: 1.5 CPUs of quota, rounded
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert usable_cpus(tmp_path) == 1  # v1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert usable_cpus(tmp_path) == 1  # pinned to one CPU, no quota


def test_a_small_network_trains_on_one_thread_unless_told_and_the_process_keeps_its_own(in_tmp):
    import torch

    from forgeml import api
    from forgeml.train.threads import SMALL_MODEL, threads_for, usable_cpus

    before = torch.get_num_threads()
    seen = []
    base = {"data": {"source": "bundled:breast_cancer"}, "model": {"name": "mlp", "hidden": [8]}, "tracking": {"uri": "none"}}
    run = api.train({**base, "name": "auto", "train": {"epochs": 1}}, quiet=True,
                    on_epoch=lambda name, logs: seen.append(torch.get_num_threads()))
    assert seen == [1] and run.metrics["training"]["threads"] == 1 and torch.get_num_threads() == before
    run = api.train({**base, "name": "two", "train": {"epochs": 1, "threads": 2}}, quiet=True,
                    on_epoch=lambda name, logs: seen.append(torch.get_num_threads()))
    assert seen[-1] == 2 and run.metrics["training"]["threads"] == 2 and torch.get_num_threads() == before
    big = torch.nn.Linear(SMALL_MODEL, 2)
    assert threads_for(big) == usable_cpus() and threads_for(torch.nn.Linear(4, 2)) == 1
    assert threads_for(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())) == usable_cpus()  # convolutions work hard
