"""Tests written for the survivors of the sampled mutation runs over the task families (docs/testing.md, "The anomaly
family" and "The supervised pipeline"). Each names the change it catches. They call the task's methods on small
inputs, or split a small table without training, so they also keep the mutation run fast."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from types import SimpleNamespace

from forgeml.config import build_config
from forgeml.errors import ConfigError, DataError
from forgeml.tasks import make_task
from forgeml.tasks.anomaly import Anomaly, _check_variation


def _anomaly_cfg(source, model="isolation_forest", **task):
    return build_config({"data": {"source": str(source)}, "task": {"name": "anomaly", **task},
                         "model": {"name": model}, "tracking": {"uri": "none"}})


def _split(cfg):
    said: list[str] = []
    return Anomaly.split_data(cfg, said.append), said


# --------------------------------------------------------------------------------------------- anomaly metrics
def test_anomaly_metrics_at_the_threshold_report_precision_recall_f1_and_the_false_positive_rate():
    """Catches: the threshold read under another key (`"XXthresholdXX"`: reported as None), the threshold check
    reading `state.get(None)` (precision, recall and F1 always None), the false-positive rate never computed
    (`... and False`), the anomaly count's key renamed and precision@n from an unsorted order (`argsort(None)`).
    Six rows, two anomalies; the threshold 0.5 flags rows 0, 1 and 3."""
    task = make_task("anomaly", {"positive": "1", "threshold": 0.5})
    score = np.array([0.9, 0.8, 0.1, 0.6, 0.2, 0.3])
    y = np.array([1, 0, 0, 0, 0, 1])
    m = task.metrics(y, task.outputs(score))
    assert m["threshold"] == 0.5 and m["n"] == 6 and m["flagged"] == pytest.approx(0.5)
    assert m["anomalies"] == 2
    assert m["precision_at_n"] == 0.5  # the two highest scores: rows 0 (anomaly) and 1 (normal)
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.4)
    assert m["false_positive_rate"] == pytest.approx(2 / 4)  # rows 1 and 3 of the four normal ones


def test_anomaly_metrics_without_labels_or_threshold_keep_every_key_as_none():
    """Catches: the label metrics' keys renamed when there is no label (`"XXprecisionXX"`) or no threshold yet
    (`"XXrecallXX"`: the candidates' validation metrics, computed before the threshold), and `out & {...}`. Tables and
    metrics.json read the same keys for every run."""
    unlabelled = make_task("anomaly", {"positive": None, "threshold": 0.5})
    m = unlabelled.metrics(None, unlabelled.outputs(np.array([0.1, 0.7, 0.3])))
    assert m["flagged"] == pytest.approx(1 / 3) and m["threshold"] == 0.5
    for key in ("roc_auc", "pr_auc", "precision_at_n", "f1", "precision", "recall"):
        assert key in m and m[key] is None, key
    before = make_task("anomaly", {"positive": "1"})  # labelled, threshold not fitted yet
    m = before.metrics(np.array([0, 1, 0, 1]), before.outputs(np.array([0.1, 0.9, 0.2, 0.8])))
    assert m["roc_auc"] == 1.0 and m["flagged"] is None and m["threshold"] is None
    for key in ("f1", "precision", "recall"):
        assert key in m and m[key] is None, key


# --------------------------------------------------------------------------------------------- anomaly choice
def test_a_labelled_choice_keeps_the_best_validation_roc_auc_and_a_single_detector_keeps_itself():
    """Catches: the labelled choice ignoring the scores (`scored = None`: always the first candidate), the fallback
    when no candidate has a ROC-AUC taking the second one (`candidates[1]`), and an unlabelled single candidate
    (an explicit `--model` without labels) read as `candidates[1]` (an IndexError)."""
    labelled = make_task("anomaly", {"positive": "1"})
    cands = [{"model": "a", "val": {"roc_auc": 0.7}}, {"model": "b", "val": {"roc_auc": 0.9}},
             {"model": "c", "val": {"roc_auc": None}}]
    assert labelled.choose(cands)["model"] == "b"
    none_scored = [{"model": "a", "val": {"roc_auc": None}}, {"model": "b", "val": {"roc_auc": None}}]
    assert labelled.choose(none_scored)["model"] == "a"
    alone = [{"model": "lof", "val": {"centrality": 0.3}, "raw": {"val": np.arange(5.0)}}]
    chosen = make_task("anomaly", {"positive": None}).choose(alone)
    assert chosen["model"] == "lof" and chosen["val"]["centrality"] is None


def test_the_baseline_gets_its_own_threshold_by_the_same_rule():
    """Catches: the baseline's threshold stored under another key (`"XXthresholdXX"`): its flags, precision, recall
    and F1 then came from no threshold at all. Its scores are on their own scale, so the run's threshold cannot serve."""
    task = make_task("anomaly", {"positive": "1", "contamination": 0.25, "threshold": 123.0})
    val_raw = np.arange(8.0).reshape(-1, 1)  # a detector's raw output, (rows, 1)
    base = task.baseline_task(SimpleNamespace(y={"val": np.zeros(8, dtype=np.int64)}), val_raw)
    assert base.state["threshold"] == pytest.approx(np.quantile(np.arange(8.0), 0.75))
    assert task.state["threshold"] == 123.0 and base.state["positive"] == "1"
    assert base.outputs(np.array([1.0, 6.0]))["pred"].tolist() == [0, 1]


def test_identical_training_rows_are_refused_whatever_the_columns_hold():
    """Catches: each input block flattened before comparing (`reshape(-1)`): rows that are all the same but hold
    different values in different columns were then taken to vary, and the detectors got nothing to rank."""
    same_rows = {"numeric": np.tile(np.array([[1.0, 2.0, 5.0]], dtype=np.float32), (6, 1))}
    with pytest.raises(DataError, match="every training row is identical"):
        _check_variation(same_rows)
    _check_variation({"numeric": np.array([[1.0, 2.0], [1.0, 3.0]], dtype=np.float32)})  # one value differs: fine


def test_anomaly_plots_split_the_scores_by_class_and_draw_the_pr_curve_only_for_two_classes(tmp_path, monkeypatch):
    """Catches: the score histogram drawn without the test labels (`anomaly_scores(score, None, ...)`: one histogram
    instead of one per class), the precision-recall curve drawn for a test split with one class (`... or ...`) and
    written as `PR.PNG` (the report links `pr.png`)."""
    import forgeml.evaluate.plots as plots

    calls = []
    monkeypatch.setattr(plots, "anomaly_scores", lambda score, y, t, path: calls.append(("scores", y, t, path.name)) or path)
    monkeypatch.setattr(plots, "precision_recall", lambda y, score, path: calls.append(("pr", path.name)) or path)
    task = make_task("anomaly", {"positive": "1", "threshold": 0.5})
    outputs = task.outputs(np.array([0.1, 0.9, 0.2, 0.7]))
    for y_test, expected in ((np.array([0, 1, 0, 1]), ["scores", "pr"]), (np.zeros(4, dtype=np.int64), ["scores"]),
                             (None, ["scores"])):
        calls.clear()
        made = task.plots(SimpleNamespace(y={"test": y_test}), outputs, tmp_path)
        assert [c[0] for c in calls] == expected and len(made) == len(expected)
        assert calls[0][1] is y_test and calls[0][2] == 0.5 and calls[0][3] == "scores.png"
        if "pr" in expected:
            assert calls[1][1] == "pr.png"


# --------------------------------------------------------------------------------------------- anomaly export
def test_the_anomaly_graph_outputs_are_described_with_name_dtype_shape_and_how():
    """Catches: the outputs' `shape` or `how` keys altered (`forgeml export` prints each output's shape, and the
    description is written to the export's info)."""
    outs = make_task("anomaly", {"threshold": 0.5}).graph_outputs()
    assert [(o["name"], o["dtype"], o["shape"]) for o in outs] == [("score", "float32", ["batch"]),
                                                                   ("is_anomaly", "bool", ["batch"])]
    assert outs[0]["how"] == "higher = more anomalous" and outs[1]["how"] == "score >= the run's threshold"


def test_the_anomaly_response_schema_gives_arrays_of_numbers_and_booleans_and_the_threshold():
    """Catches: the `is_anomaly` array's item type lost (`"ITEMS"`) and the threshold missing from its description
    (`state.get('THRESHOLD')`: "(None)"). The served OpenAPI schema and the model page are built from these fields."""
    fields = make_task("anomaly", {"threshold": 0.125}).response_fields()
    assert fields["scores"]["type"] == "array" and fields["scores"]["items"] == {"type": "number"}
    assert fields["is_anomaly"]["type"] == "array" and fields["is_anomaly"]["items"] == {"type": "boolean"}
    assert fields["is_anomaly"]["description"] == "score >= the run's threshold (0.125)"


# --------------------------------------------------------------------------------------------- anomaly split
@pytest.fixture
def sensors(tmp_path):
    """40 rows: two numbers, free text (no detector takes it) and a yes/no label."""
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                       "note": [f"word{i} and some longer free text number {i * 7} here" for i in range(n)],
                       "fault": np.where(np.arange(n) % 5 == 0, "yes", "no")})
    path = tmp_path / "sensors.csv"
    df.to_csv(path, index=False)
    return path


