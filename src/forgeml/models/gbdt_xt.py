"""A second LightGBM configuration for ensembles: extremely randomized split thresholds and a column sample per tree.

Its trees err differently from plain LightGBM's, which is what an ensemble gains from (AutoGluon's ``LightGBMXT``
plays the same part). Trained, saved, exported and served exactly as ``lightgbm`` (forgeml.models.gbdt)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from forgeml.models import LEARNERS
from forgeml.models.gbdt import LightGBM, LightGBMParams


class LightGBMXTParams(LightGBMParams):
    """Tables: LightGBM with extremely randomized trees (random thresholds, 80% of the columns per tree)."""

    name: Literal["lightgbm_xt"] = "lightgbm_xt"
    extra_trees: bool = Field(True, description="random split thresholds (extremely randomized trees)")
    feature_fraction: float = Field(0.8, gt=0, le=1, description="fraction of the columns each tree may split on")


@LEARNERS.register("lightgbm_xt", tags={"trees", "sample_weights", "own_files", "ensemble_member", "reports_rounds"},
                   accepts={"numeric", "categorical", "datetime"})
class LightGBMXT(LightGBM):
    Params = LightGBMXTParams
