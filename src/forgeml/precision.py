"""Device and numeric precision: fp32 on CPU by default; bf16 (or fp16 + loss scaling) on GPUs that support it."""
from __future__ import annotations

import contextlib
import warnings

import torch

from forgeml.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA GPU is available; use device: auto or cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"  # measured: bf16 matmuls on this AVX2 CPU are ~100x slower than fp32
    if device.type == "cpu" and name != "fp32":
        warnings.warn(f"precision {name} on CPU: most CPUs have no native {name} and train slower than fp32")
    return name


def autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device):
    """fp16 needs loss scaling to keep small gradients from underflowing; bf16 and fp32 do not."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16"))
