"""Samples per second on one GPU: the hf backend (batch 1 and its best batch), the vllm backend, and a bare
`LLM.generate` loop over the same prompts (the engine's ceiling), on a random-initialised checkpoint of
LLaVA-1.5-7B's shape (CLIP ViT-L/14 at 336 px, a 7B LLaMA; built from its config, nothing downloaded) and
toy POPE-style questions ("Is there a X in the image? Please answer yes or no.") on 336 px images.

The tokenizer is evalkit's toy word-level tokenizer (LLaVA's special tokens, a small vocabulary), so the
answers are random words; what is measured is the time to encode, prefill 576 image tokens plus the
question, and decode `--max-new-tokens` tokens per sample (a random model rarely emits EOS early).

Where no CUDA device is present it says so and exits 0; where vLLM is missing its rows say so. `--tiny`
runs the hf rows on CPU on the toy LLaVA (one thread), so the script itself is exercised without a GPU.

Usage: python benchmarks/gpu_throughput.py [--samples 256] [--max-new-tokens 16] [--batch-sizes 8,16,32,64]
       python benchmarks/gpu_throughput.py --tiny
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OBJECTS = ["dog", "cat", "car", "chair", "person", "bottle", "cup", "tree", "bus", "bicycle"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]


def llava_7b_config(tok):
    """LLaVA-1.5-7B's config (llava-hf/llava-1.5-7b-hf: CLIP ViT-L/14 at 336 px, a 2-layer GELU projector,
    a 7B LLaMA with 32,064 tokens) with `tok`'s special-token ids."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    from evalkit.toy.model import IMAGE

    ids = {
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    text = LlamaConfig(
        vocab_size=32064,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        **ids,
    )
    vision = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
    )
    return LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tok.convert_tokens_to_ids(IMAGE),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=576,
        **ids,
    )


def llava_7b_shaped(folder: Path, device: str) -> None:
    """Save a random LLaVA-1.5-7B-shaped checkpoint (float16) with the toy tokenizer and a 336 px
    processor."""
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from evalkit.toy.model import CHAT_TEMPLATE, build_toy_tokenizer

    tok = build_toy_tokenizer()
    config = llava_7b_config(tok)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(folder)
    del model
    gc.collect()
    torch.cuda.empty_cache()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}
        ),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(folder)
    legacy = folder / "preprocessor_config.json"  # for a transformers that predates processor_config.json
    if not legacy.exists():
        fields = {**processor.image_processor.to_dict(), "image_processor_type": "CLIPImageProcessor"}
        legacy.write_text(json.dumps(fields, indent=2))


