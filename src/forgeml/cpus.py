"""The CPUs this process may really use, and the thread count of a learner with its own fit (LightGBM, CatBoost):
used by training, the baselines and tune (forgeml.train.threads chooses a torch network's threads from them)."""
from __future__ import annotations

import os
from pathlib import Path


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (v2 cpu.max, v1 cfs quota)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup)
    return max(1, min(cpus, quota)) if quota else max(1, cpus)


def _cgroup_quota(root: Path) -> int | None:
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return max(1, int(int(text[0]) / int(text[1]) + 0.5))
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(1, int(quota / period + 0.5))
    except (OSError, ValueError):
        pass
    return None


SMALL_TABLE = 2_000_000  # cells (rows x model inputs): a learner with its own fit trains below this on one thread


def threads_for_table(arrays: dict) -> int:
    """The thread count for a learner with its own fit (LightGBM, CatBoost...) on ``arrays`` when none is configured:
    one on a small table, the usable CPUs on a larger one. Their OpenMP threads spin at a barrier per tree level; on a
    small table the work between barriers is tiny, and a core taken by another process stalls every level: bagged
    LightGBM on breast_cancer (5 fits) took 287.5 s with two threads while two other processes ran, 0.6 s quiet."""
    cells = sum(int(a.size) for a in arrays.values())
    return 1 if cells < SMALL_TABLE else usable_cpus()
