"""ONNX export: the graph takes raw feature values, matches the trained model to 1e-4, and needs only onnxruntime."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from forgeml import api
from forgeml.data.bundled import load_bundled

from conftest import cli, fast_train, user_error

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _train(name, source, model, **extra):
    data = {"source": source, **extra.pop("data", {})}
    return api.train({"name": name, "data": data, "model": model, "tracking": {"uri": "none"},
                      "train": fast_train(**extra)}, quiet=True)


CASES = {
    "cnn-digits": ("bundled:digits", {"name": "cnn", "channels": [8, 16]}),
    "mlp-numeric-categorical": ("bundled:default", {"name": "mlp"}),
    "mlp-regression": ("bundled:diabetes", {"name": "mlp"}),
    "lightgbm-numeric-categorical": ("bundled:default", {"name": "lightgbm", "n_estimators": 60}),
    "lightgbm-regression": ("bundled:diabetes", {"name": "lightgbm", "n_estimators": 60}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_matches_the_trained_model_on_test_data(in_tmp, case, capfd):
    from forgeml.export.onnx import feeds, reference_outputs, session

    source, model = CASES[case]
    run = _train(case, source, model, epochs=2)
    capfd.readouterr()
    info = api.export(run.run_dir)
    assert capfd.readouterr().out == ""  # the torch exporter narrates its steps: none of it reaches the user
    assert (run.run_dir / "model.onnx").is_file() and info["file"] == "model.onnx"
    assert info["opset"]["ai.onnx"] >= 17
    assert info["parity"]["rows"] > 50
    assert info["parity"]["max_abs_diff"] <= 1e-4
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["export"]["onnx"]["inputs"] == info["inputs"]
    # one row at a time (the server's usual batch) runs through the same graph
    from forgeml.run import test_rows

    loaded = api.load(run.run_dir)
    one = test_rows(loaded, 1)
    got = session(run.run_dir / "model.onnx").run(None, feeds(one, loaded.preprocessor))[0]
    np.testing.assert_allclose(got, reference_outputs(loaded, one), atol=1e-4)
    elsewhere = api.export(run.run_dir, output=in_tmp / "copy.onnx")
    assert elsewhere["file"] == str(in_tmp / "copy.onnx")


def test_text_model_exports_with_token_inputs(in_tmp):
    df, _ = load_bundled("tweets")
    df.sample(500, random_state=0).to_csv("tweets.csv", index=False)
    run = _train("tweets", "tweets.csv", {"name": "text", "hidden": 16, "embedding_dim": 16}, epochs=1,
                 data={"target": "source"})
    info = api.export(run.run_dir)
    assert [i["name"] for i in info["inputs"]] == ["tokens"]
    assert info["parity"]["max_abs_diff"] <= 1e-4


STANDALONE = r"""
import json, sys
import numpy as np, onnxruntime as ort
spec = json.load(open(sys.argv[1]))
rows = json.load(open(sys.argv[2]))
feed = {}
for inp in spec["export"]["onnx"]["inputs"]:
    values = [[r.get(c) for c in inp["columns"]] for r in rows]
    if inp["dtype"] == "string":
        feed[inp["name"]] = np.array([["" if v is None else str(v) for v in row] for row in values], dtype=object)
    else:
        feed[inp["name"]] = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=np.float32)
sess = ort.InferenceSession(sys.argv[3], providers=["CPUExecutionProvider"])
probabilities = sess.run(None, feed)[0]
assert "forgeml" not in sys.modules and "torch" not in sys.modules
print(json.dumps(probabilities.tolist()))
"""


def test_the_onnx_file_runs_without_forgeml_or_torch_on_raw_rows(in_tmp):
    run = _train("default", "bundled:default", {"name": "mlp"}, epochs=2)
    assert cli("export", str(run.run_dir)) == 0
    rows = [{"student": "Yes", "balance": 1500.0, "income": 20000.0},
            {"student": "No", "balance": None, "income": 45000.0},  # missing numeric
            {"student": "Maybe", "balance": 2500.0, "income": 10000.0}]  # unseen level
    (in_tmp / "rows.json").write_text(json.dumps(rows))
    (in_tmp / "standalone.py").write_text(STANDALONE)
    out = subprocess.run([sys.executable, "standalone.py", str(run.run_dir / "manifest.json"), "rows.json",
                          str(run.run_dir / "model.onnx")], capture_output=True, text=True, check=True)
    onnx_proba = np.array(json.loads(out.stdout))
    expected = api.load(run.run_dir).predict(pd.DataFrame(rows)).filter(like="proba_").to_numpy()
    assert np.abs(onnx_proba - expected).max() <= 1e-4


def test_export_of_an_unknown_format_is_refused(in_tmp, capsys):
    run = _train("d", "bundled:iris", {"name": "mlp"}, epochs=1)
    # forgeml's own message (a usage error from the argument parser also exits 2, so the code alone proves nothing)
    for flag in ("--format", "-f"):
        message = user_error(capsys, "export", run.run_dir, flag, "tflite")
        assert message.startswith("error: unknown export format 'tflite'") and "onnx" in message
    assert not (run.run_dir / "model.onnx").exists()
