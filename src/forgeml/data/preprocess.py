"""Feature preprocessing fitted on the training split and stored as plain JSON in the run's manifest.

``transform`` is vectorized numpy/pandas work (no per-row DataFrame code), so predicting and serving replay exactly
what training saw: numerics filled, clipped and scaled as data.clean says (forgeml.data.clean), categorical level
codes (0 = unknown, and missing unless data.clean.missing.categorical is most_frequent), token ids of normalized
text, and images resized and normalized per channel.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forgeml.data import images as img
from forgeml.data import text as txt
from forgeml.data.clean import apply_numeric, fit_numeric, numeric_width
from forgeml.data.schema import Feature, category_keys
from forgeml.errors import DataError

TEXT_SEPARATOR = " . "


class Preprocessor:
    def __init__(self, state: dict[str, Any]):
        self.state = state
        self._tokenizer = None

    # ----- fitting (training split only) -----
    @classmethod
    def fit(cls, df: pd.DataFrame, features: list[Feature], data_cfg, text_tokenizer: str = "words",
            clip_bounds=None) -> "Preprocessor":
        """``clip_bounds``: outlier quantiles already taken on the whole training split (before rows were dropped)."""
        by_type = {t: [f.name for f in features if f.type == t] for t in ("numeric", "categorical", "text", "image")}
        state: dict[str, Any] = {"features": [f.to_json() for f in features]}
        clean = data_cfg.clean
        if by_type["numeric"]:
            state["numeric"] = fit_numeric(numeric_frame(df, by_type["numeric"]), by_type["numeric"], clean, clip_bounds)
        if by_type["categorical"]:
            levels = []
            for name in by_type["categorical"]:
                counts = category_keys(df[name].dropna()).value_counts()
                levels.append(counts.index[: data_cfg.max_categories].tolist())
            state["categorical"] = {"columns": by_type["categorical"], "levels": levels,
                                    "missing": "most_frequent" if clean.missing.categorical == "most_frequent" else "unknown"}
        if by_type["text"]:
            normalize = {k: True for k, on in clean.text.model_dump().items() if on}
            texts = txt.normalize(joined_text(df, by_type["text"]), normalize)
            entry = {"columns": by_type["text"], "tokenizer": text_tokenizer, **({"normalize": normalize} if normalize else {})}
            if text_tokenizer == "words":
                entry["vocab"] = txt.fit_vocab(texts, data_cfg.text_vocab_size)
                entry["max_len"] = txt.length_for(texts, data_cfg.max_text_tokens)
            else:
                entry["max_len"] = data_cfg.max_text_tokens
            state["text"] = entry
        if by_type["image"]:
            name = by_type["image"][0]
            # a seeded sample across classes (an image folder lists its rows class by class)
            values = df[name].iloc[np.random.default_rng(0).permutation(len(df))[:2000]].tolist()
            mode, size = img.describe(values)
            mode = mode if data_cfg.image_mode == "auto" else data_cfg.image_mode
            size = tuple(data_cfg.image_size or img.auto_size(size))
            img.check_memory(len(df), 1 if mode == "L" else 3, size)
            scale = img.array_scale(values)
            sample = img.to_batch(values, mode, size, scale)
            std = sample.std(axis=(0, 2, 3))
            state["image"] = {
                "column": name,
                "mode": mode,
                "size": list(size),
                "array_scale": scale,
                "pixel_range": img.pixel_range(values),
                "mean": sample.mean(axis=(0, 2, 3)).tolist(),
                "std": np.where(std > 1e-12, std, 1.0).tolist(),
            }
        return cls(state)

    # ----- applying (train, val, test, predict, serve) -----
    @property
    def features(self) -> list[Feature]:
        return [Feature(**f) for f in self.state["features"]]

    def transform(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        missing = [f.name for f in self.features if f.name not in df.columns]
        if missing:
            raise DataError(f"input is missing feature columns {missing}; the model needs {[f.name for f in self.features]}")
        out: dict[str, np.ndarray] = {}
        if num := self.state.get("numeric"):
            out["numeric"] = apply_numeric(numeric_frame(df, num["columns"]), num)
        if cat := self.state.get("categorical"):
            codes = np.zeros((len(df), len(cat["columns"])), dtype=np.int64)
            for j, (name, levels) in enumerate(zip(cat["columns"], cat["levels"])):
                col = df[name]
                keys = category_keys(col)
                c = pd.Index(levels).get_indexer(keys).astype(np.int64) + 1  # -1 (unseen) -> 0
                missing = col.isna().to_numpy().copy()
                if cat.get("missing") == "most_frequent":  # levels are sorted by count: the mode is code 1
                    missing |= (keys == "").to_numpy()  # '' is how the ONNX graph is told "missing"
                    c[missing & (c == 0)] = 1 if levels else 0
                else:
                    c[missing] = 0
                codes[:, j] = c
            out["categorical"] = codes
        if tx := self.state.get("text"):
            if tx["tokenizer"] != "words":
                self._tokenizer = self._tokenizer or txt.minilm_tokenizer()
            out.update(txt.tokenize(joined_text(df, tx["columns"]), tx, self._tokenizer))
        if im := self.state.get("image"):
            batch = img.to_batch(df[im["column"]].tolist(), im["mode"], tuple(im["size"]), im.get("array_scale", 1.0))
            mean = np.asarray(im["mean"], dtype=np.float32)[None, :, None, None]
            std = np.asarray(im["std"], dtype=np.float32)[None, :, None, None]
            out["image"] = (batch - mean) / std
        return out

    def input_shapes(self) -> dict[str, Any]:
        """What a model built on this preprocessing receives (sizes of each input group)."""
        s = self.state
        return {
            "numeric": numeric_width(s["numeric"]) if "numeric" in s else 0,
            "categorical": [len(levels) + 1 for levels in s["categorical"]["levels"]] if "categorical" in s else [],
            "text_vocab": len(s["text"].get("vocab", [])) + 2 if "text" in s else 0,
            "text_tokenizer": s["text"]["tokenizer"] if "text" in s else None,
            "image": [len(s["image"]["mean"]), *s["image"]["size"]] if "image" in s else None,
        }


def numeric_frame(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    block = df[columns]
    converted = block.apply(pd.to_numeric, errors="coerce")
    bad = converted.isna() & block.notna()
    if bad.to_numpy().any():
        col = bad.any(axis=0).idxmax()
        row = bad[col].idxmax()
        raise DataError(f"column {col!r} must be numeric, but row {row} holds {block.at[row, col]!r}")
    return converted.to_numpy(dtype=np.float32, na_value=np.nan)


def joined_text(df: pd.DataFrame, columns: list[str]) -> list[str]:
    parts = df[columns].fillna("").astype(str)
    joined = parts.iloc[:, 0] if len(columns) == 1 else parts.agg(TEXT_SEPARATOR.join, axis=1)
    return joined.tolist()
