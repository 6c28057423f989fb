"""Task families. A family is one module with a ``core.Task`` subclass decorated ``@TASKS.register("name", tags=...)``;
nothing outside this package compares task names: callers ask for tags (``"labels"``, ``"target"``...).

Tags used by the built-in families:
- ``target``: the task learns a target column (supervised);
- ``labels``: outputs are class probabilities over ``state["labels"]`` (``proba``); ``threshold``: a binary decision
  threshold can be tuned; ``stratify``: splits keep the class balance;
- ``scale``: the target is standardized for training and decoded back;
- ``scores``: outputs are one anomaly score per row (``score``) and a flag (``is_anomaly``); no target is needed.

A family class also provides the pipeline's hooks (see forgeml.tasks.supervised.SupervisedTask): ``prepare_run``
(read, split, encode), ``candidates``, ``training_loss``, ``sample_weights``, ``init_model``, ``choose``, ``finalize``,
``baseline``, ``plots``, ``summary_keys`` and ``predictions`` (the columns predict returns).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from forgeml.core import LOWER_IS_BETTER, TASKS, Task, better  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # annotations only: the server formats responses without pandas
    import pandas as pd


def make_task(name: str, state: dict) -> Task:
    return TASKS.get(name)(state)


def fit_task(name: str, y: pd.Series) -> Task:
    return TASKS.get(name).fit(y)


def infer_task(y: pd.Series) -> str:
    """The family ``task: auto`` picks for a target column (its non-missing values): the first family tagged
    ``target``, in ``infer_order``, whose ``claims_target`` says yes."""
    from forgeml.errors import DataError

    families = sorted((TASKS.get(n) for n in TASKS.tagged("target")), key=lambda f: (getattr(f, "infer_order", 100), f.name))
    for family in families:
        claims = getattr(family, "claims_target", None)
        if claims is not None and claims(y):
            return family.name
    raise DataError(f"no task family takes the target {y.name!r}; choose one with --task ({', '.join(TASKS.names())})")


def task_tags(name: str) -> frozenset:
    """The tags of a task family by name (e.g. a manifest's ``task``)."""
    return TASKS.get(name).tags


def summary_keys(name: str) -> list[str]:
    """The metrics a family shows in tables and keeps in the manifest's summary."""
    return list(TASKS.get(name).summary_keys)


def family_of(cfg) -> type:
    """The task family a config asks for (``task: auto`` is supervised: classification or regression, from the target)."""
    if cfg.task.name == "auto":
        from forgeml.tasks.supervised import SupervisedTask

        return SupervisedTask
    return TASKS.get(cfg.task.name)


def refuse_capability(task: Task, run_dir, capability: str, or_tags: tuple[str, ...] = ()) -> None:
    """Capabilities built for supervised runs (a target column) say so plainly for the other families; ``or_tags``
    names other family tags the capability handles too (export: ``scores``, ``clusters``)."""
    if "target" in task.tags or task.tags & set(or_tags):
        return
    from forgeml.errors import RunError

    able = sorted({name for tag in ("target", *or_tags) for name in TASKS.tagged(tag)})
    named = ", ".join(able[:-1]) + f" and {able[-1]}" if len(able) > 1 else able[0]
    article = "an" if task.name[:1] in "aeiou" else "a"
    raise RunError(f"{capability} works on {named} runs so far; {run_dir} is {article} {task.name} run")
