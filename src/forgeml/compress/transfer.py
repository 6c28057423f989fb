"""The distillation transfer set beyond the training rows, each row labelled by the teacher (Tang et al. 2019):
perturbed copies of the training texts (``--augment N``) and unlabelled in-domain rows from a file (``--transfer
FILE``: the teacher's inputs, no label needed). Rows without a label carry NaN as their hard label; the distillation
loss learns only the teacher's targets on them."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pandas as pd

from forgeml.errors import DataError


def read_transfer(model, path: str, features) -> pd.DataFrame:
    """The rows of ``--transfer FILE``, read as predict reads a file; refused before any work when the teacher could
    not read them."""
    extra = model.frame(path)
    if len(extra) == 0:
        raise DataError(f"--transfer {path}: the file has no rows; give in-domain rows for the teacher to label")
    missing = [f.name for f in features if f.name not in extra.columns]
    if missing:
        raise DataError(f"--transfer {path}: the teacher reads the column(s) {', '.join(missing)}, which the file "
                        f"lacks (it has: {', '.join(map(str, extra.columns[:12]))})")
    return extra


UNREADABLE = 0.5  # a transfer set with more of its words outside the student's vocabulary than this is refused


def check_student_reads(unlabelled: pd.DataFrame, splits, student, data_cfg, path: str) -> None:
    """Refuse, before the teacher labels anything, a transfer file whose texts the student cannot represent: a
    student that reads words (its vocabulary fitted on the training texts) sees a word it never met as [UNK], so
    the teacher's labels on texts made mostly of such words teach it nothing it can read. A student with a
    pretrained tokenizer (``text:embeddings=minilm``) reads any text: nothing to check."""
    from forgeml.data import text as txt
    from forgeml.features.preprocess import Preprocessor
    from forgeml.models import get_model

    spec = get_model(student.name)
    if getattr(spec, "tokenizer_for", lambda params: "words")(student) != "words":
        return
    from forgeml.compress.run import text_columns

    names = set(text_columns(splits.features))
    texts = [f for f in splits.features if f.name in names]
    if not texts:
        return
    pre = Preprocessor.fit(splits.raw["train"], texts, data_cfg, text_tokenizer="words")

    def unknown(rows: pd.DataFrame) -> float:
        tokens = pre.transform(rows)["tokens"]
        words = tokens != txt.PAD
        return float((tokens[words] == txt.UNK).mean()) if words.any() else 0.0

    share = unknown(unlabelled)
    if share > UNREADABLE:
        raise DataError(
            f"--transfer {path}: {share:.0%} of its words are outside the vocabulary the {student.name!r} student reads "
            f"(fitted on the {len(splits.raw['train'])} training texts, which have {unknown(splits.raw['train']):.0%} "
            "unknown), so it would see mostly [UNK] where the teacher saw text. Give transfer texts of the training "
            "data's language and domain, or a student with the teacher's tokenizer: --student text:embeddings=minilm")


def transfer_rows(model, splits, augment: int, unlabelled: Optional[pd.DataFrame], seed: int,
                  say: Callable[[str], None]) -> Optional[tuple[pd.DataFrame, np.ndarray, np.ndarray]]:
    """(rows, hard labels or NaN, the teacher's raw outputs) to add to the training rows, or None. ``unlabelled``:
    the rows of --transfer FILE (``read_transfer``)."""
    from forgeml.compress.run import text_columns
    from forgeml.data.augment import text_copies

    parts = []
    if augment:
        extra = text_copies(splits.raw["train"], text_columns(splits.features), augment, seed=seed)
        say(f"  teacher outputs on {len(extra)} perturbed copies of the training texts ...")
        parts.append((extra, np.tile(splits.y["train"], augment).astype(np.float64), model.raw(extra)))
    if unlabelled is not None:
        say(f"  teacher outputs on {len(unlabelled)} unlabelled rows of the transfer file ...")
        parts.append((unlabelled, np.full(len(unlabelled), np.nan), model.raw(unlabelled)))
    if not parts:
        return None
    return (pd.concat([rows for rows, _, _ in parts], ignore_index=True), np.concatenate([y for _, y, _ in parts]),
            np.concatenate([np.asarray(raw, dtype=np.float32).reshape(len(rows), -1) for rows, _, raw in parts]))
