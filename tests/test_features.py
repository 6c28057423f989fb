"""Feature types (forgeml.features): one module per type behind a registry. A new type registers itself and the
preprocessing, the ONNX input spec, request decoding and the signature pick it up with no other change; runs store
their signature in the manifest (format 2)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import fast_train


@pytest.fixture
def weekday_type():
    """A plugin feature type registered from outside forgeml: a weekday name as its number 0..6 (a toy, but it goes
    through every step a real type does)."""
    from forgeml.core import FEATURES, FeatureType
    from forgeml.errors import InputError
    from forgeml.features import get

    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    @FEATURES.register("weekday", order=25)
    class Weekday(FeatureType):
        detect_order = 25  # asked after numeric and image, before text and categorical

        def detect(self, values):
            return bool(values.astype(str).str[:3].str.lower().isin(days).all())

        def fit(self, df, columns, data_cfg, context):
            return {"columns": list(columns)}

        def transform(self, df, state):
            return {"weekday": np.stack([df[c].str[:3].str.lower().map(days.index).to_numpy() for c in state["columns"]], 1)}

        def shapes(self, state):
            return {"weekday": len(state["columns"]) if state else 0}

        def model_inputs(self, state):
            return ["weekday"]

        def raw_inputs(self, state):
            return [{"name": "weekday", "dtype": "int64", "shape": ["batch", len(state["columns"])], "columns": state["columns"]}]

        def feeds(self, df, state):
            return self.transform(df, state)

        def encode(self, rows, state):
            out = []
            for i, r in enumerate(rows):
                row = []
                for c in state["columns"]:
                    if str(r[c])[:3].lower() not in days:
                        raise InputError("must be a weekday name", c, i)
                    row.append(days.index(str(r[c])[:3].lower()))
                out.append(row)
            return {"weekday": np.asarray(out, dtype=np.int64)}

        def field(self, state, column):
            return {"name": column, "type": self.name, "schema": {"type": "string", "enum": days}}

    yield get("weekday")
    FEATURES._items.pop("weekday")
    get.cache_clear()


def test_a_new_feature_type_is_picked_up_everywhere_without_touching_other_modules(weekday_type):
    from forgeml.config import build_config
    from forgeml.data.schema import Feature
    from forgeml.errors import InputError
    from forgeml.export.onnx import input_spec
    from forgeml.features.preprocess import Preprocessor
    from forgeml.features.records import encode
    from forgeml.run import signature

    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "day": ["Monday", "tue", "Sunday", "wed"]})
    features = [Feature("x", "numeric"), Feature("day", "weekday")]
    pre = Preprocessor.fit(df, features, build_config({"data": {"source": "d.csv", "target": "y"}}).data)
    assert pre.state["weekday"] == {"columns": ["day"]}
    arrays = pre.transform(df)
    assert arrays["weekday"][:, 0].tolist() == [0, 1, 6, 2] and arrays["numeric"].shape == (4, 1)
    assert pre.input_shapes()["weekday"] == 1 and pre.input_shapes()["numeric"] == 1
    # the ONNX inputs come in the types' order: numeric (10), then the plugin (25)
    assert [s["name"] for s in input_spec(pre.state)] == ["numeric", "weekday"]
    feed = encode([{"x": 1.5, "day": "Sat"}], pre.state, ["x", "day"])
    assert feed["weekday"].tolist() == [[5]] and feed["numeric"].tolist() == [[1.5]]
    with pytest.raises(InputError) as err:
        encode([{"x": 1.5, "day": "someday"}], pre.state, ["x", "day"])
    assert (err.value.field, err.value.row) == ("day", 0)
    manifest = {"features": pre.state["features"], "preprocessing": pre.state, "task": "regression",
                "target": {"name": "y", "mean": 0.0, "std": 1.0}}
    inputs = signature(manifest)["inputs"]
    assert [(f["name"], f["type"]) for f in inputs] == [("x", "numeric"), ("day", "weekday")]
    assert inputs[1]["schema"]["enum"][0] == "mon"


def test_a_new_type_joins_baseline_augmentation_and_smote_by_declaring_them(weekday_type, monkeypatch):
    """The baseline, batch augmentation and SMOTE ask the types present for their declarations
    (FeatureType.baseline_block, augment, smote), never their names: a plugin joins by declaring them."""
    import torch

    from forgeml.config import AugmentConfig, build_config
    from forgeml.data import balance
    from forgeml.data.augment import batch_augmenter
    from forgeml.data.schema import Feature
    from forgeml.errors import ConfigError
    from forgeml.evaluate.baseline import kind_for
    from forgeml.features import augment_roles, smote_roles
    from forgeml.features.preprocess import Preprocessor

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=40), "day": rng.choice(["mon", "tue", "wed", "sun"], 40)})
    y = np.array([0] * 32 + [1] * 8)
    data_cfg = build_config({"data": {"source": "d.csv", "target": "y", "balance": {"method": "smote", "k_neighbors": 3}}}).data
    pre = Preprocessor.fit(df, [Feature("x", "numeric"), Feature("day", "weekday")], data_cfg)
    arrays = pre.transform(df)
    task = type("T", (), {"tags": frozenset({"labels"}), "out_dim": 2, "name": "classification"})()
    # declaring nothing: SMOTE refuses it, the baseline and the augmentation leave it out
    assert smote_roles(pre.state) == {"numeric": "continuous", "weekday": None}
    with pytest.raises(ConfigError, match="this data has weekday inputs"):
        balance.check(data_cfg.balance, task, smote_roles(pre.state))
    assert kind_for(pre.state) == "lightgbm" and augment_roles(pre.state) == {"numeric": "continuous"}
    # declaring: its codes are nominal for SMOTENC, it is a dense block of the baseline, it gets noise and mixup
    for name, value in {"smote": "nominal", "baseline_block": "dense", "augment": "continuous"}.items():
        monkeypatch.setattr(type(weekday_type), name, value)
    balance.check(data_cfg.balance, task, smote_roles(pre.state))
    out, y_new, _, _ = balance.resample(arrays, y, data_cfg.balance, [0, 1], smote_roles(pre.state))
    assert np.bincount(y_new).tolist() == [32, 32] and out["weekday"].dtype == arrays["weekday"].dtype
    assert set(np.unique(out["weekday"])) <= set(np.unique(arrays["weekday"]))  # synthetic rows keep real codes
    assert kind_for(pre.state) == "linear-pixels"
    assert augment_roles(pre.state) == {"numeric": "continuous", "weekday": "continuous"}
    aug = batch_augmenter(AugmentConfig(table={"noise": 0.1}), augment_roles(pre.state))
    batch = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in arrays.items()}
    changed, _ = aug(batch, torch.Generator().manual_seed(0))
    assert not torch.equal(changed["weekday"], batch["weekday"]) and not torch.equal(changed["numeric"], batch["numeric"])


def test_every_type_fits_transforms_and_encodes_consistently(in_tmp):
    """The arrays the model sees from a DataFrame (training, predict) equal what the ONNX graph computes from the
    JSON request encoding of the same rows: one check per built-in type, through the exported graph."""
    from forgeml import api
    from forgeml.export.onnx import session
    from forgeml.features.records import encode
    from forgeml.run import load

    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"amount": rng.normal(50, 10, n).round(2), "colour": rng.choice(["red", "green", "blue"], n),
                       "note": rng.choice(["good value for money", "arrived late and broken", "works as described"], n)})
    df["y"] = np.where((df["colour"] == "red") | df["note"].str.contains("late"), "no", "yes")
    df.loc[3, "amount"] = np.nan
    df.to_csv("d.csv", index=False)
    api.train({"name": "f", "data": {"source": "d.csv", "target": "y", "features": {"note": "text"}}, "model": {"name": "mlp"}, "train": fast_train()},
              quiet=True)
    api.export("runs/f")
    model = load("runs/f")
    rows = df.drop(columns="y").iloc[:20].copy()
    rows.loc[5, "amount"], rows.loc[6, "amount"] = 3.4e38, -1e30  # far outside training: clipped, never NaN
    records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows.to_dict("records")]
    feed = encode(records, model.manifest["preprocessing"], model.features)
    assert set(feed) == {"numeric", "categorical", "tokens"}
    got = session(model.run_dir / "model.onnx").run(None, feed)[0]
    expected = model.predict(rows)[[c for c in model.predict(rows).columns if c.startswith("proba_")]].to_numpy()
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_new_runs_store_their_signature_and_old_runs_get_one(in_tmp):
    import json
    from pathlib import Path

    from forgeml import api
    from forgeml.run import signature

    api.train({"name": "s", "data": {"source": "bundled:iris"}, "model": {"name": "lightgbm"}, "train": fast_train()},
              quiet=True)
    manifest = json.loads(Path("runs/s/manifest.json").read_text())
    assert manifest["format_version"] == 2
    stored = manifest["signature"]
    assert [f["name"] for f in stored["inputs"]] == [f["name"] for f in manifest["features"]]
    assert stored["outputs"]["predictions"]["items"]["enum"] == manifest["target"]["labels"]
    old = Path(__file__).parent / "fixtures" / "runs_v1"
    for run in sorted(old.iterdir()):
        m = json.loads((run / "manifest.json").read_text())
        assert m["format_version"] == 1 and "signature" not in m
        built = signature(m)
        assert [f["name"] for f in built["inputs"]] == [f["name"] for f in m["features"]]


def test_forgeml_tasks_lists_the_registries_with_their_tags(weekday_type, capsys):
    from conftest import cli

    assert cli("tasks") == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "files" in lines["image"] and "sequence" in lines["text"]
    assert "weekday" in lines  # a plugin type is listed like the built-in ones
    assert "reconstruction" in lines["autoencoder"] and "scores" in lines["anomaly"]


# --------------------------------------------------------------------------------------------- detection
MIXED = {  # column -> (values, the type forgeml inferred before detection moved into the types)
    "amount": (np.linspace(0, 1, 40), "numeric"),
    "count": (np.arange(40) % 5, "numeric"),
    "flag": (np.arange(40) % 2 == 0, "categorical"),
    "flag_gaps": (pd.Series([True, False, None, True] * 10, dtype=object), "categorical"),
    "nullable": (pd.Series([1, None] * 20, dtype="Int64"), "numeric"),
    "when": (pd.date_range("2020", periods=40), "datetime"),  # dates were ignored before the datetime type (issue 12)
    "when_ns": (pd.date_range("2020", periods=40, freq="1ns", tz="UTC"), "datetime"),
    "iso": ([f"2021-03-{i % 28 + 1:02d}" for i in range(40)], "datetime"),  # ISO 8601 strings (a CSV's dates)
    "wait": (pd.to_timedelta(np.arange(40), unit="s"), "categorical"),
    "photo": ([f"img/{i}.JPG" for i in range(40)], "image"),
    "some_photos": ([f"{i}.png" if i % 8 else "none" for i in range(40)], "categorical"),
    "review": (["arrived late and broken, sadly"] * 40, "text"),
    "key": ([f"order-{i:032d}" for i in range(40)], "text"),
    "code": ([f"k{i}" for i in range(40)], "categorical"),
    "colour": (["red", "green", "blue", "red"] * 10, "categorical"),
    "level": (pd.Categorical(["lo", "hi"] * 20), "categorical"),
    "mixed": ([1, "a"] * 20, "categorical"),
}


def test_built_in_detection_gives_the_types_it_always_did():
    from forgeml.errors import DataError
    from forgeml.features import detect, infer_features

    df = pd.DataFrame({name: values for name, (values, _) in MIXED.items()})
    assert {c: detect(df[c]) for c in df.columns} == {name: kind for name, (_, kind) in MIXED.items()}
    pixels = pd.Series([np.zeros((4, 4), np.uint8)] * 3, name="pixels")
    assert detect(pixels) == "image"
    with pytest.raises(DataError, match="column 'gone' is entirely missing"):
        detect(pd.Series([None, None], name="gone"))
    features = infer_features(df, "amount", {"colour": "ignore"})
    assert [f.name for f in features] == [c for c in df.columns if c not in ("amount", "colour")]
    # one image column per model: the image type's max_columns, not a name check
    with pytest.raises(DataError, match=r"one image column is supported per model, found \['photo', 'key'\]"):
        infer_features(df, "amount", {"key": "image"})


def test_a_plugin_type_claims_columns_through_detect(weekday_type):
    from forgeml.features import detect, infer_features

    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "day": ["Monday", "tue", None, "Sunday"],
                       "colour": ["red", "blue", "red", None]})
    assert detect(df["day"]) == "weekday" and detect(df["colour"]) == "categorical" and detect(df["x"]) == "numeric"
    assert [(f.name, f.type) for f in infer_features(df, None, {})] == [("x", "numeric"), ("day", "weekday"),
                                                                       ("colour", "categorical")]
    assert infer_features(df, "x", {"day": "categorical"})[0].type == "categorical"  # data.features still decides


def test_task_families_infer_and_check_the_target():
    from forgeml.core import TASKS
    from forgeml.errors import DataError
    from forgeml.tasks import infer_task

    targets = {"yes/no": (["yes", "no"] * 10, "classification"), "flag": ([True, False] * 10, "classification"),
               "20 ints": (list(range(20)), "classification"), "21 ints": (list(range(21)), "regression"),
               "whole floats": ([1.0, 2.0] * 10, "classification"), "floats": ([1.5, 2.0] * 10, "regression"),
               "object ints": (pd.Series([1, 2] * 10, dtype=object), "classification")}
    assert {k: infer_task(pd.Series(v, name=k)) for k, (v, _) in targets.items()} == {k: t for k, (_, t) in targets.items()}
    with pytest.raises(DataError, match=r"target 'y' has a single class \('a'\); classification needs at least two"):
        TASKS.get("classification").check_target(pd.Series(["a"] * 5, name="y"))
    with pytest.raises(DataError, match=r"regression needs a numeric target, but 'y' holds values like \['a', 'b'\]"):
        TASKS.get("regression").check_target(pd.Series(["a", "b"], name="y"))
    TASKS.get("classification").check_target(pd.Series([0, 1], name="y"))
    TASKS.get("regression").check_target(pd.Series([0.5, 1.0], name="y"))
