"""benchmarks/gpu_throughput.py runs: in --tiny mode it measures the hf backend on the toy LLaVA on CPU and
prints the table; without a GPU (and without --tiny) it says so and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_throughput.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_tiny_mode_prints_the_table():
    proc = _run("--tiny", "--samples", "8", "--max-new-tokens", "4", "--batch-sizes", "2,4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "CPU (toy LLaVA, --tiny): 8 toy POPE questions at 336 px, 4 new tokens each" in out
    one = re.search(r"\| hf backend, batch 1 \(8 samples\) +\| ([0-9.]+) \|", out)
    best = re.search(r"\| hf backend, best batch \(([24]) of 2,4\) +\| ([0-9.]+) \|", out)
    assert one and best, out
    assert float(one.group(1)) > 0 and float(best.group(2)) > 0
    assert re.search(r"\| vllm backend +\| skipped \(--tiny: CPU\) \|", out), out
    assert re.search(r"\| bare LLM.generate +\| skipped \(--tiny: CPU\) \|", out), out


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_a_gpu_it_says_so():
    proc = _run()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("no CUDA device here: these figures need a GPU")


def test_the_gpu_checkpoint_has_llava_1_5_7b_shape():
    """Built on the meta device (no memory): as many parameters as llava-hf/llava-1.5-7b-hf
    (7,063,427,072 on its model page), 576 image tokens per 336 px image."""
    import importlib.util

    from transformers import LlavaForConditionalGeneration

    from evalkit.toy.model import build_toy_tokenizer

    spec = importlib.util.spec_from_file_location("gpu_throughput", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    config = script.llava_7b_config(build_toy_tokenizer())
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    assert sum(p.numel() for p in model.parameters()) == 7_063_427_072
    vision = config.vision_config
    assert (vision.image_size // vision.patch_size) ** 2 == config.image_seq_length == 576
