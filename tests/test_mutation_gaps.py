"""Tests written for mutants that survived the mutation run (tests/mutation/run.sh; docs/testing.md lists them).

Each test names the one-line change it catches. They check values on small inputs, without training a model, so
they also keep the mutation run fast.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from forgeml.tasks import fit_task


# --------------------------------------------------------------------------------------------- regression task
def test_regression_target_is_standardized_with_the_training_mean_and_std():
    """Catches: the scale forced to 1.0 (`std > 1e-12 and False`, or a threshold of 1.000000000001 instead of 1e-12)
    and values read with another dtype. The target's spread is below 1 and above 1 in the two cases."""
    for values in ([0.1, 0.2, 0.4, 0.3], [120.0, 80.0, 200.0, 150.0, 95.0]):
        y = pd.Series(values)
        task = fit_task("regression", y)
        assert task.state["mean"] == pytest.approx(np.mean(values))
        assert task.state["std"] == pytest.approx(np.std(values))
        z = task.encode(y)
        assert z.dtype == np.float32
        assert z.mean() == pytest.approx(0.0, abs=1e-6) and z.std() == pytest.approx(1.0, rel=1e-5)


def test_regression_decode_inverts_encode():
    """Catches: decode dividing by the scale instead of multiplying. The test's metrics decode both the target and the
    prediction, so a wrong decode cancels out there; predictions on the original scale do not."""
    y = pd.Series([120.0, 80.0, 200.0, 150.0, 95.0])
    task = fit_task("regression", y)
    np.testing.assert_allclose(task.decode(task.encode(y).astype(np.float64)), y.to_numpy(), rtol=1e-6)
    pred = task.outputs(task.encode(y).reshape(-1, 1))["pred"]
    np.testing.assert_allclose(task.decode(pred), y.to_numpy(), rtol=1e-6)


def test_a_constant_regression_target_gets_scale_one():
    """Catches: dividing by a zero standard deviation (`std > 1e-12 or True`): a constant target must encode to 0, not
    NaN, and decode back to the constant."""
    y = pd.Series([7.0] * 6)
    task = fit_task("regression", y)
    assert task.state["std"] == 1.0
    z = task.encode(y)
    assert np.all(z == 0.0)
    np.testing.assert_allclose(task.decode(z.astype(np.float64)), y.to_numpy())


def test_regression_loss_is_the_mean_squared_error_of_each_row():
    """Catches: squeezing the wrong axis (`squeeze(-2)`): (B, 1) outputs against (B,) targets then broadcast to a
    (B, B) matrix of every output against every target, a different loss that still trains a little."""
    task = fit_task("regression", pd.Series([0.0, 1.0, 2.0]))
    out = torch.tensor([[0.5], [1.0], [-1.0]])
    y = torch.tensor([0.0, 2.0, -1.0])
    assert float(task.loss(out, y)) == pytest.approx(((0.5 - 0.0) ** 2 + (1.0 - 2.0) ** 2 + 0.0) / 3)


# --------------------------------------------------------------------------------------------- classification task
def test_classification_metrics_use_the_tuned_threshold_and_report_it():
    """Catches: metrics computed from the most probable class instead of the task's decisions (`pred` dropped), and
    the tuned threshold left out of the metrics (`"threshold"` renamed). With a threshold of 0.2 every row here is
    decided correctly; the most probable class would get one row of three right."""
    from forgeml.tasks import make_task

    task = make_task("classification", {"labels": [0, 1], "threshold": 0.2})
    proba = np.array([[0.7, 0.3], [0.9, 0.1], [0.6, 0.4]])
    y = np.array([1, 0, 1])
    metrics = task.metrics(y, {"proba": proba, "pred": task.decide(proba)})
    assert metrics["accuracy"] == 1.0
    assert metrics["threshold"] == 0.2


