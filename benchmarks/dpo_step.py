"""DPO step time and peak memory: evalkit's trainer against TRL's DPOTrainer, and cached vs frozen reference.

Both trainers train the same tiny LLaVA (random weights, seed 0, saved once to a temp folder and loaded from
it by each side: `--size toy` is `evalkit.toy.model.build_toy_model`, 1.3M parameters; `--size medium` the
same with a hidden-512, 8-layer language model, 27M) on the same batch of toy-world preference pairs (each
step sees all `--pairs` pairs as one batch; chosen names an object in the image, rejected an absent one;
both sides build the same token sequences), with the same settings: sigmoid loss, beta 0.1, float32 weights
(bf16 autocast on a CUDA device that supports it, as `evalkit train` does there), torch AdamW at lr 1e-5,
linear decay, no warmup, no weight decay, gradient clipping at 1.0, dropout off, no gradient checkpointing,
no truncation. Configurations:
  *-lora        LoRA r=`--lora-rank` (alpha 2r, no dropout) on the language model's q/k/v/o; the reference
                is the policy with its adapter switched off, on both sides.
  *-full        full fine-tuning of the language model and projector (vision tower frozen on both sides);
                the reference is a frozen second copy (evalkit `reference="frozen"`, TRL's `ref_model`).
  evalkit-cached  full fine-tuning with every pair's reference log-probs computed before the first update
                and no second model kept (`reference="cached"`; TRL refuses this for vision datasets).
evalkit runs `evalkit.training.trainer.train` itself; TRL runs `DPOTrainer.train` (its collator processes
the images on the fly). The last-loss column is a check that both sides train alike: with full fine-tuning
(no random LoRA init) it agrees to the printed digits.

Timing: `--warmup` steps, then `--steps` timed steps. A step is the time between the ends of consecutive
optimizer steps as each trainer reports them (evalkit's `on_step`, TRL's `TrainerCallback.on_step_end`),
so batching and image processing, both forward passes, backward, clipping, the optimizer and per-step
logging all count. Wall-clock median and mean, and the median process CPU time, which is steadier on a
shared machine (torch uses `--threads` threads, 1 by default).

Memory: every configuration runs in a fresh subprocess, so peaks never mix, and imports everything either
side uses before its baseline. The baseline is taken just before the data and the model are loaded; the
peak is read at the end of the last timed step, so it covers loading the model and the reference,
precomputing a reference cache, and training.
  CUDA: `torch.cuda.max_memory_allocated` (reset at the baseline) minus the memory allocated there.
  CPU, "peak": the resident-set high-water mark (`VmHWM`, reset at the baseline by writing 5 to
    /proc/self/clear_refs; `ru_maxrss` where it cannot be reset) minus the resident set at the baseline:
    everything the process holds, including what glibc keeps cached after tensors are freed, which
    depends on the order of allocations.
  CPU, "live": the same from a second short run (1 + 2 steps) with MALLOC_MMAP_THRESHOLD_=65536, so
    glibc returns every freed tensor to the OS at once and the resident set follows the live memory.

Ratios: evalkit / TRL for time and memory per mode (target: time < 1, memory <= 1), and cached / frozen
for evalkit's memory.

Modules: this script (the evalkit side, the workers and the driver), `dpo_step_world.py` (model, pairs,
shared settings), `dpo_step_measure.py` (memory probe, step clock), `dpo_step_trl.py` (the TRL baseline).

Usage:
  python benchmarks/dpo_step.py [--device cpu|cuda|auto] [--steps 10] [--warmup 3] [--pairs 8]
      [--lora-rank 8] [--modes lora,full] [--size toy|medium] [--repeats 1] [--threads 1]
TRL is an optional dependency (`pip install trl`; tested with trl 1.16.0); without it the TRL rows are
skipped with a message and the cached-vs-frozen comparison still runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

from dpo_step_measure import MemoryProbe, StepClock  # noqa: E402 (after the environment settings)
from dpo_step_trl import TRL_INSTALL, run_trl, trl_version  # noqa: E402
from dpo_step_world import BETA, LR, write_world  # noqa: E402

LIVE_MMAP_THRESHOLD = 65536


# ---- workers (one configuration per subprocess) --------------------------------------------------------


def run_evalkit(job: dict) -> dict:
    import torch

    from evalkit.training.config import TrainConfig
    from evalkit.training.trainer import train

    root = Path(job["root"])
    total = job["warmup"] + job["steps"]
    probe = MemoryProbe(job["device"])
    clock = StepClock(total, probe)
    cfg = TrainConfig(
        method="dpo",
        model=str(root / "base"),
        data=str(root / "pairs.jsonl"),
        output=str(root / f"out-{job['name']}"),
        max_steps=total,
        lr=LR,
        beta=BETA,
        loss="sigmoid",
        batch_size=job["pairs"],
        lora_rank=job["lora_rank"],
        lora_alpha=2 * job["lora_rank"] if job["lora_rank"] else None,
        lora_dropout=0.0,
        reference=job["reference"],
        warmup_ratio=0.0,
        schedule="linear",
        gradient_checkpointing=False,
        weight_decay=0.0,
        max_grad_norm=1.0,
        save_every=0,
        device=job["device"],
        seed=0,
        overwrite=True,
    )
    torch.manual_seed(0)
    probe.start()
    result = train(cfg, on_step=lambda row: clock.tick())
    return clock.result(job["warmup"], result.log[-1]["loss"])


def preload() -> None:
    """Import what either side uses, before the memory baseline, on both sides alike: the libraries load
    lazily, and a module loaded after the baseline would be counted as training memory."""
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import transformers
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor, LlavaForConditionalGeneration  # noqa: F401
    from transformers.models.clip import modeling_clip  # noqa: F401
    from transformers.models.llama import modeling_llama  # noqa: F401
    from transformers.models.llava import modeling_llava  # noqa: F401

    import evalkit.training.data  # noqa: F401
    import evalkit.training.distributed  # noqa: F401
    import evalkit.training.dpo  # noqa: F401
    import evalkit.training.methods  # noqa: F401
    import evalkit.training.sft  # noqa: F401
    import evalkit.training.trainer  # noqa: F401
    import evalkit.util.progress  # noqa: F401

    Image.init()  # every PIL plugin (the datasets image feature loads them all)
    transformers.Trainer  # noqa: B018
    peft.get_peft_model, peft.LoraConfig, peft.PeftModel  # noqa: B018
    if trl_version() is not None:
        from trl import DPOConfig, DPOTrainer  # noqa: F401
        from trl.trainer import dpo_trainer, utils  # noqa: F401


def worker(job: dict) -> None:
    import torch

    torch.set_num_threads(job["threads"])
    preload()

    out = run_trl(job) if job["side"] == "trl" else run_evalkit(job)
    print("RESULT " + json.dumps(out), flush=True)


# ---- driver ---------------------------------------------------------------------------------------------


def spawn(job: dict, live: bool = False) -> dict:
    """Run one configuration in a fresh interpreter. `live`: with glibc's mmap threshold fixed at 64 KiB,
    so every freed tensor goes back to the OS at once and the resident set follows the live memory."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(LIVE_MMAP_THRESHOLD)} if live else None
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise RuntimeError(f"configuration {job['name']} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def plan(args: argparse.Namespace, have_trl: bool) -> list[dict]:
    base = {
        "steps": args.steps,
        "warmup": args.warmup,
        "pairs": args.pairs,
        "device": args.device,
        "threads": args.threads,
    }
    jobs = []
    for mode in args.modes:
        rank = args.lora_rank if mode == "lora" else 0
        reference = "adapter-off" if mode == "lora" else "frozen"
        jobs.append(
            {**base, "name": f"evalkit-{mode}", "side": "evalkit", "lora_rank": rank, "reference": reference}
        )
        if have_trl:
            jobs.append(
                {**base, "name": f"trl-{mode}", "side": "trl", "lora_rank": rank, "reference": reference}
            )
    if "full" not in args.modes:
        jobs.append(
            {**base, "name": "evalkit-full", "side": "evalkit", "lora_rank": 0, "reference": "frozen"}
        )
    jobs.append({**base, "name": "evalkit-cached", "side": "evalkit", "lora_rank": 0, "reference": "cached"})
    return jobs


def merge(runs: list[dict]) -> dict:
    """One configuration's repeats: step times pooled, the median peak."""
    return {
        "seconds": [x for r in runs for x in r["seconds"]],
        "cpu_seconds": [x for r in runs for x in r["cpu_seconds"]],
        "peak_mib": statistics.median(r["peak_mib"] for r in runs),
        "live_mib": statistics.median(r["live_mib"] for r in runs) if "live_mib" in runs[0] else None,
        "memory": runs[0]["memory"],
        "final_loss": runs[0]["final_loss"],
    }


def report(results: dict[str, dict], modes: list[str]) -> None:
    med = statistics.median
    live = all(r["live_mib"] is not None for r in results.values())
    print(
        f"\n{'configuration':<15} {'s/step median':>13} {'mean':>7} {'CPU s/step':>10} {'peak MiB':>9} "
        f"{'live MiB' if live else '':>9} {'last loss':>9}"
    )
    for name, r in results.items():
        loss = "-" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
        print(
            f"{name:<15} {med(r['seconds']):>13.4f} {statistics.mean(r['seconds']):>7.4f} "
            f"{med(r['cpu_seconds']):>10.4f} {r['peak_mib']:>9.1f} "
            f"{format(r['live_mib'], '.1f') if live else '':>9} {loss:>9}"
        )
    probe = next(iter(results.values()))["memory"]
    print(f"peak: {probe} above the baseline", end="")
    print(f"; live: the same with MALLOC_MMAP_THRESHOLD_={LIVE_MMAP_THRESHOLD}" if live else "")
    print()

    def memory(a: dict, b: dict) -> str:
        text = f"peak memory {a['peak_mib'] / b['peak_mib']:.2f}x"
        return text + (f", live memory {a['live_mib'] / b['live_mib']:.2f}x" if live else "")

    for mode in modes:
        ours, theirs = results.get(f"evalkit-{mode}"), results.get(f"trl-{mode}")
        if ours and theirs:
            wall = med(ours["seconds"]) / med(theirs["seconds"])
            cpu = med(ours["cpu_seconds"]) / med(theirs["cpu_seconds"])
            print(
                f"{mode:>4}: evalkit/TRL step time {wall:.2f}x, CPU time {cpu:.2f}x (target < 1); "
                f"{memory(ours, theirs)} (target <= 1)"
            )
    print(
        "evalkit cached/frozen reference (full fine-tuning): "
        f"{memory(results['evalkit-cached'], results['evalkit-full'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (at least 1)")
    parser.add_argument("--pairs", type=int, default=8, help="preference pairs per batch")
    parser.add_argument("--lora-rank", type=int, default=8, help="LoRA rank of the lora mode")
    parser.add_argument("--modes", default="lora,full", help="comma-separated: lora, full (default both)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    parser.add_argument(
        "--size",
        choices=("toy", "medium"),
        default="toy",
        help="toy: the toy LLaVA (1.3M parameters); medium: its language model at hidden 512, 8 layers",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run every configuration this many times, alternating the order",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(args.modes) <= {"lora", "full"} or min(args.warmup, args.steps, args.repeats, args.pairs) < 1:
        parser.error("--modes takes lora and/or full; --warmup, --steps, --repeats, --pairs must be >= 1")
    if "lora" in args.modes and args.lora_rank < 1:
        parser.error("--lora-rank must be >= 1 (use --modes full for full fine-tuning)")
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"

    version = trl_version()
    if version is None:
        print(f"TRL is not installed: the TRL rows are skipped. Install it with: {TRL_INSTALL}")
    print(
        f"device {args.device}, {args.pairs} pairs per batch, {args.warmup} warm-up + {args.steps} timed "
        f"steps, LoRA r={args.lora_rank}, torch threads {args.threads}, TRL {version or 'not installed'}"
    )
    with tempfile.TemporaryDirectory(prefix="dpo-step-") as tmp:
        root = Path(tmp)
        n_params = write_world(root, args.pairs, args.size)
        print(f"model: {args.size} LLaVA, {n_params / 1e6:.1f}M parameters", flush=True)
        jobs = plan(args, version is not None)
        runs: dict[str, list[dict]] = {job["name"]: [] for job in jobs}
        for repeat in range(args.repeats):  # alternate the order so drifting machine load hits all alike
            for job in jobs if repeat % 2 == 0 else jobs[::-1]:
                t0 = time.perf_counter()
                result = spawn({**job, "root": str(root)})
                if args.device == "cpu":  # a short second run for the live-memory peak
                    short = {**job, "root": str(root), "warmup": 1, "steps": 2}
                    result["live_mib"] = spawn(short, live=True)["peak_mib"]
                runs[job["name"]].append(result)
                print(f"  {job['name']}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    report({name: merge(r) for name, r in runs.items()}, args.modes)


if __name__ == "__main__":
    main()
