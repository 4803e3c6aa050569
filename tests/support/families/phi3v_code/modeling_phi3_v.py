"""Phi3VForCausalLM laid out as microsoft/Phi-3.5-vision-instruct's modeling_phi3_v.py: a Phi-3 whose model
(`model`) holds, beside the token embedding, `vision_embed_tokens`: a CLIP vision tower (`img_processor`,
features of its second-to-last layer without the CLS position) and a two-layer MLP projection
(`img_projection`). The prompt holds image placeholders as negative ids; their positions, in row-major
order over the whole batch, receive the projected features of the batch's images in order (each image's
sub-crops, then its global crop; the number of real crops read from `image_sizes`, padding crops dropped):
how the hub code places them (`index_put`). Its 2 x 2 feature merge and separator embeddings are left out.
`forward` names `position_ids`, so `generate` derives them from the attention mask (left padding)."""

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, Phi3ForCausalLM, Phi3Model

from .configuration_phi3_v import Phi3VConfig


class Phi3ImageEmbedding(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        vision = {
            k: v for k, v in config.img_processor.items() if k not in ("name", "image_dim_out", "layer_idx")
        }
        self.img_processor = CLIPVisionModel(CLIPVisionConfig(**vision))
        self.crop_size = vision["image_size"]
        self.layer_idx = config.img_processor.get("layer_idx", -2)
        dim = config.img_processor["image_dim_out"]
        self.img_projection = torch.nn.Sequential(
            torch.nn.Linear(dim, config.hidden_size),
            torch.nn.GELU(),
            torch.nn.Linear(config.hidden_size, config.hidden_size),
        )

    def forward(self, input_ids, pixel_values, image_sizes, wte):
        positions = torch.nonzero(input_ids < 0, as_tuple=True)
        embeds = wte(input_ids.clamp_min(0))
        if len(positions[0]) == 0:
            return embeds
        images, crops = pixel_values.shape[:2]
        out = self.img_processor(pixel_values.flatten(0, 1).to(embeds.dtype), output_hidden_states=True)
        features = out.hidden_states[self.layer_idx][:, 1:]
        features = features.reshape(images, crops, -1, features.shape[-1])
        per_image = []
        for b in range(images):
            rows, cols = (int(s) // self.crop_size for s in image_sizes[b])
            per_image.append(torch.cat([features[b, 1 : 1 + rows * cols].flatten(0, 1), features[b, 0]]))
        projected = self.img_projection(torch.cat(per_image))
        if projected.shape[0] != len(positions[0]):
            raise ValueError(
                f"{len(positions[0])} image placeholders but {projected.shape[0]} image features"
            )
        return embeds.index_put(positions, projected.to(embeds.dtype))


class Phi3VModel(Phi3Model):
    config_class = Phi3VConfig

    def __init__(self, config):
        super().__init__(config)
        self.vision_embed_tokens = Phi3ImageEmbedding(config)
        self.post_init()

    def forward(self, input_ids=None, inputs_embeds=None, pixel_values=None, image_sizes=None, **kwargs):
        if inputs_embeds is None:
            inputs_embeds = self.vision_embed_tokens(input_ids, pixel_values, image_sizes, self.embed_tokens)
        return super().forward(input_ids=None, inputs_embeds=inputs_embeds, **kwargs)


class Phi3VForCausalLM(Phi3ForCausalLM):
    config_class = Phi3VConfig

    def __init__(self, config):
        super().__init__(config)
        self.model = Phi3VModel(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        pixel_values=None,
        image_sizes=None,
        labels=None,
        logits_to_keep=0,
        **kwargs,
    ):
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            pixel_values=pixel_values,
            image_sizes=image_sizes,
            labels=labels,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
