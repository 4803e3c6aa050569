"""Tensor helpers shared by evaluation and training batches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def largest_shape(shapes: Iterable[tuple[int, ...]]) -> list[int]:
    """The per-dimension maximum of equally long shapes."""
    return [max(s) for s in zip(*shapes, strict=True)]


def cat_padded(tensors: list[Any]):
    """Concatenate along dim 0, zero-padding trailing dims to the largest shape (AnyRes patch counts, crop
    counts), which is how a batch holds images that processed to different sizes."""
    import torch

    shape = largest_shape(t.shape[1:] for t in tensors)
    padded = []
    for t in tensors:
        if list(t.shape[1:]) != shape:
            grown = torch.zeros((t.shape[0], *shape), dtype=t.dtype)
            grown[(slice(None), *(slice(0, s) for s in t.shape[1:]))] = t
            t = grown
        padded.append(t)
    return torch.cat(padded, dim=0)
