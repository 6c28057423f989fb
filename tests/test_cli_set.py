"""`--set key=value` on train, cv and federate: any config key by its dotted path, the value read as YAML, applied
after the config file and the other flags; a bad key or value is a user error naming the key path."""
from __future__ import annotations

import json

import pytest
import yaml

from conftest import cli, user_error

FAST = ["--tracking-uri", "none", "--quiet"]


def test_set_changes_the_trained_config_and_wins_over_the_file_and_the_flags(in_tmp):
    (in_tmp / "exp.yaml").write_text(yaml.safe_dump({
        "data": {"source": "bundled:iris"}, "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 5, "batch_size": 32, "early_stopping": None}}))
    assert cli("train", "--config", "exp.yaml", "--name", "iris", "--epochs", "4", "--lr", "0.02",
               "--set", "train.epochs=2",            # beats the file's 5 and the flag's 4
               "--set", "data.split.seed=3",         # nested section the file does not have
               "--set", "model.hidden=[16, 8]",      # a list
               "--set", "train.grad_clip=null",      # null
               *FAST) == 0
    run = in_tmp / "runs" / "iris"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 2
    assert cfg["data"]["split"]["seed"] == 3
    assert cfg["model"]["hidden"] == [16, 8]
    assert cfg["train"]["grad_clip"] is None
    assert cfg["train"]["batch_size"] == 32  # the file's other keys stay
    assert cfg["train"]["lr"] == 0.02  # a flag --set did not touch stays
    assert len(json.loads((run / "metrics.json").read_text())["history"]) == 2  # it really trained 2 epochs


def test_set_reaches_cross_validation(in_tmp):
    assert cli("cv", "--data", "bundled:iris", "--folds", "2", "--model", "mlp", "--set", "train.epochs=1",
               "--set", "train.early_stopping=null", "--set", "name=iris-set", *FAST) == 0
    for fold in (1, 2):
        run = in_tmp / "runs" / "iris-set" / f"fold-{fold}"
        assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 1
        assert len(json.loads((run / "metrics.json").read_text())["history"]) == 1


@pytest.mark.parametrize("command", ["train", "cv", "federate"])
def test_an_unknown_key_is_a_user_error_naming_its_path(in_tmp, capsys, command):
    msg = user_error(capsys, command, "--data", "bundled:iris", "--set", "train.epoch=3", *FAST)
    assert "train.epoch" in msg and "unknown key" in msg and "epochs" in msg  # names the path and the right key


@pytest.mark.parametrize("setting, says", [
    ("train.epochs=many", "train.epochs"),                   # wrong type
    ("model.hidden=[64, 64", "model.hidden"),                # not YAML
    ("train.lr", "KEY=VALUE"),                               # no '='
    ("train..lr=1", "KEY=VALUE"),                            # empty path part
    ("data.split.seed.x=1", "data.split.seed"),              # a value is not a section
])
def test_a_bad_setting_is_a_user_error(in_tmp, capsys, setting, says):
    msg = user_error(capsys, "train", "--data", "bundled:iris", "--model", "mlp", "--set", setting, *FAST)
    assert says in msg


def test_help_lists_the_shared_options_and_set(capsys):
    shared = ["--config", "--set", "--data", "--target", "--task", "--model", "--name", "--batch-size", "--lr",
              "--seed", "--device", "--runs-dir", "--overwrite", "--tracking-uri", "--quiet"]
    for command, extra in (("train", ["--epochs", "--precision", "--balance", "--dedup", "--impute", "--scale",
                                      "--outliers", "--epsilon", "--resume"]),
                           ("cv", ["--epochs", "--precision", "--balance", "--group-col", "--time-col", "--folds"]),
                           ("federate", ["--epsilon", "--delta", "--max-grad-norm", "--clients", "--rounds"])):
        assert cli(command, "--help") == 0
        out = capsys.readouterr().out
        missing = [o for o in shared + extra if o not in out]
        assert not missing, f"{command} --help lacks {missing}"
        assert "KEY=VALUE" in out
