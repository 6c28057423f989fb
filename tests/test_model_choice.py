"""model: auto's choice: the baseline scored on validation beside the candidates, ties and n/a said as such, the kept
model's name in the manifest and MLflow (with its files as artifacts), cv folds nested under one parent run, and a
text model's ONNX export fed from a fresh interpreter with only what the manifest and the vocabulary file say."""
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import cli, fast_train

from forgeml import api
from forgeml.data.bundled import load_bundled
from forgeml.tasks import TASKS
from forgeml.train.choice import choose


def _task(name="regression"):
    return TASKS.get(name)({})


def _cand(name, score, metric="rmse"):
    return {"model": name, "val": {metric: score}}


# ---------------------------------------------------------------------------------------------- the choice's words
@pytest.mark.parametrize("scores, baseline, verdict, said", [
    ((3.0, 2.0), 2.5, "kept_better", "lightgbm beat the baseline tfidf-linear on validation rmse: 2.0000 vs 2.5000"),
    ((3.0, 2.0), 1.5, "baseline_better", "the baseline tfidf-linear beat lightgbm on validation rmse: 1.5000 vs 2.0000 (by 0.5000)"),
    ((3.0, 2.0), 2.0, "tie", "tie with the baseline tfidf-linear on validation rmse (2.0000): kept lightgbm"),
    ((3.0, 2.0), None, "n/a", "validation rmse n/a vs lightgbm 2.0000: n/a, not compared"),
])
def test_the_baseline_is_compared_on_validation_and_the_verdict_is_said(scores, baseline, verdict, said):
    lines = []
    cands = [_cand("mlp", scores[0]), _cand("lightgbm", scores[1])]
    chosen, record = choose(_task(), cands, {"name": "tfidf-linear", "val": {"rmse": baseline}, "candidate": False}, lines.append)
    assert chosen["model"] == "lightgbm" and record["kept"] == "lightgbm"
    assert lines[0] == "[bold]kept lightgbm[/] (best validation rmse: mlp 3.0000, lightgbm 2.0000)"
    assert said in lines[1]
    assert record["baseline"] == {"name": "tfidf-linear", "validation": baseline, "candidate": False,
                                  "servable": False, "verdict": verdict}
    if verdict == "baseline_better":
        assert record["baseline_beats_kept_by"] == pytest.approx(0.5)
        assert "cannot save, export or serve tfidf-linear" in lines[1]


def test_ties_and_missing_scores_are_never_called_better():
    lines = []
    chosen, _ = choose(_task(), [_cand("mlp", 2.0), _cand("lightgbm", 2.0)], None, lines.append)
    assert chosen["model"] == "mlp" and lines == ["[bold]kept mlp[/] (tie on validation rmse (2.0000) between mlp, lightgbm: kept the first)"]
    chosen, _ = choose(_task(), [_cand("mlp", None), _cand("lightgbm", None)], None, lines.append)
    assert lines[-1] == "[bold]kept mlp[/] (validation rmse is n/a for every candidate: kept the first)"
    assert "better" not in " ".join(lines)


def test_a_registered_baseline_beating_an_explicit_model_names_the_flag():
    lines = []
    _, record = choose(_task(), [_cand("mlp", 3.0)], {"name": "lightgbm", "val": {"rmse": 2.0}, "candidate": False}, lines.append)
    assert record["baseline"]["servable"] and record["baseline"]["verdict"] == "baseline_better"
    assert lines == [("[bold yellow]warning:[/] the baseline lightgbm beat mlp on validation rmse: 2.0000 vs 3.0000 "
                      "(by 1.0000); train with --model lightgbm to keep it")]


