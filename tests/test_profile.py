"""forgeml profile: data-quality checks before training, on real (bundled) and constructed data with known answers."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import cli, user_error

from forgeml.profile.analyze import profile


def warnings_of(result: dict, kind: str) -> list[dict]:
    return [w for w in result["warnings"] if w["kind"] == kind]


def column(result: dict, name: str) -> dict:
    return next(c for c in result["column_info"] if c["name"] == name)


def leak_frame(rows: int = 4000, seed: int = 0) -> pd.DataFrame:
    """A weak real signal (x1) plus 'leak': a copy of the target with 0.5% of its values replaced at random."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    y = np.where(x1 + rng.normal(scale=1.5, size=rows) > 0, "yes", "no")
    leak = y.copy()
    noisy = rng.choice(rows, rows // 200, replace=False)
    leak[noisy] = rng.choice(["yes", "no"], size=noisy.size)
    return pd.DataFrame({"x1": x1.round(4), "x2": x2.round(4), "colour": rng.choice(["r", "g", "b"], rows),
                         "leak": leak, "y": y})


# --------------------------------------------------------------------------------------------- class balance
@pytest.fixture(scope="module")
def default_profile() -> dict:
    from forgeml.profile.analyze import profile_source

    return profile_source("bundled:default")


def test_imbalance_on_islr_default(default_profile):
    r = default_profile
    assert r["rows"] == 10_000 and r["target"] == "default" and r["task"] == "classification"
    ts = r["target_summary"]
    counts = {c["label"]: c["count"] for c in ts["classes"]}
    assert counts == {"No": 9667, "Yes": 333}
    assert ts["imbalanced"] and ts["majority"] == "No" and ts["minority"] == "Yes"
    assert ts["ratio"] == pytest.approx(9667 / 333)
    (w,) = warnings_of(r, "imbalance")
    assert "29.0:1" in w["message"] and "'Yes'" in w["message"] and "3.3%" in w["message"]
    # the real signal (balance) leads the association ranking, nothing is a leakage suspect
    assert r["association"]["features"][0]["feature"] == "balance"
    assert not warnings_of(r, "leakage")
    assert json.dumps(r, allow_nan=False)  # plain JSON


def test_balanced_target_has_no_imbalance_warning():
    df = pd.DataFrame({"x": np.arange(300) % 7, "y": np.repeat(["a", "b", "c"], 100)})
    r = profile(df, "y")
    assert not r["target_summary"]["imbalanced"] and not warnings_of(r, "imbalance")


# --------------------------------------------------------------------------------------------- leakage
def test_leak_column_is_flagged_and_ranks_first():
    r = profile(leak_frame(), "y")
    assert r["association"]["features"][0]["feature"] == "leak"
    assert r["association"]["features"][0]["mi_share"] > 0.8
    suspects = [s["feature"] for s in r["leakage"]["single_feature"]["scores"] if s["suspect"]]
    assert suspects == ["leak"]
    (w,) = warnings_of(r, "leakage")
    assert w["column"] == "leak" and "'leak'" in w["message"] and "ignore" in w["message"]


def test_numeric_leak_in_regression():
    rng = np.random.default_rng(1)
    y = rng.normal(size=3000)
    df = pd.DataFrame({"a": rng.normal(size=3000), "twice_y": 2 * y + rng.normal(scale=0.01, size=3000), "y": y})
    r = profile(df, "y")
    assert r["task"] == "regression" and r["target_summary"]["stats"]["count"] == 3000
    assert r["association"]["features"][0]["feature"] == "twice_y"
    assert [w["column"] for w in warnings_of(r, "leakage")] == ["twice_y"]


def test_duplicates_straddling_the_split():
    from forgeml.config import SplitConfig
    from forgeml.data.split import split_indices
    from forgeml.tasks import fit_task

    rng = np.random.default_rng(0)
    n, copies = 2000, 150
    base = pd.DataFrame({"x1": rng.normal(size=n).round(6), "x2": rng.integers(0, 10**6, n), "c": rng.choice(list("abcd"), n)})
    base["y"] = np.where(base["x1"] > 0, "pos", "neg")
    src = rng.choice(n, copies, replace=False)
    df = pd.concat([base, base.iloc[src]], ignore_index=True).sample(frac=1, random_state=0).reset_index(drop=True)
    r = profile(df, "y")
    assert r["duplicates"]["rows"] == copies and r["duplicates"]["groups"] == copies
    assert r["duplicates"]["examples"][0]["count"] == 2
    d = r["leakage"]["duplicates"]
    assert d["duplicated_vectors"] == copies and d["rows_in_duplicates"] == 2 * copies

    # the same count, computed another way: forgeml's split, then a pandas groupby over the feature columns
    y = fit_task("classification", df["y"]).encode(df["y"])
    train, val, test = split_indices(y, True, SplitConfig())
    side = pd.Series("train", index=df.index)
    side[val], side[test] = "val", "test"
    groups = df.assign(side=side).groupby(["x1", "x2", "c"])["side"].agg(lambda s: ("train" in set(s), set(s) - {"train"}))
    straddling = sum(1 for has_train, other in groups if has_train and other)
    assert 0 < straddling == d["straddling_vectors"]
    assert d["split"].startswith("train 70% / validation 15% / test 15%, seed 0")
    (w,) = warnings_of(r, "leakage_duplicates")
    assert f"{straddling:,} of them straddle" in w["message"] and "drop" in w["message"].lower()
    assert warnings_of(r, "duplicates")


# --------------------------------------------------------------------------------------------- column checks
def test_id_constant_and_high_cardinality_columns():
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame({
        "customer_id": np.arange(1000, 1000 + n),
        "order_key": [f"K{i:06d}" for i in rng.permutation(n)],
        "country": "FR",
        "amount": rng.normal(100, 10, n).round(2),  # unique floats: not an ID
        "city": [f"city_{i}" for i in rng.integers(0, 150, n)],
        "y": rng.choice(["a", "b"], n),
    })
    r = profile(df, "y")
    flags = {c["name"]: c["flags"] for c in r["column_info"]}
    assert flags["customer_id"] == ["id_like"] and flags["order_key"] == ["id_like"]
    assert flags["country"] == ["constant"] and flags["amount"] == []
    assert flags["city"] == ["high_cardinality"] and column(r, "city")["unique"] > 100
    assert {w["column"] for w in warnings_of(r, "id_like")} == {"customer_id", "order_key"}
    assert [w["column"] for w in warnings_of(r, "constant")] == ["country"]
    assert "> 100" in warnings_of(r, "high_cardinality")[0]["message"]
    # types agree with what training infers
    assert column(r, "customer_id")["type"] == "numeric" and column(r, "city")["type"] == "categorical"


def test_missing_and_outlier_counts_match_hand_computed():
    df = pd.DataFrame({
        "a": [1, 2, 3, 4, 5, 6, 7, 8, 9, 100, np.nan, np.nan],  # Q1 3.25, Q3 7.75 -> fences -3.5, 14.5: one outlier (100)
        "b": [-50, 10, 11, 12, 13, 14, 15, 16, 17, 18, 60, 70],  # Q1 11.75, Q3 17.25 -> fences 3.5, 25.5: three outliers
        "c": ["x", None, "y", "x", None, "y", "x", None, "y", "x", "y", "x"],
        "d": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],  # IQR 0: the rule is not applied
    })
    r = profile(df)
    a, b, c, d = (column(r, k) for k in "abcd")
    assert (a["missing"], b["missing"], c["missing"], d["missing"]) == (2, 0, 3, 0)
    assert a["missing_pct"] == pytest.approx(100 * 2 / 12) and c["missing_pct"] == pytest.approx(25.0)
    assert r["missing"]["cells"] == 5 and r["missing"]["columns_with_missing"] == 2
    assert (a["stats"]["q1"], a["stats"]["q3"]) == (3.25, 7.75)
    assert (a["stats"]["lower_fence"], a["stats"]["upper_fence"]) == (-3.5, 14.5)
    assert a["stats"]["outliers"] == 1 and a["stats"]["outliers_pct"] == pytest.approx(10.0)
    assert b["stats"]["outliers"] == 3 and sorted(b["stats"]["box"]["fliers"]) == [-50, 60, 70]
    assert d["stats"]["outliers"] is None
    assert r["target"] is None and r["association"] is None  # no target: no target sections


