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
