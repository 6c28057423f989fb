"""Clustering: no target. Every row gets a cluster (its nearest centre) and its distance to that centre.

The rows are what the clusterer sees: standardized numerics (data.clean.scale; scaling decides K-Means' result, see
docs/clustering.md), one-hot categoricals, standardized date parts, pixels. With ``k: auto`` the learner fits one
model per k in 2..k_max on the training rows and the task keeps the k with the best silhouette on the training and
validation rows (the test split never chooses); the inertia beside it draws the elbow plot. A label column
(``task.label``), if given, only evaluates (adjusted Rand index, normalized mutual information); it never reaches a fit
or the choice of k. The baseline beside every run cuts the rows into k slices of equal size along their first
principal component: a clustering worth its name separates the rows better than one direction does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from forgeml.core import Task
from forgeml.errors import ConfigError, DataError
from forgeml.tasks import TASKS
from forgeml.tasks.supervised import Prepared, Say, Splits
from forgeml.tasks.unsupervised import leave_out, read_features, split_summary

if TYPE_CHECKING:  # annotations only; pandas is imported where rows are handled, so serving needs none
    import pandas as pd

BASELINE = "pca_slices"
SILHOUETTE_ROWS = 5000  # silhouettes are O(n^2): scored on a seeded sample of this many rows beyond it
PROFILE_COLUMNS = 12


class ClusteringConfig(BaseModel):
    """``task: {name: clustering, k: auto, k_max: 10, label: species}``"""

    model_config = ConfigDict(extra="forbid")
    k: Union[Literal["auto"], int] = Field("auto", description="number of clusters, or auto: the best silhouette over 2..k_max")
    k_max: int = Field(10, ge=2, description="k: auto tries 2..k_max clusters")
    label: Optional[str] = Field(None, description="a column used only to evaluate (ARI, NMI); never fitted on")


@dataclass
class Points:
    """What clustering metrics compare outputs with: the rows as the clusterer sees them ([N, D]), the label column's
    values if one was given (evaluation only), and the rows as read (cluster profiles in the data's own units)."""

    x: np.ndarray
    label: Optional[np.ndarray] = None
    rows: Optional[pd.DataFrame] = None


def points(arrays: dict, shapes: dict) -> np.ndarray:
    from forgeml.models.detectors import detector_matrix

    return detector_matrix(arrays, shapes)


def silhouette(x: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """The mean silhouette (a seeded sample beyond SILHOUETTE_ROWS rows); None when it is undefined (one cluster,
    or one row per cluster)."""
    from sklearn.metrics import silhouette_score

    found = len(np.unique(labels))
    if not 2 <= found <= len(labels) - 1:
        return None
    sample = min(len(labels), SILHOUETTE_ROWS) if len(labels) > SILHOUETTE_ROWS else None
    return float(silhouette_score(x, labels, sample_size=sample, random_state=0))


@TASKS.register("clustering", tags={"clusters"})
class Clustering(Task):
    Config = ClusteringConfig
    needs_target = False
    evaluates_without_target = True
    primary_metric = "silhouette"
    summary_keys = ["silhouette", "davies_bouldin", "calinski_harabasz", "ari", "nmi", "clusters"]

    # ---- k: the learner asks, the task decides
    def k_candidates(self, rows: int) -> list[int]:
        k = self.state["k"]
        if k != "auto":
            if k > rows:
                raise DataError(f"k = {k} clusters, but the training split has only {rows} rows; choose a smaller --k")
            return [k]
        top = min(self.state["k_max"], rows - 1)
        if top < 2:
            raise DataError(f"k auto needs at least 3 training rows to compare two clusters; the training split has {rows}")
        return list(range(2, top + 1))

    def choose_k(self, fits: dict[int, dict], x: np.ndarray) -> int:
        """The k with the best silhouette (``fits``: k -> inertia on the training rows and labels of ``x``, the
        training then validation rows); the sweep is kept for the elbow plot and the manifest."""
        sweep = [{"k": k, "inertia": fit["inertia"], "silhouette": silhouette(x, fit["labels"])} for k, fit in fits.items()]
        scored = [s for s in sweep if s["silhouette"] is not None]
        best = max(scored, key=lambda s: s["silhouette"]) if scored else sweep[0]
        if len(sweep) > 1:
            self.state["k_sweep"] = sweep
        self.state["k_chosen"] = best["k"]
        return best["k"]

    @property
    def k(self) -> int:
        return int(self.state["k_chosen"])

    # ---- outputs and metrics
    def outputs(self, raw) -> dict[str, np.ndarray]:
        distances = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
        nearest = distances.argmin(axis=1)
        return {"pred": nearest.astype(np.int64), "distance": distances[np.arange(len(distances)), nearest],
                "distances": distances}

    def decode(self, pred) -> np.ndarray:
        return np.asarray(pred, dtype=np.int64)

    def truth(self, rows: pd.DataFrame, target: Optional[str], preprocessor) -> Points:
        """For rows to evaluate (forgeml evaluate): their points, their labels when the column is there."""
        label = rows[target].to_numpy() if target is not None and target in rows.columns else None
        return Points(points(preprocessor.transform(rows), preprocessor.input_shapes()), label, rows)

    def metrics(self, y: Points, outputs: dict) -> dict[str, Any]:
        from sklearn import metrics as skm

        pred = outputs["pred"]
        found, sizes = np.unique(pred, return_counts=True)
        out: dict[str, Any] = {"n": int(len(pred)), "clusters": int(len(found)), "k": self.state.get("k_chosen"),
                               "sizes": {str(c): int(n) for c, n in zip(found, sizes)},
                               "silhouette": silhouette(y.x, pred), "davies_bouldin": None, "calinski_harabasz": None,
                               "ari": None, "nmi": None, "mean_distance": float(outputs["distance"].mean()) if len(pred) else None}
        if out["silhouette"] is not None:
            out["davies_bouldin"] = float(skm.davies_bouldin_score(y.x, pred))
            out["calinski_harabasz"] = float(skm.calinski_harabasz_score(y.x, pred))
        if y.label is not None and len(pred):
            import pandas as pd

            labels = pd.Series(y.label).astype(str).to_numpy()
            out["ari"] = float(skm.adjusted_rand_score(labels, pred))
            out["nmi"] = float(skm.normalized_mutual_info_score(labels, pred))
        if y.rows is not None and len(pred):
            out["tables"] = {"cluster profiles": profiles(y.rows, pred, self.state.get("profile_columns") or [])}
        return out

    def quick_metrics(self, y, outputs: dict) -> dict[str, float]:
        return {}

    def validation_loss(self, raw, y) -> float:
        return float(np.mean(self.outputs(raw)["distance"]))

    # ---- the pipeline's hooks
    @classmethod
    def prepare_run(cls, cfg, say: Say = lambda m: None) -> Prepared:
        """Split (``split_data``), fit the preprocessing on the training rows, encode every split and keep each
        split's points (the matrix the clusterer and the metrics see)."""
        from forgeml.features.preprocess import Preprocessor

        data = cls.split_data(cfg, say)
        pre = Preprocessor.fit(data.raw["train"], data.features, cfg.data)
        enc = {s: pre.transform(rows) for s, rows in data.raw.items()}
        shapes = pre.input_shapes()
        y = {s: Points(points(enc[s], shapes), data.y[s], data.raw[s]) for s in enc}
        if len(np.unique(y["train"].x, axis=0)) < 2:
            raise DataError("every training row is identical: there is nothing to cluster")
        return Prepared(**{**vars(data), "y": y}, preprocessor=pre, enc=enc,
                        rows={s: len(rows) for s, rows in data.raw.items()})

    @classmethod
    def split_data(cls, cfg, say: Say = lambda m: None) -> Splits:
        """Read and check the rows, the label and the candidates, then split at random (a label does not stratify:
        it only evaluates)."""
        from forgeml.data.split import split_indices

        opts = ClusteringConfig.model_validate(dict(cfg.task.model_extra or {}))
        if opts.k != "auto" and opts.k < 2:
            raise ConfigError(f"k = {opts.k}: a clustering needs at least 2 clusters (or --k auto)")
        if cfg.train.privacy is not None:
            raise ConfigError("differential privacy (train.privacy / --epsilon) is not available for clustering yet")
        df, features, candidates = read_features(cfg, opts.label, "clusterer", ("clusterer", "a clustering model"),
                                                 "cluster", say)
        idx = dict(zip(("train", "val", "test"), split_indices(np.zeros(len(df), dtype=np.int64), False, cfg.data.split)))
        raw = {s: df.iloc[i].reset_index(drop=True) for s, i in idx.items()}
        if opts.k != "auto" and opts.k > len(raw["train"]):
            raise DataError(f"k = {opts.k} clusters, but the training split has only {len(raw['train'])} rows; choose a "
                            "smaller --k")
        y = {s: (rows[opts.label].to_numpy() if opts.label else None) for s, rows in raw.items()}
        features, preparation = leave_out(features, raw["train"], set(cfg.data.features), say)
        task = cls({"label": opts.label, "k": opts.k, "k_max": opts.k_max,
                    "profile_columns": [f.name for f in features if f.type in ("numeric", "categorical", "datetime")]})
        say(split_summary({s: len(rows) for s, rows in raw.items()}, "clustering",
                          f" (k {opts.k}{f', label {opts.label!r} to evaluate' if opts.label else ''})", features))
        return Splits(target=opts.label, task=task, features=features, raw=raw, y=y, candidates=candidates,
                      preparation=preparation)

    @classmethod
    def split_rows(cls, cfg) -> dict[str, pd.DataFrame]:
        return cls.split_data(cfg).raw

    def training_loss(self, cfg, y_train):
        return None

    def sample_weights(self, cfg, y_train):
        return None

    def init_model(self, model, data: Prepared) -> None:
        pass

    def choose(self, candidates: list[dict]) -> dict:
        scored = [c for c in candidates if c["val"].get("silhouette") is not None]
        return max(scored, key=lambda c: c["val"]["silhouette"]) if scored else candidates[0]

    def finalize(self, cfg, data: Prepared, val_outputs: dict, say: Say) -> None:
        sizes = np.bincount(val_outputs["pred"], minlength=self.k)
        how = "the best silhouette over k = 2.." + str(self.state["k_sweep"][-1]["k"]) if self.state.get("k_sweep") else "--k"
        say(f"clusters: k = {self.k} ({how}); validation rows per cluster: {sizes.tolist()}")

    def baseline_task(self, data: Prepared, val_raw) -> "Clustering":
        return self

    def baseline(self, cfg, data: Prepared, trained_raw: Callable) -> tuple[str, dict]:
        """k slices of equal size along the training rows' first principal component; raw outputs are the distances
        to each slice's mean along it, so the nearest slice is the cluster."""
        from sklearn.decomposition import PCA

        pca = PCA(n_components=1, random_state=cfg.train.seed).fit(data.y["train"].x)
        along = pca.transform(data.y["train"].x)[:, 0]
        order = np.argsort(along, kind="stable")
        centres = np.array([along[part].mean() for part in np.array_split(order, self.k) if len(part)])
        return BASELINE, {s: np.abs(pca.transform(data.y[s].x)[:, :1] - centres[None, :]) for s in ("val", "test")}

    def plots(self, data: Prepared, outputs: dict, folder) -> list:
        from forgeml.evaluate.cluster_plots import k_selection, projection

        made = [projection(data.y["test"].x, outputs["pred"], data.y["test"].label, folder / "clusters.png")]
        if self.state.get("k_sweep"):
            made.insert(0, k_selection(self.state["k_sweep"], self.k, folder / "k_selection.png"))
        return made

    def response_fields(self) -> dict[str, dict]:
        return {"clusters": {"type": "array", "items": {"type": "integer"}, "description": f"per instance: 0..{self.k - 1}"},
                "distances": {"type": "array", "items": {"type": "number"},
                              "description": "per instance: the distance to its cluster's centre"}}

    def predictions(self, outputs: dict) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"cluster": self.decode(outputs["pred"]), "distance": outputs["distance"]})

    # ---- the exported graph: the distances to every centre, then the cluster and its distance
    graph_core_output = "core/distances"

    def graph_outputs(self) -> list[dict]:
        return [{"name": "distances", "dtype": "float32", "shape": ["batch", self.k], "how": "to each cluster's centre"},
                {"name": "cluster", "dtype": "int64", "shape": ["batch"], "how": "the nearest centre"},
                {"name": "distance", "dtype": "float32", "shape": ["batch"], "how": "to the nearest centre"}]

    def graph_post(self, graph, helper, numpy_helper, inits: list) -> list:
        from onnx import TensorProto

        inner = graph.output[0].name
        inits.append(numpy_helper.from_array(np.asarray([-1], dtype=np.int64), "post/flat"))
        nodes = [helper.make_node("ArgMin", [inner], ["post/nearest"], name="post/argmin", axis=1, keepdims=1),
                 helper.make_node("GatherElements", [inner, "post/nearest"], ["post/nearest_distance"], name="post/gather", axis=1),
                 helper.make_node("Reshape", ["post/nearest", "post/flat"], ["cluster"], name="post/cluster"),
                 helper.make_node("Reshape", ["post/nearest_distance", "post/flat"], ["distance"], name="post/distance")]
        first = graph.output[0]
        del graph.output[:]
        graph.output.extend([first, helper.make_tensor_value_info("cluster", TensorProto.INT64, ["batch"]),
                             helper.make_tensor_value_info("distance", TensorProto.FLOAT, ["batch"])])
        return nodes

    def from_graph(self, first) -> dict[str, np.ndarray]:
        return self.outputs(first)

    def graph_reference(self, outputs: dict) -> np.ndarray:
        return outputs["distances"]

    def response(self, first, finite) -> dict:
        out = self.outputs(finite(first.astype(np.float64), "distances"))
        return {"clusters": out["pred"].tolist(), "distances": out["distance"].round(6).tolist()}


def profiles(rows: pd.DataFrame, cluster: np.ndarray, columns: list[str]) -> dict:
    """Per cluster: its size and share, the mean of each numeric column and the most common value of the others, in
    the data's own units (the first PROFILE_COLUMNS columns)."""
    import pandas as pd

    columns = [c for c in columns if c in rows.columns][:PROFILE_COLUMNS]
    out_rows = []
    for c in np.unique(cluster):
        part = rows.loc[cluster == c, columns]
        cells = []
        for col in columns:
            values = part[col].dropna()
            if values.empty:
                cells.append(None)
            elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                cells.append(float(f"{values.mean():.4g}"))
            else:
                cells.append(str(values.astype(str).mode().iloc[0]))
        out_rows.append([int(c), int(len(part)), round(len(part) / len(rows), 4), *cells])
    return {"columns": ["cluster", "rows", "share", *columns], "rows": out_rows}