def test_a_tuned_threshold_decides_binary_tasks_at_or_above_it_and_decodes_to_labels():
    """Catches every change to `decide`: the threshold not read, the wrong column or shape compared, `>` instead of
    `>=` (docs: the positive class when P(positive) >= threshold), and float decisions that cannot index the labels.
    A multiclass task ignores a threshold."""
    from forgeml.tasks import make_task

    task = make_task("classification", {"labels": ["no", "yes"], "threshold": 0.25})
    proba = np.array([[0.75, 0.25], [0.8, 0.2], [0.6, 0.4]])
    pred = task.decide(proba)
    assert pred.tolist() == [1, 0, 1] and pred.dtype == np.int64
    assert task.decode(pred).tolist() == ["yes", "no", "yes"]
    three = make_task("classification", {"labels": ["a", "b", "c"], "threshold": 0.25})
    assert three.decide(np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])).tolist() == [0, 2]


def test_a_target_mixing_numbers_and_strings_keeps_each_labels_type():
    """Catches: labels sorted without the type-first key (Python cannot order 1 and "a": TypeError) and decode
    building a default-dtype array (numpy turns [1, 2, "a"] into strings, so a predicted 1 would come back as "1").
    JSON lines and parquet keep such mixed targets; 1.0 and 1 are one label."""
    task = fit_task("classification", pd.Series([2, "b", 1.0, "a", 1], dtype=object))
    assert task.labels == [1, 2, "a", "b"]
    decoded = task.decode(np.array([0, 2, 1]))
    assert decoded.tolist() == [1, "a", 2] and isinstance(decoded[0], int)


def test_classification_quick_metrics_report_accuracy_every_epoch():
    """Catches: the per-epoch key renamed (`"accuracy"` -> `"XXaccuracyXX"`): the loop's history then has no
    val_accuracy, which early stopping on val_accuracy and the federated plot read."""
    from forgeml.tasks import make_task

    task = make_task("classification", {"labels": ["a", "b", "c"]})
    quick = task.quick_metrics(np.array([0, 1, 2, 2]), {"pred": np.array([0, 1, 1, 2])})
    assert quick == {"accuracy": 0.75}



def test_classification_probabilities_stay_finite_for_large_logits():
    """Catches: softmax shifted by `+ max` (exp overflows to inf) or by the batch's global max instead of each row's
    (`axis=None`: a row far below the other rows underflows to 0/0). Both give NaN probabilities."""
    from forgeml.tasks import make_task

    task = make_task("classification", {"labels": ["a", "b"]})
    out = task.outputs(np.array([[1000.0, 0.0], [-1000.0, -1001.0]], dtype=np.float32))
    assert np.isfinite(out["proba"]).all()
    np.testing.assert_allclose(out["proba"].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out["proba"][0], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out["proba"][1], [1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(1.0))], rtol=1e-5)
    assert out["pred"].tolist() == [0, 0]


def test_a_target_label_unseen_in_training_is_a_data_error_that_names_it():
    """Catches: the message's parts replaced (`unseen = None`, `DataError(None)`, the list cut at 6): evaluating on
    labelled data with a new class must say which values are new and which labels the model knows."""
    from forgeml.errors import DataError

    task = fit_task("classification", pd.Series(["cat", "dog", "cat"]))
    np.testing.assert_array_equal(task.encode(pd.Series(["dog", "cat"])), [1, 0])
    new = ["emu", "fox", "gnu", "hen", "ibis", "jay", "kiwi"]
    with pytest.raises(DataError) as err:
        task.encode(pd.Series(["dog", *new]))
    assert str(err.value) == ("target values ['emu', 'fox', 'gnu', 'hen', 'ibis'] were not seen in training; "
                              "known labels: ['cat', 'dog']")


