"""What the families without a target share (anomaly detection, clustering): reading the rows, checking the label
column that only evaluates, choosing the features the family's learners take and the candidates, and leaving out
row numbers, IDs and constants."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from forgeml.errors import ConfigError, DataError

if TYPE_CHECKING:  # annotations only: serving a clustering or anomaly run needs no pandas
    import pandas as pd

Say = Callable[[str], None]


def read_features(cfg, label: Optional[str], learner_tag: str, noun: tuple[str, str], doing: str,
                  say: Say) -> tuple[pd.DataFrame, list, list[str]]:
    """(rows, features, candidate learners) for a family whose learners carry ``learner_tag``. The label column (if
    any) must exist and be complete; a bundled set's class column is left out of the features (and said); feature
    types no such learner takes are left out (and said). For messages: ``noun``, such a learner in words, short and
    with its article (("detector", "an anomaly detector")); ``doing``, the family's work."""
    from forgeml.data.sources import read_source
    from forgeml.features import infer_features
    from forgeml.models import LEARNERS, check_supports

    df, implied = read_source(cfg.data.source, cfg.data.sep, cfg.data.encoding)
    if label is not None:
        if label not in df.columns:
            raise DataError(f"label column {label!r} not found; available columns: {list(df.columns)}")
        if df[label].isna().any():
            raise DataError(f"label column {label!r} has {int(df[label].isna().sum())} missing values; fill or drop those rows")
    overrides = dict(cfg.data.features)
    if implied and implied != label and implied in df.columns and implied not in overrides:
        overrides[implied] = "ignore"  # a bundled set's class column is not an input
        say(f"[dim]{cfg.task.name}: column {implied!r} (the data set's class) is left out of the features; "
            f"pass --label {implied} to evaluate against it[/]")
    features = [f for f in infer_features(df, label, overrides) if f.type != "ignore"]
    tagged = LEARNERS.tagged(learner_tag)
    accepted = set().union(*(LEARNERS.get(n).accepts for n in tagged))
    unused = [f for f in features if f.type not in accepted and f.name not in cfg.data.features]
    if unused:  # e.g. text: no such learner takes it; left out, and said
        say(f"[dim]{cfg.task.name}: no {noun[0]} takes {', '.join(f'{f.name}:{f.type}' for f in unused)}; left out[/]")
        features = [f for f in features if f not in unused]
    if not features:
        raise DataError(f"no feature columns left to {doing}")
    candidates = [cfg.model.name] if cfg.model.name != "auto" else \
        [n for n in tagged if {f.type for f in features} <= LEARNERS.get(n).accepts
         and "opt_in" not in LEARNERS.get(n).tags]  # opt_in: trained when named
    for name in candidates:
        if learner_tag not in LEARNERS.get(name).tags:
            raise ConfigError(f"model {name!r} is not {noun[1]}; choose one of: auto, {', '.join(tagged)}")
        check_supports(name, features)
    if not candidates:
        raise DataError(f"no {noun[0]} accepts these features ({', '.join(sorted({f.type for f in features}))})")
    return df, features, candidates


def leave_out(features: list, train: pd.DataFrame, named: set, say: Say) -> tuple[list, dict]:
    """The features minus row numbers, IDs and constant columns (forgeml.features.exclusions, on the training rows;
    a detector would isolate every row by its ID, a clustering would split on it), with the notice and the
    manifest's record. When nothing else would be left, they stay: the checks after the preprocessing say what is
    wrong with such data."""
    from rich.markup import escape

    from forgeml.features.exclusions import excluded_columns, notice

    found = excluded_columns(train, features, None, False, named)
    gone = {e["column"] for e in found}
    if not found or all(f.name in gone for f in features):
        return features, {}
    say(f"[yellow]{escape(notice(found))}[/]")
    return [f for f in features if f.name not in gone], {"excluded_columns": found}


def split_summary(n: dict, family: str, what: str, features: list) -> str:
    """The line that says how the rows were split and which features were kept."""
    return (f"[dim]{sum(n.values())} rows -> train {n['train']} / val {n['val']} / test {n['test']}; task {family}{what}; "
            f"features: {', '.join(f'{f.name}:{f.type}' for f in features[:12])}{' ...' if len(features) > 12 else ''}[/]")
