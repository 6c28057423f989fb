"""Run every benchmark and print their tables: `make bench` (or `.venv/bin/python benchmarks/run_all.py`).

Each benchmark measures forgeml against a named baseline in the same run and prints the ratio; see README.md here.
A failing benchmark is reported and the others still run; the exit status is 1 if any failed.
"""
from __future__ import annotations

import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compression  # noqa: E402
import loop_throughput  # noqa: E402
import memory_1m_rows  # noqa: E402
import serve_load  # noqa: E402
import time_to_accuracy  # noqa: E402
from _common import machine  # noqa: E402

BENCHMARKS = [
    ("loop_throughput", loop_throughput.main),
    ("time_to_accuracy", time_to_accuracy.main),
    ("memory_1m_rows", memory_1m_rows.main),
    ("compression", compression.main),
    ("serve_load", serve_load.main),
]


def main() -> int:
    print(f"# forgeml benchmarks, {datetime.now().isoformat(timespec='seconds')}\n{machine()}\n", flush=True)
    failed, times = [], {}
    for name, fn in BENCHMARKS:
        tic = time.perf_counter()
        try:
            if fn([]):
                failed.append(name)  # ran, but missed a target
        except BaseException as exc:  # noqa: BLE001  (report and go on to the next benchmark)
            if isinstance(exc, KeyboardInterrupt):
                raise
            failed.append(name)
            print(f"## {name}: FAILED\n{traceback.format_exc()}", flush=True)
        times[name] = time.perf_counter() - tic
        print(flush=True)
    print("total: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
