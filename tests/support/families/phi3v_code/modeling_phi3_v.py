"""Phi3VForCausalLM: Phi-3 whose prompt holds image placeholders as negative token ids (-N for the N-th
image, one per image feature), replaced by the projected features of a CLIP vision tower, as the
placeholders of microsoft/Phi-3.5-vision-instruct's processor are (its HD crops are left out)."""

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, Phi3ForCausalLM

from .configuration_phi3_v import Phi3VConfig


class Phi3ImageEmbedding(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        vision = {k: v for k, v in config.img_processor.items() if k not in ("name", "image_dim_out")}
        self.img_processor = CLIPVisionModel(CLIPVisionConfig(**vision))
        dim = config.img_processor["image_dim_out"]
        self.img_projection = torch.nn.Sequential(
            torch.nn.Linear(dim, config.hidden_size),
            torch.nn.GELU(),
            torch.nn.Linear(config.hidden_size, config.hidden_size),
        )

    def forward(self, input_ids, pixel_values, embed_tokens):
        positions = input_ids < 0
        embeds = embed_tokens(input_ids.clamp(min=0))
        if pixel_values is None or not positions.any():
            return embeds
        features = self.img_processor(pixel_values.to(embeds.dtype)).last_hidden_state[:, 1:]
        features = self.img_projection(features)  # [images, tokens per image, hidden]
        for image in (-input_ids[positions]).unique().tolist():  # one prompt: its images are 1..N
            embeds[input_ids == -image] = features[image - 1]
        return embeds


class Phi3VForCausalLM(Phi3ForCausalLM):
    config_class = Phi3VConfig

    def __init__(self, config):
        super().__init__(config)
        self.vision_embed_tokens = Phi3ImageEmbedding(config)
        self.post_init()

    def forward(self, input_ids=None, pixel_values=None, image_sizes=None, inputs_embeds=None, **kwargs):
        if inputs_embeds is None and input_ids is not None and (input_ids < 0).any():
            inputs_embeds = self.vision_embed_tokens(input_ids, pixel_values, self.model.embed_tokens)
            input_ids = None
        return super().forward(input_ids=input_ids, inputs_embeds=inputs_embeds, **kwargs)
