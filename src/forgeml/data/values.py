"""Cell values of a table read as text (CSV/TSV, string columns of JSONL): missing tokens, booleans, numbers as
people write them ("$215,000", "1.234,5", "45%"), and zero-padded codes that must stay strings.

``parse_table(df, decimal)`` converts each all-string column and returns, per column whose reading was not obvious,
a note saying what was chosen and why (printed after reading and stored in the run)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

# cells that mean "missing" (compared after stripping white space): pandas' defaults plus the usual export tokens;
# lower-case "none" and "na" stay values (a category called "none" is common)
MISSING_TOKENS = frozenset({
    "", "NA", "N/A", "n/a", "#N/A", "#N/A N/A", "#NA", "<NA>", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "Null",
    "None", "?", "-", "--", "1.#IND", "-1.#IND", "1.#QNAN", "-1.#QNAN", "NaT"})
OBVIOUS_MISSING = frozenset({"", "NA", "NaN", "nan"})  # what no one needs to be told about
NUMERIC_SHARE = 0.95  # a column is numeric when this share of its non-missing cells parse as numbers
CURRENCY = "$€£¥₹"
TRUE, FALSE = {"true", "True", "TRUE"}, {"false", "False", "FALSE"}


def missing_mask(text: pd.Series) -> pd.Series:
    return text.isna() | text.str.strip().isin(MISSING_TOKENS)


def number_pattern(decimal: str) -> re.Pattern:
    """A number with optional thousands separators (',' or '.' opposite the decimal mark, or spaces) and decimals."""
    thousands = "," if decimal == "." else "."
    t, d = re.escape(thousands), re.escape(decimal)
    return re.compile(rf"[+-]?(?:\d{{1,3}}(?:(?:{t}|[ \u00a0\u202f])\d{{3}})+|\d+)(?:{d}\d*)?(?:[eE][+-]?\d+)?|[+-]?{d}\d+")


def written_numbers(values: pd.Series, decimal: str) -> tuple[pd.Series, dict[str, int]]:
    """Strings -> floats (NaN where a cell is not a number as people write it), and how many cells had each of:
    currency symbols, thousands separators, percent signs."""
    text = values.str.strip()
    currency = text.str.contains(f"[{CURRENCY}]", regex=True)
    percent = text.str.endswith("%")
    core = text.str.replace(f"[{CURRENCY}%]", "", regex=True).str.strip()
    core = core.str.replace(r"^([+-])\s+", r"\1", regex=True)  # "- 5" / "$ -5" after the symbol went
    ok = core.str.fullmatch(number_pattern(decimal).pattern)
    thousands = "," if decimal == "." else "."
    grouped = ok & core.str.contains(rf"\d[{re.escape(thousands)} \u00a0\u202f]\d{{3}}", regex=True)
    plain = core.where(ok).str.replace(rf"[{re.escape(thousands)} \u00a0\u202f]", "", regex=True)
    if decimal != ".":
        plain = plain.str.replace(decimal, ".", regex=False)
    numbers = pd.to_numeric(plain, errors="coerce")
    used = {"currency symbols": int((currency & ok).sum()), "thousands separators": int(grouped.sum()),
            "percent signs": int((percent & ok).sum())}
    return numbers, used


def zero_padded(values: pd.Series) -> bool:
    """Digit strings with leading zeros on most values, or of one fixed width with some (zip codes, account codes):
    codes, not quantities."""
    if not values.str.fullmatch(r"\d{2,}").all():
        return False
    padded = values.str.startswith("0")
    return bool(padded.mean() >= 0.5 or (padded.any() and values.str.len().nunique() == 1))


def parse_column(col: pd.Series, decimal: str = ".") -> tuple[pd.Series, str | None]:
    """An all-string column (missing as NaN or a token) -> its values converted, and a note when the choice was not
    obvious (None otherwise)."""
    missing = missing_mask(col)
    tokens = sorted(set(col[missing].dropna().str.strip()) - OBVIOUS_MISSING)
    values = col[~missing].str.strip()
    out = col.where(~missing, np.nan)
    if values.empty:
        return out, None
    if values.isin(TRUE | FALSE).all():  # as pandas reads booleans
        flags = values.isin(TRUE)
        if not missing.any():
            return flags, None
        out = out.astype(object)
        out[~missing] = flags
        return out, None
    if decimal == ".":
        plain = pd.to_numeric(values, errors="coerce")
    else:
        plain = values.where(values.str.fullmatch(rf"[+-]?\d+(?:{re.escape(decimal)}\d+)?"))
        plain = pd.to_numeric(plain.str.replace(decimal, ".", regex=False), errors="coerce")
    said = f"; {', '.join(repr(t) for t in tokens[:4])} read as missing" if tokens else ""
    if plain.notna().all():
        if zero_padded(values):
            return out, f"zero-padded codes (e.g. {values.iloc[0]!r}), kept as text{said}"
        numbers = pd.to_numeric(values, errors="coerce") if decimal == "." else plain
        converted = numbers.reindex(col.index)
        if not missing.any() and pd.api.types.is_integer_dtype(numbers):
            converted = converted.astype(numbers.dtype)
        note = ("numbers with decimal commas" if decimal != "." and values.str.contains(re.escape(decimal)).any() else
                None)
        if said:
            note = f"{note or 'numbers'}{said}"
        return converted, note
    written, used = written_numbers(values, decimal)
    numbers = plain.fillna(written)
    share = float(numbers.notna().mean())
    if share < NUMERIC_SHARE:
        return out, None
    how = [name if name != "percent signs" else "percent signs (45% -> 45)" for name, n in used.items() if n]
    junk = values[numbers.isna()]
    parts = [f"numbers with {'/'.join(how)}" if how else "numbers"]
    if len(junk):
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(junk))[:3])
        parts.append(f"{len(junk)} cell{'s that are not numbers' if len(junk) > 1 else ' that is not a number'} ({examples}) "
                     "read as missing")
    return numbers.reindex(col.index).astype(float), "; ".join(parts) + said


def is_text_column(col: pd.Series) -> bool:
    """Every non-missing cell is a string (a CSV column read as text, a JSONL column of strings)."""
    if col.dtype != object and not pd.api.types.is_string_dtype(col):
        return False
    return bool(col.dropna().map(lambda v: isinstance(v, str)).all())


def parse_table(df: pd.DataFrame, decimal: str = ".") -> tuple[pd.DataFrame, dict[str, str]]:
    """Convert every all-string column (parse_column); returns the table and the notes per column."""
    notes: dict[str, str] = {}
    columns = {}
    for name in df.columns:
        col = df[name]
        if is_text_column(col):
            col, note = parse_column(col.astype(object), decimal)
            if note:
                notes[name] = note
        columns[name] = col
    return pd.DataFrame(columns, index=df.index), notes
