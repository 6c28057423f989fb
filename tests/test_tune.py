"""forgeml tune: the Optuna study, its trials as runs, the best trial trained as the run, pruning, failing trials,
worker processes on one journal file, and bad input (one message, exit 2). Bundled breast cancer, a small MLP,
2-3 epochs, 3-4 trials per study."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from conftest import cli, fast_train, user_error

pytest.importorskip("optuna")
pytestmark = pytest.mark.usefixtures("one_thread")


def config_file(folder, tune: dict, **sections) -> str:
    cfg = {"name": "bc", "runs_dir": str(folder / "runs"), "data": {"source": "bundled:breast_cancer"},
           "model": {"name": "mlp", "hidden": [16]}, "train": fast_train(epochs=2), "tracking": {"uri": "none"},
           "tune": tune, **sections}
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def tuned(folder, tune: dict, *args, **sections) -> tuple:
    assert cli("tune", "--config", config_file(folder, tune, **sections), "--quiet", *args) == 0
    run = folder / "runs" / "bc"
    return run, json.loads((run / "tune.json").read_text())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    space = {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "model.hidden": [[16], [32, 16]]}
    return tuned(tmp_path_factory.mktemp("tune"), {"space": space, "trials": 4, "pruner": "none"})


def test_the_best_trial_is_trained_as_the_run(study):
    from forgeml import api

    run, summary = study
    trials = summary["trials"]
    assert [t["trial"] for t in trials] == [1, 2, 3, 4] and all(t["state"] == "complete" for t in trials)
    assert all(t["seconds"] > 0 and (run / t["run"] / "manifest.json").is_file() for t in trials)  # ordinary runs
    # the first trial measures the config as given (lr 1e-3, hidden [16] lie in the space)
    assert trials[0]["default_config"] and trials[0]["params"] == {"train.lr": 1e-3, "model.hidden": [16]}
    assert summary["default"]["value"] == trials[0]["value"] and set(summary["default"]["test"]) >= {"roc_auc", "accuracy"}
    best = max(trials, key=lambda t: t["value"])  # ties: the first, as Optuna keeps it
    assert summary["best"] == {"trial": best["trial"], "value": best["value"], "params": best["params"]}
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["lr"] == best["params"]["train.lr"] and config["model"]["hidden"] == best["params"]["model.hidden"]
    assert "tune" not in config and config["name"] == "bc"
    assert summary["final"]["val"]["roc_auc"] == pytest.approx(best["value"])  # the same config and seed, trained again
    # a normal run: it predicts, and its report shows the search
    out = api.predict(run, api.test_rows(api.load(run), 5))
    assert len(out["prediction"]) == 5 and (run / "plots" / "tune_history.png").is_file()
    assert "Hyper-parameter search" in (run / "report.html").read_text() and (run / "study.db").is_file()


def test_running_again_resumes_the_study(study, capsys):
    run, _ = study
    assert cli("tune", "--config", str(run.parent.parent / "tune.yaml"), "--trials", "5") == 0
    err = capsys.readouterr().err
    assert "resuming the study bc: 4 trials so far" in err and "trial 5/5" in err
    assert [t["trial"] for t in json.loads((run / "tune.json").read_text())["trials"]] == [1, 2, 3, 4, 5]


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path):
    # val_nope is a valid config value that training rejects at the first epoch
    es = {"monitor": "val_loss", "patience": 5}
    run, summary = tuned(tmp_path, {"space": {"train.early_stopping.monitor": ["val_loss", "val_nope"]}, "trials": 4},
                         train=fast_train(epochs=2, early_stopping=es))
    states = {t["params"]["train.early_stopping.monitor"]: t["state"] for t in summary["trials"]}
    assert states == {"val_loss": "complete", "val_nope": "fail"}
    failed = next(t for t in summary["trials"] if t["state"] == "fail")
    assert "val_nope" in failed["error"] and len(summary["trials"]) == 4
    assert summary["best"]["params"] == {"train.early_stopping.monitor": "val_loss"} and (run / "manifest.json").is_file()


def test_the_median_pruner_stops_a_hopeless_trial(tmp_path):
    # trial 1 (the config as given, lr 1e-2) learns; lr 1e-9 cannot: its first epoch is worse than trial 1's
    tune = {"space": {"train.lr": [1e-2, 1e-9]}, "trials": 4, "pruner": "median", "startup_trials": 1, "warmup_epochs": 0}
    _, summary = tuned(tmp_path, tune, train=fast_train(epochs=3, lr=1e-2))
    pruned = [t for t in summary["trials"] if t["state"] == "pruned"]
    assert pruned and all(t["params"]["train.lr"] == 1e-9 and t["pruned_after_epoch"] == 1 for t in pruned)
    assert pruned[0]["pruned_on"] == "val_loss"  # roc_auc is not computed every epoch: the loss, negated, is
    assert summary["best"]["params"] == {"train.lr": 1e-2}


def test_two_workers_share_one_journal_file(tmp_path):
    run, summary = tuned(tmp_path, {"space": {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}}, "trials": 4,
                                    "pruner": "none"}, "--workers", "2")
    assert "journal file" in summary["storage"] and (run / "study.journal").is_file() and not (run / "study.db").exists()
    assert len(summary["trials"]) == 4 and {t["worker"] for t in summary["trials"]} == {1, 2}


# ---------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("space, expected", [
    ({"train.lrr": [0.1]}, "'train.lrr' is not a config key (train has: epochs, batch_size"),
    ({"model.depth": [2, 3]}, "'model.depth' is not a config key (model has: name, hidden"),
    ({"train.lr": {"low": 0.1, "high": 0.01}}, "train.lr: a range needs low < high, got low=0.1, high=0.01"),
    ({"train.lr": {"low": 0.0, "high": 0.01}}, "train.lr = 0.0 is not a valid value"),
    ({"train.optimizer": {"low": 1, "high": 2}}, "train.optimizer is not a number"),
])
def test_a_bad_space_is_refused_before_any_trial(tmp_path, capsys, space, expected):
    msg = user_error(capsys, "tune", "--config", config_file(tmp_path, {"space": space}))
    assert expected in msg and not (tmp_path / "runs").exists()


def test_bad_options_are_one_message(tmp_path, capsys):
    path = config_file(tmp_path, {})
    assert "trials (--trials) must be at least 1, got 0" in user_error(capsys, "tune", "--config", path, "--trials", "0")
    assert "--model" in user_error(capsys, "tune", "--data", "bundled:iris", "--trials", "1")  # model auto, no space


@pytest.mark.parametrize("url, expected", [
    ("sqlite:///{tmp}/no/such/folder/study.db", "cannot be opened"),
    ("postgresql://forgeml:secret@127.0.0.1:9/optuna", "study storage postgresql://forgeml:***@127.0.0.1:9/optuna"),
])
def test_a_storage_that_cannot_be_reached_is_one_message(tmp_path, capsys, url, expected):
    tic = time.perf_counter()
    msg = user_error(capsys, "tune", "--config", config_file(tmp_path, {}), "--storage", url.format(tmp=tmp_path))
    assert expected in msg and "secret" not in msg and time.perf_counter() - tic < 30


def test_without_optuna_the_message_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)
    assert "pip install 'forgeml[tune]'" in user_error(capsys, "tune", "--config", config_file(tmp_path, {}))


def test_each_trial_is_an_mlflow_run_nested_under_the_study(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    space = {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}}
    _, summary = tuned(tmp_path, {"space": space, "trials": 3, "pruner": "none"}, "--workers", "2",
                       tracking={"uri": uri, "experiment": "tune-test"})
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tune-test").experiment_id])
    (study,) = [r for r in runs if r.info.run_name == "bc-tune"]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == study.info.run_id}
    # the trials (run by two worker processes) and the final run, nested under the study's run
    assert sorted(children) == ["bc", "trial-1", "trial-2", "trial-3"] and len(runs) == 5
    assert study.info.status == "FINISHED" and study.data.params["tune.trials"] == "3"
    assert study.data.params["space.train.lr"] == json.dumps(space["train.lr"])
    best = summary["best"]
    assert study.data.metrics["best_val_roc_auc"] == pytest.approx(best["value"])
    assert children[f"trial-{best['trial']}"].data.metrics["val_roc_auc"] == pytest.approx(best["value"])
    assert "tune.json" in {a.path for a in client.list_artifacts(study.info.run_id)}


def test_lightgbm_trials_report_every_ten_rounds_and_are_pruned(tmp_path):
    """LightGBM fits itself, but reports its validation loss every 10 rounds as a network reports epochs: the median
    pruner stops trials that trail the others at the same round (bundled ISLR Default, seeded: deterministic)."""
    run, summary = tuned(tmp_path, {"trials": 8, "startup_trials": 2, "warmup_epochs": 2},
                         data={"source": "bundled:default"}, model={"name": "lightgbm"})
    pruned = [t for t in summary["trials"] if t["state"] == "pruned"]
    assert pruned and all(t["pruned_after_round"] % 10 == 0 and t["pruned_after_round"] >= 30 for t in pruned)
    assert all(t["pruned_on"] == "val_loss" for t in pruned)
    complete = [t for t in summary["trials"] if t["state"] == "complete"]
    assert len(complete) >= 2 and summary["best"]["trial"] in {t["trial"] for t in complete}
