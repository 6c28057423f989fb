"""Read a data source into a DataFrame: CSV, Parquet, JSONL, an image folder, or bundled:NAME."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from forgeml.errors import DataError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TABLE_READERS = {
    ".csv": lambda p: pd.read_csv(p),
    ".tsv": lambda p: pd.read_csv(p, sep="\t"),
    ".parquet": lambda p: pd.read_parquet(p),
    ".pq": lambda p: pd.read_parquet(p),
    ".jsonl": lambda p: pd.read_json(p, lines=True),
    ".ndjson": lambda p: pd.read_json(p, lines=True),
}


def read_source(source: str) -> tuple[pd.DataFrame, str | None]:
    """Return the rows and, when the source implies one (bundled sets, image folders), the target column."""
    if source.startswith("bundled:"):
        from forgeml.data.bundled import load_bundled

        return load_bundled(source.split(":", 1)[1])
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data not found: {source}")
    if path.is_dir():
        return read_image_folder(path), "label"
    return anchor_image_paths(read_table(path), path.parent), None


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


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    reader = TABLE_READERS.get(suffix)
    if reader is None:
        raise DataError(
            f"unsupported data format {suffix or '(no extension)'} for {path}; "
            f"use one of {', '.join(sorted(TABLE_READERS))}, an image folder, or bundled:NAME"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    try:
        df = reader(path)
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
