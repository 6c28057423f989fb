"""Wall time and peak memory of `forgeml profile` on a 1,000,000-row x 20-column CSV (mixed types, gaps, duplicates).

Targets (data-quality issue): at most 60 s and 3 GB peak RSS on 2 cores. The CSV (14 numeric columns of which 3
integer, one of them an ID; 5 categorical string columns, one with 300 levels; a binary target with signal; ~2%
missing values in three columns; 0.1% duplicated rows) is generated here with a fixed seed and written with pyarrow
into a temporary folder. The profile then runs as the real CLI (`forgeml.cli.main(["profile", ...])`) in a child
process, so its wall time includes interpreter start-up and imports and its peak RSS is the child's own (ru_maxrss,
plus a 50 ms sampler for the peak per step). The child reports the profile's own seconds per step (read, columns,
duplicates, ...).

    .venv/bin/python benchmarks/profile_1m_rows.py [--rows 1000000] [--keep FOLDER]

Exit status 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_S = 60.0
BUDGET_GB = 3.0
GB = 1024**3


def make_csv(rows: int, path: Path, seed: int = 0) -> None:
    """A seeded 20-column table written as CSV (pyarrow's writer: pandas' to_csv takes minutes at 1M rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 10)).astype(np.float32)
    cols = {"customer_id": np.arange(100_000, 100_000 + rows, dtype=np.int64)}
    for j in range(10):
        cols[f"x{j}"] = x[:, j].round(4)
    cols["x9"] = (np.exp(2.0 * x[:, 9])).round(4)  # heavy right tail: IQR outliers
    cols["age"] = rng.integers(18, 90, rows)
    cols["visits"] = rng.poisson(3.0, rows)
    cols["balance"] = rng.lognormal(7.0, 1.0, rows).round(2)
    city = rng.integers(0, 300, rows)  # high cardinality (> 100 levels)
    plan = rng.integers(0, 5, rows)
    cols["city"] = np.array([f"city_{i}" for i in range(300)], dtype=object)[city]
    cols["plan"] = np.array(["free", "basic", "plus", "pro", "team"], dtype=object)[plan]
    cols["device"] = rng.choice(np.array(["android", "ios", "web"], dtype=object), rows)
    cols["region"] = rng.choice(np.array(["north", "south", "east", "west", "center"], dtype=object), rows)
    cols["segment"] = rng.choice(np.array([f"s{i}" for i in range(20)], dtype=object), rows)
    logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + np.array([-0.5, 0.0, 0.3, 0.6, 1.0])[plan] - 1.0
    cols["churn"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no").astype(object)
    masks = {name: rng.random(rows) < 0.02 for name in ("x5", "age", "device")}  # ~2% missing values
    # 0.1% of the rows are exact copies of others (the ID copied too: a real duplicate export)
    n_dup = rows // 1000
    src, dst = rng.choice(rows, n_dup, replace=False), rng.choice(rows, n_dup, replace=False)
    arrays = {}
    for name, values in cols.items():
        values = values.copy()
        values[dst] = values[src]
        mask = masks.get(name)
        if mask is not None:
            mask = mask.copy()
            mask[dst] = mask[src]
        arrays[name] = pa.array(values, mask=mask)
    pacsv.write_csv(pa.table(arrays), str(path))


CHILD = r'''
import json, os, resource, sys, threading, time
args = json.loads(sys.argv[1])
page = os.sysconf("SC_PAGE_SIZE")
state = {"step": "start-up, imports", "peaks": {}, "order": []}

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

def note(step):
    state["step"] = step
    if step not in state["order"]:
        state["order"].append(step)
    state["peaks"][step] = max(state["peaks"].get(step, 0), rss())

def sampler():
    while True:
        s, r = state["step"], rss()
        if r > state["peaks"].get(s, 0):
            state["peaks"][s] = r
        time.sleep(0.05)

note("start-up, imports")
threading.Thread(target=sampler, daemon=True).start()
tic = time.perf_counter()
import forgeml.cli as cli
import forgeml.profile.analyze as prof
import forgeml.profile.report as rep

captured = {}
real_source = prof.profile_source
def profile_source(source, target=None, step=lambda m: None, seed=0):
    def step2(msg):
        note("reading the CSV" if msg.startswith("reading ") else msg.split(" (")[0])
        step(msg)
    captured["result"] = real_source(source, target, step=step2, seed=seed)
    return captured["result"]
prof.profile_source = profile_source
real_write = rep.write_report
def write_report(result, path):
    note("plots, HTML report")
    t = time.perf_counter()
    out = real_write(result, path)
    captured["report_s"] = time.perf_counter() - t
    return out
rep.write_report = write_report
code = 0
try:
    cli.main(["profile", args["csv"], "--target", "churn", "--out", args["out"], "--quiet"])
except SystemExit as exc:
    code = exc.code or 0
wall = time.perf_counter() - tic
note("done")
r = captured.get("result") or {}
print("RESULT " + json.dumps({
    "code": code, "in_process_s": wall, "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "peaks": [(s, state["peaks"][s]) for s in state["order"] if s != "done"], "seconds": r.get("seconds", {}),
    "report_s": captured.get("report_s"), "warnings": [w["kind"] for w in r.get("warnings", [])],
    "duplicates": r.get("duplicates", {}).get("rows"), "report_bytes": os.path.getsize(args["out"]) if code == 0 else 0,
}))
'''


def run(rows: int, keep: Path | None = None, max_wait: float = 90.0) -> dict:
    from _common import Meter, QuietGate

    with tempfile.TemporaryDirectory(prefix="forgeml-bench-profile-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        csv = folder / f"table_{rows}.csv"
        tic = time.perf_counter()
        if not csv.is_file():
            make_csv(rows, csv)
        gen_s = time.perf_counter() - tic
        args = {"csv": str(csv), "out": str(folder / "table.profile.html")}
        gate = QuietGate(budget=max_wait)
        gate.wait()
        with Meter() as m:
            proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True)
        if proc.returncode != 0 or "RESULT " not in proc.stdout:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(f"profile subprocess failed with exit code {proc.returncode}")
        line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
        out = json.loads(line[len("RESULT "):])
        if out["code"] != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(f"forgeml profile exited with {out['code']}")
        out["csv_mb"] = csv.stat().st_size / 1e6
    out.update(rows=rows, wall_s=m.seconds, generate_s=gen_s, other_load=m.other, waited=gate.waited)
    return out


def report(r: dict) -> tuple[str, bool]:
    from _common import machine, table

    peak = r["ru_maxrss"] / GB
    ok_t, ok_m = r["wall_s"] <= TARGET_S, peak <= BUDGET_GB
    lines = [
        f"## profile_1m_rows: `forgeml profile` on a {r['rows']:,}-row x 20-column CSV ({r['csv_mb']:.0f} MB, target 'churn')",
        "",
        table(["measure", "value", "target", "ratio (value / target)"], [
            ["wall time of the CLI process (start-up, imports, read, profile, plots, HTML)", f"{r['wall_s']:.1f} s",
             f"{TARGET_S:.0f} s", f"{r['wall_s'] / TARGET_S:.2f} {'(met)' if ok_t else '(MISSED)'}"],
            ["peak RSS of the CLI process", f"{peak:.2f} GB", f"{BUDGET_GB:.1f} GB",
             f"{peak / BUDGET_GB:.2f} {'(met)' if ok_m else '(MISSED)'}"],
        ]),
        "",
        f"machine: {machine()}; other processes kept {r['other_load']:.2f} of {os.cpu_count()} cores busy during the run"
        + (" (NOISY: the wall time is inflated)" if r["other_load"] >= 0.3 else " (quiet)"),
        f"generating the CSV took {r['generate_s']:.1f} s (not counted); the report is {r['report_bytes'] / 1e6:.2f} MB; "
        f"{r['duplicates']:,} duplicate rows found; warnings: {', '.join(r['warnings']) or 'none'}",
        "",
        table(["step (as the progress line names it)", "peak RSS in step"],
              [[name, f"{p / GB:.2f} GB"] for name, p in r["peaks"]], "lr"),
        "",
        "seconds per step inside the profile: " + ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items())
        + (f", plots + HTML {r['report_s']:.1f}" if r.get("report_s") is not None else ""),
    ]
    return "\n".join(lines), ok_t and ok_m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="write (and reuse) the CSV and the report in this folder")
    ap.add_argument("--max-wait", type=float, default=90.0, help="seconds to wait for a quiet machine before starting")
    a = ap.parse_args(argv)
    text, ok = report(run(a.rows, a.keep, a.max_wait))
    print(text, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