# ---------------------------------------------------------------------------------------------- real runs
def test_auto_on_a_table_records_the_kept_model_in_the_manifest_and_mlflow(in_tmp, tracking_uri):
    from mlflow.tracking import MlflowClient

    df, target = load_bundled("diabetes")
    df.to_csv("diabetes.csv", index=False)
    result = api.train({"name": "auto-table", "data": {"source": "diabetes.csv", "target": target},
                        "model": {"name": "auto", "presets": "fast"},
                        "tracking": {"uri": tracking_uri, "experiment": "choice"}, "train": fast_train(epochs=2)}, quiet=True)
    m, manifest = result.metrics, result.manifest
    # LightGBM is the baseline and a candidate: it competed, and the kept model has the best validation rmse
    assert m["baseline"]["name"] == "lightgbm" and [c["model"] for c in m["candidates"]] == ["mlp", "lightgbm"]
    best = min(m["candidates"], key=lambda c: c["val"]["rmse"])["model"]
    assert manifest["model"]["name"] == m["model"] == manifest["choice"]["kept"] == best
    assert manifest["choice"]["baseline"]["verdict"] == "candidate"
    client = MlflowClient(tracking_uri)
    run = client.get_run(manifest["tracking"]["run_id"])
    assert run.data.params["chosen_model"] == best and run.data.tags["forgeml.model"] == best
    assert run.data.params["model.name"] == "auto"
    files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {f"model/{manifest['model']['file']}", "model/manifest.json"} <= files


def test_the_default_ensemble_is_tracked_with_all_its_files(in_tmp, tracking_uri):
    from mlflow.tracking import MlflowClient

    result = api.train({"name": "ens", "data": {"source": "bundled:diabetes"}, "tracking": {"uri": tracking_uri}}, quiet=True)
    assert result.manifest["model"]["name"] == "ensemble"
    client = MlflowClient(tracking_uri)
    run_id = result.manifest["tracking"]["run_id"]
    assert client.get_run(run_id).data.params["chosen_model"] == "ensemble"
    files = {a.path for a in client.list_artifacts(run_id, "model/ensemble")}
    kept = json.loads((result.run_dir / "ensemble" / "ensemble.json").read_text())["members"]
    assert "model/ensemble/ensemble.json" in files and {f"model/ensemble/{m['name']}" for m in kept} <= files


def test_a_text_model_beaten_by_its_baseline_says_so_and_records_by_how_much(in_tmp, capsys):
    df, _ = load_bundled("tweets")
    df.sample(400, random_state=0).to_csv("tweets.csv", index=False)
    assert cli("train", "--data", "tweets.csv", "--target", "source", "--epochs", "1", "--tracking-uri", "none",
               "--model", "text", "--set", "model.hidden=8", "--set", "model.embedding_dim=8", "--name", "tw") == 0
    err = capsys.readouterr().err
    m = json.loads((in_tmp / "runs/tw/metrics.json").read_text())
    manifest = json.loads((in_tmp / "runs/tw/manifest.json").read_text())
    choice = manifest["choice"]
    assert choice == m["choice"] and choice["kept"] == "text" == manifest["model"]["name"]
    assert choice["baseline"]["name"] == "tfidf_linear" and choice["baseline"]["servable"]  # a registered learner
    base, kept = choice["baseline"]["validation"], choice["validation"]["text"]
    assert base == m["baseline"]["val"]["roc_auc"] and kept == m["val"]["roc_auc"]
    assert base > kept and choice["baseline"]["verdict"] == "baseline_better"  # one epoch of a tiny BiLSTM
    assert choice["baseline_beats_kept_by"] == pytest.approx(base - kept)
    said = " ".join(err.split())
    assert (f"the baseline tfidf_linear beat text on validation roc_auc: {base:.4f} vs {kept:.4f} (by {base - kept:.4f}); "
            "train with --model tfidf_linear to keep it") in said
    report = " ".join(re.sub(r"<[^>]+>", "", (in_tmp / "runs/tw/report.html").read_text()).split())
    assert (f"baseline tfidf_linear: validation roc_auc {base:.4f} (the baseline beat the kept model by {base - kept:.4f}; "
            "train with --model tfidf_linear to keep it)") in report


