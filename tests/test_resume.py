"""`forgeml train --resume` after the process is killed continues where it stopped and loses nothing."""
import json
import signal
import subprocess
import sys

import pytest

from forgeml import api
from forgeml.errors import RunError

from conftest import stop_at_epoch

ARGS = ["--data", "bundled:default", "--model", "mlp", "--epochs", "12", "--batch-size", "32", "--tracking-uri", "none", "--quiet"]


def _cli(*args):
    return [sys.executable, "-m", "forgeml.cli", "train", *args]


def test_killed_run_resumes_and_matches_an_uninterrupted_run(in_tmp):
    proc = subprocess.Popen(_cli(*ARGS, "--name", "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = in_tmp / "runs" / "killed" / "checkpoints" / "mlp" / "last.json"
    stop_at_epoch(proc, last, 2, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed; make it longer"
    killed_at = json.loads(last.read_text())["epoch"]
    assert not (in_tmp / "runs" / "killed" / "manifest.json").exists()

    done = subprocess.run(_cli(*ARGS, "--name", "killed", "--resume"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed = json.loads((in_tmp / "runs" / "killed" / "metrics.json").read_text())

    fresh = subprocess.run(_cli(*ARGS, "--name", "fresh"), capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    straight = json.loads((in_tmp / "runs" / "fresh" / "metrics.json").read_text())

    # every epoch, before and after the kill, matches the uninterrupted run
    assert len(resumed["history"]) == len(straight["history"]) == 12
    assert killed_at < 11
    for a, b in zip(resumed["history"], straight["history"]):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5, abs=1e-7)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5, abs=1e-7)
    assert resumed["test"]["log_loss"] == pytest.approx(straight["test"]["log_loss"], rel=1e-5)


def test_resume_without_checkpoint_is_a_clear_error(in_tmp):
    with pytest.raises(RunError, match="no checkpoint"):
        api.train({"name": "nothing", "data": {"source": "bundled:iris"}, "tracking": {"uri": "none"}}, resume=True, quiet=True)


def test_resuming_a_run_that_already_stopped_trains_no_more_epochs(in_tmp):
    from forgeml.train import checkpoint

    cfg = {"name": "done", "data": {"source": "bundled:iris"}, "model": {"name": "mlp"}, "tracking": {"uri": "none"},
           "train": {"epochs": 200, "lr": 0.05, "early_stopping": {"patience": 2}}}
    first = api.train(cfg, quiet=True)
    assert first.metrics["training"]["stopped_early"]
    (first.run_dir / "manifest.json").unlink()  # as if the process died after training, before writing the run
    again = api.train(cfg, resume=True, quiet=True)
    assert again.metrics["training"]["epochs_run"] == first.metrics["training"]["epochs_run"]
    assert again.metrics["training"]["stopped_early"]
    assert again.metrics["test"]["log_loss"] == pytest.approx(first.metrics["test"]["log_loss"])
    assert checkpoint.exists(first.run_dir / "checkpoints" / "mlp")
