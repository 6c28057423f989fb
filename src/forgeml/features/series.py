"""Time series as forecasting reads them: a long table (``id, time, value[, covariates]``) or one series (a time
column and a value column) becomes a ``Panel``: one regular series per id, on one inferred frequency, with its
seasonal period.

What a user's file really holds is handled here, once:
- times as dates or date-times, as R's ``ts`` exports them (decimal years: 1949.083333 is February 1949), as whole
  years, or as tsibble's ``1939 Jan`` / ``2014 Q1``;
- the frequency (half-hourly ... yearly) inferred from the steps; the seasonal period from it (overridable);
- missing values at a series' start or end trimmed (a series that starts later); gaps inside a series found, and
  filled by linear interpolation or refused with a message naming the series and the first missing time;
- duplicated or unparseable times refused, naming the series and the time;
- covariates: ``known`` columns (known in the future: calendar, price, a temperature forecast), columns constant
  within each series (static: a region, a title), and the other numeric columns (past-only: known up to the origin).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd

from forgeml.errors import ConfigError, DataError

Say = Callable[[str], None]

# seasonal period by frequency (the pandas offset's base name): a day of half-hours, a week of days, a year of months...
SEASON = {"min": 1, "30min": 48, "15min": 96, "h": 24, "D": 7, "B": 5, "W": 52, "MS": 12, "ME": 12, "QS": 4, "QE": 4,
          "YS": 1, "YE": 1}
# what --horizon defaults to: one seasonal cycle, or a sensible reach for the yearly/unseasonal
DEFAULT_HORIZON = {"30min": 48, "15min": 96, "h": 24, "D": 14, "B": 10, "W": 13, "MS": 12, "ME": 12, "QS": 8, "QE": 8,
                   "YS": 6, "YE": 6}
TIME_NAMES = ("time", "ds", "date", "Date", "datetime", "timestamp", "Month", "Quarter", "Year", "Week", "index")


@dataclass
class Series:
    id: str
    times: pd.DatetimeIndex
    values: np.ndarray  # float64, no gaps
    covariates: Optional[pd.DataFrame] = None  # known and past columns, one row per time (float)
    static: dict = field(default_factory=dict)
    filled: int = 0  # gaps filled by interpolation


@dataclass
class Panel:
    series: list[Series]
    freq: str
    season: int
    known: list[str] = field(default_factory=list)
    past: list[str] = field(default_factory=list)
    static: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.series]


def base_freq(freq: str) -> str:
    """'30min' stays, '2h' -> 'h', 'W-SUN' -> 'W', 'MS' stays: the key of SEASON / DEFAULT_HORIZON."""
    offset = pd.tseries.frequencies.to_offset(freq)
    for name in (offset.freqstr, offset.name):  # '30min' (a multiple with its own season) before 'min'
        if name in SEASON:
            return name
    name = offset.name
    stripped = name.lstrip("0123456789").split("-")[0]
    return stripped if stripped in SEASON else name


def season_for(freq: str) -> int:
    """A day of steps below daily (48 half-hours, 12 two-hour steps), else by the frequency's name."""
    offset = pd.tseries.frequencies.to_offset(freq)
    day = pd.Timedelta(days=1).value
    if isinstance(offset, pd.offsets.Tick) and 0 < offset.nanos < day and day % offset.nanos == 0:
        return day // offset.nanos
    return SEASON.get(base_freq(freq), 1)


def default_horizon(freq: str) -> int:
    return DEFAULT_HORIZON.get(base_freq(freq), 12)


def time_column(df: pd.DataFrame, given: Optional[str], exclude: set) -> str:
    """The time column: the one given, else a column with a usual name, else the only column left besides the value."""
    if given is not None:
        if given not in df.columns:
            raise DataError(f"time column {given!r} not found; available columns: {list(df.columns)}")
        return given
    for name in TIME_NAMES:
        if name in df.columns and name not in exclude:
            return name
    rest = [c for c in df.columns if c not in exclude and c != "rownames"]
    if len(rest) == 1:
        return rest[0]
    raise ConfigError(f"which column holds the time? give it with --time-col (columns: {list(df.columns)})")


