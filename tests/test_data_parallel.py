"""Data-parallel training: `forgeml train --nproc 2` runs two gloo processes through torchrun's launcher. What a
user relies on: the same result as one process with the same global batch, one writer (rank 0), early stopping
decided once, uneven last batches that do not hang, and --resume."""
import json
import signal
import subprocess
import sys

import pytest
import torch

from conftest import cli, stop_at_epoch

# breast_cancer: 397 training rows; batches of 24 leave a last batch of 13 (7 + 6 rows on two ranks). No dropout,
# so one process and two draw the same numbers; min_delta makes early stopping decide within a few epochs.
ARGS = ["--data", "bundled:breast_cancer", "--model", "mlp", "--batch-size", "24", "--epochs", "40",
        "--set", "model.dropout=0", "--set", "train.early_stopping.patience=2",
        "--set", "train.early_stopping.min_delta=0.02", "--runs-dir", "runs"]


def forgeml(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "forgeml.cli", "train", *args], capture_output=True, text=True,
                          timeout=300, **kwargs)


def metrics(root, name) -> dict:
    return json.loads((root / "runs" / name / "metrics.json").read_text())


def assert_same_training(a: dict, b: dict) -> None:
    assert len(a["history"]) == len(b["history"])
    for x, y in zip(a["history"], b["history"]):
        assert x["val_loss"] == pytest.approx(y["val_loss"], rel=1e-5, abs=1e-7)
        assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-5, abs=1e-7)
    assert a["test"]["log_loss"] == pytest.approx(b["test"]["log_loss"], rel=1e-5)


def test_two_processes_train_as_one_with_the_same_global_batch_and_rank_0_alone_writes(in_tmp, tracking_uri):
    one = forgeml(*ARGS, "--name", "one", "--tracking-uri", "none", "--quiet")
    assert one.returncode == 0, one.stderr
    two = forgeml(*ARGS, "--name", "two", "--nproc", "2", "--tracking-uri", tracking_uri)
    assert two.returncode == 0, two.stderr

    single, parallel = metrics(in_tmp, "one"), metrics(in_tmp, "two")
    assert_same_training(parallel, single)
    # early stopping was decided once (rank 0) and stopped both ranks: the run ended, before its 40 epochs
    assert parallel["training"]["stopped_early"] and len(parallel["history"]) < 40
    assert parallel["training"]["processes"] == 2 and parallel["training"]["parallel"] == "ddp"
    assert "processes" not in single["training"]
    # one writer: one result printed, one tracked run, one run folder
    assert two.stdout.count("run:") == 1 and two.stderr.count("mlp epochs") <= 1
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=["forgeml"], filter_string="tags.mlflow.runName = 'two'")
    assert len(runs) == 1
    assert sorted(p.name for p in (in_tmp / "runs").iterdir() if p.name != "mlartifacts") == ["one", "two"]


