"""Image processors transformers ships only as a torchvision backend, run with torch alone.

Molmo2's image processor (`Molmo2ImageProcessor`) is a `TorchvisionBackend`: its tiling, patching and
pooling are plain torch, and torchvision does three operations only: bilinear resize (float input, no
antialias), normalisation and grey-to-RGB conversion. `Molmo2ImageProcessorTorch` is that same class with
those three done in torch: `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`, which
torchvision's tensor resize calls for bilinear, and `(x - mean) / std` per channel, which its normalize
computes. Phi-4-multimodal's (`Phi4MultimodalImageProcessor`) imports torchvision at module level, so
`Phi4MultimodalImageProcessorTorch` is written from its algorithm (see its docstring). Both are used only
where torchvision is missing (`evalkit.models.processor_loading`), and save themselves as the class they
stand in for, so a checkpoint saved from them loads with torchvision too.
"""

from __future__ import annotations

from functools import cache
from typing import Any


def _normalize(image, mean, std):
    """(image - mean) / std per channel (channels first), as torchvision's normalize computes it."""
    import torch

    mean = torch.as_tensor(mean, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
    std = torch.as_tensor(std, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
    return (image - mean) / std


def torch_stand_in(image_processor_type: str | None):
    """The torch-only class for a torchvision-only image processor type, or None where evalkit has none."""
    factories = {
        "Molmo2ImageProcessor": molmo2_image_processor,
        "Phi4MultimodalImageProcessor": phi4_multimodal_image_processor,
    }
    factory = factories.get(image_processor_type or "")
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
            return _normalize(image, mean, std)

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


@cache
def phi4_multimodal_image_processor():
    """`Phi4MultimodalImageProcessorTorch`: Phi-4-multimodal's image processing in torch. transformers'
    module imports torchvision, so this is written from its algorithm: the image is tiled into a grid of
    `size` crops (as many as it covers, or where that exceeds `dynamic_hd` the grid of closest aspect
    ratio), resized into the grid keeping its aspect ratio (bilinear, antialiased: torchvision's default,
    which for bytes on the CPU is torch's own kernel) and padded white at the right or bottom; after
    normalisation a global view (the grid resized to one crop, bicubic) precedes the crops. A per-patch
    mask marks the padding; the image's token count is the global view's (pooled 2 x 2, one separator per
    row), one separator, and the grid's unpadded pooled patches with one separator per row."""
    import math

    import torch
    import torch.nn.functional as F
    from transformers.image_processing_backends import TorchvisionBackend
    from transformers.image_processing_utils import BatchFeature
    from transformers.image_utils import PILImageResampling
    from transformers.processing_utils import ImagesKwargs

    class Phi4MultimodalImageProcessorKwargs(ImagesKwargs, total=False):
        patch_size: int
        dynamic_hd: int

    class Phi4MultimodalImageProcessorTorch(TorchvisionBackend):
        resample = PILImageResampling.BICUBIC
        size = {"height": 448, "width": 448}
        patch_size = 14
        dynamic_hd = 36
        image_mean = [0.5, 0.5, 0.5]
        image_std = [0.5, 0.5, 0.5]
        do_rescale = True
        do_normalize = True
        do_convert_rgb = True
        valid_kwargs = Phi4MultimodalImageProcessorKwargs
        model_input_names = ["image_pixel_values", "image_sizes", "image_attention_mask"]

        def _preprocess(self, images, size, resample, do_rescale, rescale_factor, do_normalize, image_mean,
                        image_std, patch_size, dynamic_hd, return_tensors=None, **kwargs):  # fmt: skip
            if size.height != size.width:
                raise ValueError(f"{type(self).__name__}: square crops only, got {size.height}x{size.width}")
            if resample not in (PILImageResampling.BICUBIC, int(PILImageResampling.BICUBIC)):
                raise ValueError(f"{type(self).__name__}: bicubic global view only (Phi-4's setting)")
            crop, side = size.height, size.height // patch_size
            pixels, masks, tokens, sizes = [], [], [], []
            for image in images:
                (cols, rows), (new_w, new_h), (pad_w, pad_h) = crop_layout(
                    *image.shape[-2:], crop, dynamic_hd
                )
                resized = F.interpolate(
                    image[None], size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
                )[0]
                grid = F.pad(resized, (0, pad_w, 0, pad_h), value=255)
                grid = self.rescale_and_normalize(
                    grid, do_rescale, rescale_factor, do_normalize, image_mean, image_std
                )
                whole = F.interpolate(grid[None], size=(crop, crop), mode="bicubic", align_corners=False)
                tiles = (
                    grid.reshape(3, rows, crop, cols, crop).permute(1, 3, 0, 2, 4).reshape(-1, 3, crop, crop)
                )
                mask = torch.ones(rows * side, cols * side)
                if pad_w >= patch_size:
                    mask[:, -(pad_w // patch_size) :] = 0
                if pad_h >= patch_size:
                    mask[-(pad_h // patch_size) :, :] = 0
                pooled = mask[::2, ::2]  # each crop's side is even: the grid's every other patch
                half = (side + 1) // 2
                tokens.append(half * half + half + 1 + int(pooled.sum()) + int(pooled[:, 0].sum()))
                tile_masks = mask.reshape(rows, side, cols, side).permute(0, 2, 1, 3).reshape(-1, side, side)
                pixels.append(torch.cat([whole, tiles]))
                masks.append(torch.cat([torch.ones(1, side, side), tile_masks]))
                sizes.append([rows * crop, cols * crop])
            most = max(len(p) for p in pixels)  # every image padded to the most crops: zeros, mask ones
            pixels = [torch.cat([p, p.new_zeros(most - len(p), *p.shape[1:])]) for p in pixels]
            masks = [torch.cat([m, m.new_ones(most - len(m), *m.shape[1:])]) for m in masks]
            data = {
                "image_pixel_values": torch.stack(pixels),
                "image_sizes": torch.tensor(sizes, dtype=torch.long),
                "image_attention_mask": torch.stack(masks),
                "num_img_tokens": tokens,
            }
            return BatchFeature(data=data, tensor_type=return_tensors)

        def normalize(self, image, mean, std, inplace: bool = False, **kwargs):
            return _normalize(image, mean, std)

        def to_dict(self) -> dict[str, Any]:
            out = super().to_dict()
            out["image_processor_type"] = "Phi4MultimodalImageProcessor"
            return out

    def crop_layout(height: int, width: int, crop: int, most: int):
        """((cols, rows), (new width, new height), (pad width, pad height)) of an image."""
        cols, rows = math.ceil(width / crop), math.ceil(height / crop)
        if cols * rows > most:
            candidates = {  # built in transformers' order: equal areas keep its set's order
                (i, j)
                for n in range(1, most + 1)
                for i in range(1, n + 1)
                for j in range(1, n + 1)
                if i * j <= most
            }
            ratios = sorted(candidates, key=lambda r: r[0] * r[1])
            best, best_diff = (1, 1), float("inf")
            for i, j in ratios:  # closest aspect ratio; on a tie the larger grid where the image fills half
                diff = abs(width / height - i / j)
                if diff < best_diff or (diff == best_diff and width * height > 0.5 * crop * crop * i * j):
                    best, best_diff = (i, j), min(diff, best_diff)
            cols, rows = best
        grid_w, grid_h = crop * cols, crop * rows
        scale_w, scale_h = grid_w / width, grid_h / height  # as transformers rounds them
        if scale_w < scale_h:
            new_w, new_h = grid_w, int(height * scale_w)
        else:
            new_w, new_h = int(width * scale_h), grid_h
        if min(new_w, new_h) < 10:
            raise ValueError(f"Phi-4-multimodal: the image's aspect ratio is too extreme ({width}x{height})")
        return (cols, rows), (new_w, new_h), (grid_w - new_w, grid_h - new_h)

    Phi4MultimodalImageProcessorTorch.crop_layout = staticmethod(crop_layout)
    return Phi4MultimodalImageProcessorTorch
