"""The terminal summary of `forgeml explain` (Rich renderables for stdout)."""
from __future__ import annotations

from forgeml.explain.methods import NAMES, REGIONS, TOKENS


def _fmt(v: float) -> str:
    return f"{v:+.4f}"


def _permutation_table(perm: dict, top: int):
    from rich.table import Table

    change = "drop" if perm["higher_is_better"] else "rise"
    table = Table()
    for col, justify in (("rank", "right"), ("feature", "left"), (f"{perm['metric']} {change}", "right"), ("± sd", "right")):
        table.add_column(col, justify=justify)
    for f in perm["features"][:top]:
        table.add_row(str(f["rank"]), f["feature"], f"{f['importance']:.4f}", f"{f['std']:.4f}")
    return table


def _local_table(result: dict, top: int):
    from rich.table import Table

    kind = result["kind"]
    instances = result.get("instances", [])
    if kind == REGIONS:
        table = Table(title="per-image explanations (peak: (row, col) of the heat-map's largest value)")
        cols = ["row", "true", "predicted", "p", "top-3 classes"] + [f"{NAMES[m]} peak" for m in result["methods"]]
        for c in cols:
            table.add_column(c, justify="left" if c == "top-3 classes" else "right")
        for rec in instances:
            probs = sorted(rec.get("probabilities", {}).items(), key=lambda kv: -kv[1])[:3]
            top3 = ", ".join(f"{k} {v:.2f}" for k, v in probs)
            p = rec.get("probability")
            table.add_row(str(rec["index"]), str(rec.get("true", "")), str(rec["prediction"]), "" if p is None else f"{p:.3f}",
                          top3, *[str(tuple(rec[m]["peak"])) for m in result["methods"]])
        return table
    table = Table(title=f"per-{'text' if kind == TOKENS else 'row'} attributions to the {result['units']} "
                        f"(top {top} by size)")
    for c in ("instance", "method", "top contributions"):
        table.add_column(c, justify="left")
    for rec in instances:
        if kind == TOKENS:
            pairs = sorted(zip(rec["tokens"], rec["attributions"]), key=lambda kv: -abs(kv[1]))[:top]
        else:
            pairs = sorted(rec["attributions"].items(), key=lambda kv: -abs(kv[1]))[:top]
        head = rec["heading"].split(" [")[0]
        table.add_row(head, rec["method"], ", ".join(f"{k} {_fmt(v)}" for k, v in pairs))
    return table


def renderables(result: dict, top: int = 10) -> list:
    if "shares" in result:  # each column's share of anomaly scores (explain/anomaly.py)
        from forgeml.explain.anomaly_render import renderables as anomaly_renderables

        return anomaly_renderables(result)
    out = [f"explained [bold]{result['run']}[/] ({result['model']}) on {result['data']}: "
           + ", ".join(NAMES[m] for m in result["methods"])]
    if "permutation" in result:
        perm = result["permutation"]
        out.append(f"permutation importance: how much test {perm['metric']} ({perm['score']:.4f} on {perm['rows']} rows) "
                   f"{'drops' if perm['higher_is_better'] else 'rises'} when one column is shuffled "
                   f"({perm['repeats']} shuffles each)")
        out.append(_permutation_table(perm, top))
    if result.get("instances"):
        out.append(_local_table(result, 5 if result["kind"] == TOKENS else 3))
    out.append(f"wrote {len(result['files'])} files to {result['out']}: {', '.join(result['files'][:8])}"
               + (" ..." if len(result["files"]) > 8 else ""))
    return out
