"""MLflow tracking, the CLI's contract (config printed, results on stdout), artifact safety, --help speed."""
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from forgeml import api
from conftest import cli, fast_train


def test_every_run_is_logged_to_mlflow_with_params_epoch_metrics_and_artifacts(in_tmp, tracking_uri):
    from mlflow.tracking import MlflowClient

    result = api.train({"name": "tracked", "data": {"source": "bundled:iris"}, "model": {"name": "mlp"},
                        "tracking": {"uri": tracking_uri, "experiment": "tests"}, "train": fast_train(epochs=3)}, quiet=True)
    client = MlflowClient(tracking_uri)
    run = client.get_run(result.manifest["tracking"]["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert run.data.params["model.name"] == "mlp" and run.data.params["task"] == "classification"
    assert run.data.metrics["test_accuracy"] == result.metrics["test"]["accuracy"]
    steps = client.get_metric_history(run.info.run_id, "mlp.val_loss")
    assert [s.step for s in steps] == [0, 1, 2]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "manifest.json", "config.yaml", "report.html", "plots"} <= names


def test_default_tracking_store_is_sqlite_in_the_runs_folder(in_tmp):
    result = api.train({"name": "t", "data": {"source": "bundled:iris"}, "model": {"name": "lightgbm"}}, quiet=True)
    assert result.manifest["tracking"]["uri"] == f"sqlite:///{in_tmp / 'runs' / 'mlflow.db'}"
    assert (in_tmp / "runs" / "mlflow.db").is_file()


def test_train_without_config_prints_its_config_and_results(in_tmp, capsys):
    assert cli("train", "--data", "bundled:iris", "--epochs", "2", "--tracking-uri", "none") == 0
    out, err = capsys.readouterr()
    assert "model: auto -> ensemble" in err and "epochs: 2" in err and "task: classification" in err
    assert "test metrics" in out and "runs/iris/report.html" in out
    saved = yaml.safe_load((in_tmp / "runs" / "iris" / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2 and saved["data"]["source"] == "bundled:iris"


def test_config_file_with_flag_overrides(in_tmp, capsys):
    Path("exp.yaml").write_text(yaml.safe_dump({
        "name": "from-file", "data": {"source": "bundled:breast_cancer", "split": {"val": 0.2, "test": 0.2}},
        "model": {"name": "mlp", "hidden": [32]}, "train": {"epochs": 5, "optimizer": "sgd", "lr": 0.01},
    }))
    assert cli("train", "--config", "exp.yaml", "--epochs", "2", "--quiet", "--tracking-uri", "none") == 0
    run = in_tmp / "runs" / "from-file"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["optimizer"] == "sgd" and cfg["model"]["hidden"] == [32]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["data"]["rows"] == {"train": 341, "val": 114, "test": 114}


def test_predict_cli_writes_csv_to_stdout(in_tmp, capsys):
    assert cli("train", "--data", "bundled:iris", "--model", "lightgbm", "--quiet", "--tracking-uri", "none") == 0
    Path("rows.csv").write_text("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    capsys.readouterr()
    assert cli("predict", "runs/iris", "rows.csv") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "prediction,proba_setosa,proba_versicolor,proba_virginica"
    assert lines[1].startswith("setosa,") and lines[2].startswith("virginica,")


def test_artifact_holds_no_pickles_and_report_is_self_contained(in_tmp):
    result = api.train({"name": "a", "data": {"source": "bundled:iris"}, "model": {"name": "mlp"}, "tracking": {"uri": "none"},
                        "train": fast_train(epochs=2)}, quiet=True)
    files = [p for p in result.run_dir.rglob("*") if p.is_file()]
    assert all(p.suffix in {".json", ".yaml", ".safetensors", ".png", ".html"} for p in files), files
    for p in files:  # pickle streams start with 0x80 + protocol byte
        assert not p.read_bytes()[:2] in (b"\x80\x04", b"\x80\x05"), p
    html = (result.run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "baseline: lightgbm" in html and "Per class" in html
    assert "src=\"http" not in html


def test_help_is_fast():
    cmd = [sys.executable, "-m", "forgeml.cli", "--help"]
    subprocess.run(cmd, capture_output=True)  # warm the file cache
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0 and "quickstart" in out.stdout
    assert time.perf_counter() - t < 1.5


def test_datasets_lists_bundled_sets(capsys):
    assert cli("datasets") == 0
    out = capsys.readouterr().out
    for name in ("digits", "breast_cancer", "default", "tweets", "diabetes"):
        assert f"bundled:{name}" in out


def test_config_reference_is_generated_from_the_current_schema():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "docs" / "gen_config_reference.py")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (root / "docs" / "config-reference.md").read_text().strip(), "run: make docs"


def test_unusable_tracking_uri_is_a_clear_error_before_training(in_tmp, capsys):
    assert cli("train", "--data", "bundled:iris", "--tracking-uri", "bogus://nowhere", "--quiet") == 2
    err = capsys.readouterr().err
    assert "MLflow tracking at bogus://nowhere failed" in err and "--tracking-uri none" in err and "Traceback" not in err
