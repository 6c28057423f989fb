"""Classification (binary and multiclass): cross-entropy on logits, softmax probabilities."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from forgeml.errors import DataError
from forgeml.evaluate.metrics import SUMMARY_KEYS
from forgeml.tasks import TASKS
from forgeml.tasks.supervised import SupervisedTask

if TYPE_CHECKING:  # annotations only; pandas is imported where rows are handled, so serving needs none
    import pandas as pd

MAX_CLASSES_FOR_INT_TARGET = 20  # a whole-number target with more distinct values is a regression target
MANY_CLASSES_SHARE = 0.05  # task auto: a target with more classes than this share of the rows (and over 20) stops
NUMERIC_LABELS_SHARE = 0.95  # task auto: over 20 labels of which this share reads as numbers stops (use regression)


@TASKS.register("classification", tags={"target", "labels", "threshold", "stratify"})
class Classification(SupervisedTask):
    summary_keys = SUMMARY_KEYS["classification"]

    # ---- the target column (forgeml.tasks.infer_task): text, booleans, or whole numbers with few distinct values
    infer_order = 10

    @classmethod
    def claims_target(cls, y: pd.Series) -> bool:
        import pandas as pd

        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            return True
        integral = np.all(np.mod(y.to_numpy(), 1) == 0)
        return bool(integral and y.nunique() <= MAX_CLASSES_FOR_INT_TARGET)

    @classmethod
    def check_target(cls, y: pd.Series) -> None:
        if y.nunique() < 2:
            value = y.iloc[0].item() if hasattr(y.iloc[0], "item") else y.iloc[0]
            raise DataError(
                f"target {y.name!r} has a single class ({value!r}); classification needs at least two: "
                "check the target column, or use --task regression for a numeric target"
            )

    @classmethod
    def target_doubts(cls, y: pd.Series) -> str | None:
        """A target ``task: auto`` should not treat as classes: more classes than MANY_CLASSES_SHARE of the rows (and
        over MAX_CLASSES_FOR_INT_TARGET), or many labels that read as numbers ("$215,000", "12.5%")."""
        from forgeml.data.schema import category_keys

        keys = category_keys(y.dropna())
        classes = int(keys.nunique())
        if classes <= MAX_CLASSES_FOR_INT_TARGET:
            return None
        sample = keys.drop_duplicates().head(3).tolist()
        import pandas as pd

        numbers = pd.to_numeric(keys.str.replace(r"[\s,$\u20ac\u00a3%]", "", regex=True), errors="coerce").notna().mean()
        if numbers >= NUMERIC_LABELS_SHARE:
            return (f"target {y.name!r} holds numbers written as text ({classes:,} distinct values such as {sample}): as "
                    "classes nothing could be learned; train with --task regression on the column converted to numbers "
                    "(or --task classification if these really are class names)")
        if classes > MANY_CLASSES_SHARE * len(keys):
            return (f"target {y.name!r} has {classes:,} classes for {len(keys):,} rows (more than "
                    f"{MANY_CLASSES_SHARE:.0%} of the rows): is it the right column? For numbers use --task regression; "
                    "to train these classes anyway, pass --task classification")
        return None

    @classmethod
    def fit(cls, y: pd.Series) -> "Classification":
        from forgeml.data.schema import canonical

        import pandas as pd

        labels = sorted({canonical(v) for v in pd.unique(y.dropna())}, key=lambda v: (str(type(v)), v))
        return cls({"labels": labels})

    @property
    def labels(self) -> list:
        return self.state["labels"]

    @property
    def primary_metric(self) -> str:
        return "roc_auc" if len(self.labels) == 2 else "accuracy"

    @property
    def out_dim(self) -> int:
        return len(self.labels)

    def encode(self, y: pd.Series) -> np.ndarray:
        from forgeml.data.schema import category_keys

        index = {str(v): i for i, v in enumerate(self.labels)}
        codes = category_keys(y).map(index)
        if codes.isna().any():
            unseen = sorted(set(y[codes.isna()].astype(str)))[:5]
            raise DataError(f"target values {unseen} were not seen in training; known labels: {self.labels}")
        return codes.to_numpy(dtype=np.int64)

    def loss(self, out, y):
        import torch.nn.functional as F

        return F.cross_entropy(out.float(), y)

    def outputs(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        z = raw - raw.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return {"pred": self.decide(p), "proba": p}

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class codes from probabilities: the most probable class, or for a binary task with a tuned threshold
        (data.balance.threshold) the positive class when P(positive) >= threshold."""
        threshold = self.state.get("threshold")
        if threshold is not None and proba.shape[1] == 2:
            return (proba[:, 1] >= threshold).astype(np.int64)
        return proba.argmax(axis=1)

    def response_fields(self) -> dict[str, dict]:
        labels = self.labels
        return {"predictions": {"type": "array", "items": {"enum": labels}, "description": "the class of each instance"},
                "probabilities": {"type": "array", "description": "per instance, the probability of each class in `labels` order",
                                  "items": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                                            "minItems": len(labels), "maxItems": len(labels)}},
                "labels": {"type": "array", "items": {"enum": labels}, "description": "the classes, in probability order"}}

    def decode(self, pred: np.ndarray) -> np.ndarray:
        return np.asarray(self.labels, dtype=object)[pred]

    # ---- the exported graph returns the class probabilities; the server adds the decided class
    graph_core_output = "probabilities"

    def graph_head(self, raw):
        import torch

        return torch.softmax(raw, dim=-1)

    def graph_outputs(self) -> list[dict]:
        return [{"name": "probabilities", "dtype": "float32", "shape": ["batch", len(self.labels)], "labels": self.labels}]

    def graph_post(self, graph, helper, numpy_helper, inits: list) -> list:
        keep = [o for o in graph.output if o.name == "probabilities"]  # a tree converter also gives 'label': dropped
        del graph.output[:]
        graph.output.extend(keep)
        return []

    def from_graph(self, first) -> dict[str, np.ndarray]:
        proba = first.astype(np.float64)
        proba /= proba.sum(axis=1, keepdims=True)  # float32 probabilities sum to 1 only within ~1e-7
        return {"pred": self.decide(proba), "proba": proba}

    def graph_reference(self, outputs: dict) -> np.ndarray:
        return outputs["proba"]

    def response(self, first, finite) -> dict:
        proba = first.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            proba = finite(proba / proba.sum(axis=1, keepdims=True), "class probabilities")
        return {"predictions": self.decode(self.decide(proba)).tolist(), "probabilities": proba.round(6).tolist(),
                "labels": self.labels}

    def metrics(self, y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict:
        from forgeml.evaluate.metrics import classification_metrics

        metrics = classification_metrics(y, outputs["proba"], self.labels, outputs["pred"])
        if "threshold" in self.state:
            metrics["threshold"] = self.state["threshold"]
        return metrics

    def quick_metrics(self, y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict:
        return {"accuracy": float((outputs["pred"] == y).mean())}