# --------------------------------------------------------------------------------------------- model/epoch choice
def test_better_follows_each_metrics_direction_ties_and_min_delta():
    """`better` decides the kept epoch (with early_stopping.min_delta), the kept round and the chosen candidate.
    Catches: a default min_delta of 1.0 (the candidate first in line always kept), `<=`/`>=` (a tie counts as an
    improvement), `b + min_delta` for lower-is-better and `b - min_delta` for higher-is-better (an epoch within
    min_delta of the best counts as better), and a `test_` prefix not stripped."""
    from forgeml.tasks import better

    assert better("roc_auc", 0.91, 0.90) and not better("roc_auc", 0.90, 0.91)
    assert better("val_loss", 0.4, 0.5) and not better("val_loss", 0.5, 0.4)
    assert not better("val_loss", 0.5, 0.5) and not better("accuracy", 0.8, 0.8)  # a tie is not an improvement
    assert not better("val_loss", 0.95, 1.0, min_delta=0.1) and better("val_loss", 0.85, 1.0, min_delta=0.1)
    assert not better("val_accuracy", 0.95, 0.9, min_delta=0.1) and better("val_accuracy", 0.95, 0.8, min_delta=0.1)
    assert better("test_rmse", 1.0, 2.0) and not better("test_rmse", 2.0, 1.0)  # rmse: lower is better


# --------------------------------------------------------------------------------------------- splits
def _split(**cfg):
    from forgeml.config import SplitConfig

    return SplitConfig(**cfg)


def test_time_folds_are_expanding_windows_over_time_ordered_blocks():
    """`forgeml cv --time-col`: K+1 time-ordered blocks, fold k tests on block k+1 and trains (and validates, on the
    latest rows before the test block) on everything before it. Catches changes to the block edges
    (`linspace(1, ...)`, K+3 blocks), to which rows are the past (`edges[fold + 2]`: the test block inside training)
    or the test block (`fold - 2`), and to the validation size or position (`past[+n_val:]`)."""
    from forgeml.data.split import split_indices

    times = np.random.default_rng(0).permutation(60).astype(float)  # row i happened at times[i]
    tested = []
    for k in range(3):
        train, val, test = split_indices(np.zeros(60), False, _split(folds=3, fold=k), times=times)
        t_train, t_val, t_test = np.sort(times[train]), np.sort(times[val]), np.sort(times[test])
        np.testing.assert_array_equal(t_test, np.arange(15 * (k + 1), 15 * (k + 2)))  # block k+1 of 4
        past = np.arange(15 * (k + 1))
        n_val = max(1, round(len(past) * 0.15 / 0.85))
        np.testing.assert_array_equal(t_val, past[-n_val:])  # the latest rows before the test block
        np.testing.assert_array_equal(t_train, past[:-n_val])
        tested.append(test)
    assert len(np.unique(np.concatenate(tested))) == 45  # the three test blocks do not overlap


def test_a_time_split_keeps_at_least_one_row_per_split_and_needs_two_training_rows():
    """Catches: one-row minimums raised to two (`max(2, ...)` for test or validation) and the training minimum moved
    (`len(train) <= 2`): 4 rows split 2 / 1 / 1 are allowed, 3 rows are refused with the reason."""
    from forgeml.data.split import split_indices
    from forgeml.errors import DataError

    train, val, test = split_indices(np.zeros(10), False, _split(val=0.04, test=0.04), times=np.arange(10.0))
    assert (len(train), len(val), len(test)) == (8, 1, 1) and test.tolist() == [9] and val.tolist() == [8]
    train, val, test = split_indices(np.zeros(4), False, _split(val=0.25, test=0.25), times=np.arange(4.0))
    assert (train.tolist(), val.tolist(), test.tolist()) == ([0, 1], [2], [3])
    with pytest.raises(DataError, match="leaves 1 training row"):
        split_indices(np.zeros(3), False, _split(val=0.25, test=0.25), times=np.arange(3.0))


