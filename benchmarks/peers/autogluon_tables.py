"""AutoGluon's side of benchmarks/tables_autogluon.py: fit TabularPredictor (presets medium_quality) on a train CSV,
predict a test CSV, write the predictions and the wall seconds as JSON. Runs in AutoGluon's own virtual environment
(.bench-venvs/autogluon); it does not import forgeml.

    python autogluon_tables.py TRAIN.csv TEST.csv TARGET binary|multiclass|regression OUT.json [--positive LABEL]
        [--seed 0] [--cpus 2] [--workdir DIR]

OUT.json: fit_s, predict_s and import_s (wall seconds of each), the leaderboard's model names (best first), the best
model, versions, and the predictions for the test rows in order: ``proba`` (binary: the probability of the positive
class, ``positive_class``; multiclass: one row of probabilities per test row, in the order of ``classes``) or
``pred`` (regression).
"""
import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402

import pandas as pd  # noqa: E402
from autogluon.tabular import TabularPredictor  # noqa: E402

IMPORT_S = time.perf_counter() - _T0
METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "root_mean_squared_error"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("train")
    p.add_argument("test")
    p.add_argument("target")
    p.add_argument("problem_type", choices=sorted(METRIC))
    p.add_argument("out")
    p.add_argument("--positive", default=None, help="binary: the class whose probability is written")
    p.add_argument("--seed", type=int, default=0, help="the learner's random_state (its holdout split)")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--workdir", default=None)
    args = p.parse_args()

    classification = args.problem_type != "regression"
    dtype = {args.target: str} if classification else None
    train = pd.read_csv(args.train, dtype=dtype)
    test = pd.read_csv(args.test, dtype=dtype).drop(columns=[args.target], errors="ignore")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        predictor = TabularPredictor(label=args.target, problem_type=args.problem_type, eval_metric=METRIC[args.problem_type],
                                     path=tmp, verbosity=0, positive_class=args.positive if args.problem_type == "binary" else None,
                                     learner_kwargs={"random_state": args.seed})
        tic = time.perf_counter()
        predictor.fit(train, presets="medium_quality", num_cpus=args.cpus)
        fit_s = time.perf_counter() - tic

        tic = time.perf_counter()
        if classification:
            proba = predictor.predict_proba(test, as_multiclass=True)
        else:
            pred = predictor.predict(test)
        predict_s = time.perf_counter() - tic

        out = {"fit_s": fit_s, "predict_s": predict_s, "import_s": IMPORT_S}
        if args.problem_type == "binary":
            positive = predictor.positive_class
            out.update(positive_class=str(positive), proba=proba[positive].astype(float).tolist())
        elif args.problem_type == "multiclass":
            out.update(classes=[str(c) for c in proba.columns], proba=proba.astype(float).to_numpy().tolist())
        else:
            out["pred"] = pred.astype(float).tolist()
        board = predictor.leaderboard(silent=True)
        out["models"] = board["model"].tolist()
        out["best_model"] = predictor.model_best

    import autogluon.tabular
    import sklearn
    import torch

    out["versions"] = {"autogluon.tabular": autogluon.tabular.__version__, "torch": torch.__version__,
                       "pandas": pd.__version__, "scikit-learn": sklearn.__version__}
    for name in ("lightgbm", "catboost", "xgboost"):
        try:
            out["versions"][name] = __import__(name).__version__
        except ImportError:
            pass
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
