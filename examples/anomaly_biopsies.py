"""Write biopsies.csv: an ADBench-style anomaly set from scikit-learn's bundled breast-cancer data. All 357 benign
biopsies are the normal rows; 20 malignant ones, drawn with the seed, are the anomalies (5%). The `diagnosis` column
is the label forgeml uses only to evaluate:

    python examples/anomaly_biopsies.py && forgeml train --data biopsies.csv --task anomaly --label diagnosis
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer


def biopsies(anomalies: int = 20, seed: int = 0) -> pd.DataFrame:
    df = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "diagnosis"})
    df["diagnosis"] = np.where(df["diagnosis"] == 1, "benign", "malignant")
    bad = df[df["diagnosis"] == "malignant"].sample(anomalies, random_state=seed)
    return pd.concat([df[df["diagnosis"] == "benign"], bad]).sample(frac=1, random_state=seed).reset_index(drop=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anomalies", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="biopsies.csv")
    args = parser.parse_args()
    biopsies(args.anomalies, args.seed).to_csv(args.out, index=False)
    print(f"wrote {args.out}")
