"""The training-speed playbook entries (train-faster, too-long, mixed-precision): each row is what its runs wrote
(metrics.json, config.yaml), the runs trained as labelled, and each verdict is what the rows say."""
import json

import numpy as np
import pytest

from forgeml.playbook.speed import ADAMW, FASTER, LONG, TARGET, steps_per_epoch


def _metrics(folder, run):
    return json.loads((folder / "runs" / run / "metrics.json").read_text())


def _train_config(folder, run):
    import yaml

    return yaml.safe_load((folder / "runs" / run / "config.yaml").read_text())["train"]


def _to_target(history):
    """(first epoch at the target, training seconds until then), from a run's own history."""
    first = next((k for k, h in enumerate(history) if h["val_accuracy"] >= TARGET), None)
    if first is None:
        return None, None
    return first + 1, sum(h["seconds"] for h in history[: first + 1])


def test_steps_per_epoch_counts_as_the_training_loop_does():
    assert steps_per_epoch(1257, 32) == 40 and steps_per_epoch(1257, 256) == 5 and steps_per_epoch(1257, 32, 8) == 5
    assert steps_per_epoch(65, 64) == 1 and steps_per_epoch(66, 64) == 2  # a last batch of one row is dropped
    assert steps_per_epoch(64, 64) == 1 and steps_per_epoch(1, 64) == 1


def test_train_faster_rows_are_its_runs_and_the_verdict_their_times(ran):
    folder, ev = ran["train-faster"]
    runs = FASTER[:3]  # --fast: without the one-cycle run
    adamw = [f"AdamW update only, {label}" for label, _ in ADAMW]
    assert [row[0] for row in ev.rows] == [label for label, _, _ in runs] + adamw
    got = {}
    for (label, name, settings), row in zip(runs, ev.rows):
        cfg = _train_config(folder, name)
        assert (cfg["batch_size"], cfg["grad_accum"], cfg["lr"], cfg["schedule"], cfg["early_stopping"]) == (
            settings["batch_size"], settings.get("grad_accum", 1), settings["lr"], "constant", None)
        m = _metrics(folder, name)
        history = m["history"]
        assert len(history) == 5  # --fast: 5 epochs
        per_epoch = float(np.median([h["seconds"] for h in history]))
        to_epoch, to_seconds = _to_target(history)
        _, steps, epoch_s, step_ms, epochs_to, seconds_to, acc = row
        assert steps == {"faster-b32": 40, "faster-b256": 5, "faster-accum": 5}[name]  # 1,257 training rows
        assert epoch_s == round(per_epoch, 4) and step_ms == pytest.approx(per_epoch / steps * 1000, abs=1e-3)
        assert epochs_to == (to_epoch if to_epoch is not None else "not in 5")
        assert seconds_to == (round(to_seconds, 4) if to_seconds is not None else "-")
        assert acc == round(m["test"]["accuracy"], 4)
        got[name] = (per_epoch, to_epoch, to_seconds, m["test"]["accuracy"])
    assert all(row[3] > 0 and row[1:3] == ["-", "-"] for row in ev.rows[3:])
    (small, _, small_to, small_acc), (big, big_n, big_to, big_acc), (accum, accum_n, _, _) = got.values()
    assert ev.supported == (small_to is not None and big_to is not None and big_to < small_to
                            and abs(big_acc - small_acc) <= 0.01
                            and accum_n is not None and abs(accum_n - big_n) <= 1 and accum > big)


def test_too_long_rows_are_its_runs_and_the_verdict_time_and_accuracy(ran):
    folder, ev = ran["too-long"]
    assert [row[0] for row in ev.rows] == ["fixed budget, no early stopping (50 epochs)", LONG[1][0]]  # --fast
    fixed_cfg, early_cfg = _train_config(folder, "long-fixed"), _train_config(folder, "long-early")
    assert fixed_cfg["early_stopping"] is None and early_cfg["early_stopping"]["patience"] == 5
    assert fixed_cfg["epochs"] == early_cfg["epochs"] == 50
    assert fixed_cfg["schedule"] == early_cfg["schedule"] == "cosine"
    got = []
    for name, (_, ran_epochs, kept, seconds, epochs_to, seconds_to, acc) in zip(["long-fixed", "long-early"], ev.rows):
        m = _metrics(folder, name)
        history, t = m["history"], m["training"]
        to_epoch, to_seconds = _to_target(history)
        assert ran_epochs == len(history) and kept == t["best_epoch"] + 1 and seconds == round(t["seconds"], 4)
        assert t["stopped_early"] == (ran_epochs < 50)
        assert epochs_to == (to_epoch if to_epoch is not None else f"not in {ran_epochs}")
        assert seconds_to == (round(to_seconds, 4) if to_seconds is not None else "-")
        assert acc == round(m["test"]["accuracy"], 4)
        got.append((t["seconds"], m["test"]["accuracy"], [h["val_loss"] for h in history]))
    (s_fixed, acc_fixed, fixed_curve), (s_early, acc_early, early_curve) = got
    assert early_curve == pytest.approx(fixed_curve[: len(early_curve)], abs=1e-6)  # the same run, only stopped
    assert ev.supported == (acc_early >= acc_fixed - 0.005 and s_early < 0.5 * s_fixed)


def test_mixed_precision_rows_are_its_two_runs_and_the_verdict_their_epochs(ran):
    folder, ev = ran["mixed-precision"]
    rows = {row[0]: row[1:] for row in ev.rows}
    assert list(rows)[:4] == ["median seconds per training epoch", "training seconds (whole run)",
                              "best validation loss", "test accuracy"]
    runs = {p: _metrics(folder, f"precision-{p}") for p in ("fp32", "bf16")}
    for k, p in enumerate(("fp32", "bf16")):
        m = runs[p]
        assert m["training"]["precision"] == p and _train_config(folder, f"precision-{p}")["precision"] == p
        assert len(m["history"]) == 4  # --fast: 4 epochs
        per_epoch = float(np.median([h["seconds"] for h in m["history"]]))
        assert rows["median seconds per training epoch"][k] == round(per_epoch, 4)
        assert rows["training seconds (whole run)"][k] == round(m["training"]["seconds"], 4)
        assert rows["best validation loss"][k] == round(min(h["val_loss"] for h in m["history"]), 4)
        assert rows["test accuracy"][k] == round(m["test"]["accuracy"], 4)
    for fp32, bf16, ratio in rows.values():
        # the ratio is of the unrounded values, the two columns are rounded to 4 decimals: allow what that moves it
        # (an epoch of 0.028 s is +-0.2% of itself)
        slack = 1e-3 + abs(ratio) * (5e-5 / abs(fp32) + 5e-5 / abs(bf16))
        assert ratio == pytest.approx(bf16 / fp32, abs=slack)
    (matmul, (fp32_gflops, bf16_gflops, _)), = [(k, v) for k, v in rows.items() if k.startswith("matmul")]
    assert matmul == "matmul 256x256 GFLOP/s (one thread)" and fp32_gflops > 0 and bf16_gflops > 0
    f_epoch, b_epoch = (float(np.median([h["seconds"] for h in runs[p]["history"]])) for p in ("fp32", "bf16"))
    f_acc, b_acc = (runs[p]["test"]["accuracy"] for p in ("fp32", "bf16"))
    assert ev.supported == (b_epoch >= f_epoch and abs(b_acc - f_acc) <= 0.01)