def parse_times(col: pd.Series) -> tuple[pd.Series, Optional[str]]:
    """A time column -> datetimes, and the frequency when the format says it (decimal years: R's ts export)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return pd.to_datetime(col), None
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        values = col.astype(float)
        if values.dropna().between(1000, 3000).all():
            frac = (values - np.floor(values)).round(6)
            for per_year, freq in ((1, "YS"), (4, "QS"), (12, "MS")):
                months = (frac * 12).round(6)
                if np.allclose(months, np.round(months), atol=1e-3) and set(np.round(frac * per_year, 3) % 1) <= {0.0}:
                    month = np.round(frac * 12).astype(int) + 1
                    stamps = pd.to_datetime(pd.DataFrame({"year": np.floor(values).astype(int), "month": month, "day": 1}))
                    return stamps, freq
        raise DataError(f"time column {col.name!r} holds numbers that are not years or R-style decimal years "
                        f"(e.g. {col.iloc[0]!r}); give dates (2020-01-31) or decimal years (1949.083333)")
    text = col.astype(str).str.strip()
    for pattern, freq, parse in ((r"^\d{4} ?Q[1-4]$", "QS", lambda s: pd.PeriodIndex(s.str.replace(" ", ""), freq="Q")),
                                 (r"^\d{4} [A-Za-z]{3}$", "MS", lambda s: pd.to_datetime(s, format="%Y %b")),
                                 (r"^\d{4} ?W\d{2}$", "W", lambda s: pd.to_datetime(s.str.replace(" ", "") + "-1", format="%GW%V-%u"))):
        if text.str.match(pattern).all():
            parsed = parse(text)
            stamps = parsed.to_timestamp() if isinstance(parsed, pd.PeriodIndex) else parsed
            return pd.Series(stamps, index=col.index), freq if freq != "W" else "W-MON"
    zoned = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$")  # an offset or Z at the end: a time zone
    if zoned.any() and not zoned.all():
        raise DataError(f"time column {col.name!r} mixes times with a time zone ({text[zoned].iloc[0]!r}) and without "
                        f"one ({text[~zoned].iloc[0]!r}); give every time in one form")
    stamps = pd.to_datetime(text, errors="coerce", format="mixed", utc=bool(zoned.all()))  # zoned: read in UTC
    bad = stamps.isna()
    if bad.any():
        raise DataError(f"time column {col.name!r}: {int(bad.sum())} value(s) are not times, e.g. {text[bad].iloc[0]!r} "
                        f"(row {int(np.flatnonzero(bad.to_numpy())[0]) + 1})")
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    return stamps, None


def infer_freq(groups: list[pd.DatetimeIndex]) -> str:
    """The frequency of the series: pandas' inference on the longest series without gaps, else from the most common
    step (a series with gaps)."""
    for idx in sorted(groups, key=len, reverse=True)[:5]:
        if len(idx) >= 3:
            found = pd.infer_freq(idx)
            if found:
                return found
    steps = pd.Series(np.concatenate([np.diff(idx.as_unit("ns").asi8) for idx in groups if len(idx) > 1]))  # Timedelta reads ns
    if steps.empty:
        raise DataError("every series has fewer than 2 times: no frequency to infer; give it with --set task.freq=MS")
    step = pd.Timedelta(int(steps.mode().iloc[0]))
    days = step / pd.Timedelta(days=1)
    first = max(groups, key=len)
    if days == 1:
        return "D"  # not "24h"
    if days < 1:
        return pd.tseries.frequencies.to_offset(step).freqstr
    for lo, hi, start, end in ((28, 31, "MS", "ME"), (89, 92, "QS", "QE"), (365, 366, "YS", "YE")):
        if lo <= days <= hi:
            return start if (first.day == 1).all() else end
    if days == 7:
        return "W-" + first[0].day_name()[:3].upper()
    return pd.tseries.frequencies.to_offset(step).freqstr


def read_panel(df: pd.DataFrame, target: str, time_col: Optional[str], id_col: Optional[str], known: list[str],
               freq: Optional[str], season: Optional[int], gaps: str, say: Say = lambda m: None) -> tuple[Panel, str]:
    """The rows -> a Panel (and the time column's name). Every problem is one DataError naming the series."""
    if target not in df.columns:
        raise DataError(f"target column {target!r} not found; available columns: {list(df.columns)}")
    if id_col is not None and id_col not in df.columns:
        raise DataError(f"id column {id_col!r} not found; available columns: {list(df.columns)}")
    time_col = time_column(df, time_col, {target, id_col})
    missing_known = [c for c in known if c not in df.columns]
    if missing_known:
        raise DataError(f"known covariate(s) {missing_known} not found; available columns: {list(df.columns)}")
    values = pd.to_numeric(df[target], errors="coerce")
    bad = values.isna() & df[target].notna()
    if bad.any():
        raise DataError(f"target column {target!r} is not numeric: e.g. {df[target][bad].iloc[0]!r} "
                        f"(row {int(np.flatnonzero(bad.to_numpy())[0]) + 1})")
    stamps, implied = parse_times(df[time_col])
    ids = df[id_col].astype(str) if id_col else pd.Series("series", index=df.index)
    frame = pd.DataFrame({"id": ids.to_numpy(), "time": stamps.to_numpy(), "y": values.to_numpy()})
    dup = frame.duplicated(["id", "time"], keep=False)
    if dup.any():
        first = frame[dup].iloc[0]
        raise DataError(f"series {first['id']!r} has the time {first['time']} more than once ({int(dup.sum())} rows "
                        f"share a time with another row of their series); one value per series and time")
    others = [c for c in df.columns if c not in {target, time_col, id_col, "rownames"}]
    for c in others:
        frame[c] = df[c].to_numpy()
    frame = frame.sort_values(["id", "time"], kind="stable")
    static = [c for c in others if c not in known and frame.groupby("id", sort=False)[c].nunique(dropna=False).max() <= 1]
    past = [c for c in others if c not in known and c not in static and pd.api.types.is_numeric_dtype(frame[c])]
    text_cov = [c for c in known if not pd.api.types.is_numeric_dtype(frame[c])]
    if text_cov:
        raise DataError(f"known covariate(s) {text_cov} are not numeric; encode them as numbers (e.g. 0/1 for a holiday)")
    left_out = [c for c in others if c not in known + static + past]
    if left_out:
        say(f"[dim]forecasting: column(s) {left_out} vary within a series and are not numeric: left out[/]")

    groups = {k: g for k, g in frame.groupby("id", sort=False)}
    trimmed = {}
    for k, g in groups.items():  # a series that starts late or ends early (missing values there) is cut to its span
        present = np.flatnonzero(g["y"].notna().to_numpy())
        if len(present) == 0:
            raise DataError(f"series {k!r} has no values in {target!r}")
        trimmed[k] = g.iloc[present[0]:present[-1] + 1]
    freq = freq or implied or infer_freq([pd.DatetimeIndex(g["time"]) for g in trimmed.values()])
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError as exc:
        raise ConfigError(f"task.freq {freq!r} is not a pandas frequency (e.g. 30min, h, D, W, MS, QS, YS)") from exc
    season = season or season_for(freq)
    series, filled_total = [], 0
    for k, g in trimmed.items():
        times = pd.DatetimeIndex(g["time"])
        full = pd.date_range(times[0], times[-1], freq=offset)
        off_grid = times.difference(full)
        if len(off_grid):
            raise DataError(f"series {k!r}: the time {off_grid[0]} is not on the {freq} grid that starts at {times[0]} "
                            f"(times must be regular; give the frequency with --set task.freq=... if it was inferred wrongly)")
        g = g.set_index("time").reindex(full)
        y = g["y"].astype(float)
        holes = int(y.isna().sum())
        if holes:
            if gaps == "refuse":
                raise DataError(f"series {k!r} has {holes} missing time(s) or value(s), the first at "
                                f"{y.index[y.isna().to_numpy()][0]}; fill them, or let forecasting interpolate them "
                                "(task.gaps: fill)")
            y = y.interpolate(limit_direction="both")
            filled_total += holes
        cov = None
        if known or past:
            cov = g[known + past].apply(pd.to_numeric, errors="coerce").astype(float).interpolate(limit_direction="both")
        series.append(Series(str(k), full, y.to_numpy(dtype=np.float64), cov,
                             {c: g[c].dropna().iloc[0] if g[c].notna().any() else None for c in static}, holes))
    if filled_total:
        worst = max(series, key=lambda s: s.filled)
        say(f"[yellow]forecasting: {filled_total} missing point(s) inside series filled by linear interpolation "
            f"(most in {worst.id!r}: {worst.filled}); task.gaps: refuse stops instead[/]")
    return Panel(series, offset.freqstr, int(season), list(known), past, static), time_col


def future_times(last: pd.Timestamp, freq: str, horizon: int) -> pd.DatetimeIndex:
    return pd.date_range(last, periods=horizon + 1, freq=freq)[1:]


def calendar_columns(freq: str) -> list[str]:
    """The names of calendar()'s columns at this frequency, in its order."""
    b = base_freq(freq)
    cols = ["month (1-12)"] if b not in ("YS", "YE") else ["zero (always 0 at a yearly frequency)"]
    if b in ("D", "B", "h", "30min", "15min", "min"):
        cols += ["day_of_week (0 = Monday)", "day_of_year (1-366)"]
    if b in ("h", "30min", "15min", "min"):
        cols.append("minute_of_day (hour * 60 + minute)")
    if b == "W":
        cols.append("iso_week (1-53)")
    return cols


def calendar(times: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """Calendar features a global model reads at each target time: the parts that vary at this frequency (named by
    calendar_columns)."""
    b = base_freq(freq)
    cols = [times.month.to_numpy()] if b not in ("YS", "YE") else [np.zeros(len(times))]
    if b in ("D", "B", "h", "30min", "15min", "min"):
        cols += [times.day_of_week.to_numpy(), times.day_of_year.to_numpy()]
    if b in ("h", "30min", "15min", "min"):
        cols.append((times.hour * 60 + times.minute).to_numpy())
    if b == "W":
        cols.append(times.isocalendar().week.to_numpy(dtype=np.int64))
    return np.stack(cols, axis=1).astype(np.float32)
