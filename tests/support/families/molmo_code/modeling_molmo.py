"""MolmoForCausalLM as Molmo's hub code exposes it: `forward` takes `images` (crops), `image_input_idx`
(where each crop's features go in the prompt) and `image_masks`, and generation goes through
`generate_from_batch(batch, generation_config, tokenizer=...)` on the dict `MolmoProcessor.process` makes
(batched by the caller). The language model is Qwen2's; the vision backbone a CLIP tower and a projector."""

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, Qwen2ForCausalLM

from .config_molmo import MolmoConfig


class MolmoForCausalLM(Qwen2ForCausalLM):
    config_class = MolmoConfig

    def __init__(self, config):
        super().__init__(config)
        vision = CLIPVisionConfig(**config.vision_backbone)
        self.vision_backbone = CLIPVisionModel(vision)
        self.image_projector = torch.nn.Linear(vision.hidden_size, config.hidden_size)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        images=None,
        image_input_idx=None,
        image_masks=None,
        **kwargs,
    ):
        prompt_step = image_input_idx is not None and input_ids is not None
        prompt_step = prompt_step and input_ids.shape[1] > int(image_input_idx.max())  # later steps: 1 token
        if images is not None and prompt_step and kwargs.get("inputs_embeds") is None:
            embeds = self.model.embed_tokens(input_ids)
            batch, crops = images.shape[:2]
            flat = images.flatten(0, 1).to(embeds.dtype)
            features = self.image_projector(self.vision_backbone(flat).last_hidden_state[:, 1:])
            features = features.reshape(batch, -1, features.shape[-1])
            positions = image_input_idx.reshape(batch, -1)
            for row in range(batch):
                keep = positions[row] >= 0
                embeds[row, positions[row][keep]] = features[row][keep]
            kwargs["inputs_embeds"], input_ids = embeds, None
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def prepare_inputs_for_generation(
        self, input_ids, images=None, image_input_idx=None, image_masks=None, **kwargs
    ):
        inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        inputs.update(images=images, image_input_idx=image_input_idx, image_masks=image_masks)
        return inputs

    @torch.no_grad()
    def generate_from_batch(self, batch, generation_config=None, **kwargs):
        """Molmo's entry point for generation: the processor's (batched) outputs and a GenerationConfig."""
        return self.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch.get("attention_mask", (batch["input_ids"] != -1).long()),
            images=batch.get("images"),
            image_input_idx=batch.get("image_input_idx"),
            image_masks=batch.get("image_masks"),
            generation_config=generation_config,
            **kwargs,
        )
