"""The application recipes of the playbook (image recognition, text classification, medical diagnosis): each row is
what its runs wrote, and the verdict is what the rows say."""
import json

import numpy as np
import pandas as pd


from conftest import run_config_yaml as _config, run_manifest as _manifest, run_metrics as _metrics


def test_image_recognition_rows_are_the_confusion_matrices_of_its_runs(ran):
    from forgeml.playbook.recipes import AUGMENT, mistake

    folder, ev = ran["image-recognition"]
    plain, augmented = _metrics(folder, "image-cnn"), _metrics(folder, "image-cnn-augmented")
    assert plain["baseline"]["name"] == "pixels_linear" and plain["model"] == augmented["model"] == "cnn"
    augment = [_config(folder, run)["data"]["augment"]["image"] for run in ("image-cnn", "image-cnn-augmented")]
    assert [{k: a[k] for k in AUGMENT["image"]} for a in augment] == [{"crop": 0, "rotate": 0}, AUGMENT["image"]]
    tests = [plain["baseline"]["test"], plain["test"], augmented["test"]]
    cms = [np.array(t["confusion_matrix"]) for t in tests]
    labels = [str(v) for v in _manifest(folder, "image-cnn")["target"]["labels"]]
    *digits, total = ev.rows
    assert [r[0] for r in digits] == labels == [str(d) for d in range(10)]
    for i, row in enumerate(digits):
        assert row[1] == cms[1][i].sum() == cms[0][i].sum() == cms[2][i].sum()  # the same test images for all three
        assert row[2:5] == [int(cm[i].sum() - cm[i, i]) for cm in cms]
        assert row[5:] == [mistake(cms[0][i], i, labels), mistake(cms[1][i], i, labels)]
    assert total[1] == 360 and total[2:5] == [round(t["accuracy"], 4) for t in tests]
    for cm, cell in zip(cms[:2], total[5:]):  # the most frequent confusion, as "true as predicted (count)" when repeated
        off = cm - np.diag(np.diag(cm))
        assert cell == {0: "-", 1: "none repeated"}.get(off.max()) or cell.endswith(f"({off.max()})") and off.max() > 1
    base, cnn = [r[2] for r in digits], [r[3] for r in digits]
    assert ev.supported == (total[3] - total[2] >= 0.01 and all(c <= b for c, b in zip(cnn, base)))


def test_mistake_names_the_most_frequent_wrong_answer():
    from forgeml.playbook.recipes import mistake

    assert mistake([5, 0, 2, 1], 0, ["a", "b", "c", "d"]) == "as c (2)"
    assert mistake([0, 7, 0], 1, ["a", "b", "c"]) == "-"


def test_text_classification_rows_are_its_runs_on_one_split(ran):
    folder, ev = ran["text-classification"]
    tweets = pd.read_csv(folder / "tweets.csv")
    assert len(tweets) == 400 and set(tweets["source"]) == {"Android", "iPhone"}  # --fast: 400 tweets
    majority, tfidf, minilm = ev.rows
    runs = {"text-tfidf": tfidf, "text-minilm": minilm}
    cms = {}
    for run, row in runs.items():
        m = _metrics(folder, run)
        assert row[1:] == [round(m["test"]["accuracy"], 4), round(m["test"]["roc_auc"], 4), round(m["test"]["f1_macro"], 4),
                           round(m["candidates"][0]["seconds"], 2)]
        cms[run] = np.array(m["test"]["confusion_matrix"])
    assert (cms["text-tfidf"].sum(axis=1) == cms["text-minilm"].sum(axis=1)).all()  # the same test tweets
    assert _metrics(folder, "text-tfidf")["model"] == "tfidf_linear"
    m = _metrics(folder, "text-minilm")
    assert m["model"] == "minilm" and _config(folder, "text-minilm")["model"]["freeze_encoder"]
    assert m["training"]["trainable_parameters"] == 384 * 2 + 2  # only the head learned
    top = tweets["source"].value_counts()
    labels = [str(v) for v in _manifest(folder, "text-tfidf")["target"]["labels"]]
    share = cms["text-tfidf"].sum(axis=1)[labels.index(top.idxmax())] / cms["text-tfidf"].sum()
    assert majority[0] == f"majority class (always {top.idxmax()})"
    assert majority[1:4] == [round(share, 4), 0.5, round(share / (1 + share), 4)]  # macro F1: the other class scores 0
    assert ev.supported == (tfidf[1] - majority[1] >= 0.10 and minilm[2] > tfidf[2])


def test_medical_diagnosis_rows_are_its_runs_and_the_threshold_is_the_one_predict_uses(ran):
    from forgeml import api
    from forgeml.playbook.recipes import RECALL, diagnosis_models
    from forgeml.run import split_rows

    folder, ev = ran["medical-diagnosis"]
    assert [tuple(r[:3]) for r in ev.rows] == [(0, label, how) for label in diagnosis_models(True)
                                               for how in ("default", f"validation, recall >= {RECALL}")]  # --fast: seed 0
    for seed, label, how, threshold, val, recall, missed, alarms, auc, features in ev.rows:
        name = diagnosis_models(True)[label]["name"]
        run = f"diagnosis-{name}-{seed}" + ("" if how == "default" else "-tuned")
        m, target = _metrics(folder, run), _manifest(folder, run)["target"]
        assert target["labels"] == ["benign", "malignant"] and m["model"] == name
        cm = np.array(m["test"]["confusion_matrix"])
        assert [recall, missed, alarms, auc] == [round(m["test"]["per_class"]["malignant"]["recall"], 4), cm[1, 0], cm[0, 1],
                                                 round(m["test"]["roc_auc"], 4)]
        if how == "default":
            assert "threshold" not in target and threshold == 0.5
            assert val == round(m["val"]["per_class"]["malignant"]["recall"], 4)
            perm = json.loads((folder / "explanations" / f"{name}-{seed}" / "explanations.json").read_text())["permutation"]
            assert perm["metric"] == "roc_auc" and perm["repeats"] == 2
            assert features == ", ".join(f"{f['feature']} {f['importance']:.4f}" for f in perm["features"][:3])
        else:
            tuning = target["threshold_tuning"]
            assert tuning["tuned_for"] == f"recall>={RECALL:g}" and tuning["val_recall"] >= RECALL
            assert [threshold, val] == [round(target["threshold"], 4), round(tuning["val_recall"], 4)]
            # predict decides with the tuned threshold: the missed cancers again, from the run's own predictions
            model = api.load(folder / "runs" / run)
            rows = split_rows(model)["test"]
            pred = model.predict(rows)
            assert ((rows["diagnosis"] == "malignant") & (pred["prediction"] == "benign")).sum() == missed
            assert (pred["prediction"] == np.where(pred["proba_malignant"] >= target["threshold"], "malignant", "benign")).all()
    tuned = [r for r in ev.rows if r[2] != "default"]
    assert ev.supported == (all(r[5] >= RECALL for r in tuned) and all(r[8] >= 0.97 for r in ev.rows))
    assert all(a[8] == b[8] for a, b in zip(ev.rows[::2], ev.rows[1::2]))  # the threshold leaves the ranking alone
