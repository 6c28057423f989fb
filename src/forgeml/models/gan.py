"""A DCGAN-style GAN: a generator (latent vector -> image of the data's shape, models/generative_nets.Decoder with a
tanh) and a discriminator (the mirrored encoder with spectral normalization), trained with two optimizers in forgeml's
one loop: each batch yields the discriminator's loss ("d"), which the loop backpropagates and steps, then the
generator's ("g"), computed against the discriminator just stepped. Non-saturating logistic losses (Goodfellow et
al. 2014). Class-conditional when the run is: the generator takes a class embedding, the discriminator a projection
of it (Miyato & Koyama 2018).
"""
from __future__ import annotations

import copy
from typing import ClassVar, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.models import register_model
from forgeml.models.generative_nets import Decoder, Encoder, Generative, Normalize, settings


EMA_DECAY = 0.99


class GANParams(Strict):
    """GAN: channels at full image size (doubling at each halving of the grid) for the generator and discriminator."""

    name: Literal["gan"] = "gan"
    width: int = Field(32, ge=4, le=512, description="generator channels at full size (x2 per halving of the grid)")
    d_width: int = Field(32, ge=4, le=512, description="discriminator channels at full size")

    # train settings a GAN run takes where its config sets none (forgeml.tasks.generation; written to config.yaml):
    # Adam's beta1 0.5 and a small rate, no weight decay and no gradient clipping, as DCGAN trains (measured on
    # digits: beta1 0.9 left the generator collapsed onto a few images)
    train_defaults: ClassVar[dict] = {"lr": 2e-4, "betas": (0.5, 0.999), "weight_decay": 0.0, "grad_clip": None}


class Discriminator(nn.Module):
    """image [N, C, H, W] (+ class) -> one logit per image. The batch's feature spread (minibatch standard deviation,
    Karras et al. 2018) is one more input of the last layer, so a generator that collapses onto a few images is told
    apart; conditional by projection: + <embed(class), features>."""

    def __init__(self, shape: list[int], width: int, classes: int, features: int = 128):
        super().__init__()
        self.encode = Encoder(shape, width, features, spectral=True)
        self.head = nn.utils.parametrizations.spectral_norm(nn.Linear(features + 1, 1))
        self.project = nn.utils.parametrizations.spectral_norm(nn.Embedding(classes, features)) if classes else None

    def forward(self, x: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.encode(x)
        spread = h.std(dim=0, unbiased=False).mean().expand(len(h), 1) if len(h) > 1 else h.new_zeros(len(h), 1)
        out = self.head(torch.cat([h, spread], dim=1)).squeeze(1)
        if self.project is not None:
            out = out + (self.project(label.long()) * h).sum(dim=1)
        return out


class Generator(nn.Module):
    def __init__(self, latent_dim: int, classes: int, shape: list[int], width: int):
        super().__init__()
        self.decode = Decoder(latent_dim, classes, shape, width)

    def forward(self, z: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        return (torch.tanh(self.decode(z, label)) + 1) / 2  # pixels in [0, 1]


class GAN(Generative):
    """The generator draws through an exponential moving average of its weights (Yazici et al. 2019): training
    steps the generator itself, images come from the average (in eval mode: validation, generate, export), which
    smooths out the oscillation of adversarial training."""

    def __init__(self, shape: list[int], latent_dim: int, classes: int, mean: list[float], std: list[float],
                 width: int, d_width: int):
        super().__init__()
        self.latent_dim, self.classes, self.shape = latent_dim, classes, list(shape)
        self.normalize = Normalize(mean, std)
        self.generator = Generator(latent_dim, classes, shape, width)
        self.discriminator = Discriminator(shape, d_width, classes)
        self.average = copy.deepcopy(self.generator).requires_grad_(False)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def generate(self, z: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.normalize((self.generator if self.training else self.average)(z, label))

    @torch.no_grad()
    def update_average(self) -> None:
        """Move the average towards the generator (decay EMA_DECAY, shorter while few steps were taken); batch-norm
        statistics are copied."""
        decay = min(EMA_DECAY, (1.0 + float(self.steps)) / (10.0 + float(self.steps)))
        for avg, cur in zip(self.average.parameters(), self.generator.parameters()):
            avg.lerp_(cur, 1.0 - decay)
        for avg, cur in zip(self.average.buffers(), self.generator.buffers()):
            avg.copy_(cur)
        self.steps += 1

    def parameter_groups(self) -> dict[str, nn.Module]:
        return {"d": self.discriminator, "g": self.generator}

    def training_losses(self, batch: dict[str, torch.Tensor]):
        """("d", discriminator loss), then ("g", generator loss) on one batch of real images."""
        real, label = batch["image"], batch.get("label")
        self.update_average()  # with the generator as the last step left it
        z = torch.randn(len(real), self.latent_dim, device=real.device)
        fake = self.generate(z, label)
        yield "d", F.softplus(-self.discriminator(real, label)).mean() + \
            F.softplus(self.discriminator(fake.detach(), label)).mean()
        # the generator's loss flows through the discriminator without leaving gradients on it: the loop zeroes only
        # the stepped optimizer's gradients, and stale ones would add to the discriminator's next step
        frozen = [p for p in self.discriminator.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield "g", F.softplus(-self.discriminator(fake, label)).mean()
        finally:
            for p in frozen:
                p.requires_grad_(True)


# tag "generator": the generation family trains it (forgeml.tasks.generation)
@register_model("gan", supports={"image"}, params=GANParams, tags={"generator"})
def build(params, shapes: dict, out_dim: dict) -> nn.Module:
    latent, classes, mean, std = settings(out_dim)
    return GAN(shapes["image"], latent, classes, mean, std, params.width, params.d_width)
