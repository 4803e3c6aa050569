"""MolmoConfig: Molmo-7B-D's Qwen2 language model plus its vision backbone's settings (model_type molmo)."""

from transformers import Qwen2Config


class MolmoConfig(Qwen2Config):
    model_type = "molmo"

    def __init__(self, vision_backbone=None, **kwargs):
        self.vision_backbone = vision_backbone or {}  # CLIPVisionConfig settings
        super().__init__(**kwargs)
