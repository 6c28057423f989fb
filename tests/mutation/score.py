#!/usr/bin/env python
"""Mutation score per module from mutmut's results in mutants/ (written by tests/mutation/run.sh).

    .venv/bin/python tests/mutation/score.py [MODULE_PREFIX ...] [--survivors]
    .venv/bin/python tests/mutation/score.py MODULE_PREFIX ... --sample N   # the unchecked names of every Nth mutant

score = killed / (killed + survived + timeout): mutants with no test that calls their function ("no tests") are
listed apart, as are mutants not yet checked (an interrupted run).
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", None: "not checked", 37: "type check",
          -11: "segfault", -9: "segfault"}


def main(argv: list[str]) -> int:
    show = "--survivors" in argv
    sample = int(argv[argv.index("--sample") + 1]) if "--sample" in argv else 0
    if sample:
        del argv[argv.index("--sample"): argv.index("--sample") + 2]
    prefixes = [a for a in argv if not a.startswith("--")]
    root = Path(__file__).resolve().parents[2] / "mutants"
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print("no results in mutants/: run tests/mutation/run.sh first")
        return 1
    total, survivors = Counter(), []
    if sample:  # a systematic sample for run.sh's SAMPLE: every Nth of a file's mutants by name, those not checked yet
        for meta in metas:  # (so a stopped sampled run, started again, finishes the same sample)
            codes = json.loads(meta.read_text())["exit_code_by_key"]
            names = sorted(k for k in codes if not prefixes or any(k.startswith(p + ".") for p in prefixes))
            names = [k for k in names[::sample] if codes[k] is None]
            if names:
                print("\n".join(names))
        return 0
    print("| module | mutants | killed | survived | timeout | no tests | not checked | score |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for meta in metas:
        rel = meta.relative_to(root).with_suffix("")  # src/forgeml/x/y.py
        module = ".".join(rel.with_suffix("").parts[1:]).removesuffix(".__init__")
        if prefixes and not any(module == p or module.startswith(p + ".") for p in prefixes):
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        c = Counter(STATUS.get(v, "suspicious") for v in codes.values())
        total += c
        survivors += [k for k, v in codes.items() if STATUS.get(v) == "survived"]
        print(_row(module, c))
    print(_row("**all**", total))
    if show:
        print("\nsurvivors (`.venv/bin/mutmut show NAME` prints the change):")
        print("\n".join(f"  {s}" for s in sorted(survivors)))
    return 0


def _row(name: str, c: Counter) -> str:
    tested = c["killed"] + c["survived"] + c["timeout"]
    score = f"{c['killed'] / tested:.1%}" if tested else "–"
    return (f"| {name} | {sum(c.values())} | {c['killed']} | {c['survived']} | {c['timeout']} | {c['no tests']} | "
            f"{c['not checked']} | {score} |")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