def test_regression_folds_partition_the_rows_the_same_way_every_call():
    """`forgeml cv` on a regression target (KFold): each fold is a separate run that calls the split again, so the folds
    must come from the seed. Catches an unseeded KFold (folds overlap between runs, rows are tested twice or never),
    no splitter at all, and the "not stratified" warning given to a task that never stratifies."""
    import warnings

    from forgeml.data.split import split_indices

    y = np.linspace(0.0, 1.0, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tests = [split_indices(y, False, _split(folds=3, fold=k))[2] for k in range(3)]
        again = [split_indices(y, False, _split(folds=3, fold=k))[2] for k in range(3)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(30))
    for a, b in zip(tests, again):
        np.testing.assert_array_equal(a, b)


def test_group_folds_keep_each_group_in_one_test_fold():
    """`forgeml cv --group-col`: catches GroupKFold built without the fold count."""
    from forgeml.data.split import split_indices

    groups = np.repeat(np.arange(6), 5)
    tests = [split_indices(np.zeros(30), False, _split(folds=3, fold=k), groups=groups)[2] for k in range(3)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(30))
    for test in tests:
        assert len(test) == 10 and all(set(groups[test]).isdisjoint(groups[other]) for other in tests if other is not test)


def test_a_group_split_needs_three_groups_and_says_so():
    """docs/data-quality.md: "fewer than 3 groups" is an error. Catches `n_groups <= 3` and the message dropped.
    3 groups split 1 / 1 / 1 and 4 groups 2 / 1 / 1 (a session found 3 groups refused as "2 distinct groups")."""
    from forgeml.data.split import split_indices
    from forgeml.errors import DataError

    groups = np.repeat([1, 2, 3, 4], 10)
    train, val, test = split_indices(np.zeros(40), False, _split(), groups=groups)
    assert (len(train), len(val), len(test)) == (20, 10, 10)
    three = np.repeat([1, 2, 3], 10)
    splits = split_indices(np.zeros(30), False, _split(), groups=three)
    assert sorted(len(set(three[s])) for s in splits) == [1, 1, 1]
    with pytest.raises(DataError) as err:
        split_indices(np.zeros(20), False, _split(), groups=np.repeat([1, 2], 10))
    assert str(err.value).startswith("split.group_col has 2 distinct group(s); a group split needs at least 3")


def test_a_stratified_split_keeps_the_class_proportions_in_every_split():
    """docs/data-quality.md: "every split keeps the class proportions". Catches the test or the validation holdout
    made without stratification, either size lost (`None`: scikit-learn's 25 %), and the validation fraction of the
    rest computed as val / (1 + test). 10 % positives in 200 rows: 14 / 3 / 3 in every seed."""
    from forgeml.data.split import split_indices

    y = np.array([1] * 20 + [0] * 180)
    for seed in range(4):
        train, val, test = split_indices(y, True, _split(seed=seed))
        assert (len(train), len(val), len(test)) == (139, 31, 30)
        assert (y[train].sum(), y[val].sum(), y[test].sum()) == (14, 3, 3)


def test_a_class_with_fewer_than_three_rows_turns_stratification_off_with_a_warning():
    """Catches the warning's text changed and the limit moved (`< 4`: a class of exactly 3 rows is still stratified)."""
    from forgeml.data.split import split_indices

    with pytest.warns(UserWarning, match="^a class has fewer than 3 rows: splitting without stratification$"):
        split_indices(np.array([0] * 40 + [1] * 2), True, _split())


def test_when_classes_are_too_small_to_stratify_the_split_keeps_its_sizes():
    """Catches the unstratified fallback losing the split size (`test_size=None`: scikit-learn's 25 %)."""
    from forgeml.data.split import split_indices

    with pytest.warns(UserWarning, match="too few rows per class to stratify"):
        train, val, test = split_indices(np.repeat(np.arange(10), 3), True, _split(val=0.15, test=0.15))
    assert (len(train), len(val), len(test)) == (20, 5, 5)


def test_times_parse_from_numbers_dates_and_mixed_text_and_refuse_gaps_and_booleans():
    """`split.time_col` values. Catches: missing times not reported (or reported without the row), numbers not read as
    numbers, booleans read as 0/1 times, datetime columns converted to another dtype, text parsed without
    `format="mixed"` or without `utc=True` (offsets then cannot be compared)."""
    from forgeml.data.split import parse_times
    from forgeml.errors import DataError

    epochs = pd.Series([1.7e9, 1.6e9, 1.65e9], name="t")
    np.testing.assert_array_equal(parse_times(epochs), epochs.to_numpy())
    dates = pd.Series(pd.to_datetime(["2024-01-02", "2024-01-01"]), name="d")
    parsed = parse_times(dates)
    assert parsed.dtype == np.int64 and parsed[0] > parsed[1]
    mixed = parse_times(pd.Series(["2024-01-02", "03 Feb 2024", "2024/03/04 10:00"], name="d"))
    assert mixed[0] < mixed[1] < mixed[2]
    offsets = parse_times(pd.Series(["2024-01-01T01:00:00+02:00", "2024-01-01T00:00:00Z"], name="d"))
    assert offsets[1] - offsets[0] == 3600 * 10**9  # 23:00Z the day before, then midnight Z
    with pytest.raises(DataError) as err:
        parse_times(pd.Series(["2024-01-01", None, "2024-01-03", None], name="day"))
    assert str(err.value) == ("split.time_col 'day' is missing in 2 row(s) (first: row 1); every row needs a time "
                              "to be ordered")
    with pytest.raises(DataError, match="does not parse as dates/times"):
        parse_times(pd.Series([True, False], name="flag"))


# --------------------------------------------------------------------------------------------- cleaning
def _clean(**cfg):
    from forgeml.config import CleanConfig

    return CleanConfig(**cfg)


def test_minmax_scaling_maps_each_training_column_to_zero_one():
    """`--scale minmax`. Catches the minimum taken over the whole table or per row (`axis=None`, `axis=1`), the
    maximum's start value changed (`initial=+inf`: every max is inf, so the scale falls back to 1), and the branch
    taken for every other method (`method != "minmax"`)."""
    from forgeml.data.clean import apply_numeric, fit_numeric

    x = np.array([[0.0, 10.0], [5.0, 30.0], [10.0, 20.0]])
    state = fit_numeric(x, ["a", "b"], _clean(scale="minmax"))
    assert state["scale_method"] == "minmax" and state["center"] == [0.0, 10.0] and state["scale"] == [10.0, 20.0]
    np.testing.assert_allclose(apply_numeric(x, state), [[0.0, 0.0], [0.5, 1.0], [1.0, 0.5]])
    standard = fit_numeric(x, ["a", "b"], _clean(scale="standard"))
    np.testing.assert_allclose(standard["center"], x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(standard["scale"], x.std(axis=0), rtol=1e-6)


def test_robust_and_no_scaling_and_a_constant_column():
    """`--scale robust` (median / IQR) and `none`, and a column with one value. Catches the robust branch renamed (the
    column left unscaled), `x.shape[2]` in the `none` branch (an IndexError), and a zero scale kept or replaced by
    something other than 1 (`|` for `&`, `None`, `2.0`): the constant column must come out as 0, not inf or NaN."""
    from forgeml.data.clean import apply_numeric, fit_numeric

    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [100.0, 5.0]])
    robust = fit_numeric(x, ["a", "const"], _clean(scale="robust"))
    assert robust["center"] == [3.0, 5.0] and robust["scale"] == [2.0, 1.0]
    np.testing.assert_allclose(apply_numeric(x, robust)[:, 1], 0.0)
    none = fit_numeric(x, ["a", "const"], _clean(scale="none"))
    assert none["center"] == [0.0, 0.0] and none["scale"] == [1.0, 1.0]
    standard = fit_numeric(x, ["a", "const"], _clean())
    assert standard["scale"][1] == 1.0 and np.isfinite(apply_numeric(x, standard)).all()


