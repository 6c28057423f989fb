"""Anomaly detection: no target. Every row gets a score (higher = more anomalous) and a flag, ``is_anomaly``, from a
threshold fitted on the validation split: the top ``contamination`` share of validation scores, or the score that
flags ``target_fpr`` of the normal validation rows. A label column (``task.label``), if given, is used only to
evaluate and to compare detectors on validation; it never reaches a detector's fit, and the test split never sets a
threshold.

Detectors are learners tagged ``detector``: IsolationForest and LOF (scikit-learn), an autoencoder (reconstruction
error) and Deep SVDD, the last two trained by forgeml's loop through ``step``. ``model: auto`` trains them all and
keeps the best validation ROC-AUC when labels exist; without labels it keeps the detector whose validation ranking
agrees most with the others' (model centrality: the mean Spearman correlation of its scores with each other
detector's; Ma et al. 2023 found such consensus a sound default for unsupervised model selection). The baseline beside
every run is IsolationForest.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from forgeml.core import Task
from forgeml.errors import ConfigError, DataError
from forgeml.tasks import TASKS
from forgeml.tasks.supervised import Prepared, Say, Splits, params_for
from forgeml.tasks.unsupervised import leave_out, read_features, split_summary

if TYPE_CHECKING:  # annotations only; pandas is imported where rows are handled, so serving needs none
    import pandas as pd

BASELINE = "isolation_forest"


class AnomalyConfig(BaseModel):
    """``task: {name: anomaly, contamination: 0.05, label: Class, positive: fraud}``"""

    model_config = ConfigDict(extra="forbid")
    contamination: float = Field(0.05, gt=0, le=0.5, description="share of validation rows flagged: sets the threshold")
    target_fpr: Optional[float] = Field(None, gt=0, lt=1, description="instead: the threshold flags this share of the "
                                                                      "normal validation rows (labelled, else all rows)")
    label: Optional[str] = Field(None, description="a column used only to evaluate (its minority value is the anomaly)")
    positive: Optional[Union[str, int, float, bool]] = Field(None, description="the label value that marks an anomaly")

    @model_validator(mode="after")
    def _positive_needs_label(self):
        if self.positive is not None and self.label is None:
            raise ValueError("positive needs a label column (task.label / --label)")
        return self


@TASKS.register("anomaly", tags={"scores"})
class Anomaly(Task):
    Config = AnomalyConfig
    needs_target = False
    out_dim = 1
    summary_keys = ["roc_auc", "pr_auc", "precision_at_n", "f1", "precision", "recall", "flagged", "threshold", "centrality"]

    @property
    def labelled(self) -> bool:
        return self.state.get("positive") is not None

    @property
    def primary_metric(self) -> str:
        return "roc_auc" if self.labelled else "centrality"

    # ---- training
    def step(self, model, batch: dict):
        yield "model", model.training_loss({k: v for k, v in batch.items() if k not in ("y", "mix")})

    def validation_loss(self, raw, y) -> float:
        return float(np.mean(raw))

    def outputs(self, raw) -> dict[str, np.ndarray]:
        score = np.asarray(raw, dtype=np.float64).reshape(-1)
        threshold = self.state.get("threshold")
        flag = score >= threshold if threshold is not None else np.zeros(len(score), dtype=bool)
        return {"score": score, "pred": flag.astype(np.int64)}

    def decode(self, pred) -> np.ndarray:
        return np.asarray(pred).astype(bool)

    def encode(self, y: pd.Series) -> np.ndarray:
        """Labels -> 1 for the anomaly value, 0 for the others (evaluation only)."""
        from forgeml.data.schema import category_keys

        if y.isna().any():
            raise DataError(f"label column {y.name!r} has {int(y.isna().sum())} missing values; fill or drop those rows")
        return (category_keys(y) == str(self.state["positive"])).to_numpy(dtype=np.int64)

    def metrics(self, y, outputs: dict) -> dict[str, Any]:
        from sklearn import metrics as skm

        score, flag = outputs["score"], outputs["pred"].astype(bool)
        flagged = float(flag.mean()) if len(flag) and self.state.get("threshold") is not None else None
        out: dict[str, Any] = {"n": int(len(score)), "flagged": flagged,
                               "threshold": self.state.get("threshold"),
                               "score_quantiles": {q: float(np.quantile(score, q)) for q in (0.5, 0.9, 0.99)} if len(score) else {}}
        if y is None or len(np.unique(y)) < 2:
            return out | {k: None for k in ("roc_auc", "pr_auc", "precision_at_n", "f1", "precision", "recall")}
        y = np.asarray(y)
        n_true = int(y.sum())
        top = np.argsort(-score, kind="stable")[:n_true]
        out |= {"anomalies": n_true, "roc_auc": float(skm.roc_auc_score(y, score)),
                "pr_auc": float(skm.average_precision_score(y, score)), "precision_at_n": float(y[top].mean())}
        if self.state.get("threshold") is None:
            return out | {"f1": None, "precision": None, "recall": None}
        p, r, f, _ = skm.precision_recall_fscore_support(y, flag, average="binary", zero_division=0)
        return out | {"precision": float(p), "recall": float(r), "f1": float(f),
                      "false_positive_rate": float(flag[y == 0].mean()) if (y == 0).any() else None}

    def quick_metrics(self, y, outputs: dict) -> dict[str, float]:
        return {}

    # ---- the pipeline's hooks
    @classmethod
    def prepare_run(cls, cfg, say: Say = lambda m: None) -> Prepared:
        """Split (``split_data``), then fit the preprocessing on the training rows and encode every split."""
        from forgeml.features.preprocess import Preprocessor

        data = cls.split_data(cfg, say)
        pre = Preprocessor.fit(data.raw["train"], data.features, cfg.data)
        enc = {s: pre.transform(rows) for s, rows in data.raw.items()}
        _check_variation(enc["train"])
        return Prepared(**vars(data), preprocessor=pre, enc=enc, rows={s: len(rows) for s, rows in data.raw.items()})

    @classmethod
    def split_data(cls, cfg, say: Say = lambda m: None) -> Splits:
        """Read and check the rows, the label and the candidates, then split (stratified on the label if any)."""
        from forgeml.data.schema import category_keys
        from forgeml.data.split import split_indices

        opts = AnomalyConfig.model_validate(dict(cfg.task.model_extra or {}))
        if cfg.train.privacy is not None:
            raise ConfigError("differential privacy (train.privacy / --epsilon) is not available for anomaly detection yet")
        label = opts.label
        df, features, candidates = read_features(cfg, label, "detector", ("detector", "an anomaly detector"), "detect anomalies in", say)
        positive = None
        if label is not None:
            keys = category_keys(df[label])
            counts = keys.value_counts()
            if opts.positive is not None:
                import pandas as pd

                positive = str(category_keys(pd.Series([opts.positive])).iloc[0])  # 1.0 names the label 1, as keys do
                if positive not in counts.index:
                    raise DataError(f"--positive {opts.positive!r} is not a value of {label!r}; values: {counts.index.tolist()[:10]}")
            elif len(counts) != 2:
                raise DataError(f"label column {label!r} has {len(counts)} values; name the anomaly value with --positive "
                                f"(values: {counts.index.tolist()[:10]})")
            else:
                positive = str(counts.index[-1])  # the minority value
            if len(counts) < 2:
                raise DataError(f"label column {label!r} has a single value; it cannot evaluate a detector")

        task = cls({"label": label, "positive": positive, "contamination": opts.contamination, "target_fpr": opts.target_fpr})
        y_all = task.encode(df[label]) if label else np.zeros(len(df), dtype=np.int64)
        idx = dict(zip(("train", "val", "test"), split_indices(y_all, label is not None, cfg.data.split)))
        raw = {s: df.iloc[i].reset_index(drop=True) for s, i in idx.items()}
        y = {s: (y_all[i] if label else None) for s, i in idx.items()}
        features, preparation = leave_out(features, raw["train"], set(cfg.data.features), say)
        say(split_summary({s: len(rows) for s, rows in raw.items()}, "anomaly",
                          f" (label {label!r}, anomaly = {positive!r}, {int(y_all.sum())} rows)" if label else " (no labels)",
                          features))
        return Splits(target=label, task=task, features=features, raw=raw, y=y, candidates=candidates,
                      preparation=preparation)

    def training_loss(self, cfg, y_train):
        return None

    def sample_weights(self, cfg, y_train):
        return None

    def init_model(self, model, data: Prepared) -> None:
        if hasattr(model, "init_center"):  # Deep SVDD: the center is the mean initial representation of training rows
            model.init_center(data.enc["train"])

    def choose(self, candidates: list[dict]) -> dict:
        """Labelled: the best validation ROC-AUC. Unlabelled: the highest model centrality (see the module doc)."""
        if self.labelled:
            scored = [c for c in candidates if c["val"].get("roc_auc") is not None]
            return max(scored, key=lambda c: c["val"]["roc_auc"]) if scored else candidates[0]
        if len(candidates) == 1:
            candidates[0]["val"]["centrality"] = None
            return candidates[0]
        from scipy.stats import spearmanr

        scores = [np.asarray(c["raw"]["val"], dtype=np.float64).reshape(-1) for c in candidates]
        for i, c in enumerate(candidates):
            rho = [spearmanr(scores[i], scores[j]).statistic for j in range(len(scores)) if j != i]
            c["val"]["centrality"] = float(np.nanmean(rho))
        return max(candidates, key=lambda c: c["val"]["centrality"])

    def finalize(self, cfg, data: Prepared, val_outputs: dict, say: Say) -> None:
        """The threshold, from the validation scores only."""
        self.state["threshold"], how = self._threshold(val_outputs["score"], data.y["val"])
        say(f"anomaly threshold: score >= {self.state['threshold']:.6g} ({how})")

    def _threshold(self, score: np.ndarray, y_val) -> tuple[float, str]:
        fpr = self.state.get("target_fpr")
        if fpr is not None:
            normal = score[y_val == 0] if y_val is not None else score
            return float(np.quantile(normal, 1 - fpr)), f"flags {fpr:g} of the normal validation rows"
        c = self.state["contamination"]
        return float(np.quantile(score, 1 - c)), f"flags the top {c:g} of validation scores"

    def baseline_task(self, data: Prepared, val_raw) -> "Anomaly":
        """The baseline's scores are on their own scale: it gets its own threshold, by the same rule."""
        threshold, _ = self._threshold(np.asarray(val_raw, dtype=np.float64).reshape(-1), data.y["val"])
        return type(self)({**self.state, "threshold": threshold})

    def baseline(self, cfg, data: Prepared, trained_raw: Callable) -> tuple[str, dict]:
        reused = trained_raw(BASELINE)
        if reused is not None:
            return BASELINE, reused
        from forgeml.models import get_model

        learner = get_model(BASELINE)
        est = learner.fit(params_for(cfg, BASELINE), self, data.enc["train"], None, data.enc["val"], None,
                          cfg.train.seed, cfg.train.threads)
        return BASELINE, {s: learner.raw(est, data.enc[s], self) for s in ("val", "test")}

    def plots(self, data: Prepared, outputs: dict, folder) -> list:
        from forgeml.evaluate.plots import anomaly_scores, precision_recall

        made = [anomaly_scores(outputs["score"], data.y["test"], self.state.get("threshold"), folder / "scores.png")]
        if data.y["test"] is not None and len(np.unique(data.y["test"])) == 2:
            made.append(precision_recall(data.y["test"], outputs["score"], folder / "pr.png"))
        return made

    @classmethod
    def split_rows(cls, cfg) -> dict[str, pd.DataFrame]:
        return cls.split_data(cfg).raw

    def response_fields(self) -> dict[str, dict]:
        return {"scores": {"type": "array", "items": {"type": "number"}, "description": "per instance; higher = more anomalous"},
                "is_anomaly": {"type": "array", "items": {"type": "boolean"},
                               "description": f"score >= the run's threshold ({self.state.get('threshold')})"}}

    def predictions(self, outputs: dict) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"score": outputs["score"], "is_anomaly": self.decode(outputs["pred"])})

    # ---- the exported graph returns the score and its flag
    graph_core_output = "core/score"

    def graph_outputs(self) -> list[dict]:
        return [{"name": "score", "dtype": "float32", "shape": ["batch"], "how": "higher = more anomalous"},
                {"name": "is_anomaly", "dtype": "bool", "shape": ["batch"], "how": "score >= the run's threshold"}]

    def graph_post(self, graph, helper, numpy_helper, inits: list) -> list:
        """'score' [N] (the detector's, flattened) and 'is_anomaly' = score >= the run's threshold."""
        from onnx import TensorProto

        inner = graph.output[0].name
        if inner == "score":  # a detector's own core names its output 'score': free the name for the graph's output
            for node in graph.node:
                node.output[:] = ["core/score" if o == "score" else o for o in node.output]
            inner = "core/score"
        inits += [numpy_helper.from_array(np.asarray([self.state["threshold"]], dtype=np.float32), "post/threshold"),
                  numpy_helper.from_array(np.asarray([-1], dtype=np.int64), "post/score_shape")]
        nodes = [helper.make_node("Reshape", [inner, "post/score_shape"], ["score"], name="post/score"),
                 helper.make_node("GreaterOrEqual", ["score", "post/threshold"], ["is_anomaly"], name="post/flag")]
        del graph.output[:]
        graph.output.extend([helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
                             helper.make_tensor_value_info("is_anomaly", TensorProto.BOOL, ["batch"])])
        return nodes

    def from_graph(self, first) -> dict[str, np.ndarray]:
        return self.outputs(first)

    def graph_reference(self, outputs: dict) -> np.ndarray:
        return outputs["score"]

    def response(self, first, finite) -> dict:
        score = finite(first.astype(np.float64).reshape(-1), "score")
        return {"scores": score.round(6).tolist(), "is_anomaly": (score >= self.state["threshold"]).tolist()}


def _check_variation(train: dict) -> None:
    """Detectors rank rows by how they differ; identical rows leave nothing to rank."""
    blocks = [np.asarray(v).reshape(len(v), -1) for v in train.values() if len(v)]
    if blocks and all(np.all(b == b[:1]) for b in blocks):
        raise DataError("every training row is identical: there is nothing to tell anomalies from normal rows")
