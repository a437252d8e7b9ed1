"""Choosing the torch device once, from ``auto``, ``cpu`` or ``cuda``."""

from __future__ import annotations

import torch

from converters.errors import ConfigurationError

__all__ = ["pick_device"]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigurationError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)