def test_fsdp_shards_the_network_and_trains_as_one_process(in_tmp):
    fast = [*ARGS[:ARGS.index("--epochs")], "--epochs", "3", *ARGS[ARGS.index("--epochs") + 2:], "--tracking-uri", "none", "--quiet"]
    one = forgeml(*fast, "--name", "one")
    two = forgeml(*fast, "--name", "fsdp", "--nproc", "2", "--set", "train.parallel=fsdp")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert metrics(in_tmp, "fsdp")["training"]["parallel"] == "fsdp"
    assert_same_training(metrics(in_tmp, "fsdp"), metrics(in_tmp, "one"))
    # the saved network is a plain one: it predicts in one process
    from forgeml import api

    out = api.predict(in_tmp / "runs" / "fsdp", "bundled:breast_cancer")
    assert len(out) == 569


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_stopped_two_process_run_resumes_where_it_stopped(in_tmp, strategy):
    """SIGTERM (Ctrl-C, a scheduler) stops the launcher and both workers; --resume continues in two processes and
    ends where one uninterrupted process ends (FSDP: from the gathered state, resharded)."""
    args = [*ARGS, "--set", "train.early_stopping=null", "--epochs", "12", "--tracking-uri", "none", "--quiet",
            "--set", f"train.parallel={strategy}"]
    proc = subprocess.Popen([sys.executable, "-m", "forgeml.cli", "train", *args, "--name", "stopped", "--nproc", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = in_tmp / "runs" / "stopped" / "checkpoints" / "mlp" / "last.json"
    stop_at_epoch(proc, last, 2, signal.SIGTERM)
    assert proc.returncode != 0, "training finished before it could be stopped; make it longer"
    stopped_at = json.loads(last.read_text())["epoch"]
    assert stopped_at < 11 and not (in_tmp / "runs" / "stopped" / "manifest.json").exists()

    resumed = forgeml(*args, "--name", "stopped", "--nproc", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    straight = forgeml(*args, "--name", "straight")
    assert straight.returncode == 0, straight.stderr
    assert len(metrics(in_tmp, "stopped")["history"]) == 12
    assert_same_training(metrics(in_tmp, "stopped"), metrics(in_tmp, "straight"))


def test_what_data_parallel_training_cannot_do_is_refused_with_one_message(in_tmp):
    # checked before any process starts
    too_many = forgeml("--data", "bundled:iris", "--model", "mlp", "--nproc", "3", "--batch-size", "2", "--quiet")
    assert too_many.returncode == 2 and "--nproc 3 is larger than train.batch_size 2" in too_many.stderr
    # checked by the workers: rank 0 says it once, the launcher adds no traceback
    trees = forgeml("--data", "bundled:iris", "--model", "lightgbm", "--nproc", "2", "--tracking-uri", "none", "--quiet")
    assert trees.returncode == 2, trees.stderr
    assert trees.stderr.count("error:") == 1 and "lightgbm trains in one process" in trees.stderr
    assert "Traceback" not in trees.stderr and not (in_tmp / "runs" / "iris").exists()


def test_more_processes_than_cpus_is_a_warning(monkeypatch):
    from forgeml.train import launch

    monkeypatch.setattr("forgeml.cpus.usable_cpus", lambda: 2)
    with pytest.warns(UserWarning, match="more than the 2 CPUs"):
        launch.check_nproc(3, 64, "cpu")


def test_nproc_below_one_is_a_usage_error(capsys):
    assert cli("train", "--data", "bundled:iris", "--nproc", "0") == 2
    assert "Invalid value for '--nproc'" in capsys.readouterr().err


def test_each_rank_gets_a_share_of_every_batch_and_the_short_last_batch_only_when_every_rank_gets_a_row():
    from forgeml.train.distributed import DataParallel
    from forgeml.train.loop import whole_batches

    assert whole_batches(398, 25, 2) == 16  # a last batch of 23 rows
    assert whole_batches(401, 25, 2) == 16  # a last batch of 1 row is dropped (as in one process: batch norm)
    assert whole_batches(402, 25, 4) == 16  # 2 rows for 4 ranks: dropped
    assert whole_batches(403, 25, 4) == 16  # 3 rows for 4 ranks: dropped
    assert whole_batches(404, 25, 4) == 17
    rank = DataParallel.__new__(DataParallel)
    rank.world = 2
    shares = []
    for rank.rank in (0, 1):
        shares.append(rank.share(torch.arange(23)))
    assert [len(s) for s in shares] == [12, 11] and torch.equal(torch.cat(shares), torch.arange(23))


def test_the_playbook_entry_rows_are_its_runs_and_the_verdict_what_they_say(ran):
    from forgeml.playbook.parallel import SAME

    folder, ev = ran["data-parallel"]
    runs = {"1 process, 1 thread": "dp-1x1", "1 process, 2 threads": "dp-1x2", "2 processes, 1 thread each": "dp-2x1"}
    assert [row[0] for row in ev.rows] == list(runs)
    for row in ev.rows:
        m = metrics(folder, runs[row[0]])
        assert row[1] == round(m["training"]["seconds"], 3) and row[6] == round(m["test"]["accuracy"], 4)
    assert metrics(folder, "dp-2x1")["training"]["processes"] == 2
    gap, ratio = float(ev.rows[2][5]), ev.rows[2][3]
    assert gap <= SAME  # the same model, whatever the machine's load
    assert ev.supported == (gap <= SAME and ratio < 2)