def test_target_fpr_reaches_the_task_and_sets_the_threshold_from_the_normal_validation_rows(sensors):
    """Catches: `target_fpr` dropped on its way from the config to the task (`"XXtarget_fprXX"`): the threshold then
    came from `contamination`. With labels the quantile is taken over the normal validation rows only."""
    data, _ = _split(_anomaly_cfg(sensors, label="fault", target_fpr=0.25))
    task = data.task
    assert task.state["target_fpr"] == 0.25 and task.state["positive"] == "yes"
    score = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 100.0, 200.0])
    y_val = np.array([0, 0, 0, 0, 0, 1, 1])
    threshold, how = task._threshold(score, y_val)
    assert threshold == pytest.approx(np.quantile(score[:5], 0.75)) and "0.25 of the normal" in how
    threshold, _ = task._threshold(score, None)  # no labels: all validation rows
    assert threshold == pytest.approx(np.quantile(score, 0.75))


def test_columns_no_detector_takes_are_left_out_and_the_others_kept(sensors):
    """Catches: keeping only the columns no detector takes (`f in unused`) instead of leaving them out."""
    data, said = _split(_anomaly_cfg(sensors, label="fault"))
    assert [(f.name, f.type) for f in data.features] == [("a", "numeric"), ("b", "numeric")]
    assert any("no detector takes note:text; left out" in s for s in said)


