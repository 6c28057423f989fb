"""The search space: config keys -> Optuna suggestions, checked against the Config model before any trial runs.

A range (``{low, high, log, step}``) becomes ``suggest_float`` (``suggest_int`` for an integer key); a list of choices
becomes ``suggest_categorical``. Optuna takes only scalar choices, so a space with a list among its choices
(``model.hidden: [[64], [128, 128]]``) hands Optuna each choice as its JSON text and decodes what it suggests.
Without ``tune.space`` the model's own default space is used (``Params.search_space``, beside the learner)."""
from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel

from forgeml.config import Config, Range, TuneConfig, build_config
from forgeml.config.experiment import set_key
from forgeml.config.models import params_class
from forgeml.errors import ConfigError

SCALARS = (type(None), bool, int, float, str)
NOT_SEARCHED = {"name": "the run's name", "runs_dir": "where runs are written", "tune": "the search itself",
                "tracking": "where runs are tracked", "model.name": "the model"}


@dataclass
class Param:
    key: str
    entry: Union[Range, list]
    integer: bool = False  # a range over an integer key
    encoded: bool = False  # choices handed to Optuna as JSON text

    def suggest(self, trial) -> Any:
        if isinstance(self.entry, Range):
            r = self.entry
            if self.integer:
                return trial.suggest_int(self.key, int(r.low), int(r.high), step=int(r.step or 1), log=r.log)
            return trial.suggest_float(self.key, float(r.low), float(r.high), step=r.step, log=r.log)
        return self.decode(trial.suggest_categorical(self.key, self.choices()))

    def choices(self) -> list:
        return [json.dumps(c) for c in self.entry] if self.encoded else list(self.entry)

    def decode(self, value: Any) -> Any:
        return json.loads(value) if self.encoded and isinstance(value, str) else value

    def encode(self, value: Any) -> Any:
        return json.dumps(value) if self.encoded else value

    def contains(self, value: Any) -> bool:
        if isinstance(self.entry, Range):
            return (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and self.entry.low <= value <= self.entry.high and (not self.integer or float(value).is_integer()))
        return any(json.dumps(value) == json.dumps(c) for c in self.entry)

    def describe(self) -> Any:
        return self.entry.model_dump(exclude_none=True) if isinstance(self.entry, Range) else list(self.entry)


class Space:
    def __init__(self, params: list[Param], origin: str):
        self.params, self.origin = params, origin

    def suggest(self, trial) -> dict[str, Any]:
        """One trial's values, decoded: config key -> value."""
        return {p.key: p.suggest(trial) for p in self.params}

    def decode(self, optuna_params: dict) -> dict[str, Any]:
        by_key = {p.key: p for p in self.params}
        return {k: by_key[k].decode(v) if k in by_key else v for k, v in optuna_params.items()}

    def defaults(self, cfg: Config) -> dict[str, Any] | None:
        """The config's own values at the space's keys, encoded for Optuna (the study's first trial measures the
        config as given), or None when one of them lies outside the space."""
        dumped = cfg.model_dump(mode="json")
        out = {}
        for p in self.params:
            value = value_at(dumped, p.key)
            if not p.contains(value):
                return None
            out[p.key] = p.encode(int(value) if p.integer else value)
        return out

    def describe(self) -> dict:
        return {p.key: p.describe() for p in self.params}


def value_at(d: dict, key: str) -> Any:
    node: Any = d
    for part in key.split("."):
        if isinstance(node, str) and part != "name":  # a bare `task: classification`
            return None
        node = node.get(part) if isinstance(node, dict) else None
    return node


def apply(base: dict, values: dict[str, Any]) -> dict:
    """A copy of a config dict with each dotted key set (a bare section name becomes {name: ...} first)."""
    out = json.loads(json.dumps(base))
    for key, value in values.items():
        set_key(out, key.split("."), value)
    return out


