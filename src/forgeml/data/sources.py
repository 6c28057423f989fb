"""Read a data source into a DataFrame: CSV, Parquet, JSONL, an image folder, or bundled:NAME.

Delimited text is sniffed (forgeml.data.sniff: encoding, delimiter, decimal mark) and read as text, then its cells
are parsed (forgeml.data.values: missing tokens, numbers as people write them, zero-padded codes). What was chosen
is in ``df.attrs["reading"]``: {"file": {sep, encoding, decimal}, "columns": {column: note}}."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from forgeml.errors import DataError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
DELIMITED = {".csv": ",", ".tsv": "\t"}  # delimited text and its default delimiter (sniffed unless given)
TABLE_READERS = {
    ".csv": None,
    ".tsv": None,
    ".parquet": lambda p: pd.read_parquet(p),
    ".pq": lambda p: pd.read_parquet(p),
    ".jsonl": lambda p: pd.read_json(p, lines=True),
    ".ndjson": lambda p: pd.read_json(p, lines=True),
}


def read_source(source: str, sep: str | None = None, encoding: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """Return the rows and, when the source implies one (bundled sets, image folders), the target column.
    ``sep``/``encoding`` (data.sep, data.encoding; None or "auto": detected) apply to CSV/TSV files."""
    if source.startswith("bundled:"):
        from forgeml.data.bundled import load_bundled

        return load_bundled(source.split(":", 1)[1])
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data not found: {source}")
    if path.is_dir():
        return read_image_folder(path), "label"
    return anchor_image_paths(read_table(path, sep, encoding), path.parent), None


def anchor_image_paths(df: pd.DataFrame, base: Path) -> pd.DataFrame:
    """Relative image paths in a table are relative to the table's folder (not to where forgeml runs)."""
    for name in df.columns:
        col = df[name]
        if col.dtype != object and not pd.api.types.is_string_dtype(col):
            continue
        values = col.dropna().astype(str)
        if values.empty or values.str.lower().str.endswith(tuple(IMAGE_EXTS)).mean() <= 0.9:
            continue
        relative = col.notna() & ~col.astype(str).map(lambda p: Path(p).is_absolute())
        df.loc[relative, name] = col[relative].map(lambda p: str(base / p))
    return df


def read_delimited(path: Path, sep: str | None, encoding: str | None) -> pd.DataFrame:
    """CSV/TSV read as text (sniffed unless given), then its cells parsed (forgeml.data.values)."""
    from forgeml.data import sniff, values

    try:
        sep, given = sniff.separator(sep), sniff.encoding_name(encoding)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    how = sniff.sniff(path, sep, given, DELIMITED[path.suffix.lower()])
    tried = [how["encoding"]] + ([] if given else [e for e in ("cp1252", "latin-1") if e != how["encoding"]])
    for i, enc in enumerate(tried):
        try:
            df = pd.read_csv(path, sep=how["sep"], encoding=enc, dtype=str, keep_default_na=False, na_filter=False)
            how["encoding"] = enc
            break
        except UnicodeError as exc:  # a byte further on that the sniffed encoding cannot decode
            if i == len(tried) - 1:
                raise sniff.decode_error(path, enc, exc) from None
    df, notes = values.parse_table(df, how["decimal"])
    df.attrs["reading"] = {"file": how, "columns": notes}
    return df


def read_table(path: Path, sep: str | None = None, encoding: str | None = None) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in TABLE_READERS:
        raise DataError(
            f"unsupported data format {suffix or '(no extension)'} for {path}; "
            f"use one of {', '.join(sorted(TABLE_READERS))}, an image folder, or bundled:NAME"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    try:
        df = read_delimited(path, sep, encoding) if suffix in DELIMITED else TABLE_READERS[suffix](path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"could not read {path} as {suffix[1:]}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # pyarrow raises its own types for corrupt parquet
        if type(exc).__module__.startswith("pyarrow"):
            raise DataError(f"could not read {path} as parquet: {exc}") from None
        raise
    if len(df) == 0:
        raise DataError(f"{path} has a header but no rows")
    df.columns = [str(c) for c in df.columns]
    if suffix not in DELIMITED and not suffix.endswith(("parquet", "pq")):  # JSONL: its string columns
        from forgeml.data.values import parse_table

        df, notes = parse_table(df)
        df.attrs["reading"] = {"columns": notes}
    return df


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def read_image_folder(folder: Path) -> pd.DataFrame:
    """One sub-folder per class: rows of (image path, label = sub-folder name)."""
    paths = list_images(folder)
    if not paths:
        raise DataError(f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_EXTS))} files)")
    labels = [p.parent.name if p.parent != folder else None for p in paths]
    if any(label is None for label in labels):
        loose = next(p for p, lab in zip(paths, labels) if lab is None)
        raise DataError(
            f"{folder} must hold one sub-folder per class with the images inside; found a loose image: {loose.name}"
        )
    return pd.DataFrame({"image": [str(p) for p in paths], "label": labels})
