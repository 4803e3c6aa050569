"""MolmoProcessor as Molmo's hub code exposes it: `process(text=..., images=...)` writes Molmo's own prompt
("User: {text} Assistant:", image patch tokens first) and returns UNBATCHED tensors (the caller adds the
batch dimension); there is no chat template and no batched `__call__` of its own."""

import torch
from transformers import ProcessorMixin

IMAGE_PATCH, IMAGE_START, IMAGE_END = "<im_patch>", "<im_start>", "<im_end>"


class MolmoProcessor(ProcessorMixin):
    def __init__(self, image_processor, tokenizer, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)

    def process(self, text=None, images=None, **kwargs):
        images = [] if images is None else images if isinstance(images, list) else [images]
        per_crop = self.image_processor.image_token_length_w * self.image_processor.image_token_length_h
        ids = [self.tokenizer.bos_token_id]
        positions, crops, masks = [], [], []
        patch = self.tokenizer.convert_tokens_to_ids(IMAGE_PATCH)
        for image in images:
            pixels, mask = self.image_processor.crops(image)
            ids.append(self.tokenizer.convert_tokens_to_ids(IMAGE_START))
            positions.append(torch.arange(len(ids), len(ids) + per_crop))
            ids += [patch] * per_crop + [self.tokenizer.convert_tokens_to_ids(IMAGE_END)]
            crops.append(pixels)
            masks.append(mask)
        ids += self.tokenizer(f" User: {text} Assistant:", add_special_tokens=False).input_ids
        out = {"input_ids": torch.tensor(ids)}
        if images:
            out |= {
                "images": torch.cat(crops),
                "image_input_idx": torch.stack(positions),
                "image_masks": torch.cat(masks),
            }
        return out
