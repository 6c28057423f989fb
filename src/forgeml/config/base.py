"""The base of every config section: unknown keys are errors, assignments are validated."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

FeatureType = Literal["numeric", "categorical", "text", "image", "datetime", "ignore"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


