"""The playbook: every entry's experiment runs (--fast) and its verdict is what its own numbers say; the texts exist
in both languages; list, show and run through the CLI; bad ids, topics and languages are one clear message."""
import json

import pytest
from conftest import cli, user_error

from forgeml import playbook


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
    generated = json.loads((folder / "runs" / "imbalance-4" / "manifest.json").read_text())["data"]["preparation"]["balance"]
    assert generated["method"] == "generative" and generated["synthetic_rows"]["Yes"] > 0  # the generative row generated
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


def _config(folder, run):
    import yaml

    return yaml.safe_load((folder / "runs" / run / "config.yaml").read_text())


def test_which_optimizer_rows_are_its_curves_and_the_verdict_their_epochs(ran):
    folder, ev = ran["which-optimizer"]
    assert [row[0] for row in ev.rows] == ["SGD (lr 0.01)", "SGD + momentum 0.9 (lr 0.01)", "AdamW (lr 0.001)", "SGD (lr 0.1)"]
    settings = [tuple(_config(folder, f"optimizer-{k}")["train"][key] for key in ("optimizer", "momentum", "lr"))
                for k in range(4)]
    assert [(opt, lr) if opt == "adamw" else (opt, mom, lr) for opt, mom, lr in settings] == [
        ("sgd", 0.0, 0.01), ("sgd", 0.9, 0.01), ("adamw", 0.001), ("sgd", 0.0, 0.1)]  # each run trained as labelled
    reached = []
    for k, (label, to_target, best, best_epoch, acc, log_loss) in enumerate(ev.rows):
        m = _metrics(folder, f"optimizer-{k}")
        losses = [h["val_loss"] for h in m["history"]]
        assert len(losses) == 10  # --fast: 10 epochs, no early stopping
        first = next((e + 1 for e, v in enumerate(losses) if v <= 0.15), None)
        assert to_target == (first if first is not None else "not in 10")
        reached.append(first)
        assert best == round(min(losses), 4) and best_epoch == losses.index(min(losses)) + 1
        assert [acc, log_loss] == [round(m["test"]["accuracy"], 4), round(m["test"]["log_loss"], 4)]
    sgd, momentum, adamw, sgd_big = reached
    assert ev.supported == (momentum is not None and adamw is not None and (sgd is None or sgd >= 2 * max(momentum, adamw))
                            and sgd_big is not None and abs(sgd_big - momentum) <= 1)


def test_overfitting_gaps_come_from_its_runs_and_the_verdict_from_the_gaps(ran):
    import numpy as np
    from sklearn.metrics import log_loss

    from forgeml import api
    from forgeml.run import split_rows

    folder, ev = ran["overfitting"]
    assert [row[0] for row in ev.rows] == ["no remedy", "weight decay 10", "dropout 0.5", "early stopping (patience 5)"]
    configs = [_config(folder, f"overfit-{k}") for k in range(4)]
    assert [(c["model"]["dropout"], c["train"]["weight_decay"], c["train"]["early_stopping"]) for c in configs] == [
        (0.0, 0.0, None), (0.0, 10.0, None), (0.5, 0.0, None), (0.0, 0.0, {"monitor": "val_loss", "patience": 5, "min_delta": 0.0})]
    for k, (label, ran_epochs, kept, val_kept, val_last, gap_last, gap_kept, acc, loss) in enumerate(ev.rows):
        m = _metrics(folder, f"overfit-{k}")
        history, best = m["history"], m["training"]["best_epoch"]
        assert ran_epochs == len(history) and kept == best + 1
        assert val_kept == round(history[best]["val_loss"], 4) == pytest.approx(m["val"]["log_loss"], abs=1e-4)
        assert val_last == round(history[-1]["val_loss"], 4)
        assert gap_last == pytest.approx(history[-1]["val_loss"] - history[-1]["train_loss"], abs=1e-4)
        assert [acc, loss] == [round(m["test"]["accuracy"], 4), round(m["test"]["log_loss"], 4)]
    assert ev.rows[0][1] == 30 and ev.rows[-1][1] < 30  # --fast: 30 epochs; early stopping stopped before them
    # the kept model's gap: its cross-entropy on the training rows, dropout off (checked with scikit-learn's)
    model = api.load(folder / "runs" / "overfit-2")
    rows = split_rows(model)["train"]
    labels = [str(v) for v in model.manifest["target"]["labels"]]
    proba = model.predict(rows)[[f"proba_{v}" for v in labels]].to_numpy()
    train_loss = log_loss(rows["yesno"].astype(str), proba, labels=labels)
    assert len(rows) == 460 and ev.rows[2][6] == pytest.approx(ev.rows[2][3] - train_loss, abs=1e-3)
    plain, *remedies = ev.rows
    assert ev.supported == (plain[4] / plain[3] - 1 >= 0.05 and all(r[5] < plain[5] for r in remedies)
                            and all(abs(r[7] - plain[7]) <= 0.01 for r in remedies))
    assert np.isfinite([r[6] for r in ev.rows]).all()


