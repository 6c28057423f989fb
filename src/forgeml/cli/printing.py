"""What the commands print: Rich tables of metrics and the paths a user opens next. Results go to stdout."""
from __future__ import annotations

import sys


def stdout():
    from rich.console import Console

    # piped or redirected output has no terminal width; don't squeeze tables to Rich's 80-column default
    return Console(width=None if sys.stdout.isatty() else 120)


def metric_table(title: str, rows: list[tuple[str, dict]], keys: list[str]):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("model", no_wrap=True)
    for k in keys:
        table.add_column(k, justify="right")
    for name, m in rows:
        table.add_row(name, *("–" if m.get(k) is None else f"{m[k]:.4f}" for k in keys))
    return table


def print_result(result) -> None:
    from forgeml.tasks import summary_keys

    m = result.metrics
    keys = [k for k in summary_keys(result.manifest["task"]) if m["test"].get(k) is not None]
    rows = [(f"{m['model']} (chosen)", m["test"]), (f"baseline: {m['baseline']['name']}", m["baseline"]["test"])]
    rows += [(name, ref["test"]) for name, ref in (m.get("references") or {}).items()]  # e.g. forecasting's seasonal naive
    con = stdout()
    con.print(metric_table(f"test metrics ({m['test']['n']} {m['test'].get('unit', 'rows')})", rows, keys))
    con.print(f"run:    {result.run_dir}")
    con.print(f"report: {result.run_dir / 'report.html'}")
    uri = result.manifest["tracking"]["uri"]
    if uri:
        con.print(f"MLflow: mlflow ui --backend-store-uri {uri}")


def print_federated(result) -> None:
    from forgeml.tasks import summary_keys

    m = result.metrics
    fed = m["federated"]
    keys = [k for k in summary_keys(result.manifest["task"]) if m["test"].get(k) is not None]
    rows = [(f"{fed['model']} federated ({fed['options']['strategy']})", m["test"])]
    if fed.get("central"):
        rows.append((f"{fed['model']} centralized", fed["central"]["test"]))
    rows.append((f"baseline: {m['baseline']['name']}", m["baseline"]["test"]))
    con = stdout()
    con.print(metric_table(f"test metrics ({m['test']['n']} rows)", rows, keys))
    con.print(f"run:    {result.run_dir}")
    con.print(f"report: {result.run_dir / 'report.html'}")
    con.print(f"plot:   {result.run_dir / 'plots' / 'federated_rounds.png'}")


def cv_table(result: dict):
    from rich.table import Table

    keys = result["metric_keys"]
    table = Table(title=f"{result['folds']}-fold cross-validation (test split of each fold)")
    table.add_column("fold", no_wrap=True)
    for k in keys:
        table.add_column(k, justify="right")
    for f in result["per_fold"]:
        table.add_row(f"{f['fold']} ({f['model']}, {f['rows']['test']} rows)", *(f"{f['test'][k]:.4f}" for k in keys))
    table.add_section()
    base = result["baseline"]
    for label, summary in (("model", result["model"]), (f"baseline ({base['name']})", base)):
        table.add_row(f"{label}: mean", *(f"{summary[k]['mean']:.4f}" for k in keys))
        table.add_row(f"{label}: std", *(f"{summary[k]['std']:.4f}" for k in keys), style="dim")
    return table


def compression_table(result: dict):
    from rich.table import Table

    metric = "test_" + result["metric"]
    base = next(v for v in result["variants"] if v["variant"] == "fp32")
    table = Table(title=f"compression of {result['run']} ({result['test_rows']} test rows, {result['threads']} threads)")
    for col in ("variant", "size MB", "smaller", result["metric"], "p50 ms", "p95 ms", "faster", "rows/s @64"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for v in result["variants"]:
        table.add_row(v["variant"], f"{v['size_bytes'] / 1e6:.3f}", f"{base['size_bytes'] / v['size_bytes']:.2f}x",
                      f"{v[metric]:.4f}", f"{v['latency_ms_p50']:.3f}", f"{v['latency_ms_p95']:.3f}",
                      f"{base['latency_ms_p50'] / v['latency_ms_p50']:.2f}x", f"{v['throughput_per_s']:.0f}")
    return table


def print_export(info: dict, path) -> None:
    con = stdout()
    opsets = ", ".join(f"{domain} {version}" for domain, version in info["opset"].items())
    con.print(f"wrote {path} ({info['size_bytes'] / 1e6:.2f} MB; opsets {opsets}); runs with onnxruntime alone")
    shape = lambda s: "[" + ", ".join(map(str, s["shape"])) + "]"  # noqa: E731
    for spec in info["inputs"]:
        columns = f": {', '.join(spec['columns'])}" if spec.get("columns") else ""
        con.print(f"  input  {spec['name']} {spec['dtype']} {shape(spec)}{columns}", highlight=False, markup=False)
        con.print(f"         {spec['how']}", highlight=False, markup=False, style="dim")
    for spec in info["outputs"]:
        labels = f": {', '.join(map(str, spec['labels']))}" if spec.get("labels") else ""
        con.print(f"  output {spec['name']} {spec['dtype']} {shape(spec)}{labels}", highlight=False, markup=False)
    if "parity" in info:
        p = info["parity"]
        if "draws" in p:  # a generator's graph, against the network on fixed noise
            con.print(f"parity with the trained network on {p['draws']} draws of fixed noise: max |difference| = "
                      f"{p['max_abs_diff']:.2e}")
        elif "series" in p:  # a forecaster's graph, against the run's own forecasts
            con.print(f"parity with the run's forecasts of its {p['series']} series: max |difference| / the series' "
                      f"level = {p['max_rel_diff']:.2e}")
        else:
            con.print(f"parity with the trained model on {p['rows']} test rows: max |difference| = {p['max_abs_diff']:.2e}")
    else:
        con.print("parity not checked: the run's data could not be read again (it moved or changed)")
