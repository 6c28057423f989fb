"""The convolutional parts the generative learners share (models/gan.py, models/vae.py): a decoder that turns a
latent vector (and a class) into an image of exactly the data's shape, and an encoder that turns an image (and a
class) into a vector.

Shapes: the decoder starts from a small grid and doubles it ``n_up`` times (nearest upsampling + 3x3 convolution, no
transposed-convolution checkerboards), where ``n_up`` is how often both sides halve evenly (at most 4, down to a grid
of at least 2): 8x8 -> 2x2 base and 2 doublings, 28x28 -> 7x7 and 2, 12x10 -> 6x5 and 1, 13x13 -> 13x13 and none.
So the output is the data's height and width by construction, for any size.

Pixels: a network works in the run's model-input space (the image feature's per-channel normalization, the same
arrays training reads), so the discriminator, the metrics and the baseline compare like with like. Its last layer
gives pixels in [0, 1] (tanh or sigmoid), normalized by fixed buffers; ``to_pixels`` undoes it for PNGs and ONNX.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

MAX_DOUBLINGS = 4


def upsampling_plan(height: int, width: int) -> tuple[int, int, int]:
    """(base height, base width, doublings) with base * 2**doublings == (height, width) exactly."""
    h, w, n = height, width, 0
    while n < MAX_DOUBLINGS and h % 2 == 0 and w % 2 == 0 and h // 2 >= 2 and w // 2 >= 2:
        h, w, n = h // 2, w // 2, n + 1
    return h, w, n


def stage_channels(width: int, doublings: int) -> list[int]:
    """Channels from the base grid to the full size: halving at each doubling, ``width`` at full size."""
    return [width * 2 ** (doublings - i) for i in range(doublings + 1)]


class Normalize(nn.Module):
    """Pixels in [0, 1] <-> the run's normalized model inputs (per channel (p - mean) / std)."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean) / self.std

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.std + self.mean).clamp(0.0, 1.0)


class Decoder(nn.Module):
    """(z [N, latent], class [N] or None) -> logits [N, C, H, W]; the learner maps them to pixels (tanh or sigmoid)."""

    def __init__(self, latent_dim: int, classes: int, shape: list[int], width: int, embed: int = 16):
        super().__init__()
        c, height, wide = shape
        bh, bw, n_up = upsampling_plan(height, wide)
        chans = stage_channels(width, n_up)
        self.embed = nn.Embedding(classes, embed) if classes else None
        self.base = (chans[0], bh, bw)
        self.project = nn.Sequential(nn.Linear(latent_dim + (embed if classes else 0), chans[0] * bh * bw),
                                     nn.BatchNorm1d(chans[0] * bh * bw), nn.ReLU())
        layers: list[nn.Module] = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, 1, 1, bias=False),
                       nn.BatchNorm2d(b), nn.ReLU()]
        layers.append(nn.Conv2d(chans[-1], c, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(label.long())], dim=1)
        return self.body(self.project(z).view(-1, *self.base))


class Encoder(nn.Module):
    """image [N, C, H, W] -> features [N, out] (the decoder mirrored: stride-2 4x4 convolutions down to the base grid).
    ``spectral``: spectral normalization on every layer (a GAN's discriminator: keeps it Lipschitz, so training with
    the loop's one optimizer setting stays stable)."""

    def __init__(self, shape: list[int], width: int, out: int, spectral: bool = False):
        super().__init__()
        c, height, wide = shape
        bh, bw, n_up = upsampling_plan(height, wide)
        chans = stage_channels(width, n_up)[::-1]  # full size -> base
        norm = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = [norm(nn.Conv2d(c, chans[0], 3, 1, 1)), nn.LeakyReLU(0.2)]
        for a, b in zip(chans, chans[1:]):
            layers += [norm(nn.Conv2d(a, b, 4, 2, 1)), nn.LeakyReLU(0.2)]
        layers += [nn.Flatten(), norm(nn.Linear(chans[-1] * bh * bw, out)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Generative(nn.Module):
    """What every generative learner offers the task, the run and the export: ``latent_dim``, ``classes`` (0:
    unconditional), ``shape`` [C, H, W], ``generate(z, label)`` (normalized model inputs), ``to_pixels``,
    ``training_losses(batch)`` ((optimizer name, loss) pairs) and ``parameter_groups()``. forward(batch) generates
    from the batch's ``z`` (and ``label``): the run's fixed validation and test noise."""

    latent_dim: int
    classes: int
    shape: list[int]
    normalize: Normalize

    def generate(self, z: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.generate(batch["z"], batch.get("label"))

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize.to_pixels(x)

    def parameter_groups(self) -> dict[str, nn.Module]:
        return {"model": self}


def settings(out_dim: dict) -> tuple[int, int, list[float], list[float]]:
    """What the generation task hands a builder as ``out_dim``: latent size, classes, pixel mean and std."""
    return int(out_dim["latent_dim"]), int(out_dim.get("classes") or 0), list(out_dim["mean"]), list(out_dim["std"])
