"""Phi3VProcessor with the call signature of microsoft/Phi-3.5-vision-instruct's: one prompt, whose
`<|image_N|>` placeholders (written by the user, numbered from 1) become N's `num_img_tokens` copies of
the id -N; no `add_special_tokens`, no list of prompts."""

import re

import torch
from transformers import ProcessorMixin
from transformers.image_processing_utils import BatchFeature

PLACEHOLDER = r"<\|image_\d+\|>"


class Phi3VProcessor(ProcessorMixin):
    def __init__(self, image_processor, tokenizer, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)

    def __call__(
        self, text, images=None, padding=False, truncation=None, max_length=None, return_tensors="pt"
    ):
        image_inputs = self.image_processor(images) if images is not None else {}
        chunks = [self.tokenizer(c, add_special_tokens=False).input_ids for c in re.split(PLACEHOLDER, text)]
        numbers = [int(tag[len("<|image_") : -2]) for tag in re.findall(PLACEHOLDER, text)]
        if sorted(set(numbers)) != list(range(1, len(set(numbers)) + 1)):
            raise ValueError("image placeholders must be numbered <|image_1|>, <|image_2|>, ...")
        counts = image_inputs.get("num_img_tokens", [])
        ids = [self.tokenizer.bos_token_id, *chunks[0]]
        for number, chunk in zip(numbers, chunks[1:], strict=True):
            ids += [-number] * counts[number - 1] + chunk
        input_ids = torch.tensor([ids])
        data = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if images is not None:
            data |= {"pixel_values": image_inputs["pixel_values"], "image_sizes": image_inputs["image_sizes"]}
        return BatchFeature(data=data)
