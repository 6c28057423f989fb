"""Generate docs/config-reference.md from the pydantic config models (run: make docs)."""
from __future__ import annotations

import json
import typing

from pydantic import BaseModel

from forgeml.config import Config, all_params

HEADER = """# Config reference

Generated from the pydantic models in `src/forgeml/config/` by `make docs`; do not edit by hand.
Every key has a default except `data.source`. The JSON schema is `docs/config.schema.json`.

```yaml
name: churn-mlp
task: classification
data:
  source: data/churn.csv
  target: churn
  split: {val: 0.15, test: 0.15, stratify: true, seed: 0}
model: {name: mlp, hidden: [128, 128], dropout: 0.1}
train: {epochs: 30, batch_size: 128, optimizer: adamw, lr: 1.0e-3, weight_decay: 1.0e-4,
        early_stopping: {monitor: val_loss, patience: 5}, seed: 0}
```
"""


def _type(annotation) -> str:
    text = str(annotation).replace("typing.", "").replace("forgeml.config.", "")
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if isinstance(annotation, type):
        return annotation.__name__
    return text.replace("|", "\\|")


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value)}`"


def section(title: str, model: type[BaseModel], prefix: str) -> list[str]:
    lines = [f"## `{title}`", "", (model.__doc__ or "").strip(), "", "| key | type | default | description |", "| --- | --- | --- | --- |"]
    nested = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        sub = next((a for a in (typing.get_args(ann) or (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is not None and name != "model":
            nested.append((f"{prefix}{name}", sub))
            lines.append(f"| `{prefix}{name}` | section | | see below |")
            continue
        if name == "model":
            lines.append("| `model` | section | `{name: auto}` | one of the models below, chosen by `name` |")
            continue
        lines.append(f"| `{prefix}{name}` | {_type(ann)} | {_default(field)} | {field.description or ''} |")
    lines.append("")
    for path, sub in nested:
        lines += section(path, sub, path + ".")
    return lines


def main() -> None:
    lines = HEADER.splitlines() + [""]
    lines += section("top level", Config, "")
    from forgeml.core import TASKS

    for name, family in TASKS.items():
        if getattr(family, "Config", None) is not None:
            lines += section(f"task: {name}", family.Config, "task.")
    lines += ["## `model`", "", "Chosen by `model.name`; each model has its own keys.", ""]
    for name, cls in all_params().items():
        lines += section(f"model: {name}", cls, "model.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
