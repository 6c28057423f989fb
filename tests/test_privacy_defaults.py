"""Private training that keeps its accuracy: under train.privacy, model auto trains the linear model with DP-SGD's
own defaults (or, with privacy.select, every DP candidate on an equal share of the budget); the preprocessing takes
no statistic of the private rows where the range is known (pixels, declared numeric bounds) and says what it did
take; a budget too small to calibrate names the smallest workable one."""

import pytest

from forgeml import api
from forgeml.config import build_config

from conftest import user_error

pytest.importorskip("opacus")

TRACK = ["--tracking-uri", "none", "--quiet"]
IRIS_BOUNDS = {"sepal length (cm)": [4, 8], "sepal width (cm)": [2, 4.5], "petal length (cm)": [1, 7],
               "petal width (cm)": [0, 2]}  # petal width reaches 2.5 in the data: clipped, counted


def test_privacy_brings_its_own_loop_defaults_and_keeps_what_the_config_sets():
    private = build_config({"data": {"source": "bundled:iris"}, "train": {"privacy": {"epsilon": 3}}}).train
    assert (private.batch_size, private.epochs, private.optimizer, private.momentum, private.lr, private.schedule,
            private.early_stopping, private.weight_decay) == (256, 30, "sgd", 0.9, 0.2, "constant", None, 0.0)
    mine = build_config({"data": {"source": "bundled:iris"}, "train": {"lr": 0.05, "epochs": 5, "privacy": {"epsilon": 3}}}).train
    assert (mine.lr, mine.epochs, mine.batch_size) == (0.05, 5, 256)
    plain = build_config({"data": {"source": "bundled:iris"}}).train
    assert (plain.batch_size, plain.optimizer, plain.early_stopping is not None) == (64, "adamw", True)


def test_declared_bounds_scale_without_the_data_and_count_what_they_clip(in_tmp):
    said = []
    run = api.train({"name": "iris", "data": {"source": "bundled:iris"}, "tracking": {"uri": "none"},
                     "train": {"epochs": 10, "batch_size": 32, "privacy": {"epsilon": 8, "bounds": IRIS_BOUNDS}}},
                    say=said.append)
    state = run.manifest["preprocessing"]["numeric"]
    assert state["bounded"] == list(IRIS_BOUNDS)
    assert state["center"] == pytest.approx([6, 3.25, 4, 1]) and state["scale"] == pytest.approx([2, 1.25, 3, 1])
    assert state["clip"] == [[4, 2, 1, 0], [8, 4.5, 7, 2]]
    private = run.manifest["data"]["preparation"]["private_preprocessing"]
    assert private["fitted_on_private_rows"] == []
    clipped = private["covered_by_epsilon"][0]["clipped"]
    train = run.manifest["data"]["rows"]["train"]
    assert set(clipped) == {"petal width (cm)"} and 0 < clipped["petal width (cm)"] < train
    assert any("outside their declared bounds were clipped: petal width (cm)" in line for line in said)
    assert not any("epsilon does not cover" in line for line in said)
    x = api.load(run.run_dir).preprocessor.transform(api.load(run.run_dir).frame("bundled:iris"))["numeric"]
    assert x.min() >= -1 and x.max() <= 1  # every value scaled into [-1, 1] by its bounds
    assert run.metrics["test"]["accuracy"] > 0.6  # chance is 1/3
    report = (run.run_dir / "report.html").read_text()
    assert "scaled by the declared bounds" in report


def test_pixels_are_scaled_by_their_range_under_privacy(in_tmp):
    run = api.train({"name": "digits", "data": {"source": "bundled:digits"}, "tracking": {"uri": "none"},
                     "train": {"epochs": 3, "privacy": {"epsilon": 3}}}, quiet=True)
    image = run.manifest["preprocessing"]["image"]
    assert image["mean"] == [0.5] and image["std"] == [0.5]
    assert run.manifest["model"]["name"] == "linear"
    private = run.manifest["data"]["preparation"]["private_preprocessing"]
    assert private["covered_by_epsilon"][0]["type"] == "image" and private["fitted_on_private_rows"] == []
    p = run.metrics["privacy"]
    assert p["epsilon"] <= 3 and p["steps"] > 0
    assert run.metrics["test"]["accuracy"] > 0.5  # 3 private epochs of a linear model; chance is 0.1
    info = api.export(run.run_dir)
    assert info["parity"]["max_abs_diff"] < 1e-4


def test_select_trains_every_candidate_on_a_share_of_the_budget(in_tmp):
    run = api.train({"name": "select", "data": {"source": "bundled:iris"}, "tracking": {"uri": "none"},
                     "model": {"name": "auto"},
                     "train": {"epochs": 4, "batch_size": 32, "privacy": {"epsilon": 6, "select": True, "accountant": "rdp"}}},
                    quiet=True)
    names = [c["model"] for c in run.metrics["candidates"]]
    assert names == ["linear", "shallow_mlp", "mlp"]
    p = run.metrics["privacy"]
    assert p["share"]["models"] == 3 and p["share"]["budget_epsilon"] == 6
    assert p["target_epsilon"] == pytest.approx(2) and p["epsilon"] <= 2  # each model: a third of the budget
    choice = run.manifest["choice"]
    assert choice["kept"] == max(choice["validation"], key=choice["validation"].get)
    report = (run.run_dir / "report.html").read_text()
    assert "not covered by epsilon" in report


def test_bounds_naming_no_numeric_column_and_a_budget_too_small_are_clear_errors(in_tmp, capsys):
    (in_tmp / "cfg.yaml").write_text("train: {privacy: {epsilon: 3, bounds: {petals: [0, 1]}}}\n")
    msg = user_error(capsys, "train", "--data", "bundled:iris", "--config", "cfg.yaml", *TRACK)
    assert "train.privacy.bounds names 'petals', which is not a numeric feature" in msg
    (in_tmp / "cfg.yaml").write_text("train: {privacy: {epsilon: 3, bounds: {petals: [1, 0]}}}\n")
    assert "low must be below high" in user_error(capsys, "train", "--data", "bundled:iris", "--config", "cfg.yaml", *TRACK)
    msg = user_error(capsys, "train", "--data", "bundled:iris", "--epsilon", "0.0001", "--name", "tiny", *TRACK)
    assert "too small" in msg and "smallest workable epsilon here is about" in msg
    assert not (in_tmp / "runs" / "tiny").exists()  # refused before the run folder was written
