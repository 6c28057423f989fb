"""Playbook entry scale-out: each row is what its server measured (the process tree's memory, the workers' own
predict counters), and the verdict is the claim recomputed from the rows. Throughput on a shared machine is noisy,
so the test checks that the verdict and the finding follow the rows, not a speed-up."""
import json
import re

import pytest

from forgeml.playbook import scale_out
from forgeml.processes import process_tree, rss_mb


def test_rows_are_one_and_two_workers_and_the_verdict_is_what_they_say(ran):
    folder, ev = ran["scale-out"]
    rows = {r[0]: dict(zip(ev.columns, r)) for r in ev.rows}
    assert sorted(rows) == list(scale_out.WORKERS)
    for n, r in rows.items():
        assert r["requests"] > 0 and r["errors"] == 0 and 0 < r["p50 ms"] <= r["p99 ms"] and r["requests/s"] > 0
        per = [float(m) for m in r["per process MB"].split(" + ")]
        assert len(per) == r["processes"] and abs(sum(per) - r["memory MB"]) <= len(per)  # rounding only
        assert "Traceback" not in (folder / f"server-workers-{n}.log").read_text()
    one, two = rows[1], rows[2]
    assert one["processes"] == 1 and two["processes"] >= 3  # the supervisor and two workers (and its tracker)
    served = [float(v) for v in two["predicts per worker"].split(" / ")]
    # every request of the warm-up and of the load was counted by exactly one worker
    assert sum(served) <= two["requests"] + 200
    assert float(one["predicts per worker"]) == one["requests"] + 200
    assert ev.supported == (two["memory MB"] >= 1.6 * one["memory MB"] and len(served) >= 2 and min(served) > 0)
    # the finding's ratio is of the unrounded memory, the table's MB are rounded
    said = float(re.search(r"MB for one \((\d+\.\d+)x\)", ev.finding["en"]).group(1))
    assert said == pytest.approx(two["memory MB"] / one["memory MB"], abs=0.03)
    saved = json.loads((folder / "scale-out.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(ev.rows))


def test_the_process_tree_and_its_memory_are_read_from_proc():
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = process_tree(os.getpid())
        assert tree[0] == os.getpid() and child.pid in tree
        assert rss_mb(os.getpid()) > 10
    finally:
        child.kill()
        child.wait()
    assert rss_mb(child.pid) == 0.0  # gone: no error, no memory