def toy_checkpoint(folder: Path) -> None:
    from evalkit.toy.model import build_toy_model

    model, processor = build_toy_model(seed=0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def pope_requests(folder: Path, n: int, max_new_tokens: int, n_images: int = 64):
    """`n` POPE-style yes/no questions over `n_images` distinct 336 px images (saved under `folder`)."""
    from PIL import Image, ImageDraw

    from evalkit.types import GenerationConfig, Message, Request

    paths = []
    for i in range(n_images):
        image = Image.new("RGB", (336, 336), COLORS[i % len(COLORS)])
        draw = ImageDraw.Draw(image)
        x, y = (37 * i) % 240, (53 * i) % 240
        draw.rectangle((x, y, x + 90, y + 90), fill=COLORS[(i + 3) % len(COLORS)])
        paths.append(str(folder / f"img{i}.png"))
        image.save(paths[-1])
    gen = GenerationConfig(max_new_tokens=max_new_tokens)
    return [
        Request(
            f"q{i}",
            (
                Message(
                    "user",
                    f"Is there a {OBJECTS[i % len(OBJECTS)]} in the image? Please answer yes or no.",
                    (paths[i % n_images],),
                ),
            ),
            gen,
        )
        for i in range(n)
    ]


def rate(backend, requests, batch_size: int) -> float:
    """Samples per second of `backend.generate` over `requests` in batches (after one warm-up batch)."""
    backend.generate(requests[: min(batch_size, 8)])
    t0 = time.perf_counter()
    for i in range(0, len(requests), batch_size):
        responses = backend.generate(requests[i : i + batch_size])
        failed = [r for r in responses if not r.ok]
        if failed:
            raise SystemExit(f"{backend.name}: {failed[0].id} failed: {failed[0].error.message}")
    return len(requests) / (time.perf_counter() - t0)


def bare_rate(llm, requests, max_new_tokens: int) -> float:
    """Samples per second of one `LLM.generate` over the same prompts, written as a user would by hand
    (prompt text, images opened beforehand, greedy)."""
    from PIL import Image
    from vllm import SamplingParams

    prompts = [
        {
            "prompt": f"<s><user> <image> {r.messages[0].text}\n<assistant>",
            "multi_modal_data": {"image": Image.open(r.messages[0].images[0]).convert("RGB")},
        }
        for r in requests
    ]
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    llm.generate(prompts[:8], params, use_tqdm=False)
    t0 = time.perf_counter()
    llm.generate(prompts, params, use_tqdm=False)
    return len(prompts) / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, the toy LLaVA, hf rows only")
    parser.add_argument("--samples", type=int, default=None, help="questions (default 256; --tiny 16)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-sizes", default=None, help="hf batch sizes tried for its best (8,16,32,64)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    args = parser.parse_args()

    import torch

    from evalkit.models.base import BackendOptions
    from evalkit.models.hf import HFBackend

    if args.tiny:
        torch.set_num_threads(1)
        device, card = "cpu", "CPU (toy LLaVA, --tiny)"
    elif not torch.cuda.is_available():
        print("no CUDA device here: these figures need a GPU (run with --tiny to check the script on CPU)")
        return 0
    else:
        device, card = "cuda", torch.cuda.get_device_name(0)
    samples = args.samples or (16 if args.tiny else 256)
    sizes = [int(s) for s in (args.batch_sizes or ("4,8" if args.tiny else "8,16,32,64")).split(",")]
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="gpu-throughput-") as tmp:
        folder = Path(tmp) / "ckpt"
        print(f"building the checkpoint in {folder} …", file=sys.stderr, flush=True)
        toy_checkpoint(folder) if args.tiny else llava_7b_shaped(folder, device)
        requests = pope_requests(Path(tmp), samples, args.max_new_tokens)

        dtype = "float32" if args.tiny else "float16"
        hf = HFBackend(str(folder), BackendOptions(dtype=dtype, device=device))
        few = requests[: min(len(requests), 64)]  # batch 1 is slow; its rate needs fewer samples
        rows.append((f"hf backend, batch 1 ({len(few)} samples)", f"{rate(hf, few, 1):.2f}"))
        best = max((rate(hf, requests, b), b) for b in sizes)
        rows.append((f"hf backend, best batch ({best[1]} of {','.join(map(str, sizes))})", f"{best[0]:.2f}"))
        del hf
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()

        if args.tiny:
            rows += [
                ("vllm backend", "skipped (--tiny: CPU)"),
                ("bare LLM.generate", "skipped (--tiny: CPU)"),
            ]
        elif importlib.util.find_spec("vllm") is None:
            rows += [("vllm backend", "vllm not installed"), ("bare LLM.generate", "vllm not installed")]
        else:
            from evalkit.models.vllm_backend import VLLMBackend

            options = BackendOptions(dtype=dtype, gpu_memory_utilization=args.gpu_memory_utilization)
            engine = VLLMBackend(str(folder), options)
            rows.append(
                (f"vllm backend (batch {len(requests)})", f"{rate(engine, requests, len(requests)):.2f}")
            )
            rows.append(
                ("bare LLM.generate (ceiling)", f"{bare_rate(engine.llm, requests, args.max_new_tokens):.2f}")
            )
            engine.close()

    print(f"\n{card}: {samples} toy POPE questions at 336 px, {args.max_new_tokens} new tokens each\n")
    width = max(len(name) for name, _ in rows)
    print(f"| {'configuration':<{width}} | samples/s |")
    print(f"|{'-' * (width + 2)}|-----------|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
