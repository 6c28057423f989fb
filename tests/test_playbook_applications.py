"""Application and from-scratch recipes of the playbook (anomaly detection, a GAN): each row is what its run wrote,
and the verdict is what the rows say."""
import json


def _metrics(folder, run):
    return json.loads((folder / "runs" / run / "metrics.json").read_text())


def test_anomaly_detection_rows_are_its_runs_and_the_verdict_what_they_say(ran):
    from forgeml.playbook.anomalies import DETECTORS

    folder, ev = ran["anomaly-detection"]
    assert [(r[0], r[1]) for r in ev.rows] == [(s, d) for s in ("biopsies", "digits") for d in DETECTORS]
    for data, detector, val, test, pr, rate, at_n in ev.rows:
        m = _metrics(folder, f"anomaly-{data}-{detector}")
        assert (val, test, pr, at_n) == tuple(round(m[s][k], 4) for s, k in
                                              (("val", "roc_auc"), ("test", "roc_auc"), ("test", "pr_auc"), ("test", "precision_at_n")))
        assert rate == round(m["test"]["anomalies"] / m["test"]["n"], 4)
        manifest = json.loads((folder / "runs" / f"anomaly-{data}-{detector}" / "manifest.json").read_text())
        assert manifest["task"] == "anomaly"  # the label only evaluates: never an input
        assert manifest["target"]["label"] not in [f["name"] for f in manifest["features"]]
    best = {}
    for data in ("biopsies", "digits"):
        rows = [r for r in ev.rows if r[0] == data]
        chosen = max(rows, key=lambda r: r[2])
        best[data] = (chosen[3], chosen[4], chosen[5], max(r[3] for r in rows))
    b, d = best["biopsies"], best["digits"]
    assert ev.supported == (b[0] >= 0.85 and b[1] >= 3 * b[2] and d[3] <= b[3] - 0.1)


def test_gan_from_scratch_shapes_are_measured_and_the_verdict_follows_its_training(ran):
    from forgeml.playbook.gan import SHAPES

    folder, ev = ran["gan-from-scratch"]
    seeds, *ours, trained = ev.rows
    assert seeds[2] == "(1, 28, 28)" and seeds[3] is False  # the seeds' 7 -> 14 -> 28 stack, asserted 128x128
    assert [row[1] for row in ours] == [str(s) for s in SHAPES] and all(row[2] == row[1] and row[3] for row in ours)
    history = _metrics(folder, "gan-digits")["history"]
    assert trained[1:3] == [round(history[0]["val_loss"], 3), round(history[-1]["val_loss"], 3)]
    assert ev.supported == (history[-1]["val_loss"] < history[0]["val_loss"] / 2)
