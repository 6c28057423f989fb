"""tune: hyper-parameter search with Optuna (forgeml tune; docs/tune.md). Optional: a run trained by ``forgeml train``
ignores it, and the runs tune writes (its trials and the best run) carry none."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from forgeml.config.base import Strict


class Range(Strict):
    """A number range: ``{low: 1.0e-4, high: 1.0e-2, log: true}``. Integers when the key is an integer (or both
    bounds are integers and the key's type is open); ``step`` spaces the values."""

    low: Union[int, float]
    high: Union[int, float]
    log: bool = Field(False, description="draw on a log scale (learning rates, weight decay)")
    step: Optional[Union[int, float]] = Field(None, gt=0, description="spacing of the values (not with log)")

    @model_validator(mode="after")
    def _order(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(f"a range needs low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("step and log do not go together; drop one")
        return self


SpaceEntry = Union[Range, list[Any]]


class TuneConfig(Strict):
    """Hyper-parameter search (forgeml tune, extra [tune]): TPE sampling, pruning on per-epoch validation scores,
    the best trial trained again as the run. ``space`` maps config keys to a range (a mapping) or to choices (a list;
    a choice may itself be a list, e.g. model.hidden: [[64], [128, 128]]); empty: the model's own default space."""

    space: dict[str, SpaceEntry] = Field(
        default_factory=dict, description="config key -> {low, high, log, step} or a list of choices; empty: the "
                                          "model's default space (its Params.search_space)")
    trials: int = Field(20, description="trials in the study in all (complete, pruned or failed); a resumed study "
                                        "runs the ones still missing")
    timeout: Optional[float] = Field(None, gt=0, description="stop starting trials after this many seconds")
    storage: Optional[str] = Field(None, description="Optuna storage URL (sqlite:///..., postgresql://...); default "
                                                     "runs/<name>/study.db, or runs/<name>/study.journal with workers > 1")
    workers: int = Field(1, description="processes on this machine that run trials at once")
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="stop unpromising trials early from their per-epoch validation score (torch models)")
    startup_trials: int = Field(5, ge=0, description="median: trials that finish before the pruner prunes")
    warmup_epochs: int = Field(5, ge=0, description="median: epochs of each trial that are never pruned (early epochs favour fast learners)")
    seed: int = Field(0, description="seed of the TPE sampler (worker k uses seed + k)")

    @field_validator("space", mode="before")
    @classmethod
    def _entries(cls, v):
        """One message per bad entry, naming its key (not pydantic's one per member of the union)."""
        from pydantic import ValidationError

        if not isinstance(v, dict):
            return v
        out = {}
        for key, entry in v.items():
            if isinstance(entry, dict):
                try:
                    entry = Range.model_validate(entry)
                except ValidationError as exc:
                    raise ValueError(f"{key}: " + "; ".join(
                        (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
                        for e in exc.errors())) from None
            elif isinstance(entry, (list, tuple)):
                if not entry:
                    raise ValueError(f"{key}: a list of choices needs at least one choice")
                entry = list(entry)
            elif not isinstance(entry, Range):
                raise ValueError(f"{key}: give a range {{low: .., high: .., log: true}} or a list of choices, got {entry!r}")
            out[key] = entry
        return out

    @field_validator("trials")
    @classmethod
    def _trials(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"trials (--trials) must be at least 1, got {v}")
        return v

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"workers (--workers) must be at least 1, got {v}")
        return v
