"""MolmoImageProcessor: each image resized to one crop of `base_image_input_size`, normalised, with its
mask; `image_token_length_w x image_token_length_h` feature tokens per crop (Molmo's settings names; its
overlapping multi-crop tiling is left out)."""

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor


class MolmoImageProcessor(BaseImageProcessor):
    model_input_names = ["images", "image_masks"]

    def __init__(
        self,
        base_image_input_size=(32, 32),
        image_token_length_w=2,
        image_token_length_h=2,
        image_mean=None,
        image_std=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.base_image_input_size = list(base_image_input_size)
        self.image_token_length_w = image_token_length_w
        self.image_token_length_h = image_token_length_h
        self.image_mean = image_mean or [0.48145466, 0.4578275, 0.40821073]
        self.image_std = image_std or [0.26862954, 0.26130258, 0.27577711]

    def crops(self, image):
        """(crops [1, 3, H, W], masks [1, H, W])"""
        h, w = self.base_image_input_size
        array = np.asarray(image.convert("RGB").resize((w, h)), dtype=np.float32) / 255.0
        array = (array - np.array(self.image_mean)) / np.array(self.image_std)
        pixels = torch.tensor(array, dtype=torch.float32).permute(2, 0, 1)[None]
        return pixels, torch.ones(1, h, w)

    def preprocess(self, images, **kwargs):
        raise NotImplementedError("Molmo's images are prepared by MolmoProcessor.process")