def test_cv_folds_are_nested_runs_under_one_parent(in_tmp, tracking_uri):
    from mlflow.tracking import MlflowClient

    result = api.cross_validate({"name": "cv-nested", "data": {"source": "bundled:iris"}, "model": {"name": "lightgbm", "n_estimators": 20},
                                 "tracking": {"uri": tracking_uri, "experiment": "cv-nested"}}, folds=2, quiet=True)
    client = MlflowClient(tracking_uri)
    parent = client.get_run(result["tracking"]["run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == "cv-nested"
    assert parent.data.params["cv.folds"] == "2" and "mean_test_accuracy" in parent.data.metrics
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.info.run_name for r in children) == ["fold-1", "fold-2"]
    assert all(r.data.params["chosen_model"] == "lightgbm" for r in children)
    fold_ids = {json.loads((in_tmp / f"runs/cv-nested/fold-{k}/manifest.json").read_text())["tracking"]["run_id"] for k in (1, 2)}
    assert fold_ids == {r.info.run_id for r in children}


# ---------------------------------------------------------------------------------------------- text export, standalone
STANDALONE = r"""
import json, re, sys, unicodedata
from pathlib import Path
import numpy as np, onnxruntime as ort
onnx_path = Path(sys.argv[1])
manifest = json.load(open(sys.argv[2]))
rows = json.load(open(sys.argv[3]))
feed = {}
for inp in manifest["export"]["onnx"]["inputs"]:
    tok = inp["tokenizer"]
    assert tok["kind"] == "words"
    vocab = json.load(open(onnx_path.parent / tok["vocabulary_file"], encoding="utf-8"))
    index = {w: i + tok["first_word_id"] for i, w in enumerate(vocab)}
    pattern = re.compile(tok["pattern"])
    ids = np.full((len(rows), tok["max_length"]), tok["padding_id"], dtype=np.int64)
    for r, row in enumerate(rows):
        text = tok["join"]["separator"].join(tok["join"]["missing"] if row.get(c) is None else str(row[c]) for c in inp["columns"])
        for step in tok["normalize"]:
            text = {"nfkc": lambda t: unicodedata.normalize("NFKC", t), "strip": lambda t: " ".join(t.split()),
                    "lower": str.lower}[step](text)
        text = unicodedata.normalize(tok["unicode_normalization"], text)
        if tok["lowercase"]:
            text = text.lower()
        found = [index.get(w, tok["unknown_id"]) for w in pattern.findall(text)][: tok["max_length"]]
        ids[r, : len(found)] = found
    feed[inp["name"]] = ids
sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
probabilities = sess.run(None, feed)[0]
assert "forgeml" not in sys.modules and "torch" not in sys.modules
print(json.dumps(probabilities.tolist()))
"""


def test_text_onnx_export_is_fed_from_a_fresh_interpreter_with_the_manifest_alone(in_tmp):
    pytest.importorskip("onnxscript")
    df, _ = load_bundled("tweets")
    df.sample(400, random_state=1).to_csv("tweets.csv", index=False)
    run = api.train({"name": "tw", "data": {"source": "tweets.csv", "target": "source"}, "tracking": {"uri": "none"},
                     "model": {"name": "text", "hidden": 8, "embedding_dim": 8}, "train": fast_train(epochs=1)}, quiet=True)
    assert cli("export", str(run.run_dir)) == 0
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    tok = manifest["export"]["onnx"]["inputs"][0]["tokenizer"]
    assert tok["max_length"] == manifest["preprocessing"]["text"]["max_len"] and tok["padding_id"] == 0
    assert manifest["export"]["onnx"]["files"] == ["model.vocab.json"] == [tok["vocabulary_file"]]
    # rows a plain lower().split() gets wrong: punctuation, case, Unicode compatibility forms, unknown words, long text
    rows = [{"text": "Great JOB, @team!!! Ｆｕｌｌ－width letters"}, {"text": "can't stop won't stop... #MAGA"},
            {"text": None}, {"text": "zzqx unseenword " * 60}, {"text": df["text"].iloc[0]}]
    (in_tmp / "rows.json").write_text(json.dumps(rows))
    (in_tmp / "standalone.py").write_text(STANDALONE)
    out = subprocess.run([sys.executable, "standalone.py", str(run.run_dir / "model.onnx"), str(run.run_dir / "manifest.json"),
                          "rows.json"], capture_output=True, text=True, check=True)
    onnx_proba = np.array(json.loads(out.stdout))
    expected = api.load(run.run_dir).predict(pd.DataFrame(rows)).filter(like="proba_").to_numpy()
    assert np.abs(onnx_proba - expected).max() <= 1e-5
