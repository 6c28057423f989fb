"""A small residual CNN for images (ResNet-style basic blocks, global average pooling)."""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.models import register_model


class CNNParams(Strict):
    """Images: a small residual CNN (one stage per entry of channels, each halving the resolution after the first)."""

    name: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [64, 128])
    blocks_per_stage: int = Field(1, ge=1, le=8)
    dropout: float = Field(0.2, ge=0, lt=1)

    # forgeml tune's default space (config key -> range or choices); it holds the defaults, so the study measures them
    search_space: ClassVar[dict] = {
        "model.channels": [[32, 64], [64, 128], [32, 64, 128]],
        "model.dropout": {"low": 0.0, "high": 0.5},
        "train.lr": {"low": 3e-4, "high": 1e-2, "log": True},
        "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    }


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class ResidualCNN(nn.Module):
    def __init__(self, in_channels: int, out_dim: int, channels: list[int], blocks_per_stage: int, dropout: float):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels[0], 3, 1, 1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU())
        blocks, c_in = [], channels[0]
        for i, c in enumerate(channels):
            for b in range(blocks_per_stage):
                blocks.append(BasicBlock(c_in, c, stride=2 if (i > 0 and b == 0) else 1))
                c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, out_dim))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.blocks(self.stem(batch["image"])))


def widths(params, model: ResidualCNN) -> tuple[dict, dict]:
    """The channels per stage of a (pruned) network, and the input shapes it was built on."""
    bps = params.blocks_per_stage
    return ({"channels": [model.blocks[i * bps].bn2.num_features for i in range(len(params.channels))]},
            {"image": [model.stem[0].in_channels]})


@register_model("cnn", supports={"image"}, params=CNNParams, tags={"prunable", "quantize:static", "quantize:dynamic", "distill", "conv"},
                widths=widths)
def build(params, shapes: dict, out_dim: int) -> nn.Module:
    return ResidualCNN(shapes["image"][0], out_dim, params.channels, params.blocks_per_stage, params.dropout)
