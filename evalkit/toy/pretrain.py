"""A short, deterministic warm-up of the toy LLaVA on toy-world scenes, run once when the checkpoint is built.

A randomly initialised model never emits EOS, so every answer runs to `max_new_tokens` and is noise. The
warm-up teaches it the POPE answer format ("Yes"/"No", then EOS) and, through co-training on captions
(which is what lets the vision side of so small a model learn quickly), enough about the
images to be above chance on toy POPE.

Each batch is half existence questions in the exact POPE prompt format and half captions ("Describe the
image." → the objects in the fixed `OBJECTS` order, "apple, cup and dog."; that order asks for the same
"which classes are present" reading of the image as the questions do, and learned faster than cell order).
Each question image is asked twice, about an object it shows ("Yes") and about a class it lacks ("No",
drawn uniformly), so answers are 50/50. The loss covers the assistant tokens only (answer and EOS, from
the chat template's assistant mask), averaged per example so one-word answers weigh as much as captions.

Scenes come from `sample_scenes(..., seed=TRAIN_SCENE_SEED + seed)`, disjoint from the evaluation data (seed
0). Choices are drawn from `random.Random(seed)` and torch runs inside `fork_rng`, so the same seed gives the
same weights on the same machine and thread count (`ensure_toy_model` warms up on one thread) and the
global RNG state is untouched.
"""

from __future__ import annotations

import random
import time
from typing import Any

from evalkit.tasks.pope.protocol import PROMPT_SUFFIX as POPE_SUFFIX  # train on the prompt the task asks
from evalkit.tasks.pope.toy import question_text
from evalkit.toy.language import describe
from evalkit.toy.world import OBJECTS, Scene, render, sample_scenes

TRAIN_SCENE_SEED = 1000  # training scenes: sample_scenes(n, TRAIN_SCENE_SEED + seed); evaluation uses seed 0
CAPTION_PROMPT = "Describe the image."
LR = 1e-3
BATCH_SIZE = 32  # per step: a yes and a no question on BATCH_SIZE // 4 images, BATCH_SIZE // 2 captions


def _turns(question: str, answer: str) -> list[dict[str, Any]]:
    # The message shape evalkit.models.prompt renders for a POPE request: an image part, then the text part.
    user = [{"type": "image"}, {"type": "text", "text": question}]
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def make_batch(scenes: list[Scene], rng: random.Random, batch_size: int) -> tuple[list, list]:
    """(conversations, images) from `3 * batch_size // 4` scenes: a yes and a no question each for the
    first quarter of the batch size, then one caption each."""
    n_q = batch_size // 4
    convs, images = [], []
    for i, scene in enumerate(scenes):
        image = render(scene)
        if i < n_q:
            absent = rng.choice([o for o in OBJECTS if o not in scene.objects])
            for noun, answer in ((rng.choice(scene.objects), "Yes"), (absent, "No")):
                convs.append(_turns(question_text(noun) + POPE_SUFFIX, answer))
                images.append(image)
        else:
            convs.append(_turns(CAPTION_PROMPT, describe(scene.objects)))
            images.append(image)
    return convs, images


def encode(processor, convs: list, images: list) -> dict[str, Any]:
    """Left-padded model inputs, mask-derived `position_ids`, and `labels` (-100 outside the answers)."""
    import torch

    tokenizer = processor.tokenizer
    assert tokenizer.padding_side == "left"  # answers then end every row, which the labels rely on
    texts = processor.apply_chat_template(convs, tokenize=False)
    enc = dict(processor(text=texts, images=images, padding=True, return_tensors="pt"))
    # The template's assistant mask, on the text tokens. The processor only expands `<image>`, which comes
    # before the answer, so each row's mask lines up with that row's last tokens.
    masks = tokenizer.apply_chat_template(convs, return_dict=True, return_assistant_tokens_mask=True)
    labels = torch.full_like(enc["input_ids"], -100)
    for row, mask in enumerate(masks["assistant_masks"]):
        ids = enc["input_ids"][row, -len(mask) :]
        labels[row, -len(mask) :] = ids.masked_fill(torch.tensor(mask) == 0, -100)
    enc["labels"] = labels
    enc["position_ids"] = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as in left-padded generate
    return enc


def answer_loss(model, batch: dict[str, Any]):
    """Cross-entropy on the answer tokens, averaged per example, then over the batch."""
    import torch.nn.functional as F

    labels = batch["labels"]
    keep = int((labels != -100).sum(1).max()) + 1  # answers end every row: only the last logits are needed
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, logits_to_keep=keep).logits[:, :-1]
    targets = labels[:, -keep + 1 :]
    losses = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
    return (losses.sum(1) / (targets != -100).sum(1)).mean()


def warm_up(model, processor, *, steps: int, seed: int, batch_size: int = BATCH_SIZE) -> dict[str, float]:
    """Train `model` in place for `steps` AdamW steps (fp32, on its device); returns {loss, seconds, steps}.

    `loss` is the mean training loss over the last tenth of the steps. The model is left in eval mode.
    """
    import torch

    start = time.perf_counter()
    rng = random.Random(seed)
    per_step = batch_size // 4 + batch_size // 2
    scenes = sample_scenes(steps * per_step, seed=TRAIN_SCENE_SEED + seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0, fused=True)
    warm = max(1, steps // 10)  # linear warm-up, then linear decay to a tenth of LR
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, 1.0 - 0.9 * max(0, s - warm) / max(1, steps - warm))
    )
    losses: list[float] = []
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in range(steps):
            batch = encode(processor, *make_batch(scenes[step * per_step :][:per_step], rng, batch_size))
            loss = answer_loss(model, {k: v.to(model.device) for k, v in batch.items()})
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    model.eval()
    tail = losses[-max(1, steps // 10) :]
    return {"loss": sum(tail) / len(tail), "seconds": time.perf_counter() - start, "steps": steps}
