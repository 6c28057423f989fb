"""data: where rows come from, how they are split, cleaned, rebalanced and augmented."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from forgeml.config.base import FeatureType, Strict


class SplitConfig(Strict):
    """How rows are divided. The test split is never used for training or early stopping."""

    val: float = Field(0.15, gt=0, lt=1, description="fraction of rows for validation (early stopping, model choice)")
    test: float = Field(0.15, gt=0, lt=1, description="fraction of rows held out for the final evaluation")
    stratify: bool = Field(True, description="keep class proportions in every split (classification)")
    group_col: Optional[str] = Field(None, description="rows sharing a value of this column (a patient, a user) stay in "
                                                      "one split; the column is not used as a feature")
    time_col: Optional[str] = Field(None, description="split by time: the latest rows are the test split, the ones before "
                                                     "them validation; the column is not used as a feature")
    folds: Optional[int] = Field(None, ge=2, description="cross-validation (set by forgeml cv): K folds, fold `fold` is the "
                                                         "test split")
    fold: Optional[int] = Field(None, ge=0, description="which fold is the test split (0-based, with folds)")
    seed: int = Field(0, description="seed of the split")

    @model_validator(mode="after")
    def _fractions(self):
        if self.val + self.test >= 0.9:
            raise ValueError(f"split.val + split.test = {self.val + self.test:.2f} leaves too little to train on; keep it below 0.9")
        if self.group_col and self.time_col:
            raise ValueError("choose one of split.group_col and split.time_col")
        if (self.folds is None) != (self.fold is None):
            raise ValueError("split.folds and split.fold go together (forgeml cv sets both)")
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(f"split.fold must be below split.folds ({self.folds}), got {self.fold}")
        return self


class MissingConfig(Strict):
    """Missing values: fitted on the training split, replayed at predict and serve time."""

    numeric: Literal["mean", "median", "most_frequent", "constant", "drop"] = Field(
        "mean", description="fill numeric gaps with the training mean/median/most frequent value or fill_value; drop: "
                            "drop training rows with a gap (validation, test and new rows are then filled with the mean)")
    categorical: Literal["own_level", "most_frequent", "drop"] = Field(
        "own_level", description="own_level: missing is a level of its own (shared with unseen levels); most_frequent: "
                                 "the training mode; drop: drop training rows with a gap (later rows: own_level)")
    fill_value: float = Field(0.0, description="the value numeric gaps get with numeric: constant")
    indicator: bool = Field(False, description="add a 0/1 <column>_missing input for each numeric column with gaps in training")


class OutlierConfig(Strict):
    """Numeric outliers, judged by quantiles of the training split."""

    method: Literal["none", "clip", "drop"] = Field(
        "none", description="clip: clip values to the quantiles (train and later rows); drop: drop training rows outside "
                            "them (later rows are clipped)")
    quantiles: tuple[float, float] = Field((0.01, 0.99), description="lower and upper quantile")

    @field_validator("quantiles")
    @classmethod
    def _order(cls, v):
        if not 0 <= v[0] < v[1] <= 1:
            raise ValueError(f"quantiles must satisfy 0 <= lower < upper <= 1, got {list(v)}")
        return v


class TextCleanConfig(Strict):
    """Text normalization before tokenizing (replayed at predict and serve time)."""

    lower: bool = Field(False, description="lower-case (the word tokenizer lower-cases anyway)")
    strip: bool = Field(False, description="strip surrounding white space and collapse runs of it")
    nfkc: bool = Field(False, description="unicode NFKC normalization (full-width forms, ligatures, ...)")


class CleanConfig(Strict):
    """Cleaning fitted on the training split only and stored in the run's manifest."""

    deduplicate: bool = Field(False, description="drop exact duplicate rows before splitting (a duplicate on both sides of "
                                                 "the split leaks the test set)")
    missing: MissingConfig = Field(default_factory=MissingConfig)
    scale: Literal["standard", "minmax", "robust", "none"] = Field(
        "standard", description="numeric scaling: standard (mean/std), minmax (to [0, 1]), robust (median/IQR)")
    outliers: OutlierConfig = Field(default_factory=OutlierConfig)
    text: TextCleanConfig = Field(default_factory=TextCleanConfig)