def test_numeric_steps_read_older_manifests_as_float32():
    """Runs written before the cleaning options stored only `mean` and `std` (mean-filled standardization). Catches
    either fallback key lost and the float32 dtype dropped (the docstring's contract; the ONNX export builds its
    constants from these arrays)."""
    from forgeml.data.clean import apply_numeric, numeric_steps

    old = {"columns": ["a", "b"], "mean": [2.0, -1.0], "std": [4.0, 0.5]}
    steps = numeric_steps(old)
    for key in ("fill", "center", "scale"):
        assert steps[key].dtype == np.float32
    assert steps["fill"].tolist() == [2.0, -1.0] and steps["center"].tolist() == [2.0, -1.0]
    assert steps["scale"].tolist() == [4.0, 0.5]
    np.testing.assert_allclose(apply_numeric(np.array([[6.0, np.nan]]), old), [[1.0, 0.0]])


def test_most_frequent_and_constant_imputation_fill_with_their_own_values():
    """`--impute most_frequent` and `constant` (`missing.fill_value`). Catches either branch renamed or inverted
    (the column's mean used instead) and the fill built without the value or the column count."""
    from forgeml.data.clean import fit_numeric

    x = np.array([[1.0, 4.0, np.nan], [1.0, np.nan, np.nan], [7.0, 4.0, np.nan], [np.nan, 10.0, np.nan]])
    assert fit_numeric(x, ["a", "b", "empty"], _clean(missing={"numeric": "most_frequent"}))["fill"] == [1.0, 4.0, 0.0]
    x = x[:, :2]
    assert fit_numeric(x, ["a", "b"], _clean(missing={"numeric": "constant", "fill_value": -1.5}))["fill"] == [-1.5, -1.5]
    assert fit_numeric(x, ["a", "b"], _clean(missing={"numeric": "mean"}))["fill"] == [3.0, 6.0]


