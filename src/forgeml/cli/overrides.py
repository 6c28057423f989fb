"""From command-line options to a config dict: the --config file, then the flags, then --set (validated later by
forgeml.config.build_config, inside the API call)."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterable, Optional

from forgeml.errors import ConfigError


def base_config(config: Optional[Path], model: Optional[str]) -> dict:
    """The --config file as a dict, with --model applied (another model: the file's model keys belong to the old one)."""
    from forgeml.config import load_config

    base = load_config(config) if config else {}
    if model and base.get("model", {}).get("name") != model:
        base = {**base, "model": {"name": model}}
    return base


def data_section(data, target, balance=None, threshold=None, group_col=None, time_col=None, dedup=False, impute=None,
                 missing_indicator=False, scale=None, outliers=None, sep=None, encoding=None) -> dict:
    """The data section from flags (None: not given, the config file's value stays)."""
    return {"source": data, "target": target, "sep": sep, "encoding": encoding,
            "balance": {"method": balance, "threshold": threshold},
            "split": {"group_col": group_col, "time_col": time_col},
            "clean": {"deduplicate": dedup or None, "scale": scale, "outliers": {"method": outliers},
                      "missing": {"numeric": impute, "indicator": missing_indicator or None}}}


def default_name(data: Optional[str]) -> Optional[str]:
    """A run name from the data's name: bundled:iris -> iris, data/loans.csv -> loans."""
    if not data:
        return None
    stem = Path(data.split(":", 1)[1] if data.startswith("bundled:") else data.rstrip("/")).stem
    return re.sub(r"[^A-Za-z0-9_.-]", "-", stem) or "run"


def source_label(config: Optional[Path], sets: Optional[list[str]]) -> str:
    """Where the config came from, as error messages name it: 'exp.yaml + options + --set'."""
    parts = [str(config)] if config else []
    parts.append("options")
    if sets:
        parts.append("--set")
    return " + ".join(parts)


def parse_set(item: str) -> tuple[list[str], Any]:
    """'train.lr=0.01' -> (['train', 'lr'], 0.01): a dotted key path and a YAML value."""
    import yaml

    key, sep, text = item.partition("=")
    path = key.strip().split(".")
    if not sep or not all(p.strip() for p in path):
        raise ConfigError(f"--set takes KEY=VALUE with a dotted key path, e.g. --set train.lr=0.01; got {item!r}")
    path = [p.strip() for p in path]
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"--set {'.'.join(path)}: the value {text!r} is not valid YAML ({problem}); "
                          "a string with YAML's special characters needs quotes: --set 'KEY=\"...\"'") from None
    return path, value


def value_at(cfg: dict, path: str):
    """The value at a dotted path, or None where the path is missing (or crosses something that is not a section)."""
    node = cfg
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def apply_sets(cfg: dict, sets: Optional[Iterable[str]]) -> dict:
    """A copy of cfg with each KEY=VALUE set at its dotted path, in order (a later --set of the same key wins).

    Sections on the way are created; a bare name there stands for {name: ...} (task: forecasting, then
    --set task.horizon=12). Unknown keys and bad values are left to the config's validation, which names the path."""
    out = copy.deepcopy(cfg)
    from forgeml.config.experiment import set_key

    for path, value in map(parse_set, sets or ()):
        set_key(out, path, value)
    return out


def task_section(base: dict, name, **options) -> dict:
    """The task flags as a config section: ``--task anomaly --label Class`` -> {name: anomaly, label: Class}. A bare
    name in the config file (``task: anomaly``) becomes ``{name: ...}`` first, so flags add keys to it."""
    if isinstance(base.get("task"), str):
        base["task"] = {"name": base["task"]}
    return {"name": name, **options}
