"""The TRL baseline of `benchmarks/dpo_step.py`: `DPOTrainer` on the same model, pairs and settings as the
evalkit side (TRL is optional: `trl_version()` is None without it)."""

from __future__ import annotations

import json
from pathlib import Path

from dpo_step_measure import MemoryProbe, StepClock
from dpo_step_world import BETA, LR

TRL_INSTALL = "pip install trl  (tested with trl 1.16.0)"


def trl_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trl")
    except PackageNotFoundError:
        return None


def run_trl(job: dict) -> dict:
    import torch
    from datasets import Dataset
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    root = Path(job["root"])
    total = job["warmup"] + job["steps"]
    probe = MemoryProbe(job["device"])
    clock = StepClock(total, probe)
    losses: list[float] = []

    class Callback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.tick()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    probe.start()  # the data, the trainer's settings and the models all count, as on the evalkit side
    pairs = [json.loads(x) for x in (root / "pairs.jsonl").read_text().splitlines()]
    dataset = Dataset.from_list(
        [
            {
                "image": Image.open(root / p["image"]).convert("RGB"),
                "prompt": [{"role": "user", "content": p["prompt"]}],
                "chosen": [{"role": "assistant", "content": p["chosen"]}],
                "rejected": [{"role": "assistant", "content": p["rejected"]}],
            }
            for p in pairs
        ]
    )
    cuda = job["device"].startswith("cuda")
    args = DPOConfig(
        output_dir=str(root / f"out-{job['name']}"),
        per_device_train_batch_size=job["pairs"],
        max_steps=total,
        learning_rate=LR,
        beta=BETA,
        loss_type=["sigmoid"],
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch",
        max_length=None,
        gradient_checkpointing=False,
        bf16=cuda and torch.cuda.is_bf16_supported(),  # autocast with float32 weights, as evalkit train
        fp16=False,
        use_cpu=not cuda,
        disable_dropout=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        seed=0,
        disable_tqdm=True,
    )
    model = AutoModelForImageTextToText.from_pretrained(str(root / "base"), dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(str(root / "base"))
    peft_config = None
    if job["lora_rank"]:
        from peft import LoraConfig

        from evalkit.training.lora_targets import lora_targets

        peft_config = LoraConfig(
            r=job["lora_rank"],
            lora_alpha=2 * job["lora_rank"],
            lora_dropout=0.0,
            target_modules=lora_targets(model),
            bias="none",
        )
    else:  # as evalkit's full fine-tuning: language model and projector, the vision tower frozen
        for name, p in model.named_parameters():
            p.requires_grad_("vision_tower" not in name)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[Callback()],
    )
    trainer.train()
    return clock.result(job["warmup"], losses[-1] if losses else None)