def test_the_split_line_says_the_sizes_the_label_and_the_features(sensors, tmp_path):
    """Catches: the summary line replaced by `None`, "(no labels)" never printed (`label or True`) and the "..." after
    the first 12 features altered."""
    data, said = _split(_anomaly_cfg(sensors, label="fault"))
    n = {s: len(r) for s, r in data.raw.items()}
    assert f"40 rows -> train {n['train']} / val {n['val']} / test {n['test']}; task anomaly (label 'fault', " \
           "anomaly = 'yes', 8 rows); features: a:numeric, b:numeric[/]" in said[-1]
    wide = pd.DataFrame(np.random.default_rng(1).normal(size=(30, 14)), columns=[f"x{i}" for i in range(14)])
    wide.to_csv(tmp_path / "wide.csv", index=False)
    data, said = _split(_anomaly_cfg(tmp_path / "wide.csv"))
    assert data.y["train"] is None and "task anomaly (no labels); features: x0:numeric" in said[-1]
    assert said[-1].endswith("x11:numeric ...[/]")


def test_a_bundled_sets_class_column_is_left_out_as_ignored_with_its_own_notice():
    """Catches: the class column of a bundled set given another type than `ignore` (`"XXignoreXX"`): it was then left
    out only as a column no detector takes, with a second notice naming a type that does not exist."""
    data, said = _split(_anomaly_cfg("bundled:digits", model="autoencoder"))
    assert [(f.name, f.type) for f in data.features] == [("image", "image")]
    assert any("column 'label' (the data set's class) is left out" in s for s in said)
    assert not any("no detector takes" in s for s in said)


def test_an_anomaly_run_reads_the_file_with_the_given_encoding(tmp_path):
    """Catches: `data.encoding` not passed on (`read_source(..., None)`: the encoding is detected instead). The file
    is valid UTF-8, so only the given latin-1 reads 'é' as two characters."""
    df = pd.DataFrame({"a": np.arange(30.0), "city": ["Orléans" if i % 2 else "Nice" for i in range(30)]})
    df.to_csv(tmp_path / "utf8.csv", index=False, encoding="utf-8")
    cfg = build_config({"data": {"source": str(tmp_path / "utf8.csv"), "encoding": "latin-1"},
                        "task": {"name": "anomaly"}, "model": {"name": "isolation_forest"}, "tracking": {"uri": "none"}})
    data, _ = _split(cfg)
    cities = set(pd.concat([r["city"] for r in data.raw.values()]))
    assert cities == {"Nice", "OrlÃ©ans"}


def test_a_model_that_is_not_a_detector_is_refused_with_the_detectors_named(sensors):
    """Catches: the detectors left out of the message (`tagged('XXdetectorXX')`: "choose one of: auto, ")."""
    with pytest.raises(ConfigError, match="model 'mlp' is not an anomaly detector; choose one of: auto, autoencoder, "
                                          "deep_svdd, isolation_forest, lof"):
        _split(_anomaly_cfg(sensors, model="mlp"))


