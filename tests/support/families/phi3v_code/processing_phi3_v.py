"""Phi3VProcessor with the interface of microsoft/Phi-3.5-vision-instruct's: one prompt (not a list), whose
`<|image_N|>` placeholders the user writes (numbered from 1, each image once), and the list of images.
Each chunk of text between placeholders is tokenized on its own with the tokenizer's defaults, and each
placeholder becomes `num_img_tokens` copies of the id -N; the attention mask is `input_ids > -1000000`.
A prompt without images is the tokenizer's encoding. There is no `add_special_tokens`, no `**kwargs`."""

import re

import torch
from transformers import ProcessorMixin
from transformers.image_processing_utils import BatchFeature

PLACEHOLDER = r"<\|image_\d+\|>"


class Phi3VProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]
    special_image_token = "<|image|>"

    def __init__(self, image_processor, tokenizer):
        super().__init__(image_processor, tokenizer)

    def __call__(
        self, text, images=None, padding=False, truncation=None, max_length=None, return_tensors="pt"
    ):
        if images is None:
            enc = self.tokenizer(
                text,
                padding=padding,
                truncation=truncation,
                max_length=max_length,
                return_tensors=return_tensors,
            )
            return BatchFeature(data=dict(enc))
        image_inputs = self.image_processor(images)
        chunks = [self.tokenizer(chunk).input_ids for chunk in re.split(PLACEHOLDER, text)]
        numbers = [int(tag[len("<|image_") : -2]) for tag in re.findall(PLACEHOLDER, text)]
        unique = sorted(set(numbers))
        if unique != list(range(1, len(unique) + 1)):
            raise ValueError(f"image placeholders must be numbered 1, 2, ... without gaps, not {unique}")
        if len(unique) != len(image_inputs["pixel_values"]):
            raise ValueError(
                f"{len(unique)} image placeholders but {len(image_inputs['pixel_values'])} images"
            )
        counts = image_inputs["num_img_tokens"]
        ids = list(chunks[0])
        for number, chunk in zip(numbers, chunks[1:], strict=True):
            ids += [-number] * counts[number - 1] + chunk
        input_ids = torch.tensor([ids], dtype=torch.long)
        data = {
            "input_ids": input_ids,
            "attention_mask": (input_ids > -1000000).long(),
            "pixel_values": image_inputs["pixel_values"],
            "image_sizes": image_inputs["image_sizes"],
        }
        return BatchFeature(data=data)
