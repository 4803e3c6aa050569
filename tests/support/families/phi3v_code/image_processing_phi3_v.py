"""Phi3VImageProcessor: each image resized to one square crop, normalised, with its size and the number of
placeholder tokens it takes (`num_img_tokens`), the outputs microsoft/Phi-3.5-vision-instruct's image
processor gives (without its HD crops)."""

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature


class Phi3VImageProcessor(BaseImageProcessor):
    model_input_names = ["pixel_values", "image_sizes", "num_img_tokens"]

    def __init__(self, crop_size=32, num_img_tokens=4, image_mean=None, image_std=None, **kwargs):
        super().__init__(**kwargs)
        self.crop_size = crop_size
        self.num_img_tokens = num_img_tokens
        self.image_mean = image_mean or [0.48145466, 0.4578275, 0.40821073]
        self.image_std = image_std or [0.26862954, 0.26130258, 0.27577711]

    def preprocess(self, images, return_tensors=None, **kwargs):
        images = images if isinstance(images, list) else [images]
        pixels, sizes = [], []
        for image in images:
            sizes.append([image.height, image.width])
            array = np.asarray(
                image.convert("RGB").resize((self.crop_size, self.crop_size)), dtype=np.float32
            )
            array = (array / 255.0 - np.array(self.image_mean)) / np.array(self.image_std)
            pixels.append(torch.tensor(array, dtype=torch.float32).permute(2, 0, 1))
        data = {
            "pixel_values": torch.stack(pixels),
            "image_sizes": torch.tensor(sizes),
            "num_img_tokens": [self.num_img_tokens] * len(images),
        }
        return BatchFeature(data=data)
