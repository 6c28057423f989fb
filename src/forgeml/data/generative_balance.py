"""Generative oversampling (data.balance.method: generative): a conditional tabular VAE fitted on the encoded
training rows, sampled for the classes that have fewer rows until each has as many as the largest (what
RandomOverSampler and SMOTE aim for too).

The VAE follows TVAE (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN"), conditioned on the class:
- continuous columns go through a quantile transform to a standard normal first, so skewed columns, point masses
  (a balance of 0) and several modes become one Gaussian-like scale; samples are mapped back, inside the training
  range;
- each continuous column has a learned noise scale, and each nominal column (level codes, as SMOTENC treats them)
  is a softmax over the levels seen in training;
- the class enters the encoder and the decoder as a one-hot, so one model serves every class and a small class
  borrows what the columns look like from the others.

Beside the new rows, ``detectability`` measures how well a gradient-boosted classifier tells real rows of the
oversampled classes from synthetic ones (cross-validated ROC-AUC: 0.5 means it cannot tell them apart; near 1 means
the synthetic rows are easy to spot and teach the model something that is not in the data).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from forgeml.errors import DataError
from forgeml.progress import bar

MIN_CLASS_ROWS = 10  # fewer rows of a class than this cannot show a generator what the class looks like


@dataclass
class Columns:
    """How the encoded training inputs map to the generator's columns."""

    keys: list[str]           # model input keys, continuous ones first
    widths: list[int]         # columns per key
    roles: list[str]          # "continuous" | "nominal" per key
    levels: list[np.ndarray]  # per nominal column (in key order): the codes seen in training

    @property
    def n_continuous(self) -> int:
        return sum(w for w, r in zip(self.widths, self.roles) if r == "continuous")


def oversample(arrays: dict[str, np.ndarray], y: np.ndarray, cfg, labels: list, roles: dict[str, str | None],
               say=lambda m: None) -> tuple[dict, np.ndarray, dict]:
    """The training inputs with synthetic rows of the smaller classes appended, their labels, and a report (what
    was fitted, how many rows each class got, the detectability of the synthetic rows)."""
    import torch

    counts = np.bincount(y, minlength=len(labels))
    wanted = {c: int(counts.max() - n) for c, n in enumerate(counts) if 0 < n < counts.max()}
    if not wanted:  # already balanced
        return arrays, y, {"generator": None, "synthetic_rows": {}}
    small = [c for c in wanted if counts[c] < MIN_CLASS_ROWS]
    if small:
        raise DataError(f"generative oversampling needs at least {MIN_CLASS_ROWS} training rows of a class to learn "
                        f"it; class {labels[small[0]]!r} has {counts[small[0]]}. Use oversample or class_weights")
    cols = _columns(arrays, roles)
    x_cont, x_nom = _split(arrays, cols)
    from sklearn.preprocessing import QuantileTransformer

    quantiles = QuantileTransformer(output_distribution="normal", n_quantiles=min(1000, len(y)),
                                    random_state=cfg.seed).fit(x_cont) if x_cont.shape[1] else None
    z_cont = quantiles.transform(x_cont) if quantiles else x_cont
    nominal_index = [np.searchsorted(lv, x_nom[:, j]) for j, lv in enumerate(cols.levels)]

    torch.manual_seed(cfg.seed)
    net = _conditional_vae(z_cont.shape[1], [len(lv) for lv in cols.levels], len(labels))
    tic, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(1)  # a small MLP: one thread is as quick, and a busy second core cannot stall it
    try:
        loss = _fit(net, z_cont, nominal_index, y, cfg.generator_epochs, say)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - tic

    gen = torch.Generator().manual_seed(cfg.seed)
    new_y = np.concatenate([np.full(n, c, dtype=np.int64) for c, n in wanted.items()])
    s_cont, s_nom = net.sample(torch.as_tensor(new_y), gen)
    if quantiles:
        s_cont = quantiles.inverse_transform(np.clip(s_cont, -5.2, 5.2))  # the transform's own bounds
    s_nom = [lv[idx] for lv, idx in zip(cols.levels, s_nom)]
    synthetic = _join(s_cont, s_nom, cols, arrays)
    out = {k: np.concatenate([arrays[k], synthetic[k]]) for k in arrays}
    report = {"generator": "conditional VAE (TVAE-style)", "epochs": cfg.generator_epochs, "final_loss": round(loss, 4),
              "synthetic_rows": {str(labels[c]): n for c, n in wanted.items()},
              "detectability_roc_auc": detectability(arrays, synthetic, y, new_y, cols, cfg.seed)}
    say(f"[dim]balance (generative): a conditional VAE fitted on {len(y)} training rows ({cfg.generator_epochs} epochs, "
        f"{seconds:.1f} s); a classifier tells its rows from real ones at ROC-AUC {report['detectability_roc_auc']} "
        "(0.5: it cannot)[/]")
    return out, np.concatenate([y, new_y]).astype(np.int64), report