def test_entirely_missing_column_is_reported_not_fatal():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "notes": [None] * 4, "y": ["a", "b", "a", "b"]})
    r = profile(df, "y")
    assert column(r, "notes")["type"] == "empty" and column(r, "notes")["missing"] == 4
    assert "entirely missing" in warnings_of(r, "empty")[0]["message"]


# --------------------------------------------------------------------------------------------- HTML report and CLI
def test_html_report_is_self_contained(tmp_path):
    from forgeml.profile.report import write_report

    df = leak_frame(1500)
    df.loc[::7, "x2"] = np.nan
    df = pd.concat([df, df.head(20)], ignore_index=True)
    path = write_report(profile(df, "y", source="leak.csv"), tmp_path / "r.html")
    text = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<link" not in text and "<script" not in text
    for section in ("Warnings", "Columns", "Missing values", "Duplicate rows", "Outliers", "Target", "Features most associated",
                    "Leakage suspects", "Rules"):
        assert f"<h2>{section}" in text, section
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(pngs) >= 5  # missing, numeric x2, class balance, association
    import base64

    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_cli_prints_summary_and_writes_report(in_tmp, capsys):
    assert cli("profile", "bundled:default", "--quiet") == 0
    out = capsys.readouterr()
    assert "10,000 rows x 4 columns" in out.out and "class balance of 'default'" in out.out
    assert "class imbalance in 'default'" in out.out and "29.0:1" in out.out
    assert "report: default.profile.html" in out.out
    assert (in_tmp / "default.profile.html").stat().st_size > 10_000
    assert out.err == ""  # --quiet

    leak_frame(800).to_csv(in_tmp / "t.csv", index=False)
    assert cli("profile", "t.csv", "--target", "y", "--out", "reports/t.html") == 0
    out = capsys.readouterr()
    assert "possible target leakage: 'leak'" in out.out and (in_tmp / "reports" / "t.html").is_file()
    assert "association with the target" in out.err  # progress lines on stderr

    assert cli("profile", "t.csv", "-q") == 0  # no target: the table checks alone
    out = capsys.readouterr()
    assert "no target" in out.out and (in_tmp / "t.profile.html").is_file()


