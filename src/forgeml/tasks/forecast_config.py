"""The forecasting family's config: ``task: {name: forecasting, horizon: 12, ...}`` (the keys of forgeml.tasks.
forecasting's backtests, intervals and candidates)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class ForecastingConfig(BaseModel):
    """``task: {name: forecasting, horizon: 12, id_col: store, known: [price]}``"""

    model_config = ConfigDict(extra="forbid")
    horizon: Optional[int] = Field(None, description="points to forecast (default: one season, e.g. 12 for monthly)")
    id_col: Optional[str] = Field(None, description="the column naming each series of a long table (none: one series)")
    time_col: Optional[str] = Field(None, description="the time column (default: data.split.time_col, or a column named "
                                                      "time, ds, date, Month...)")
    season: Optional[int] = Field(None, ge=1, description="seasonal period (default: from the frequency: 12 monthly, "
                                                          "4 quarterly, 7 daily, 24 hourly, 48 half-hourly)")
    freq: Optional[str] = Field(None, description="pandas frequency (default: inferred), e.g. MS, QS, D, h, 30min")
    windows: int = Field(2, ge=1, description="backtest windows of horizon points, for validation and again for test")
    gaps: Literal["fill", "refuse"] = Field("fill", description="missing times inside a series: interpolate or refuse")
    known: list[str] = Field(default_factory=list, description="covariates known in the future (calendar, price, a "
                                                               "weather forecast); predict needs their future values")
    levels: list[int] = Field(default_factory=lambda: [80, 95], description="prediction interval levels, percent")
    intervals: Literal["auto", "quantile", "conformal"] = Field(
        "auto", description="for a model with its own quantiles (the networks'): its quantiles conformalized (quantile), "
                            "split conformal around its forecast (conformal), or whichever the validation windows "
                            "score better (auto); other models' intervals are split conformal")
    ensemble: int = Field(3, ge=0, description="model auto also tries the mean of this many best candidates (0: off)")
    slow_max_series: int = Field(20, ge=0, description="model auto leaves the slow learners (ARIMA) out on more series "
                                                       "than this, or on a season above 12")
    leaderboard: bool = Field(False, description="score every candidate on the test windows, not only the kept one")


def options(cfg) -> ForecastingConfig:
    """The run config's forecasting keys (the task section's extra keys), validated."""
    return ForecastingConfig.model_validate({k: v for k, v in dict(cfg.task.model_extra or {}).items()})
