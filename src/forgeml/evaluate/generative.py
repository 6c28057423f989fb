"""Scores for generated images, computed in the feature space of forgeml's own small classifier
(forgeml.evaluate.feature_net) between the real images of a split and as many generated ones:

- ``frechet_distance``: the Frechet distance between Gaussians fitted to the two feature sets (the formula of FID,
  Heusel et al. 2017, in another network's features: NOT Inception FID, and not comparable with published FIDs);
- ``kid``: the kernel inception distance's statistic (Binkowski et al. 2018): the unbiased squared MMD with the cubic
  polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over subsets; unbiased, so it can be slightly negative;
- ``precision`` / ``recall`` (Kynkaenniemi et al. 2019): the share of generated images inside the real images'
  k-nearest-neighbour manifold (fidelity), and of real images inside the generated ones' (diversity);
- ``density`` / ``coverage`` (Naeem et al. 2020): how many real neighbourhoods contain each generated image on average,
  and the share of real neighbourhoods holding at least one;
- ``class_accuracy`` (conditional models): the share of images generated for a class that the classifier takes for
  that class, overall and per class.

Lower is better for the two distances, higher for the rest. The baseline beside every run, a Gaussian mixture fitted
on the pixels (``mixture_samples``), is scored the same way.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

NEIGHBOURS = 5  # k of the k-NN manifolds (precision/recall: Kynkaenniemi et al. use 3; density/coverage: Naeem et al. 5)
KID_SUBSET = 1000
KID_SUBSETS = 10
MIXTURE_COMPONENTS = (1, 2, 5, 10, 20)  # tried per mixture; the best validation log-likelihood is kept


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between feature sets [N, D]. The trace of the root is
    taken as Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)) from symmetric eigen-decompositions: the same value, and stable
    when a covariance is singular (a ReLU feature that is always 0)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())
    return max(value, 0.0)


def kid(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """The unbiased squared MMD with the cubic polynomial kernel, the mean over KID_SUBSETS subsets of up to
    KID_SUBSET rows of each set."""
    rng = np.random.default_rng(seed)
    m = min(len(a), len(b), KID_SUBSET)
    d = a.shape[1]
    values = []
    for _ in range(KID_SUBSETS if m < max(len(a), len(b)) else 1):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        off = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))  # noqa: E731
        values.append(off(kxx) + off(kyy) - 2 * kxy.mean())
    return float(np.mean(values))


def manifold_scores(real: np.ndarray, fake: np.ndarray, k: int = NEIGHBOURS) -> dict[str, float]:
    """Precision and recall (k-NN manifolds of each set), density and coverage (the real set's k-NN balls)."""
    from sklearn.metrics import pairwise_distances

    def radii(x: np.ndarray) -> np.ndarray:  # distance of each point to its k-th nearest other point
        dist = pairwise_distances(x)
        return np.sort(dist, axis=1)[:, min(k, len(x) - 1)]

    r_real, r_fake = radii(real), radii(fake)
    cross = pairwise_distances(real, fake)  # [real, fake]
    inside_real = cross <= r_real[:, None]  # fake j inside real i's ball
    return {"precision": float(inside_real.any(axis=0).mean()),
            "recall": float((cross <= r_fake[None, :]).any(axis=1).mean()),
            "density": float(inside_real.sum(axis=0).mean() / k),
            "coverage": float((cross.min(axis=1) <= r_real).mean())}


def class_accuracy(predicted: np.ndarray, wanted: np.ndarray, names: list) -> dict:
    """Share of images generated for each class that the classifier takes for it; the mean over classes."""
    per = {str(names[c]): float((predicted[wanted == c] == c).mean()) for c in np.unique(wanted)}
    return {"class_accuracy": float(np.mean(list(per.values()))) if per else None, "class_accuracy_per_class": per}


def score(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> dict:
    """Every unconditional score between real and generated feature sets [N, D]."""
    if len(real) < 3 or len(fake) < 3:
        return {"frechet_distance": None, "kid": None, "precision": None, "recall": None, "density": None, "coverage": None}
    return {"frechet_distance": frechet_distance(real, fake), "kid": kid(real, fake, seed), **manifold_scores(real, fake)}


# ---------------------------------------------------------------------------------------------- the baseline
def mixture(train: np.ndarray, val: np.ndarray, seed: int):
    """A scikit-learn GaussianMixture on flattened pixels, with the number of components (MIXTURE_COMPONENTS, at most
    one per 10 rows) whose validation log-likelihood is best; full covariances up to 1024 pixels, diagonal beyond."""
    from sklearn.mixture import GaussianMixture

    kind = "full" if train.shape[1] <= 1024 else "diag"
    best, best_ll = None, -np.inf
    for n in [c for c in MIXTURE_COMPONENTS if c <= max(1, len(train) // 10)]:
        gm = GaussianMixture(n, covariance_type=kind, reg_covar=1e-3, random_state=seed, max_iter=200).fit(train)
        ll = gm.score(val) if len(val) else -gm.bic(train)
        if ll > best_ll:
            best, best_ll = gm, ll
    return best


def mixture_samples(train: np.ndarray, val: np.ndarray, wanted: dict[str, np.ndarray],
                    train_labels: Optional[np.ndarray], val_labels: Optional[np.ndarray], low: np.ndarray,
                    high: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Images [N, C, H, W] drawn from Gaussian mixtures on the training pixels, one draw per entry of ``wanted``
    (split -> the class codes to draw, or an array of -1 for an unconditional draw): one mixture for all rows, or with
    ``train_labels`` one per class. Pixels are clipped to the model inputs' range (``low``/``high`` per channel), as
    a generator's last layer bounds its own."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # matrices of at most a few thousand pixels: one BLAS thread is fastest
        return _mixture_samples(train, val, wanted, train_labels, val_labels, low, high, seed)


def _mixture_samples(train, val, wanted, train_labels, val_labels, low, high, seed) -> dict[str, np.ndarray]:
    shape = train.shape[1:]
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    groups = {-1: None} if train_labels is None else {int(c): None for c in np.unique(train_labels)}
    for c in groups:
        rows = slice(None) if c == -1 else train_labels == c
        held = slice(None) if c == -1 else (val_labels == c if val_labels is not None else slice(0, 0))
        groups[c] = mixture(flat(train[rows]), flat(val[held]) if len(val) else flat(val), seed)
    out = {}
    for i, (split, codes) in enumerate(wanted.items()):
        drawn = np.zeros((len(codes), int(np.prod(shape))))
        for c, gm in groups.items():
            where = np.flatnonzero(codes == c) if c != -1 else np.arange(len(codes))
            if len(where):
                gm.random_state = seed + 1000 * (i + 1) + c  # a draw per split, reproducible
                with warnings.catch_warnings():  # covariances symmetric only up to rounding: numpy says so
                    warnings.simplefilter("ignore", RuntimeWarning)
                    x, _ = gm.sample(len(where))
                drawn[where] = x[np.random.default_rng(seed + i).permutation(len(where))]  # sample() orders by component
        out[split] = np.clip(drawn.reshape(len(codes), *shape), low.reshape(1, -1, 1, 1), high.reshape(1, -1, 1, 1))
    return out
