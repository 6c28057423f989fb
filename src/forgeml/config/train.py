"""train: the loop's settings, early stopping and differential privacy; tracking."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from forgeml.config.base import Strict


class EarlyStopping(Strict):
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


class PrivacyConfig(Strict):
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
    select: bool = Field(False, description="model auto: train every DP candidate (linear, shallow_mlp, the task's "
                                            "usual network), each on an equal share of epsilon, and keep the best on "
                                            "validation; the choice itself is not covered by epsilon (docs/privacy.md). "
                                            "false: train the DP default (linear) alone")
    bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="numeric column -> [low, high] known without looking at the data: scaled to "
                                          "[-1, 1] by these bounds (values outside are clipped, counted), so no "
                                          "statistic of the private rows is used; other numerics are standardized "
                                          "with the training rows' mean and std, which epsilon does not cover")

    @field_validator("bounds")
    @classmethod
    def _bounds(cls, v: dict) -> dict:
        for column, (low, high) in v.items():
            if not low < high:
                raise ValueError(f"bounds of {column!r}: low must be below high, got [{low}, {high}]")
        return v

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


DP_DEFAULTS = {"batch_size": 256, "epochs": 30, "optimizer": "sgd", "momentum": 0.9, "lr": 0.2, "weight_decay": 0.0,
               "schedule": "constant", "early_stopping": None}


class TrainConfig(Strict):
    """The training loop: optimizer, schedule, regularization, precision, device, early stopping."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW only: its (beta1, beta2); GANs train with beta1 "
                                                                 "0.5 (the gan model's default)")
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
    time_limit: Optional[float] = Field(None, gt=0, description="seconds the run may spend training: model auto's "
                                                                "ensemble trains its members in order of expected value "
                                                                "and stops adding them when the budget is spent; a "
                                                                "candidate that finds no time left is skipped")
    threads: Optional[int] = Field(None, ge=1, description="CPU threads of torch and, while the run trains, of BLAS and OpenMP (NumPy, scikit-learn); default: one torch thread for a dense network under 1M parameters, else the CPUs this process may use (affinity, cgroup quota), and the native libraries' own choice")
    privacy: Optional[PrivacyConfig] = Field(None, description="train with differential privacy (DP-SGD); null: no DP")
    parallel: Literal["ddp", "fsdp"] = Field("ddp", description="how the processes of a data-parallel run (forgeml train "
                                              "--nproc N, or torchrun) share the network: ddp, every process holds it and "
                                              "the gradients are averaged; fsdp, parameters, gradients and optimizer state "
                                              "are sharded across the processes (for networks that do not fit one GPU)")

    @model_validator(mode="before")
    @classmethod
    def _private_defaults(cls, values):
        """Under privacy, the loop settings DP-SGD needs replace the non-private defaults the config does not set:
        large batches (the noise is added once per batch), fixed epochs without early stopping (stopping on the
        private validation rows would choose with them), SGD with momentum at a constant rate. Written into the
        run's config.yaml, so a resumed run trains the same way."""
        if isinstance(values, dict) and values.get("privacy") is not None:
            for key, value in DP_DEFAULTS.items():
                values.setdefault(key, value)
        return values

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


class TrackingConfig(Strict):
    """MLflow experiment tracking."""

    uri: Optional[str] = Field(
        None, description="MLflow tracking URI; default sqlite:///<runs_dir>/mlflow.db; 'none' disables tracking"
    )
    experiment: str = "forgeml"