def test_outlier_bounds_come_from_the_training_quantiles_and_an_empty_column_is_unbounded():
    """Catches the bounds computed without the values or with the default quantiles, and an all-missing column's upper
    bound turned into 0 (`nan_to_num(hi)` without `nan=inf`: every later value would be clipped to 0)."""
    from forgeml.data.clean import fit_numeric, quantile_bounds

    x = np.column_stack([np.arange(101.0), np.full(101, np.nan)])
    state = fit_numeric(x, ["a", "empty"], _clean(outliers={"method": "clip", "quantiles": [0.1, 0.8]}))
    assert state["clip"][0][0] == pytest.approx(10.0) and state["clip"][1][0] == pytest.approx(80.0)
    lo, hi = quantile_bounds(x, (0.1, 0.8))
    assert lo[1] == -np.inf and hi[1] == np.inf


def test_training_rows_are_dropped_for_the_reason_they_have():
    """`--impute drop` and `missing.categorical: drop`. Catches the numeric mask inverted (the complete rows dropped),
    the categorical mask dropped or reduced to one value for the whole table (`axis=None`), and the outlier
    comparison run outside its errstate."""
    from forgeml.data.clean import training_rows_to_drop

    df = pd.DataFrame({"x": [1.0, np.nan, 3.0, 100.0], "c": ["a", "b", None, "a"]})
    values = df[["x"]].to_numpy()
    drops = training_rows_to_drop(df, values, ["c"], _clean(missing={"numeric": "drop", "categorical": "drop"},
                                                                  outliers={"method": "drop"}),
                                  (np.array([0.0]), np.array([10.0])))
    assert drops["missing numeric value"].tolist() == [False, True, False, False]
    assert drops["missing categorical value"].tolist() == [False, False, True, False]
    assert drops["outlier"].tolist() == [False, False, False, True]


def test_duplicate_rows_compare_image_arrays_by_content():
    """`--dedup` on an image column: catches the array check skipped (`dtype != object`) or the arrays left as objects
    (`map(None)`), which makes duplicated() fail on unhashable arrays or miss equal images."""
    from forgeml.data.clean import duplicate_rows

    a, b = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    df = pd.DataFrame({"image": [a, b, a.copy(), b.reshape(4)], "label": [0, 1, 0, 1]})
    assert duplicate_rows(df).tolist() == [False, False, True, False]  # same pixels, same shape; not a reshaped copy
