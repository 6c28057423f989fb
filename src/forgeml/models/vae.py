"""A convolutional variational autoencoder (Kingma & Welling 2014): an encoder (models/generative_nets.Encoder) gives
each image a Gaussian over the latent space, the decoder (a sigmoid over generative_nets.Decoder) rebuilds the image
from a draw of it. The loss is the negative ELBO per image: the pixels' binary cross-entropy (pixels in [0, 1])
plus ``beta`` times the KL divergence from the standard normal prior. It generates by decoding draws of the prior
(the decoder's mean image). Class-conditional when the run is: encoder and decoder both take the class.
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
    beta: float = Field(1.0, gt=0, description="weight of the KL term (1: the ELBO)")

    # train settings a VAE run takes where its config sets none (forgeml.tasks.generation; written to config.yaml)
    train_defaults: ClassVar[dict] = {"lr": 1e-3, "weight_decay": 0.0}


class VAE(Generative):
    def __init__(self, shape: list[int], latent_dim: int, classes: int, mean: list[float], std: list[float], width: int,
                 beta: float, features: int = 128):
        super().__init__()
        self.latent_dim, self.classes, self.shape, self.beta = latent_dim, classes, list(shape), beta
        self.normalize = Normalize(mean, std)
        self.encoder = Encoder(shape, width, features)
        self.embed = nn.Embedding(classes, 16) if classes else None
        self.posterior = nn.Linear(features + (16 if classes else 0), 2 * latent_dim)
        self.decoder = Decoder(latent_dim, classes, shape, width)

    def generate(self, z: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.normalize(torch.sigmoid(self.decoder(z, label)))

    def training_losses(self, batch: dict[str, torch.Tensor]):
        x, label = batch["image"], batch.get("label")
        h = self.encoder(x)
        if self.embed is not None:
            h = torch.cat([h, self.embed(label.long())], dim=1)
        mu, logvar = self.posterior(h).chunk(2, dim=1)
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
    return VAE(shapes["image"], latent, classes, mean, std, params.width, params.beta)