# --------------------------------------------------------------------------------------------- bad input
def test_missing_file(in_tmp, capsys):
    err = user_error(capsys, "profile", "nope.csv")
    assert "nope.csv" in err and "not found" in err


@pytest.mark.parametrize("name, content, expected", [
    ("empty.csv", b"", "is empty"),
    ("header.csv", b"a,b,y\n", "has a header but no rows"),
])
def test_empty_files(in_tmp, capsys, name, content, expected):
    (in_tmp / name).write_bytes(content)
    err = user_error(capsys, "profile", name, "--quiet")
    assert name in err and expected in err


@pytest.mark.parametrize("content", [
    np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),  # random bytes (NUL bytes among them)
    bytes(np.random.default_rng(1).integers(128, 256, 4096, dtype=np.uint8)),  # no NUL, not UTF-8
    bytes(np.random.default_rng(2).integers(1, 32, 4096, dtype=np.uint8)),  # control characters only
])
def test_binary_garbage(in_tmp, capsys, content):
    (in_tmp / "data.csv").write_bytes(content)
    err = user_error(capsys, "profile", "data.csv", "--quiet")
    assert "data.csv does not look like a csv file" in err


def test_unknown_target_lists_columns(in_tmp, capsys):
    leak_frame(50).to_csv(in_tmp / "d.csv", index=False)
    err = user_error(capsys, "profile", "d.csv", "--target", "label", "--quiet")
    assert "'label'" in err and "not found" in err
    for col in ("x1", "x2", "colour", "leak", "y"):
        assert repr(col) in err


def test_out_is_a_folder(in_tmp, capsys):
    leak_frame(50).to_csv(in_tmp / "d.csv", index=False)
    (in_tmp / "reports").mkdir()
    err = user_error(capsys, "profile", "d.csv", "--out", "reports", "--quiet")
    assert "folder" in err


@pytest.mark.parametrize("y", [["b", "a", "b", "c"], [1.0, 2.0, 1.0, 3.0], [True, False, True, True], [1, "1", 2, "x"]])
def test_target_encoding_matches_training(y):
    from forgeml.profile.analyze import encode_target
    from forgeml.tasks import fit_task

    y = pd.Series(y, dtype=object if isinstance(y[1], str) and not isinstance(y[0], str) else None)
    assert encode_target(y, "classification").tolist() == fit_task("classification", y).encode(y).tolist()


def test_regression_target_with_missing_values_and_odd_columns():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.normal(50, 5, n)
    y[:10] = np.nan
    sparse = np.where(rng.random(n) < 0.7, np.nan, rng.normal(size=n))
    odd = rng.normal(size=n)
    odd[[3, 7]] = np.inf
    r = profile(pd.DataFrame({"x": rng.normal(size=n), "sparse": sparse, "odd": odd, "y": y}), "y")
    assert r["task"] == "regression" and r["target_summary"]["missing"] == 10
    assert r["target_summary"]["stats"]["count"] == n - 10
    assert "many_missing" in column(r, "sparse")["flags"] and column(r, "odd")["stats"]["infinite"] == 2
    assert {w["kind"] for w in r["warnings"]} >= {"target_missing", "many_missing", "infinite"}
    assert r["leakage"]["duplicates"]["rows"] == n - 10 and not warnings_of(r, "leakage")
    assert json.dumps(r, allow_nan=False)


def test_target_with_too_many_classes_skips_model_checks():
    n = 1500
    r = profile(pd.DataFrame({"x": np.arange(n) % 5, "y": [f"k{i}" for i in range(n)]}), "y")
    assert r["target_summary"]["classes_total"] == n and r["association"] is None
    assert warnings_of(r, "too_many_classes")
