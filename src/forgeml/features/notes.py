"""What training says about the columns after reading: how the file was read (when it was not plain comma-separated
UTF-8), one line per column whose type was not obvious (the reading's notes, forgeml.data.values, and the feature
types' own, FeatureType.note), and the full feature list, wrapped."""
from __future__ import annotations

import textwrap

from forgeml.features import present

WIDTH = 78  # rich wraps at 80 columns when stderr is not a terminal


def file_line(source: str, how: dict | None) -> str | None:
    """'read x.csv: semicolon-separated, decimal commas, utf-16' when any of it is not the plain default."""
    from forgeml.data.sniff import DELIMITER_NAMES

    if not how:
        return None
    parts = []
    if how.get("sep") not in (None, ",", "\t"):
        parts.append(f"{DELIMITER_NAMES.get(how['sep'], repr(how['sep']))}-separated")
    if how.get("decimal", ".") != ".":
        parts.append("decimal commas")
    if how.get("encoding") not in (None, "utf-8"):
        parts.append(f"encoding {how['encoding']}")
    return f"read {source}: {', '.join(parts)}" if parts else None


def type_notes(features: list, pre_state: dict, columns: dict[str, str], target: str | None) -> list[str]:
    """'column: why -> type' for each column whose reading or type was not obvious (features first, then the
    target and columns that are not features)."""
    kinds = {f.name: f.type for f in features}
    owned = {}
    for ftype, state in present(pre_state):
        for c in state.get("columns", []):
            note = ftype.note(state, c)
            if note:
                owned[c] = note
    lines = []
    for f in features:
        read, own = columns.get(f.name), owned.get(f.name)
        if read or own:
            lines.append(f"{f.name}: " + "; ".join(x for x in (read and f"{read} -> {f.type}", own) if x))
    for name, read in columns.items():
        if name not in kinds:
            lines.append(f"{name}{' (target)' if name == target else ''}: {read}{'' if name == target else ' (not a feature)'}")
    return lines


def feature_lines(features: list, width: int = WIDTH) -> list[str]:
    """The full feature list, 'name:type' each, wrapped (never cut)."""
    text = f"features ({len(features)}): " + ", ".join(f"{f.name}:{f.type}" for f in features)
    return textwrap.wrap(text, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


def describe(source: str, features: list, pre_state: dict, reading: dict | None,
             target: str | None) -> tuple[list[str], list[str]]:
    """(every line to print after reading: the file, the type notes, the feature list; the notes to store)."""
    reading = reading or {}
    head = file_line(source, reading.get("file"))
    notes = ([head] if head else []) + type_notes(features, pre_state, reading.get("columns", {}), target)
    return [n if n == head else f"  {n}" for n in notes] + feature_lines(features), notes