def detectability(real: dict, synthetic: dict, y: np.ndarray, new_y: np.ndarray, cols: Columns, seed: int) -> float | None:
    """Cross-validated ROC-AUC of a gradient-boosted classifier telling the real rows of the oversampled classes from
    the synthetic ones (as many of each; 0.5: indistinguishable). None when there are too few rows to tell."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    classes = np.unique(new_y)
    pick = np.isin(y, classes)
    a = np.concatenate([real[k][pick].astype(np.float64) for k in cols.keys], axis=1)
    rng = np.random.default_rng(seed)
    b_all = np.concatenate([synthetic[k].astype(np.float64) for k in cols.keys], axis=1)
    b = b_all[rng.choice(len(b_all), size=min(len(a), len(b_all)), replace=False)]
    if min(len(a), len(b)) < 10:
        return None
    x, t = np.concatenate([a, b]), np.r_[np.zeros(len(a)), np.ones(len(b))]
    nominal = np.r_[np.zeros(cols.n_continuous, bool), np.ones(x.shape[1] - cols.n_continuous, bool)]
    from threadpoolctl import threadpool_limits

    clf = HistGradientBoostingClassifier(max_iter=100, categorical_features=nominal if nominal.any() else None,
                                         random_state=seed)
    with threadpool_limits(1):  # a small table (forgeml.cpus.threads_for_table says why)
        return round(float(cross_val_score(clf, x, t, cv=3, scoring="roc_auc").mean()), 4)


def _columns(arrays: dict, roles: dict) -> Columns:
    keys = [k for role in ("continuous", "nominal") for k, r in roles.items() if r == role and k in arrays]
    widths = [arrays[k].shape[1] for k in keys]
    levels = [np.unique(arrays[k][:, j]) for k in keys if roles[k] == "nominal" for j in range(arrays[k].shape[1])]
    return Columns(keys, widths, [roles[k] for k in keys], levels)


def _split(arrays: dict, cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    n = len(next(iter(arrays.values())))
    cont = [arrays[k].astype(np.float64) for k, r in zip(cols.keys, cols.roles) if r == "continuous"]
    nom = [arrays[k] for k, r in zip(cols.keys, cols.roles) if r == "nominal"]
    return (np.concatenate(cont, axis=1) if cont else np.zeros((n, 0)),
            np.concatenate(nom, axis=1) if nom else np.zeros((n, 0), np.int64))


def _join(cont: np.ndarray, nominal: list[np.ndarray], cols: Columns, like: dict) -> dict:
    """The generator's columns back into model inputs (dtypes as the real ones)."""
    out, c, n = {}, 0, 0
    for k, w, r in zip(cols.keys, cols.widths, cols.roles):
        if r == "continuous":
            out[k], c = cont[:, c:c + w], c + w
        else:
            out[k], n = np.stack(nominal[n:n + w], axis=1), n + w
        out[k] = out[k].astype(like[k].dtype)
    return out


def _fit(net, z_cont: np.ndarray, nominal: list[np.ndarray], y: np.ndarray, epochs: int, say) -> float:
    """Adam on the evidence lower bound; a progress bar when the run is not quiet. Batches of 256 rows, smaller on a
    small table so that every epoch still takes several steps."""
    import torch

    xc = torch.as_tensor(z_cont, dtype=torch.float32)
    xn = torch.as_tensor(np.stack(nominal, axis=1) if nominal else np.zeros((len(y), 0), np.int64))
    yy = torch.as_tensor(y)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
    batch, loss_sum, steps = min(256, max(32, len(y) // 8)), 0.0, 0
    with bar("balance generator epochs", epochs, say) as update:
        for epoch in range(epochs):
            order, loss_sum, steps = torch.randperm(len(yy)), 0.0, 0
            for i in range(0, len(yy), batch):
                idx = order[i:i + batch]
                loss = net.loss(xc[idx], xn[idx], yy[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss_sum, steps = loss_sum + loss.item(), steps + 1
            update(epoch + 1, f"loss {loss_sum / steps:.3f}")
    return loss_sum / max(steps, 1)


def _conditional_vae(n_cont: int, levels: list[int], n_classes: int, latent: int = 16, width: int = 128):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class ConditionalVAE(nn.Module):
        def __init__(self):
            super().__init__()
            n_in = n_cont + sum(levels)
            self.encoder = nn.Sequential(nn.Linear(n_in + n_classes, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                         nn.Linear(width, 2 * latent))
            self.decoder = nn.Sequential(nn.Linear(latent + n_classes, width), nn.ReLU(), nn.Linear(width, width),
                                         nn.ReLU(), nn.Linear(width, n_cont + sum(levels)))
            self.log_sigma = nn.Parameter(torch.full((n_cont,), -1.0))  # TVAE: a learned noise scale per column

        def _cond(self, y):
            return F.one_hot(y, n_classes).float()

        def _decode(self, z, y):
            out = self.decoder(torch.cat([z, self._cond(y)], dim=1))
            return out[:, :n_cont], torch.split(out[:, n_cont:], levels, dim=1) if levels else ()

        def loss(self, xc, xn, y):
            onehots = [F.one_hot(xn[:, j], k).float() for j, k in enumerate(levels)]
            mu, logvar = self.encoder(torch.cat([xc, *onehots, self._cond(y)], dim=1)).chunk(2, dim=1)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            mean, logits = self._decode(z, y)
            sigma = self.log_sigma.clamp(-5, 2)
            rec = (0.5 * ((xc - mean) / sigma.exp()) ** 2 + sigma).sum(dim=1)
            rec = rec + sum(F.cross_entropy(lg, xn[:, j], reduction="none") for j, lg in enumerate(logits))
            kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(dim=1)
            return (rec + kl).mean()

        @torch.no_grad()
        def sample(self, y, generator):
            self.eval()
            z = torch.randn(len(y), latent, generator=generator)
            mean, logits = self._decode(z, y)
            cont = mean + torch.randn(mean.shape, generator=generator) * self.log_sigma.clamp(-5, 2).exp()
            nominal = [torch.multinomial(lg.softmax(dim=1), 1, generator=generator).squeeze(1).numpy() for lg in logits]
            return cont.double().numpy(), nominal

    return ConditionalVAE()
