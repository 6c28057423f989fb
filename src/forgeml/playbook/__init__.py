"""The playbook: common questions about building AI products, each answered in Chinese and English and backed by an
experiment that forgeml runs on bundled real data. An entry says its claim; its experiment returns the evidence (a
table, maybe a plot) and whether the evidence supports the claim, so the answer is what this run measured.

Entries register themselves (``@entry``) in the modules of ``BUILTIN``; nothing else knows their ids.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from forgeml.errors import ConfigError

LANGS = ("en", "zh")
BUILTIN = ("forgeml.playbook.compute", "forgeml.playbook.training", "forgeml.playbook.imbalance",
           "forgeml.playbook.data_quality", "forgeml.playbook.evaluation", "forgeml.playbook.generalization",
           "forgeml.playbook.inference", "forgeml.playbook.scratch", "forgeml.playbook.speed",
           "forgeml.playbook.trust", "forgeml.playbook.leakage", "forgeml.playbook.little_data",
           "forgeml.playbook.attention", "forgeml.playbook.forecasting", "forgeml.playbook.parallel",
           "forgeml.playbook.anomalies", "forgeml.playbook.gan",
           "forgeml.playbook.recipes", "forgeml.playbook.serving_load", "forgeml.playbook.finetune",
           "forgeml.playbook.cnn_scratch", "forgeml.playbook.bleu", "forgeml.playbook.image_generation",
           "forgeml.playbook.scale_out")


@dataclass
class Evidence:
    """What one run of an entry measured: a table (``columns``, ``rows``), the plots it wrote (file names in the
    output folder), whether the numbers support the entry's claim, and the finding in each language (with the
    numbers)."""

    columns: list[str]
    rows: list[list]
    supported: bool
    finding: dict[str, str]
    plots: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Entry:
    id: str
    topic: str
    question: dict[str, str]
    answer: dict[str, str]
    claim: dict[str, str]
    caveats: dict[str, str]
    experiment: Callable[[bool, Path], Evidence]  # (fast, output folder) -> evidence
    needs: tuple[str, str] | None = None  # (module, extra) the experiment imports

    def text(self, part: str, lang: str) -> str:
        return getattr(self, part)[lang]


ENTRIES: dict[str, Entry] = {}


def entry(id: str, topic: str, *, question: dict, answer: dict, claim: dict, caveats: dict, needs=None):
    """Register an experiment (a function (fast, out) -> Evidence) as a playbook entry."""
    def deco(fn):
        for part in (question, answer, claim, caveats):
            assert set(part) == set(LANGS), f"entry {id}: every text in {LANGS}"
        ENTRIES[id] = Entry(id, topic, question, answer, claim, caveats, fn, needs)
        return fn

    return deco


def _load() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


def all_entries(topic: str | None = None) -> list[Entry]:
    _load()
    return [e for e in ENTRIES.values() if topic is None or e.topic == topic]


def topics() -> list[str]:
    return sorted({e.topic for e in all_entries()})


def get(id: str) -> Entry:
    """The entry ``id``; an unknown id is a ConfigError naming the close ones."""
    _load()
    if id in ENTRIES:
        return ENTRIES[id]
    close = difflib.get_close_matches(id, list(ENTRIES), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"no playbook entry {id!r}{hint} (forgeml playbook list shows them all)")


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ConfigError(f"--lang must be zh or en, got {lang!r}")
    return lang
