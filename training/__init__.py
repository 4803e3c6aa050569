"""Compact alignment trainers: `train(method=..., model=..., data=..., output=...)` (see `trainer`)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "train":  # lazy: importing the data loaders must not import torch
        from evalkit.training.trainer import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
