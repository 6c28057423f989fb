"""The profile's documented rules: thresholds and sample sizes (``forgeml profile`` prints them in its report)."""
from __future__ import annotations

from forgeml.features.exclusions import ID_UNIQUE, LEAK_HOLDOUT, LEAK_SCORE, LEAK_TREE_DEPTH  # noqa: F401  (shared with training)

OUTLIER_IQR = 1.5  # a value is an outlier outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR]
HIGH_CARDINALITY = 100  # a categorical feature with more distinct values than this is high-cardinality
MANY_MISSING = 0.5  # a column missing in more than half of the rows gets a warning
IMBALANCE_MIN_SHARE = 0.10  # smallest class below 10% of the labelled rows ...
IMBALANCE_MAX_RATIO = 10.0  # ... or largest class more than 10x the smallest: imbalanced
ASSOCIATION_ROWS = 200_000  # row sample for the association scores
LEAK_ROWS = 50_000  # row sample for the single-feature models (split 70/30 into fit / held-out rows)
MI_BINS = 20  # numeric features (and a regression target) are cut into this many quantile bins for mutual information
MI_LEVELS = 50  # categorical features: the most frequent levels kept, the rest pooled as 'other'
TOP_FEATURES = 10
MAX_CLASSES = 1000  # a classification target with more classes gets no association / leakage checks
EXAMPLES = 5  # duplicate-row examples shown
HIST_BINS = 40
MAX_FLIERS = 200  # outlier values kept per column for the box plot
TEXT_SUFFIXES = {".csv", ".tsv", ".jsonl", ".ndjson"}


def rules() -> dict:
    """The thresholds the profile applies, as reported in its output."""
    return {
        "outlier_iqr": OUTLIER_IQR, "id_unique": ID_UNIQUE, "high_cardinality": HIGH_CARDINALITY, "many_missing": MANY_MISSING,
        "imbalance_min_share": IMBALANCE_MIN_SHARE, "imbalance_max_ratio": IMBALANCE_MAX_RATIO,
        "leak_score": LEAK_SCORE, "leak_tree_depth": LEAK_TREE_DEPTH, "association_rows": ASSOCIATION_ROWS,
        "leak_rows": LEAK_ROWS, "leak_holdout": LEAK_HOLDOUT, "mi_bins": MI_BINS, "mi_levels": MI_LEVELS,
        "max_classes": MAX_CLASSES,
    }
