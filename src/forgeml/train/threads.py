"""How many CPU threads a network trains with when train.threads is not set: the CPUs this process may really use
(its affinity mask and its cgroup's CPU quota, not the machine's count), and one thread for a small dense network.

Why one: torch's intra-op threads meet at a barrier after every operation; a small model's operations are too short
to split, so a second thread adds little, and when other processes keep the cores busy each barrier waits for a
descheduled thread. Measured on this 2-core machine (benchmarks/contention.py, the default MLP on ISLR Default, 10
epochs): quiet, 3.95 s on one thread against 3.44 s on two; with two busy processes, 6.40 s against 14.95 s (a
1.62x slow-down against 4.35x).
"""
from __future__ import annotations

from forgeml.cpus import usable_cpus  # noqa: F401  (re-exported: the thread choice's other half)

SMALL_MODEL = 1_000_000  # parameters: a dense network below this trains on one thread


def threads_for(model) -> int:
    """The thread count for training ``model`` (a torch module) on the CPU when none is configured: one for a small
    dense network (linear layers, embeddings, norms), the usable CPUs for anything else. Convolutions, recurrent layers
    and attention reuse each weight over many positions, so parameters understate their work: the quickstart CNN
    (306,122 parameters) trained its 30 epochs in 68 s on one thread and in 32 s on two (two fresh-clone make demo runs)."""
    import torch

    heavy = (torch.nn.modules.conv._ConvNd, torch.nn.RNNBase, torch.nn.MultiheadAttention)
    params = sum(p.numel() for p in model.parameters())
    if params >= SMALL_MODEL or any(isinstance(m, heavy) for m in model.modules()):
        return usable_cpus()
    return 1


def native_thread_limits(threads: int | None):
    """train.threads for the native thread pools too (BLAS and OpenMP under NumPy and scikit-learn: the baselines,
    the metrics), not only torch's: left at every core, they oversubscribe a shared CPU (a digits baseline took 3-9 s
    with 2 BLAS threads on the busy 2-core machine, 0.13 s with one). The limits (restore with
    ``.restore_original_limits()``), or None when no thread count is set."""
    if not threads:
        return None
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads)
