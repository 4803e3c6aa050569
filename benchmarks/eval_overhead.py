"""Harness overhead and batching speed-up on toy POPE, in one process with one loaded model.

Prints two ratios:
  overhead = evalkit wall time / a bare loop over the same batches (chat template, processor,
             model.generate, decode) at the same batch size          target <= 1.15
  speed-up = a bare batch-1 loop / evalkit at batch 16                target >= 3
Usage: python benchmarks/eval_overhead.py [--samples 600] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bare_loop(backend, samples, batch_size: int, max_new_tokens: int) -> float:
    """What a user would write by hand: no store, no parsing, no retries."""
    import torch
    from PIL import Image

    processor, model = backend.processor, backend.model
    t0 = time.perf_counter()
    for i in range(0, len(samples), batch_size):
        batch = samples[i : i + batch_size]
        texts, images = [], []
        for s in batch:
            msg = s.messages[0]
            conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": msg.text}]}]
            texts.append(processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False))
            images.append(Image.open(msg.images[0]).convert("RGB"))
        inputs = processor(text=texts, images=images, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import torch

    from evalkit.models.hf import HFBackend
    from evalkit.registry import get_task
    from evalkit.runner import evaluate
    from evalkit.task import DataSpec
    from evalkit.toy.model import ensure_toy_model

    torch.set_num_threads(os.cpu_count() or 1)
    backend = HFBackend(str(ensure_toy_model()))
    task = get_task("pope")
    samples = task.load(DataSpec(toy=True, limit=args.samples)).samples
    max_new = task.generation.max_new_tokens
    bs = args.batch_size

    bare_loop(backend, samples[: 2 * bs], bs, max_new)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        bare = bare_loop(backend, samples, bs, max_new)
        t0 = time.perf_counter()
        evaluate(
            backend,
            ["pope"],
            data="toy",
            limit=args.samples,
            batch_size=bs,
            output=f"{tmp}/run",
            progress=False,
        )
        ours = time.perf_counter() - t0
        single = bare_loop(backend, samples, 1, max_new)

    n = len(samples)
    print(f"toy POPE, {n} samples, max_new_tokens {max_new}, torch threads {torch.get_num_threads()}")
    print(f"bare loop  batch {bs:>2}: {bare:7.2f} s  ({n / bare:6.1f} samples/s)")
    print(f"evalkit    batch {bs:>2}: {ours:7.2f} s  ({n / ours:6.1f} samples/s)")
    print(f"bare loop  batch  1: {single:7.2f} s  ({n / single:6.1f} samples/s)")
    print(f"overhead  evalkit / bare loop (batch {bs}): {ours / bare:.3f}   (target <= 1.15)")
    print(f"speed-up  batch-1 loop / evalkit batch {bs}: {single / ours:.2f}x  (target >= 3)")


if __name__ == "__main__":
    main()
