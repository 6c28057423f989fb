"""The quickstart a new user runs first: digits images -> CNN, test accuracy >= 0.98, full artifact."""
import json

from forgeml import api


def test_quickstart_reaches_98_percent_and_writes_the_artifact(in_tmp, tracking_uri):
    result = api.quickstart(runs_dir="runs", quiet=True, tracking_uri=tracking_uri)
    run = result.run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.98
    assert metrics["model"] == "cnn"
    assert metrics["baseline"]["name"] == "pixels_linear"  # images' baseline, a servable learner
    assert set(metrics["test"]["per_class"]) == {str(i) for i in range(10)}
    for name in ("manifest.json", "config.yaml", "model.safetensors", "report.html", "plots/learning_curves.png",
                 "plots/confusion_matrix.png", "plots/roc.png", "plots/pr.png"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["features"] == [{"name": "image", "type": "image"}]
    assert manifest["target"]["labels"] == list(range(10))