class BalanceConfig(Strict):
    """Class imbalance (classification). Resampling touches the training split only."""

    method: Literal["none", "class_weights", "oversample", "undersample", "smote", "generative", "focal"] = Field(
        "none", description="class_weights: inverse-frequency weights in the loss; oversample/undersample: random "
                            "resampling; smote: SMOTE (SMOTENC with categoricals) from imbalanced-learn; generative: "
                            "synthetic rows from a conditional tabular VAE fitted on the training split; focal: focal loss")
    k_neighbors: int = Field(5, ge=1, description="SMOTE neighbours")
    generator_epochs: int = Field(300, ge=1, description="generative: epochs of the conditional VAE")
    focal_gamma: float = Field(2.0, ge=0, description="focal loss focusing parameter")
    focal_balanced: bool = Field(True, description="focal: also weight classes by inverse frequency (the alpha-balanced "
                                                   "focal loss of Lin et al. 2017); without it focal loss only "
                                                   "down-weights easy rows and rarely changes which class wins")
    threshold: Literal["none", "f1", "recall"] = Field(
        "none", description="binary tasks: tune the decision threshold on validation for the best F1, or for "
                            "target_recall of the positive class (the highest threshold reaching it)")
    target_recall: float = Field(0.8, gt=0, le=1, description="with threshold: recall")
    seed: int = Field(0, description="seed of the resampling")


class ImageAugment(Strict):
    crop: int = Field(0, ge=0, description="random crop after padding by this many pixels (0: off)")
    flip: bool = Field(False, description="random horizontal flip (off for digits and text-like images)")
    rotate: float = Field(0.0, ge=0, le=180, description="random rotation up to this many degrees")
    jitter: float = Field(0.0, ge=0, lt=1, description="random brightness/contrast change up to this fraction")


class TextAugment(Strict):
    delete: float = Field(0.0, ge=0, lt=1, description="probability of dropping each token")
    swap: int = Field(0, ge=0, description="random swaps of two tokens per text")


class TableAugment(Strict):
    noise: float = Field(0.0, ge=0, description="gaussian noise (in standard deviations) added to numeric inputs")
    mixup: float = Field(0.0, ge=0, description="mixup alpha: mixes pairs of rows (numeric inputs) and their targets (0: off)")


class AugmentConfig(Strict):
    """On-the-fly augmentation of training batches only (off by default)."""

    image: ImageAugment = Field(default_factory=ImageAugment)
    text: TextAugment = Field(default_factory=TextAugment)
    table: TableAugment = Field(default_factory=TableAugment)


class DataConfig(Strict):
    """Where the rows come from, what to predict, and how features are typed and encoded."""

    source: str = Field(..., description="csv/parquet/jsonl file, an image folder (one sub-folder per class) or bundled:NAME")
    target: Optional[str] = Field(None, description="column to predict (for an image folder: 'label')")
    features: dict[str, FeatureType] = Field(
        default_factory=dict, description="override inferred feature types, e.g. {zip: categorical, notes: ignore}"
    )
    sep: str = Field("auto", description="CSV/TSV delimiter: auto (sniffed: comma, semicolon, tab or pipe), one "
                                         "character, or its name: comma, semicolon, tab, pipe")
    encoding: str = Field("auto", description="CSV/TSV text encoding: auto (UTF-8, a BOM's UTF-8/UTF-16, else "
                                              "Windows-1252/Latin-1) or a Python codec name (utf-16, latin-1, ...)")
    split: SplitConfig = Field(default_factory=SplitConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    max_text_tokens: int = Field(128, ge=8, le=4096, description="text is truncated to this many tokens")
    text_vocab_size: int = Field(20000, ge=100, description="most frequent words kept by the word tokenizer")
    max_categories: int = Field(1000, ge=2, description="most frequent levels kept per categorical column")
    image_size: Optional[tuple[int, int]] = Field(None, description="(height, width) images are resized to; default: the most common size, shrunk to at most 64 px on its longest side")
    image_mode: Literal["auto", "L", "RGB"] = Field("auto", description="grayscale (L), colour (RGB) or as the images are")

    @field_validator("sep")
    @classmethod
    def _sep(cls, v):
        if v.lower() not in ("auto", "comma", "semicolon", "tab", "\\t", "pipe", "space") and len(v) != 1:
            raise ValueError(f"data.sep must be auto, one character, or comma | semicolon | tab | pipe; got {v!r}")
        return v

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v):
        import codecs

        if v.lower() != "auto":
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding {v!r}; use auto or a Python codec name: utf-8, utf-16, latin-1, "
                                 "cp1252, ...") from None
        return v
