"""One experiment's config (task, data, model, train, tracking), its validation with messages that name the key
path, and YAML loading and merging."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

from forgeml.config.base import Strict
from forgeml.config.data import DataConfig
from forgeml.config.models import AutoParams, ModelConfig, all_params, params_class
from forgeml.config.train import TrackingConfig, TrainConfig
from forgeml.config.tune import TuneConfig
from forgeml.errors import ConfigError


class TaskConfig(BaseModel):
    """The task family and its own keys: ``task: classification`` (a bare name) or ``task: {name: anomaly,
    contamination: 0.02}``. The keys after ``name`` are validated by the family's ``Config`` (forgeml.tasks)."""

    model_config = ConfigDict(extra="allow")
    name: str = Field("auto", description="auto (classification or regression, from the target), classification, "
                                          "regression, anomaly; `forgeml tasks` lists them")

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value):
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _family_keys(self):
        from forgeml.core import TASKS

        if self.name != "auto" and self.name not in TASKS:
            raise ValueError(f"unknown task {self.name!r}; choose one of: auto, {', '.join(TASKS.names())}")
        extra = dict(self.model_extra or {})
        family = TASKS.get(self.name) if self.name != "auto" else None
        schema = getattr(family, "Config", None)
        if schema is None:
            if extra:
                raise ValueError(f"task {self.name} has no options; unknown keys: {', '.join(extra)}")
            return self
        try:
            options = schema.model_validate(extra)
        except ValidationError as exc:
            raise ValueError("; ".join(f"task.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
        for key, value in options.model_dump().items():
            setattr(self, key, value)
        return self

    @model_serializer(mode="wrap")
    def _bare_when_plain(self, handler):
        """``task: classification`` in config.yaml when the family has no keys of its own."""
        data = handler(self)
        return data["name"] if isinstance(data, dict) and set(data) == {"name"} else data



class Config(Strict):
    """One experiment: a file of these keys (--config) or flags; everything but data.source has a default."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="run name: runs/<name>/")
    task: TaskConfig = Field(default_factory=TaskConfig, description="the task family (auto: classification for "
                             "text/categorical/few-valued integer targets, else regression) and its own keys")
    data: DataConfig
    model: ModelConfig = Field(default_factory=AutoParams)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    runs_dir: str = Field("runs", description="folder holding the run folders")
    tune: Optional[TuneConfig] = Field(None, description="hyper-parameter search (forgeml tune); train ignores it")

    @model_validator(mode="after")
    def _private_model(self):
        if self.train.privacy is None:
            return self
        from forgeml.core import LEARNERS

        if self.model.name != "auto" and "dp" not in LEARNERS.get(self.model.name).tags:
            raise ValueError(f"{self.model.name} cannot be trained with differential privacy (DP-SGD trains neural "
                             "networks); use model: mlp, or model: auto (which then trains only the networks)")
        # DP-SGD bounds what one training row can change; these would tie a row's gradient to other rows
        bal = self.data.balance
        if bal.method in ("oversample", "smote"):
            raise ValueError(f"data.balance.method {bal.method} does not work with privacy: it copies or blends training "
                             "rows, so one row would count several times; use undersample or focal (focal_balanced: false)")
        if bal.method == "class_weights" or (bal.method == "focal" and bal.focal_balanced):
            raise ValueError(f"data.balance.method {bal.method}{' (focal_balanced)' if bal.method == 'focal' else ''} does "
                             "not work with privacy: its weighted mean divides by the batch's total weight, so each row's "
                             "gradient depends on the other rows; use undersample or focal with focal_balanced: false")
        if self.data.augment.table.mixup:
            raise ValueError("data.augment.table.mixup does not work with privacy: it blends pairs of rows, so one row's "
                             "gradient would carry another's; set mixup: 0")
        return self

    @model_serializer(mode="wrap")
    def _no_empty_tune(self, handler):
        """No ``tune: null`` line in the config.yaml of every run: the section is written only when it is set."""
        data = handler(self)
        if isinstance(data, dict) and data.get("tune", 0) is None:
            del data["tune"]
        return data

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_errors(exc: ValidationError, source: str, data: dict) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1], data)
            allowed = ", ".join(parent.model_fields) if parent else "see docs/config-reference.md"
            msg = f"unknown key; allowed keys here: {allowed}"
        lines.append(f"  {path or '(top level)'}: {msg}")
    return f"invalid config ({source}):\n" + "\n".join(lines)


def _model_at(loc: tuple, data: dict) -> Optional[type[BaseModel]]:
    """The pydantic model class at an error location such as ('train', 'early_stopping') or ('model',) (the class
    of the model the config names)."""
    if loc == ("model",):
        model = data.get("model")
        name = model.get("name") if isinstance(model, dict) else model
        try:
            return params_class(name)
        except Exception:
            return None
    cls: Any = Config
    for part in loc:
        field = cls.model_fields.get(part) if isinstance(cls, type) else None
        if field is None:
            return None
        ann = field.annotation
        cls = next((c for c in getattr(ann, "__args__", (ann,)) if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return cls


def json_schema() -> dict:
    """The config's JSON schema (docs/config.schema.json), with ``model`` as the union of every registered learner's
    parameters (validation asks the registry instead, so that config never imports the learners)."""
    from typing import Annotated, Union

    from pydantic import create_model

    union = Annotated[Union[tuple(all_params().values())], Field(discriminator="name")]
    documented = create_model("Config", __base__=Config, __doc__=Config.__doc__,
                              model=(union, Field(default_factory=AutoParams)))
    return documented.model_json_schema()


def build_config(data: dict, source: str = "options") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, data)) from None


def run_config(run_dir: str | Path) -> Config:
    """The config a run was trained with (its config.yaml), validated."""
    path = Path(run_dir) / "config.yaml"
    return build_config(load_config(path), str(path))


def load_config(path: str | Path) -> dict:
    """Read a YAML config file into a plain dict (validated later, after CLI overrides are merged)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping (key: value), not {type(data).__name__}")
    return data


def set_key(tree: dict, path: list[str], value) -> None:
    """Set one dotted config key (``["train", "lr"]``) in a config dict, in place; a bare section name on the way
    (``model: mlp``) becomes ``{name: mlp}`` first (forgeml --set, forgeml tune's trials)."""
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if isinstance(child, str):
            child = {"name": child}
        elif not isinstance(child, dict):
            child = {}
        node[part] = child
        node = child
    node[path[-1]] = value


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge overrides (from CLI flags) into a config dict; None values (flags not given) are dropped."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            nested = merge(out.get(key) if isinstance(out.get(key), dict) else {}, value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
