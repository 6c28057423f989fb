"""Per-round time and peak memory of `forgeml federate`'s engines (the "Engines" table of docs/federated.md).

bundled:breast_cancer, 5 IID clients, 5 rounds x 1 local epoch, MLP, 1 thread, no centralized twin. Each engine runs
in a fresh child process (so the first round pays the imports as a user's first round does), and the child's peak
RSS is read with getrusage. Round times come from the run's metrics.json (federated.rounds[].seconds).

    .venv/bin/python examples/federated_engines.py [--engines local,simulation] [--repeats 1]

`simulation` needs Ray (forgeml[cluster]); without it that engine is reported as skipped.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
from forgeml import api
engine, runs = sys.argv[1], sys.argv[2]
tic = time.perf_counter()
r = api.federate({"data": {"source": "bundled:breast_cancer"}, "model": {"name": "mlp"}, "train": {"threads": 1},
                  "tracking": {"uri": "none"}, "name": engine, "runs_dir": runs},
                 clients=5, rounds=5, local_epochs=1, engine=engine, central=False, overwrite=True, quiet=True)
fed = r.metrics["federated"]
print(json.dumps({"rounds": [x["seconds"] for x in fed["rounds"]], "val_loss": [x.get("val_loss") for x in fed["rounds"]],
                  "wall": time.perf_counter() - tic, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="local,simulation")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    print("| engine | run | first round | later rounds (min - max) | whole call | peak RSS (this process) | val loss per round |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for engine in args.engines.split(","):
        if engine == "simulation" and importlib.util.find_spec("ray") is None:
            print(f"| {engine} | – | skipped: ray is not installed (forgeml[cluster]) | | | | |")
            continue
        for rep in range(args.repeats):
            with tempfile.TemporaryDirectory() as runs:
                out = subprocess.run([sys.executable, "-c", CHILD, engine, runs], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            m = json.loads(out.stdout.strip().splitlines()[-1])
            later = m["rounds"][1:]
            print(f"| {engine} | {rep + 1} | {m['rounds'][0]:.2f} s | {min(later):.2f} - {max(later):.2f} s | {m['wall']:.1f} s | "
                  f"{m['peak_mb']:.0f} MB | {', '.join(f'{v:.6f}' for v in m['val_loss'])} |", flush=True)


if __name__ == "__main__":
    main()
