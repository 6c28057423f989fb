"""The serving process imports what inference needs and not torch, scikit-learn or pandas: a run's learner is described by
its manifest (tags, accepted types), the graph runs on ONNX Runtime alone. Checked in a fresh interpreter, since this
test process has imported everything."""
import json
import subprocess
import sys

from forgeml import api

CHECK = """
import json, sys
from fastapi.testclient import TestClient
from forgeml.serve.app import ServeSettings, create_app
from forgeml.serve.registry import build_registry
app = create_app(build_registry([sys.argv[1]]), ServeSettings())
with TestClient(app) as client:
    rows = json.loads(sys.argv[2])
    body = client.post("/v1/models/m/predict", json={"instances": rows}).json()
    tensors = [{"name": k, "shape": [len(rows)], "datatype": "FP64", "data": [r[k] for r in rows]} for k in rows[0]]
    v2 = client.post("/v2/models/m/infer", json={"inputs": tensors}).json()
print(json.dumps({"heavy": [m for m in ("torch", "sklearn", "scipy", "lightgbm", "matplotlib", "pandas", "pyarrow")
                            if m in sys.modules], "predictions": body.get("predictions"), "v2": v2["outputs"][0]["data"]}))
"""


def test_a_served_network_imports_neither_torch_nor_pandas(in_tmp):
    run = api.train({"name": "bc", "data": {"source": "bundled:breast_cancer"}, "model": {"name": "mlp", "hidden": [16]},
                     "train": {"epochs": 2}, "tracking": {"uri": "none"}}, quiet=True)
    assert run.manifest["model"]["tags"] == sorted(run.manifest["model"]["tags"]) and "torch" in run.manifest["model"]["tags"]
    api.export(run.run_dir)
    rows = api.load(run.run_dir).frame("bundled:breast_cancer").drop(columns=["diagnosis"]).head(3)
    expected = api.predict(run.run_dir, rows)["prediction"].tolist()
    out = subprocess.run([sys.executable, "-c", CHECK, f"m={run.run_dir}", rows.to_json(orient="records")],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [] and result["predictions"] == expected and result["v2"] == expected
