"""Regenerate docs/playbook/ from real runs: every entry at full size (not --fast), its pages (en, zh), evidence
JSON and plots copied here, and an index per language. `python docs/gen_playbook.py` (a few minutes on 2 cores);
`--pages` only re-renders the pages from the evidence JSON already here (after a change of wording, not of numbers);
`--only ID ...` runs those entries and re-renders the others from their JSON."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from forgeml import playbook
from forgeml.playbook import Evidence
from forgeml.playbook.run import page, run_entry

HERE = Path(__file__).parent / "playbook"
TITLES = {"en": "# The forgeml playbook\n\nEach answer below was checked by the experiment named under it, run on "
                "bundled real data on a 2-core CPU; the numbers are that run's. Run one yourself: "
                "`forgeml playbook run ID` ([中文](README.zh.md)).\n",
          "zh": "# forgeml 问答手册\n\n下面每个回答都由其下注明的实验检验过：在 2 核 CPU 上用内置的真实数据运行，数字"
                "来自那次运行。自己运行一条：`forgeml playbook run ID`（[English](README.md)）。\n"}


def main() -> None:
    HERE.mkdir(exist_ok=True)
    pages = {lang: [TITLES[lang]] for lang in playbook.LANGS}
    for e in playbook.all_entries():
        only = sys.argv[sys.argv.index("--only") + 1:] if "--only" in sys.argv else None
        if "--pages" in sys.argv[1:] or (only is not None and e.id not in only):
            r = json.loads((HERE / f"{e.id}.json").read_text(encoding="utf-8"))
            ev = Evidence(r["columns"], r["rows"], r["supported"], r["finding"], r["plots"], r["seconds"])
            for lang in playbook.LANGS:
                pages[lang].append(page(e, ev, lang, r["fast"]))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            _, ev = run_entry(e.id, fast=False, out=Path(tmp))
            for name in [f"{e.id}.json", *ev.plots]:
                shutil.copy(Path(tmp) / name, HERE / name)
            for lang in playbook.LANGS:
                pages[lang].append((Path(tmp) / f"{e.id}.{lang}.md").read_text(encoding="utf-8"))
        print(f"{e.id}: {'supported' if ev.supported else 'NOT supported'} ({ev.seconds:.0f} s)")
    (HERE / "README.md").write_text("\n".join(pages["en"]), encoding="utf-8")
    (HERE / "README.zh.md").write_text("\n".join(pages["zh"]), encoding="utf-8")


if __name__ == "__main__":
    main()
