"""Image processors transformers ships only as a torchvision backend, run with torch alone.

Molmo2's image processor (`Molmo2ImageProcessor`) is a `TorchvisionBackend`: its tiling, patching and
pooling are plain torch, and torchvision does three operations only: bilinear resize (float input, no
antialias), normalisation and grey-to-RGB conversion. `Molmo2ImageProcessorTorch` is that same class with
those three done in torch: `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`, which
torchvision's tensor resize calls for bilinear, and `(x - mean) / std` per channel, which its normalize
computes. It is used only where torchvision is missing (`evalkit.models.processor_loading`), and saves
itself as the class it stands in for, so a checkpoint saved from it loads with torchvision too.
"""

from __future__ import annotations

from functools import cache
from typing import Any


def torch_stand_in(image_processor_type: str | None):
    """The torch-only class for a torchvision-only image processor type, or None where evalkit has none."""
    factory = {"Molmo2ImageProcessor": molmo2_image_processor}.get(image_processor_type or "")
    return None if factory is None else factory()


@cache
def molmo2_image_processor():
    """`Molmo2ImageProcessorTorch` (built on first use: transformers' module is imported only then)."""
    import torch
    from transformers.image_utils import PILImageResampling
    from transformers.models.molmo2.image_processing_molmo2 import Molmo2ImageProcessor

    class Molmo2ImageProcessorTorch(Molmo2ImageProcessor):
        """Molmo2's image processor, its torchvision operations done in torch (see the module docstring)."""

        def resize(self, image, size, resample=None, antialias: bool = True, **kwargs):
            if resample not in (None, PILImageResampling.BILINEAR, int(PILImageResampling.BILINEAR)):
                raise ValueError(
                    f"{type(self).__name__} resizes bilinearly only (Molmo2's setting), not with resample="
                    f"{resample!r}: install torchvision for other resampling"
                )
            if not image.is_floating_point():  # Molmo2 resizes float images; torchvision's uint8 path differs
                raise ValueError(f"{type(self).__name__} resizes float images only, got {image.dtype}")
            batched = image if image.ndim == 4 else image[None]
            out = torch.nn.functional.interpolate(
                batched,
                size=(size.height, size.width),
                mode="bilinear",
                align_corners=False,
                antialias=antialias,
            )
            return out if image.ndim == 4 else out[0]

        def normalize(self, image, mean, std, inplace: bool = False, **kwargs):
            shape = (-1, 1, 1)
            mean = torch.as_tensor(mean, dtype=image.dtype, device=image.device).reshape(shape)
            std = torch.as_tensor(std, dtype=image.dtype, device=image.device).reshape(shape)
            return (image - mean) / std

        def convert_to_rgb(self, image, input_data_format=None):
            if image.ndim == 2:
                image = image[None]
            channels = image.shape[-3]
            if channels == 1:
                return image.expand(*image.shape[:-3], 3, *image.shape[-2:])
            if channels == 3:
                return image
            raise ValueError(
                f"{type(self).__name__}: an image array with {channels} channels; pass PIL images or RGB"
            )

        def to_dict(self) -> dict[str, Any]:
            out = super().to_dict()
            out["image_processor_type"] = Molmo2ImageProcessor.__name__
            return out

    return Molmo2ImageProcessorTorch
