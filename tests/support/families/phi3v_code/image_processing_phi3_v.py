"""Phi3VImageProcessor: the outputs of microsoft/Phi-3.5-vision-instruct's image processor, at toy size.

Each image is cut into a grid of `crop_size` crops (at most 2 x 2 here; its `HD_transform` picks up to
`num_crops`), preceded by one global crop of the whole image; every image's crops are zero-padded to
`num_crops + 1`, so `pixel_values` is [images, num_crops + 1, 3, crop, crop]. `image_sizes` is the size the
grid covers ([grid rows * crop, grid columns * crop]), from which the model reads how many crops are real;
`num_img_tokens` is the number of placeholder ids each image takes in the prompt (here one per patch
feature of each real crop: the hub's 2 x 2 feature merge and separator tokens are left out)."""

import math

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature


class Phi3VImageProcessor(BaseImageProcessor):
    model_input_names = ["pixel_values", "image_sizes", "num_img_tokens"]

    def __init__(
        self, crop_size=32, num_crops=4, tokens_per_crop=4, image_mean=None, image_std=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.crop_size = crop_size
        self.num_crops = num_crops
        self.tokens_per_crop = tokens_per_crop
        self.image_mean = image_mean or [0.48145466, 0.4578275, 0.40821073]
        self.image_std = image_std or [0.26862954, 0.26130258, 0.27577711]

    def _normalise(self, image):
        array = np.asarray(image, dtype=np.float32) / 255.0
        array = (array - np.array(self.image_mean)) / np.array(self.image_std)
        return torch.tensor(array, dtype=torch.float32).permute(2, 0, 1)

    def preprocess(self, images, return_tensors=None, **kwargs):
        images = images if isinstance(images, list) else [images]
        crop, pixels, sizes, counts = self.crop_size, [], [], []
        for image in images:
            image = image.convert("RGB")
            rows = min(2, math.ceil(image.height / crop))
            cols = min(2, math.ceil(image.width / crop), self.num_crops // rows)
            grid = self._normalise(image.resize((cols * crop, rows * crop)))
            subs = [
                grid[:, r * crop : (r + 1) * crop, c * crop : (c + 1) * crop]
                for r in range(rows)
                for c in range(cols)
            ]
            crops = torch.stack([self._normalise(image.resize((crop, crop))), *subs])
            padded = torch.zeros((self.num_crops + 1, *crops.shape[1:]))
            padded[: len(crops)] = crops
            pixels.append(padded)
            sizes.append([rows * crop, cols * crop])
            counts.append((rows * cols + 1) * self.tokens_per_crop)
        data = {
            "pixel_values": torch.stack(pixels),
            "image_sizes": torch.tensor(sizes),
            "num_img_tokens": counts,
        }
        return BatchFeature(data=data)