# --------------------------------------------------------------------------------------------- supervised family
def test_the_mixup_loss_adds_both_targets_weighted_by_lambda():
    """Catches: the mixup loss subtracting the mixed-in targets' loss (`lam * L(y) - (1 - lam) * L(y[perm])`): a
    loss that rewards being wrong on them. Without "mix" the step is the task's loss alone."""
    import torch

    task = make_task("classification", {"labels": ["a", "b", "c"]})
    out = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5], [0.3, 0.2, 2.0]])
    y, perm, lam = torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1]), 0.7
    ce = torch.nn.functional.cross_entropy
    batch = {"x": torch.zeros(3, 1), "y": y}
    [(name, plain)] = list(task.step(lambda inputs: out, batch))
    assert name == "model" and float(plain) == pytest.approx(float(ce(out, y)))
    [(_, mixed)] = list(task.step(lambda inputs: out, {**batch, "mix": (perm, lam)}))
    assert float(mixed) == pytest.approx(lam * float(ce(out, y)) + (1 - lam) * float(ce(out, y[perm])))


def test_trees_get_balanced_class_weights_per_row_when_the_balance_asks_for_them():
    """Catches: `class_weights` called without the training targets (a TypeError: every LightGBM run with
    `--balance class_weights` or `focal` failed). Each row gets its class's inverse frequency, the mean weight is 1."""
    y = np.array([0] * 6 + [1] * 2)
    task = make_task("classification", {"labels": [0, 1]})
    for method in ("class_weights", "focal"):
        cfg = build_config({"data": {"source": "d.csv", "target": "y", "balance": {"method": method}}})
        w = task.sample_weights(cfg, y)
        np.testing.assert_allclose(w, [8 / 12] * 6 + [8 / 4] * 2)
        assert w.mean() == pytest.approx(1.0)
    assert task.sample_weights(build_config({"data": {"source": "d.csv", "target": "y"}}), y) is None
    regression = make_task("regression", {"mean": 0.0, "std": 1.0})
    assert regression.sample_weights(build_config({"data": {"source": "d.csv", "target": "y",
                                                           "balance": {"method": "class_weights"}}}), y) is None


def test_networks_train_with_the_class_weighted_loss_the_balance_asks_for():
    """Catches: the task's training loss asked of the wrong families (`"labels" in self.tags`): classification
    networks then trained with the plain cross-entropy whatever `--balance class_weights` or `focal` said, and
    regression asked for class weights. The weighted loss is scikit-learn's 'balanced' weighting."""
    import torch

    y = np.array([0] * 6 + [1] * 2)
    task = make_task("classification", {"labels": [0, 1]})
    cfg = build_config({"data": {"source": "d.csv", "target": "y", "balance": {"method": "class_weights"}}})
    loss = task.training_loss(cfg, y)
    out, target = torch.tensor([[2.0, 0.0], [0.0, 0.5], [1.0, 1.5]]), torch.tensor([0, 1, 0])
    w = torch.tensor([8 / 12, 8 / 4])
    assert float(loss(out, target)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(out, target, weight=w)), rel=1e-6)
    assert task.training_loss(build_config({"data": {"source": "d.csv", "target": "y"}}), y) is None
    assert make_task("regression", {"mean": 0.0, "std": 1.0}).training_loss(cfg, np.zeros(8)) is None


def test_a_parquet_file_with_a_date_column_stores_how_the_dates_were_read(tmp_path):
    """Catches: the type notes stored with `setdefault("reading", None)`: a source that sets no reading of its own
    (parquet, bundled sets, image folders) and has a column whose type writes a note (a date) failed with a TypeError
    before training."""
    from forgeml.tasks.supervised import prepare, split_data

    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({"when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
                       "x": rng.normal(size=n), "y": np.where(np.arange(n) % 2 == 0, "a", "b")})
    df.to_parquet(tmp_path / "d.parquet", index=False)
    cfg = build_config({"data": {"source": str(tmp_path / "d.parquet"), "target": "y"}, "model": {"name": "lightgbm"},
                        "tracking": {"uri": "none"}})
    splits = split_data(cfg)
    assert "reading" not in splits.preparation and {f.name: f.type for f in splits.features}["when"] == "datetime"
    data = prepare(cfg, splits)
    notes = data.preparation["reading"]["notes"]
    assert any(note.startswith("when: ") and "-> datetime" in note for note in notes), notes