def test_distribution_shift_scores_both_splits_and_measures_the_drift(ran):
    import numpy as np
    import pandas as pd
    from scipy import stats

    from forgeml import api
    from forgeml.playbook.data_quality import psi
    from forgeml.run import split_rows

    folder, ev = ran["distribution-shift"]
    splits = [row for row in ev.rows if row[4] == "-"]
    columns = {row[0].split()[1]: row for row in ev.rows if row[4] != "-"}
    runs = ["shift-random-0", "shift-random-1", "shift-time"]  # --fast: two seeds
    assert len(splits) == 3 and splits[-1][0].startswith("time split")
    for row, run in zip(splits, runs):
        m = _metrics(folder, run)
        assert row[1:4] == [round(m["test"]["r2"], 4), round(m["test"]["rmse"], 2), round(m["val"]["r2"], 4)]
    time_model = api.load(folder / "runs" / "shift-time")
    parts = split_rows(time_model)
    assert parts["train"]["trend"].max() <= parts["val"]["trend"].min() <= parts["val"]["trend"].max() <= parts["test"]["trend"].min()
    assert "trend" not in [f["name"] for f in time_model.manifest["features"]]  # the month is not a feature
    # the drift: the first and last 939 rows in time, the latest being the time split's test rows
    df = pd.read_csv(folder / "computers.csv")
    ordered = df.iloc[np.argsort(df["trend"].to_numpy(), kind="stable")]
    early, late = ordered.iloc[:939], ordered.iloc[-939:]
    assert sorted(late.index) == sorted(parts["test"].index) or len(parts["test"]) == 939
    assert columns["hd"][5] == round(stats.ks_2samp(early["hd"], late["hd"]).statistic, 4)
    pe, pl = (early["cd"] == "yes").mean(), (late["cd"] == "yes").mean()  # two levels: PSI by hand
    assert columns["cd"][4] == pytest.approx((pl - pe) * np.log(pl / pe) + (pe - pl) * np.log((1 - pl) / (1 - pe)), abs=1e-4)
    assert psi(early["hd"], early["hd"]) == 0 and columns["premium"][4] < 0.1 < 0.25 < columns["hd"][4]
    random_r2 = [row[1] for row in splits[:-1]]
    assert ev.supported == (min(random_r2) - splits[-1][1] >= 0.1 and max(r[4] for r in columns.values()) > 0.25)


def test_too_little_data_rows_are_the_runs_scores_on_one_test_split(ran):
    folder, ev = ran["too-little-data"]
    sizes = sorted({r[0] for r in ev.rows})
    assert len(sizes) == 2 and sizes[0] < sizes[1]
    tests = set()
    for val, size in zip((0.55, 0.1), sizes):
        cnn, aug = _metrics(folder, f"little-{val}-0"), _metrics(folder, f"little-{val}-1")
        got = {r[1]: r[2] for r in ev.rows if r[0] == size}
        assert got == {"pixels_linear": round(cnn["baseline"]["test"]["accuracy"], 4),
                       "cnn": round(cnn["test"]["accuracy"], 4), "cnn + augmentation": round(aug["test"]["accuracy"], 4)}
        tests.add(cnn["test"]["n"])
    assert tests == {540}  # every size is scored on the same test rows
    small = {r[1]: r[2] for r in ev.rows if r[0] == sizes[0]}
    large = {r[1]: r[2] for r in ev.rows if r[0] == sizes[1]}
    gain_aug, gain_rows = small["cnn + augmentation"] - small["cnn"], large["cnn"] - small["cnn"]
    assert ev.supported == (gain_aug > 0 and gain_rows > gain_aug)


def test_attention_from_scratch_matches_torch_and_the_causal_mask_hides_the_future(ran):
    import numpy as np

    from forgeml.playbook.attention import self_attention

    _, ev = ran["attention-from-scratch"]
    plain, causal, leak = ev.rows
    assert max(float(v) for v in plain[2:] + causal[2:]) <= 1e-10
    assert float(leak[2]) == 0.0 and float(leak[3]) > 0 and ev.supported
    # the weights of a causal row put nothing on later positions, and a lone position attends to itself
    rng = np.random.default_rng(1)
    w = {f"W{n}": rng.normal(size=(4, 4)) for n in "qkvo"} | {f"b{n}": np.zeros(4) for n in "qkvo"}
    _, weights = self_attention(rng.normal(size=(3, 5, 4)), w, 2, causal=True)
    assert np.all(np.triu(weights[0], 1) == 0) and np.allclose(weights[:, 0, 0], 1)


def test_forecast_deep_or_classic_rows_are_the_runs_leaderboards(ran):
    folder, ev = ran["forecast-deep-or-classic"]
    for run, label in (("forecast-many", "us_employment"), ("forecast-one", "AirPassengers")):
        m = _metrics(folder, run)
        board = {r[0]: r[2] for r in m["test"]["tables"]["leaderboard (MASE)"]["rows"] if r[2] is not None}
        got = {r[1]: r[2] for r in ev.rows if r[0].startswith(label)}
        assert {k: got[k] for k in board} == board and got[f"kept: {m['model']}"] == round(m["test"]["mase"], 4)
        assert {"seasonal_naive", "ets", "nbeats", "lstm"} <= set(board)  # every model scored on the same windows
    many = {r[1]: r[2] for r in ev.rows if r[0].startswith("us_employment")}
    assert _metrics(folder, "forecast-many")["test"]["n_series"] == 8  # --fast: 8 series
    assert ev.supported == (min(many["nbeats"], many["lstm"]) < many["ets"] and
                            all(v < many["seasonal_naive"] for k, v in many.items() if k != "seasonal_naive"))
