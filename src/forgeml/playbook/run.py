"""Running a playbook entry: the experiment, then what it measured written as JSON and as a page per language."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from forgeml.playbook import LANGS, Entry, Evidence, get

LABELS = {
    "en": {"answer": "Answer", "claim": "Claim checked", "evidence": "Evidence", "verdict": "Verdict",
           "supported": "supported by this run", "not_supported": "NOT supported by this run", "caveats": "Caveats",
           "how": "measured by `forgeml playbook run {id}{fast}` in {seconds:.0f} s"},
    "zh": {"answer": "回答", "claim": "检验的论断", "evidence": "证据", "verdict": "结论",
           "supported": "本次运行支持该论断", "not_supported": "本次运行不支持该论断", "caveats": "注意",
           "how": "由 `forgeml playbook run {id}{fast}` 测得，用时 {seconds:.0f} 秒"},
}


def run_entry(id: str, fast: bool, out: Path, say: Callable[[str], None] = lambda m: None) -> tuple[Entry, Evidence]:
    """Run entry ``id`` into the folder ``out``; write ``ID.json`` and ``ID.en.md`` / ``ID.zh.md`` there."""
    e = get(id)
    if e.needs:
        from forgeml.errors import require

        require(e.needs[0], e.needs[1], f"playbook entry {id}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    evidence = e.experiment(fast, out)
    evidence.seconds = time.perf_counter() - start
    record = {"id": e.id, "topic": e.topic, "fast": fast, "seconds": round(evidence.seconds, 1),
              "columns": evidence.columns, "rows": evidence.rows, "supported": evidence.supported,
              "finding": evidence.finding, "plots": evidence.plots,
              "question": e.question, "answer": e.answer, "claim": e.claim, "caveats": e.caveats}
    from forgeml.artifacts import write_text

    write_text(out / f"{e.id}.json", json.dumps(record, ensure_ascii=False, indent=1))
    for lang in LANGS:
        write_text(out / f"{e.id}.{lang}.md", page(e, evidence, lang, fast))
    return e, evidence


def cell(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def page(e: Entry, ev: Evidence, lang: str, fast: bool) -> str:
    t = LABELS[lang]
    head = "：" if lang == "zh" else "."
    lines = [f"## {e.text('question', lang)}", "", f"**{t['answer']}{head}** {e.text('answer', lang)}", "",
             f"**{t['claim']}{head}** {e.text('claim', lang)}", "",
             f"**{t['evidence']}** ({t['how'].format(id=e.id, fast=' --fast' if fast else '', seconds=ev.seconds)}):", "",
             "| " + " | ".join(ev.columns) + " |", "|" + "---|" * len(ev.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in ev.rows]
    lines += [""] + [f"![{p}]({p})" for p in ev.plots] + ([""] if ev.plots else [])
    verdict = t["supported"] if ev.supported else t["not_supported"]
    stop = "。" if lang == "zh" else ". "
    lines += [f"**{t['verdict']}:** {verdict}{stop}{ev.finding[lang]}", "",
              f"**{t['caveats']}{stop.strip()}** {e.text('caveats', lang)}", ""]
    return "\n".join(lines)
