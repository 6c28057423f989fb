"""What ``forgeml serve`` answers for a forecasting run: ``POST /v1/models/NAME/forecast`` with a history, the next
``horizon`` points of each of its series with their intervals, grouped by series.

The request is the history as rows, the columns the training data had (``{"history": [{"date": "2024-01-01",
"sales": 12.5, "store": "s1"}, ...]}``); rows after a series' last value, with the target null, carry the known
covariates' future values, exactly as ``forgeml predict`` reads a history file (forgeml.tasks.forecast_run). The
run's own models answer (ETS, Theta and ARIMA re-run their smoothing over the posted history), so a served forecast
is the same as ``forgeml predict``'s for the same rows.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forgeml.errors import DataError, ForgeMLError

MAX_EXAMPLE_ROWS = 400
RECENT_POINTS = 200  # the end of each series' history in the response, as forgeml read it (for a plot)


def answer(model, body) -> dict:
    """The response to a forecast request; DataError (the server's 422) for anything it cannot forecast from."""
    shape = '{"history": [{column: value, ...}, ...]}'
    if not isinstance(body, dict) or set(body) != {"history"} or not isinstance(body["history"], list):
        raise DataError(f"the body must be an object {shape}: the rows of the series, with the columns the training "
                        f"data had ({', '.join(columns(model))})")
    rows = body["history"]
    if not rows:
        raise DataError("'history' is empty: send the recent rows of each series to forecast")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)
                or any(isinstance(v, (dict, list)) for v in r.values())), None)
    if bad is not None:
        raise DataError(f"history[{bad}] must be an object of column -> a single value (a number, a string or null)")
    try:
        panel, future = model.read_history(pd.DataFrame(rows))
        table = model.forecast_panel(panel, future)
    except (TypeError, ValueError, OverflowError) as exc:  # values pandas cannot read as times or numbers
        raise DataError(f"cannot read the history: {exc}") from None
    s = model.state
    id_name, time_col = s.get("id_col") or "series", s["time_col"]
    bands = [c for c in table.columns if c.startswith(("lo_", "hi_"))]
    out, by_id = [], {ser.id: ser for ser in panel.series}
    for sid, g in table.groupby(id_name, sort=False):
        item = {"series": str(sid), "times": [t.isoformat() for t in pd.DatetimeIndex(g[time_col])]}
        for col in ["forecast", *bands]:
            values = g[col].to_numpy(dtype=float)
            if not np.isfinite(values).all():
                raise DataError(f"series {sid!r}: the forecast is not a finite number; its history is too far outside "
                                "what the run was trained on")
            item[col] = [float(v) for v in values]
        past = by_id[str(sid)]
        shown = -min(len(past.values), RECENT_POINTS)
        item["recent"] = {"times": [t.isoformat() for t in past.times[shown:]],
                          "values": [float(v) for v in past.values[shown:]]}
        out.append(item)
    return {"horizon": model.horizon, "levels": list(s.get("levels", [])), "forecasts": out}


def request_fields(s: dict) -> list[dict]:
    """The columns of one row of history (forecasting's serve route and predict take rows like the training data)."""
    fields = [(s.get("id_col"), {"type": ["string", "integer"]}, "the series the row belongs to"),
              (s["time_col"], {"type": ["string", "number"]}, "the time: a date, '1949 Jan', '2014 Q1' or R's decimal year"),
              (s["target"], {"type": ["number", "null"]}, "the value; null on the rows after a series' end that "
               "carry the known covariates' future values")]
    fields += [(c, {"type": ["number", "null"]}, "a covariate known in advance (needed for the horizon too)")
               for c in s.get("known", [])]
    fields += [(c, {"type": ["number", "null"]}, "a covariate known up to now") for c in s.get("past", [])]
    fields += [(c, {"type": ["string", "number", "null"]}, "a property of the series") for c in s.get("static", [])]
    return [{"name": c, "type": "series", "schema": schema, "description": what} for c, schema, what in fields if c]


def columns(model) -> list[str]:
    return [f["name"] for f in request_fields(model.state)]


def example(model) -> list[dict] | None:
    """A history to try the route with: the end of the first series of the run's own data (with the last ``horizon``
    targets emptied when the run has known covariates, whose future values those rows then carry); None when the
    data cannot be read where the run says it is."""
    s = model.state
    try:
        df = model.frame(model.config().data.source)
    except (OSError, ValueError, ForgeMLError):  # moved, deleted or unreadable: the page then starts from an empty history
        return None
    cols = [c for c in columns(model) if c in df.columns]
    if s.get("id_col") and s["id_col"] in df.columns:
        df = df[df[s["id_col"]].astype(str) == df[s["id_col"]].astype(str).iloc[0]]
    h = model.horizon
    keep = min(MAX_EXAMPLE_ROWS, max(4 * s["season"], 3 * h, 24) + (h if s.get("known") else 0))
    rows = df[cols].tail(keep).astype(object)
    if s.get("known"):
        rows.iloc[-h:, cols.index(s["target"])] = None
    return [{k: _json_value(v) for k, v in r.items()} for r in rows.to_dict(orient="records")]


def _json_value(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    if isinstance(v, np.generic):
        v = v.item()
        return None if isinstance(v, float) and not math.isfinite(v) else v
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def schemas(model) -> tuple[dict, dict]:
    """The JSON schemas of the request and the response (for /docs)."""
    row = {"type": "object", "title": "one row of history",
           "properties": {f["name"]: {**f["schema"], "description": f.get("description", "")}
                          for f in model.task.request_fields()}}
    request = {"type": "object", "title": "a history to forecast from", "required": ["history"],
               "additionalProperties": False,
               "properties": {"history": {"type": "array", "minItems": 1, "items": row,
                                          "description": "the recent rows of each series, oldest first or not"}}}
    series = {"type": "object", "properties": {"series": {"type": "string"},
                                               "times": {"type": "array", "items": {"type": "string"}},
                                               **model.task.response_fields()}}
    response = {"type": "object", "title": "the forecasts",
                "properties": {"model": {"type": "string"}, "version": {"type": "string"},
                               "horizon": {"type": "integer"}, "levels": {"type": "array", "items": {"type": "integer"}},
                               "forecasts": {"type": "array", "items": series}}}
    return request, response
