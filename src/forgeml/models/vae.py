"""A convolutional variational autoencoder (Kingma & Welling 2014): an encoder (models/generative_nets.Encoder) gives
each image a Gaussian over the latent space, the decoder (a sigmoid over generative_nets.Decoder) rebuilds the image
from a draw of it. The loss is the negative ELBO per image: the pixels' binary cross-entropy (pixels in [0, 1])
plus ``beta`` times the KL divergence from the standard normal prior. It generates by decoding draws of the prior
(the decoder's mean image). Class-conditional when the run is: encoder and decoder both take the class.

The prior it generates from is a ``FittedPrior`` (``prior: fitted``, the default): a Gaussian fitted to the codes
the encoder gives the training images, not the standard normal the KL term pulls them towards. A VAE's codes do not
fill N(0, I), and decoding from where they are gives sharper, more typical images (ex-post density estimation, Ghosh
et al. 2020).
"""
from __future__ import annotations

from typing import ClassVar, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.models import register_model
from forgeml.models.generative_nets import Decoder, Encoder, Generative, Normalize, settings


class VAEParams(Strict):
    """Convolutional VAE: channels at full image size (doubling at each halving of the grid); beta weighs the KL term."""

    name: Literal["vae"] = "vae"
    width: int = Field(32, ge=4, le=512, description="encoder/decoder channels at full size (x2 per halving of the grid)")
    beta: float = Field(0.25, gt=0, description="weight of the KL term (1: the ELBO; below 1 sharper images, with codes "
                                                "that fill the standard normal less: the fitted prior draws where they are)")
    prior: Literal["fitted", "standard"] = Field(
        "fitted", description="what generating decodes: fitted, draws of a Gaussian fitted to the training images' codes "
                              "(per class when conditional); standard, draws of N(0, I)")

    # train settings a VAE run takes where its config sets none (forgeml.tasks.generation; written to config.yaml)
    train_defaults: ClassVar[dict] = {"lr": 1e-3, "weight_decay": 0.0}


class FittedPrior(nn.Module):
    """A Gaussian over the latent space fitted to the codes (posterior means) of the training images, one per class
    when conditional, kept like BatchNorm's running statistics: every training batch moves the running mean and
    second moment, and the Cholesky factor ``scale`` of the covariance is refreshed from them, so generating is a
    matrix product (ONNX exports it) and a checkpoint holds it. It starts as N(0, I); a run saved before it existed
    loads as N(0, I) too."""

    def __init__(self, latent_dim: int, classes: int, momentum: float = 0.01):
        super().__init__()
        groups, eye = max(classes, 1), torch.eye(latent_dim)
        self.conditional, self.momentum = classes > 0, momentum
        self.register_buffer("mean", torch.zeros(groups, latent_dim))
        self.register_buffer("second", eye.repeat(groups, 1, 1))  # E[mu mu^T]
        self.register_buffer("scale", eye.repeat(groups, 1, 1))

    @torch.no_grad()
    def update(self, mu: torch.Tensor, label: Optional[torch.Tensor]) -> None:
        mu = mu.float()
        groups = label.long() if self.conditional else torch.zeros(len(mu), dtype=torch.long, device=mu.device)
        for k in groups.unique().tolist():
            codes = mu[groups == k]
            self.mean[k].lerp_(codes.mean(0), self.momentum)
            self.second[k].lerp_(codes.T @ codes / len(codes), self.momentum)
        eye = torch.eye(self.mean.shape[1], device=mu.device)
        cov = self.second - self.mean.unsqueeze(2) * self.mean.unsqueeze(1) + 1e-4 * eye
        factor, info = torch.linalg.cholesky_ex(cov)
        ok = info == 0  # a class whose estimate is not yet positive definite keeps its last factor
        self.scale[ok] = factor[ok]

    def forward(self, z: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not self.conditional:
            return self.mean[0] + z @ self.scale[0].T
        k = label.long()
        return self.mean[k] + torch.bmm(self.scale[k], z.unsqueeze(2)).squeeze(2)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name, value in self.named_buffers():  # an older run has no fitted prior: it keeps N(0, I)
            state_dict.setdefault(prefix + name, value.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class VAE(Generative):
    def __init__(self, shape: list[int], latent_dim: int, classes: int, mean: list[float], std: list[float], width: int,
                 beta: float, features: int = 128, prior: str = "fitted"):
        super().__init__()
        self.latent_dim, self.classes, self.shape, self.beta = latent_dim, classes, list(shape), beta
        self.normalize = Normalize(mean, std)
        self.encoder = Encoder(shape, width, features)
        self.embed = nn.Embedding(classes, 16) if classes else None
        self.posterior = nn.Linear(features + (16 if classes else 0), 2 * latent_dim)
        self.decoder = Decoder(latent_dim, classes, shape, width)
        self.prior = FittedPrior(latent_dim, classes) if prior == "fitted" else None

    def generate(self, z: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.prior is not None:
            z = self.prior(z, label)
        return self.normalize(torch.sigmoid(self.decoder(z, label)))

    def training_losses(self, batch: dict[str, torch.Tensor]):
        x, label = batch["image"], batch.get("label")
        h = self.encoder(x)
        if self.embed is not None:
            h = torch.cat([h, self.embed(label.long())], dim=1)
        mu, logvar = self.posterior(h).chunk(2, dim=1)
        if self.prior is not None and self.training:
            self.prior.update(mu.detach(), label)
        logvar = logvar.clamp(-10.0, 10.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        target = self.to_pixels(x)
        rebuilt = F.binary_cross_entropy_with_logits(self.decoder(z, label), target, reduction="none").flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        yield "model", (rebuilt + self.beta * kl).mean()


# tag "opt_in": model auto leaves it out (it trains the GAN, which drew closer to the real images on digits:
# benchmarks/generation.py); --model vae trains it
@register_model("vae", supports={"image"}, params=VAEParams, tags={"generator", "opt_in"})
def build(params, shapes: dict, out_dim: dict) -> nn.Module:
    latent, classes, mean, std = settings(out_dim)
    return VAE(shapes["image"], latent, classes, mean, std, params.width, params.beta, prior=params.prior)
