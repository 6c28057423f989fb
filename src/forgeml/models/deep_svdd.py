"""Deep SVDD (Ruff et al., "Deep One-Class Classification", ICML 2018): a network maps the rows into a small space
where training pulls them towards a fixed center c; the squared distance to c is the anomaly score.

As the paper requires against the trivial solution (every row mapped onto c): no bias terms, an unbounded activation
(leaky ReLU), and c fixed before training as the mean initial representation of the training rows, with coordinates
near zero pushed to +-eps. The paper initializes the network from a pretrained autoencoder; this module starts from
He-initialized weights (no pretraining). The trainer calls ``init_center(train_arrays)`` once, before the first step; c is a buffer,
so it is saved and loaded with the weights.
"""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.models import register_model
from forgeml.models.autoencoder import FlatInputs


class DeepSVDDParams(Strict):
    """One-class Deep SVDD: a bias-free MLP (hidden sizes, then rep_dim outputs); score = squared distance to c."""

    name: Literal["deep_svdd"] = "deep_svdd"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [64, 32])
    rep_dim: int = Field(16, gt=0, description="size of the representation the center lives in")

CENTER_EPS = 0.1
LEAKY_SLOPE = 0.01


class DeepSVDD(nn.Module):
    """forward(batch) -> squared distance of each row's representation to the center, [N]."""

    def __init__(self, shapes: dict, hidden: list[int], rep_dim: int):
        super().__init__()
        self.inputs = FlatInputs(shapes)
        layers: list[nn.Module] = []
        width = self.inputs.width
        for h in hidden:
            layers += [nn.Linear(width, h, bias=False), nn.LeakyReLU(LEAKY_SLOPE)]
            width = h
        layers.append(nn.Linear(width, rep_dim, bias=False))
        self.net = nn.Sequential(*layers)
        for layer in self.net:  # He init keeps the representation at the inputs' scale, so c is set by the data:
            if isinstance(layer, nn.Linear):  # torch's default init gave |c| ~ 0.04, most coordinates then +-eps
                nn.init.kaiming_normal_(layer.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
        self.register_buffer("center", torch.zeros(rep_dim))

    def represent(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(self.inputs(batch))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((self.represent(batch) - self.center) ** 2).sum(dim=1)

    @property
    def has_center(self) -> bool:
        """init_center has run (every coordinate of c is at least eps away from 0 after it; all 0 before)."""
        return bool((self.center != 0).all())

    @torch.no_grad()
    def init_center(self, train_arrays: dict, batch_size: int = 1024, eps: float = CENTER_EPS) -> torch.Tensor:
        """c = the mean representation of the training rows under the initial weights; |c_i| < eps -> +-eps."""
        device = self.center.device
        was_training = self.training
        self.eval()
        n = len(next(iter(train_arrays.values())))
        total = torch.zeros_like(self.center, dtype=torch.float64)
        for i in range(0, n, batch_size):
            batch = {k: _tensor(v[i : i + batch_size]).to(device) for k, v in train_arrays.items() if k in _INPUT_KEYS}
            total += self.represent(batch).double().sum(dim=0)
        c = (total / max(n, 1)).float()
        small = c.abs() < eps
        c[small & (c < 0)] = -eps
        c[small & (c >= 0)] = eps
        self.center.copy_(c)
        self.train(was_training)
        return self.center

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared distance to c (the one-class objective; weight decay comes from the optimizer)."""
        if not self.has_center:
            raise RuntimeError("Deep SVDD: call model.init_center(train_arrays) before training")
        return self.forward(batch).mean()


_INPUT_KEYS = ("numeric", "categorical", "image")


def _tensor(v) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))


@register_model("deep_svdd", supports={"numeric", "categorical", "image"}, params=DeepSVDDParams, tags={"detector"})
def build(params, shapes: dict, out_dim=None) -> nn.Module:
    return DeepSVDD(shapes, list(params.hidden), params.rep_dim)
