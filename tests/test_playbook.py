"""The playbook: every entry's experiment runs (--fast) and its verdict is what its own numbers say; the texts exist
in both languages; list, show and run through the CLI; bad ids, topics and languages are one clear message."""
import json

import pytest
from conftest import cli, user_error

from forgeml import playbook
from forgeml.playbook.run import run_entry


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Each entry run once, --fast, into its own folder."""
    root = tmp_path_factory.mktemp("playbook")
    return {e.id: (root / e.id, run_entry(e.id, fast=True, out=root / e.id)[1]) for e in playbook.all_entries()}


def _metrics(folder, run):
    return json.loads((folder / "runs" / run / "metrics.json").read_text())


def test_every_entry_speaks_both_languages_and_writes_its_pages(ran):
    for e in playbook.all_entries():
        folder, ev = ran[e.id]
        record = json.loads((folder / f"{e.id}.json").read_text(encoding="utf-8"))
        assert record["supported"] == ev.supported and record["rows"] == json.loads(json.dumps(ev.rows))
        for lang in playbook.LANGS:
            assert all(e.text(part, lang).strip() for part in ("question", "answer", "claim", "caveats"))
            page = (folder / f"{e.id}.{lang}.md").read_text(encoding="utf-8")
            assert e.text("question", lang) in page and ev.finding[lang] in page
        for plot in ev.plots:
            assert (folder / plot).stat().st_size > 1000


def test_numpy_backprop_matches_autograd_and_learns(ran):
    _, ev = ran["numpy-backprop"]
    diffs = [float(r[1]) for r in ev.rows if r[0].startswith("d loss")]
    assert len(diffs) == 4 and max(diffs) <= 1e-6
    assert ev.rows[-1][1] >= 0.9 and ev.supported


def test_accuracy_misleads_compares_with_the_constant_predictor(ran):
    folder, ev = ran["accuracy-misleads"]
    constant, model = ev.rows
    test = _metrics(folder, "accuracy")["test"]
    assert model[1:] == [round(test["accuracy"], 4), round(test["per_class"]["Yes"]["recall"], 4), round(test["pr_auc"], 4)]
    assert constant[1] == pytest.approx(1 - constant[3], abs=1e-4) and constant[2] == 0.0  # all "No": 1 - positive rate
    assert ev.supported == (constant[1] >= 0.95 and model[1] - constant[1] < 0.03 and model[3] > 3 * constant[3])
    assert ev.supported  # 3.3% defaulters: always "No" is ~97% accurate


def test_imbalance_verdict_is_what_its_f1_scores_say(ran):
    folder, ev = ran["imbalance"]
    f1 = [row[1] for row in ev.rows]
    for k, row in enumerate(ev.rows):  # each row is its run's test metrics
        assert row[1] == round(_metrics(folder, f"imbalance-{k}")["test"]["per_class"]["Yes"]["f1"], 4)
    manifest = json.loads((folder / "runs" / "imbalance-1" / "manifest.json").read_text())
    assert manifest["target"]["threshold_tuning"]["tuned_for"] == "f1"  # the tuned variant really tuned
    assert ev.supported == (f1[1] > f1[0])


def test_one_split_luck_verdict_is_its_spread(ran):
    folder, ev = ran["one-split-luck"]
    scores = [row[1] for row in ev.rows if row[0].startswith("split seed")]
    assert scores == [round(_metrics(folder, f"split-{s}")["test"]["accuracy"], 4) for s in range(len(scores))]
    assert ev.supported == (max(scores) - min(scores) >= 0.01)
    assert ev.rows[-1][0].startswith("3-fold cv")


def test_list_show_and_run_through_the_cli(in_tmp, capsys):
    assert cli("playbook", "list") == 0
    listed = capsys.readouterr().out
    assert all(e.id in listed for e in playbook.all_entries())
    assert cli("playbook", "list", "--lang", "zh", "--topic", "evaluation") == 0
    out = capsys.readouterr().out
    assert "我的模型准确率 97%" in out and "imbalance" not in out
    assert cli("playbook", "show", "numpy-backprop", "--lang", "zh") == 0
    assert "检验的论断" in capsys.readouterr().out
    assert cli("playbook", "run", "numpy-backprop", "--fast", "--out", "pb") == 0
    out = capsys.readouterr().out
    assert "supported by this run" in out and (in_tmp / "pb" / "numpy-backprop.zh.md").is_file()


def test_bad_ids_topics_and_languages_are_clear_errors(in_tmp, capsys):
    assert "did you mean imbalance" in user_error(capsys, "playbook", "show", "imbalanse")
    assert "--lang must be zh or en" in user_error(capsys, "playbook", "list", "--lang", "fr")
    assert "unknown topic 'cooking'" in user_error(capsys, "playbook", "list", "--topic", "cooking")


def test_onnx_latency_verdict_is_its_p50s(ran):
    _, ev = ran["onnx-latency"]
    (eager_p50, eager_p95), (onnx_p50, onnx_p95) = [row[1:] for row in ev.rows]
    assert 0 < eager_p50 <= eager_p95 and 0 < onnx_p50 <= onnx_p95
    assert ev.supported == (onnx_p50 < eager_p50)


def test_deep_or_trees_verdict_is_what_the_two_runs_scored(ran):
    folder, ev = ran["deep-or-trees"]
    for name, val, test, pr in ev.rows:
        m = _metrics(folder, f"risk-{name}")
        assert [val, test, pr] == [round(m["val"]["roc_auc"], 4), round(m["test"]["roc_auc"], 4), round(m["test"]["pr_auc"], 4)]
    assert ev.supported == (ev.rows[1][2] >= ev.rows[0][2] - 0.01)


def test_compute_calculator_counts_memory_and_checks_6n_against_a_real_step(ran):
    _, ev = ran["compute-calculator"]
    values = dict(ev.rows)
    n = int(values["parameters N"].replace(",", ""))
    assert n == 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10  # the --fast MLP: 784-1024-1024-10
    assert float(values["weights (MiB)"]) == pytest.approx(4 * n / 2 ** 20, abs=0.05)
    assert float(values["Adam state (MiB)"]) == pytest.approx(2 * float(values["weights (MiB)"]), abs=0.1)
    ratio = float(values["measured / predicted"])
    assert ratio == pytest.approx(float(values["measured step (ms)"]) / float(values["predicted step (ms)"]), rel=0.01)
    assert ev.supported == (0.5 <= ratio <= 3)


def test_missing_values_verdict_is_what_its_runs_scored(ran):
    import numpy as np
    import pandas as pd

    folder, ev = ran["missing-values"]
    rows = {row[0]: row[1:] for row in ev.rows}
    seeds = sorted(int(p.name.rsplit("seed", 1)[1]) for p in (folder / "runs").glob("missing-0-seed*"))
    assert seeds == [0, 1]  # --fast: two seeds
    holed = pd.read_csv(folder / "spam7-holes-seed0.csv")
    numeric = [c for c in holed.columns if c not in ("row", "yesno")]
    assert holed[numeric].isna().to_numpy().mean() == pytest.approx(0.2, abs=0.01) and holed["yesno"].notna().all()
    for k, (label, (kept, answered, acc_all, acc_complete)) in enumerate(rows.items()):
        # the all-rows accuracy is forgeml's own test accuracy of each seed's run, averaged
        assert acc_all == pytest.approx(np.mean([_metrics(folder, f"missing-{k}-seed{s}")["test"]["accuracy"] for s in seeds]), abs=1e-4)
        if label != "drop incomplete rows":
            assert kept == answered == 1.0
    kept, answered, *_ = rows["drop incomplete rows"]
    assert answered == pytest.approx(0.8 ** len(numeric), abs=0.04) and kept == pytest.approx(0.8 ** len(numeric), abs=0.04)
    manifest = json.loads((folder / "runs" / "missing-1-seed0" / "manifest.json").read_text())
    assert manifest["data"]["preparation"]["training_rows_dropped"]["missing numeric value"] > 0
    indicators = json.loads((folder / "runs" / "missing-4-seed0" / "manifest.json").read_text())
    assert indicators["preprocessing"]["numeric"]["indicator"] == numeric  # the indicator variant really has them
    fills = [rows[label][2] for label in ("mean fill", "median fill", "median fill + missing indicators")]
    assert ev.supported == (answered <= 0.5 and max(fills) - min(fills) <= 0.01)


def test_compare_two_models_intervals_and_tests_agree_with_the_runs(ran):
    from scipy import stats

    folder, ev = ran["compare-two-models"]
    boot_acc, boot_auc, ztest, mcnemar = ev.rows
    runs = {"LightGBM": _metrics(folder, "compare-lightgbm")["test"], "MLP": _metrics(folder, "compare-mlp")["test"]}
    assert boot_acc[1:3] == [round(runs[m]["accuracy"], 4) for m in runs]
    assert boot_auc[1:3] == [round(runs[m]["roc_auc"], 4) for m in runs]  # our weighted AUC with all weights 1
    assert boot_acc[3] == pytest.approx(runs["MLP"]["accuracy"] - runs["LightGBM"]["accuracy"], abs=1e-4)
    lo, hi = json.loads(boot_acc[4])
    z_lo, z_hi = json.loads(ztest[4])
    assert lo <= hi and (z_hi - z_lo) > (hi - lo)  # pairing narrows the interval
    (x_a, n), (x_b, _) = [map(int, cell.split()[0].split("/")) for cell in ztest[1:3]]
    assert n == 1500 and x_a / n == pytest.approx(runs["LightGBM"]["accuracy"]) and x_b / n == pytest.approx(runs["MLP"]["accuracy"])
    only_a, only_b = [int(cell.split()[0]) for cell in mcnemar[1:3]]
    assert only_b - only_a == x_b - x_a  # the rows both get right (or wrong) cancel
    assert mcnemar[5] == round(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue, 4)
    assert 0 <= ztest[5] <= 1
    assert ev.supported == (lo <= 0 <= hi)


def test_kmeans_from_scratch_matches_sklearn(ran):
    _, ev = ran["kmeans-from-scratch"]
    assert [(r[0], r[1]) for r in ev.rows] == [("wine", "standardized"), ("wine", "raw"), ("iris", "standardized"), ("iris", "raw")]
    for data, features, ours, sk, rel, ari_ours, ari_sk, ari_between in ev.rows:
        assert rel == pytest.approx(ours / sk - 1, abs=1e-4)
        assert -1 <= ari_between <= 1
    assert ev.supported == all(abs(r[4]) <= 0.01 and abs(r[5] - r[6]) <= 0.01 for r in ev.rows)
    assert ev.supported  # 10 restarts on 150-178 rows: the same minimum as scikit-learn's
    assert ev.rows[0][5] > ev.rows[1][5] + 0.3  # wine: standardizing matters (proline dominates the raw distances)


def test_numpy_kmeans_finds_separated_blobs():
    import numpy as np

    from forgeml.playbook.scratch import kmeans

    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(0, 0.5, (50, 2)) for c in centers])
    labels, inertia, each = kmeans(x, 3, restarts=5)
    assert len(each) == 5 and inertia == min(each)
    assert sorted(np.bincount(labels)) == [50, 50, 50]
    assert all(len(set(labels[i * 50:(i + 1) * 50])) == 1 for i in range(3))
