"""Split a training set across simulated federated clients: IID (stratified, balanced) or Dirichlet(alpha) over labels.

Dirichlet partitioning (Hsu et al., 2019, "Measuring the effects of non-identical data distribution"): for every
class, the share each client gets is drawn from Dir(alpha, ..., alpha). Small alpha (0.1) gives each client a few
dominant classes; large alpha (100) approaches IID. Draws are repeated until every client holds at least
``min_rows`` rows (as the usual reference implementations do); a draw that never satisfies that is topped up from
the largest client, so no client is ever empty.
"""
from __future__ import annotations

import numpy as np

from forgeml.errors import ConfigError, DataError

PARTITIONS = ("iid", "dirichlet")
MAX_DRAWS = 100


def label_groups(y: np.ndarray, classification: bool, bins: int = 5) -> np.ndarray:
    """Labels to partition by: class codes, or (regression) quantile bins of the target."""
    if classification:
        return np.asarray(y, dtype=np.int64)
    edges = np.unique(np.quantile(np.asarray(y, dtype=np.float64), np.linspace(0, 1, bins + 1)[1:-1]))
    return np.digitize(y, edges).astype(np.int64)


def partition(labels: np.ndarray, clients: int, method: str = "iid", alpha: float = 0.5, seed: int = 0,
              min_rows: int = 2) -> list[np.ndarray]:
    """Row indices for each client (sorted). Every row goes to exactly one client."""
    labels = np.asarray(labels)
    n = len(labels)
    if method not in PARTITIONS:
        raise ConfigError(f"unknown partition {method!r}; choose one of: {', '.join(PARTITIONS)}")
    if clients < 1:
        raise ConfigError(f"--clients must be at least 1, got {clients}")
    if clients > n:
        raise DataError(f"{clients} clients but the training split has only {n} rows; use at most {n} clients "
                        "(each client needs at least one row)")
    rng = np.random.default_rng(seed)
    if method == "iid":
        return _iid(labels, clients, rng)
    if not alpha > 0:
        raise ConfigError(f"--alpha must be > 0 (the Dirichlet concentration), got {alpha}")
    return _dirichlet(labels, clients, alpha, rng, min(min_rows, n // clients))


def _iid(labels: np.ndarray, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified round-robin: shuffle within each class, lay the classes end to end and deal rows out in turn, so
    every client gets (within one row) the same count of every class and the same number of rows."""
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    owner = np.empty(len(labels), dtype=np.int64)
    owner[order] = np.arange(len(labels)) % clients
    return [np.flatnonzero(owner == k) for k in range(clients)]


def _dirichlet(labels: np.ndarray, clients: int, alpha: float, rng: np.random.Generator, min_rows: int) -> list[np.ndarray]:
    classes = np.unique(labels)
    for _ in range(MAX_DRAWS):
        owner = np.empty(len(labels), dtype=np.int64)
        for c in classes:
            rows = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(np.int64)
            for k, part in enumerate(np.split(rows, cuts)):
                owner[part] = k
        sizes = np.bincount(owner, minlength=clients)
        if sizes.min() >= min_rows:
            break
    else:  # very small alpha with many clients: give the smallest clients rows from the largest
        for k in np.argsort(sizes):
            while sizes[k] < max(1, min_rows):
                donor = int(np.argmax(sizes))
                row = rng.choice(np.flatnonzero(owner == donor))
                owner[row] = k
                sizes[donor] -= 1
                sizes[k] += 1
    return [np.flatnonzero(owner == k) for k in range(clients)]


def describe(parts: list[np.ndarray], labels: np.ndarray, names: list | None = None) -> dict:
    """Rows and label counts per client, plus how far each client's label mix is from the pooled one."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    names = [str(names[c]) if names is not None and c < len(names) else str(c) for c in classes]
    pooled = np.array([(labels == c).mean() for c in classes])
    clients = []
    for k, idx in enumerate(parts):
        counts = np.array([(labels[idx] == c).sum() for c in classes])
        share = counts / max(1, counts.sum())
        clients.append({"client": k, "rows": int(len(idx)), "class_counts": dict(zip(names, counts.tolist())),
                        # total variation distance to the pooled label distribution: 0 = IID, 1 = disjoint
                        "label_skew": round(float(0.5 * np.abs(share - pooled).sum()), 4)})
    return {"clients": clients, "rows": [c["rows"] for c in clients],
            "mean_label_skew": round(float(np.mean([c["label_skew"] for c in clients])), 4)}
