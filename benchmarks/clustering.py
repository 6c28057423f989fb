"""Clustering on real data: forgeml's `task: clustering` against scikit-learn's K-Means and the first-principal-
component baseline, over seeds, with k the number of classes and with k: auto.

Data: scikit-learn's bundled iris (150 x 4), wine (178 x 13, measurements on very different scales) and digits
(1,797 8x8 images as a folder of PNGs, forgeml's bundled:digits). The class column is given as --label: it only
evaluates (adjusted Rand index, ARI), it is never fitted on.

Per seed (the split seed: 70/15/15):

* forgeml, k = classes: ``api.train`` (K-Means on the training split, standardized as data.clean.scale says), then
  ARI on the test split (the run's own metric) and on every row (``predict`` on the whole set);
* forgeml, k: auto: the k the silhouette chose over 2..10, and its test silhouette;
* the baseline beside every run: k slices of the first principal component (the run's ``baseline``), test ARI;
* the references: scikit-learn's KMeans(k, n_init=10, random_state=seed) fitted on every row (no split), ARI on
  every row, what a notebook would report: on StandardScaler'd columns, and on the raw values (forgeml scales pixels
  to [0, 1], which K-Means sees as the raw values).

Wine is also clustered without scaling (data.clean.scale: none; reference: KMeans on the raw values).

    .venv/bin/python benchmarks/clustering.py [--seeds 3] [--out clustering_results.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402

SETS = {"iris": ("species", 3), "wine": ("cultivar", 3), "digits": ("label", 10)}


def forgeml_run(runs: Path, name: str, k, seed: int, scale: str = "standard"):
    from forgeml import api

    label = SETS[name][0]
    return api.train({"name": f"{name}-{k}-{scale}-{seed}", "runs_dir": str(runs), "data": {
        "source": f"bundled:{name}", "split": {"seed": seed}, "clean": {"scale": scale}},
        "task": {"name": "clustering", "k": k, "label": label}, "tracking": {"uri": "none"}}, quiet=True, overwrite=True)


def all_rows_ari(result, name: str) -> float:
    from sklearn.metrics import adjusted_rand_score

    from forgeml import api
    from forgeml.data.sources import read_source

    df, _ = read_source(f"bundled:{name}")
    return float(adjusted_rand_score(df[SETS[name][0]].astype(str), api.load(result.run_dir).predict(df)["cluster"]))


def reference_ari(name: str, seed: int, scale: bool) -> float:
    """scikit-learn K-Means on every row (standardized or raw), as a notebook would do it."""
    from sklearn import datasets
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    bunch = {"iris": datasets.load_iris, "wine": datasets.load_wine, "digits": datasets.load_digits}[name]()
    x = StandardScaler().fit_transform(bunch.data) if scale else bunch.data
    labels = KMeans(SETS[name][1], n_init=10, random_state=seed).fit_predict(x)
    return float(adjusted_rand_score(bunch.target, labels))


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).with_name("clustering_results.json")))
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    results: dict = {"machine": machine(), "seeds": seeds, "sets": {}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for name, (_, k) in SETS.items():
            for scale in (["standard", "none"] if name == "wine" else ["standard"]):
                r: dict = {key: [] for key in ("test_ari", "all_rows_ari", "baseline_test_ari", "reference_standardized_ari",
                                                "reference_raw_ari",
                                                "auto_k", "auto_test_silhouette", "seconds")}
                for seed in seeds:
                    tic = time.perf_counter()
                    fixed = forgeml_run(runs, name, k, seed, scale)
                    r["seconds"].append(time.perf_counter() - tic)
                    r["test_ari"].append(fixed.metrics["test"]["ari"])
                    r["baseline_test_ari"].append(fixed.metrics["baseline"]["test"]["ari"])
                    r["all_rows_ari"].append(all_rows_ari(fixed, name))
                    r["reference_standardized_ari"].append(reference_ari(name, seed, True))
                    r["reference_raw_ari"].append(reference_ari(name, seed, False))
                    auto = forgeml_run(runs, name, "auto", seed, scale)
                    r["auto_k"].append(auto.manifest["target"]["k_chosen"])
                    r["auto_test_silhouette"].append(auto.metrics["test"]["silhouette"])
                key = name if scale == "standard" else f"{name} (no scaling)"
                results["sets"][key] = r
                rows.append([key, k, mean_sd(r["test_ari"]), mean_sd(r["all_rows_ari"]), mean_sd(r["reference_standardized_ari"]),
                             mean_sd(r["reference_raw_ari"]),
                             mean_sd(r["baseline_test_ari"]), ", ".join(map(str, r["auto_k"])),
                             f"{statistics.mean(r['seconds']):.1f}"])
                print(f"{key}: done", file=sys.stderr)
    print(f"machine: {results['machine']}; seeds {seeds}\n")
    print(table(["data", "k", "forgeml test ARI", "forgeml all-rows ARI", "sklearn all-rows ARI, standardized",
                 "sklearn all-rows ARI, raw",
                 "baseline pca_slices test ARI", "k: auto chose", "train s (k fixed)"], rows))
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