def build_space(cfg: Config) -> Space:
    """The study's space: ``tune.space``, else the model's default; every key is a config key and every bound and
    choice a valid value of it (each checked alone; combinations are checked by the trials)."""
    opts = cfg.tune or TuneConfig()
    if opts.space:
        entries, origin = dict(opts.space), "tune.space"
    else:
        entries, origin = default_space(cfg), f"model {cfg.model.name}'s default (Params.search_space)"
    params = []
    base = cfg.model_dump(mode="json")
    for key, entry in entries.items():
        entry = Range.model_validate(entry) if isinstance(entry, dict) else entry
        leaf = key_type(cfg, key)
        param = Param(key, entry)
        if isinstance(entry, Range):
            if leaf not in (int, float, Any):
                raise ConfigError(f"tune.space: {key} is not a number; give its choices as a list, not a range")
            param.integer = leaf is int or (leaf is Any and all(isinstance(v, int) for v in (entry.low, entry.high)))
            if param.integer and not all(float(v).is_integer() for v in (entry.low, entry.high, entry.step or 1)):
                raise ConfigError(f"tune.space: {key} is an integer; its range needs integer low, high and step")
            probes = [entry.low, entry.high]
        else:
            param.encoded = not all(isinstance(c, SCALARS) for c in entry)
            probes = list(entry)
        for value in probes:
            try:
                build_config(apply(base, {key: int(value) if param.integer else value}))
            except ConfigError as exc:
                detail = "; ".join(line.strip() for line in str(exc).splitlines()[1:])
                raise ConfigError(f"tune.space: {key} = {value!r} is not a valid value ({detail})") from None
        params.append(param)
    return Space(params, origin)


def default_space(cfg: Config) -> dict:
    """The model's declared space (``Params.search_space`` beside the learner); a model that declares none, or
    ``model: auto``, needs tune.space."""
    from forgeml.core import LEARNERS

    if cfg.model.name == "auto":
        declared = [n for n, learner in LEARNERS.items() if getattr(learner.Params, "search_space", None)]
        raise ConfigError("model: auto trains several models, each with its own parameters; tune one: --model "
                          f"{' | '.join(declared)} (these declare a default space), or give tune.space in --config")
    space = getattr(params_class(cfg.model.name), "search_space", None)
    if not space:
        raise ConfigError(f"model {cfg.model.name} declares no default search space; give one as tune.space in "
                          "--config, e.g. tune: {space: {train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}}}")
    return dict(space)


def key_type(cfg: Config, key: str) -> Any:
    """The type of the config key ``key`` (int, float, Any for others), or a ConfigError naming it."""
    for blocked, what in NOT_SEARCHED.items():
        if key == blocked or key.startswith(blocked + "."):
            raise ConfigError(f"tune.space: {key} cannot be searched ({what}); tune one model at a time (--model)"
                              if blocked == "model.name" else f"tune.space: {key} cannot be searched ({what})")
    parts = key.split(".")
    fields: Any = section_fields(Config, "", cfg)
    for i, part in enumerate(parts):
        here = ".".join(parts[:i])
        if fields is Any:  # a mapping section (data.features): any name is a key
            return Any if i == len(parts) - 1 else not_a_key(key, f"{here} holds single values")
        if part not in fields:
            return not_a_key(key, f"{here or 'the top level'} has: {', '.join(fields)}")
        ann = fields[part]
        if i == len(parts) - 1:
            return leaf(ann)
        fields = section_fields(ann, f"{here}.{part}".lstrip("."), cfg)
        if fields is None:
            return not_a_key(key, f"{here + '.' if here else ''}{part} is a value, not a section")
    return Any


def not_a_key(key: str, why: str):
    raise ConfigError(f"tune.space: {key!r} is not a config key ({why}); see docs/config-reference.md")


def section_fields(ann: Any, path: str, cfg: Config) -> Any:
    """The keys of the section ``ann`` (name -> annotation), Any for a mapping section, None for a plain value."""
    if path == "model":
        if cfg.model.name == "auto":
            raise ConfigError("tune.space: model.* keys belong to one model, but model is auto (several models); "
                              "set it with --model or model.name in --config")
        return {n: f.annotation for n, f in params_class(cfg.model.name).model_fields.items()}
    if path == "task":
        from forgeml.core import TASKS

        family = TASKS.get(cfg.task.name) if cfg.task.name in TASKS else None
        own = getattr(family, "Config", None)
        return {"name": str, **({n: f.annotation for n, f in own.model_fields.items()} if own else {})}
    for arg in (typing.get_args(ann) or (ann,)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return {n: f.annotation for n, f in arg.model_fields.items()}
        if typing.get_origin(arg) is dict:
            return Any
    return None


def leaf(ann: Any) -> Any:
    """int or float for a number key (Optional or not), object for another single type (str, a Literal, a list),
    Any when open (a union, a mapping's values)."""
    union = typing.get_origin(ann) in (Union, types.UnionType)
    args = [a for a in (typing.get_args(ann) if union else (ann,)) if a is not type(None)]
    if len(args) != 1 or args[0] is Any:
        return Any
    return args[0] if args[0] in (int, float) else object
