"""`TrainConfig`: every setting of one `evalkit train` run (saved as CKPT/train_config.json).

Defaults follow the seed study's recipes (spec training.md §1a): LoRA r=128, α=2r, AdamW without weight
decay, warmup ratio 0.03 then linear decay, β=0.1 on summed log-probs; learning rate 5e-5 for the DPO
family and 4e-4 for the SFT family when `lr` is not given. `lora_rank=0` means full fine-tuning.

Methods: SFT family `sft`, `rs` (rejection sampling: best of `samples` completions by a reward or a judge,
then SFT), `steerlm` (attribute-conditioned SFT); DPO family `dpo`, `online-dpo` (pairs sampled from the
current policy, ranked by the reward / judge), `mixed-dpo` (the offline pair with probability
`offline_prob`, else an online one), `bdhs` (rejected answers made by the starting model with the image
masked or noised), `online-bdhs` (the same, by the current policy during training). `second_rejected`
adds a second rejected answer to `dpo` pairs (the two-rejected loss, `training.avg_dpo`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from evalkit.models.base import public_url_or_none

SFT_METHODS = ("sft", "rs", "steerlm")
DPO_METHODS = ("dpo", "online-dpo", "mixed-dpo", "bdhs", "online-bdhs")
#: methods whose pairs are made during training (no cached reference)
ONLINE_METHODS = ("online-dpo", "mixed-dpo", "online-bdhs")
#: where `second_rejected` comes from (`training.avg_dpo`)
SECOND_SOURCES = ("data", "bdhs", "online-bdhs", "distortion")
METHODS = SFT_METHODS + DPO_METHODS
#: methods that sample from the policy and rank the samples with `reward` or `judge`
RANKED_METHODS = ("rs", "online-dpo", "mixed-dpo")
#: methods that train on the data's own preference pairs (what `flip_fraction` flips)
FLIP_METHODS = ("dpo", "mixed-dpo")
REFERENCES = ("frozen", "adapter-off", "cached")
DEFAULT_LR = {**dict.fromkeys(SFT_METHODS, 4e-4), **dict.fromkeys(DPO_METHODS, 5e-5)}
#: sampling temperature when `temperature` is not given: the seed study sampled at 0.7 (§1a); online
#: pairs and BDHS completions at 1.0 (not stated by seed (b))
DEFAULT_TEMPERATURE = {"rs": 0.7, "online-dpo": 1.0, "mixed-dpo": 1.0, "bdhs": 1.0, "online-bdhs": 1.0}

#: settings that may differ between an interrupted run and the command that resumes it (where the judge
#: is served from is not what it is: its model is in `judge`)
RESUME_FREE = (
    "save_every",
    "progress",
    "overwrite",
    "judge_concurrency",
    "judge_api_key_env",
    "judge_base_url",
    "output",
    # allows the checkpoint's own code to run; what is trained is the checkpoint, already in the key
    "trust_remote_code",
    # where the run is reported, not what it trains
    "report_to",
    "tracker_project",
    "run_name",
    "tracker_group",
)


@dataclass
class TrainConfig:
    """Each field's metadata carries its `help`, from which `evalkit train` makes the field's flag (same
    name with dashes, the field's default and type); `cli_type` is the type the flag parses when it is not
    the field's own, and `cli: False` keeps a setting to the config file (and the Python API)."""

    method: str = field(
        metadata={
            "help": "sft, rs (rejection sampling), steerlm, dpo, online-dpo, mixed-dpo, bdhs or online-bdhs"
        }
    )
    model: str = field(metadata={"help": "Base checkpoint path or hub id, or 'toy'"})
    data: str = field(metadata={"help": "Training data: JSONL / JSON file or Hugging Face dataset id"})
    output: str = field(metadata={"help": "Checkpoint folder to write (re-run to resume)", "cli_type": Path})
    format: str = field(
        default="auto", metadata={"help": "Data format (default: detected from the first record)."}
    )
    max_steps: int | None = field(  # optimizer steps; overrides epochs when given
        default=None, metadata={"help": "Optimizer steps (overrides --epochs)."}
    )
    epochs: float = field(default=1.0, metadata={"help": "Passes over the data."})
    lr: float | None = field(  # None: DEFAULT_LR[method]
        default=None, metadata={"help": "Peak learning rate (default: dpo 5e-5, sft 4e-4)."}
    )
    beta: float = field(default=0.1, metadata={"help": "DPO beta."})
    loss: str = field(default="sigmoid", metadata={"help": "DPO loss: sigmoid, ipo or slic (hinge)."})
    # TRL's "hinge" is relu(1 - beta*h): delta 1
    slic_delta: float = field(default=1.0, metadata={"help": "--loss slic: the hinge's margin delta."})
    # seed (a)'s Table 5 label-noise ablation
    flip_fraction: float = field(
        default=0.0,
        metadata={"help": "dpo / mixed-dpo: swap chosen and rejected in this seeded fraction of the pairs."},
    )
    # seed (a)'s SFT_weight; keeps answers fluent
    sft_weight: float = field(
        default=0.0, metadata={"help": "DPO methods: add this weight x the chosen answer's NLL to the loss."}
    )
    batch_size: int = field(default=8, metadata={"help": "Examples (DPO: pairs) per micro-batch."})
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    lora_rank: int = field(
        default=128, metadata={"help": "LoRA rank (alpha = 2 x rank); 0 = full fine-tuning."}
    )
    lora_alpha: float | None = field(  # None: 2 * lora_rank
        default=None, metadata={"help": "LoRA alpha (default: 2 x the rank).", "cli": False}
    )
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA layers.", "cli": False})
    train_vision: bool = field(  # LoRA never touches the vision tower
        default=False, metadata={"help": "Full fine-tuning: also train the vision tower."}
    )
    merge: bool = field(default=True, metadata={"help": "LoRA: merge the adapter into the saved weights."})
    reference: str | None = field(  # None: adapter-off with LoRA, frozen without
        default=None,
        metadata={"help": "DPO reference: frozen, adapter-off or cached (default: adapter-off with LoRA)."},
    )
    warmup_ratio: float = field(default=0.03, metadata={"help": "Fraction of steps of linear warmup."})
    # the seed repo's scripts use cosine
    schedule: str = field(default="linear", metadata={"help": "Decay after warmup: linear or cosine."})
    projector_lr: float | None = field(
        default=None,
        metadata={"help": "LoRA: also train the vision-language projector at this rate (seed recipe 2e-5)."},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in the backward pass (less memory, slower)."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay.", "cli": False})
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "Clip the gradient norm to this before each step.", "cli": False}
    )
    seed: int = field(default=0, metadata={"help": "Seed for initialisation and data order."})
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Cut answers to fit this many tokens with their prompt (default: an answer over the "
            "model's context is refused at load; prompts that do not fit are skipped and counted)."
        },
    )
    prompt_style: str = field(  # evalkit.models.protocol; recorded in the checkpoint when not the default
        default="chat-template",
        metadata={
            "help": "Prompt rendering, as `evalkit run --prompt-style`: chat-template, llava_v1.5 or "
            "llava_v1 (saved with the checkpoint, whose evaluation then uses it)."
        },
    )
    image_pad: str = field(
        default="none",
        metadata={"help": "Images as `evalkit run --image-pad`: none or square (saved likewise)."},
    )
    save_every: int = field(  # optimizer steps
        default=50, metadata={"help": "Steps between resume checkpoints (0: never)."}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N."})
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run the Python code a checkpoint ships (its config.json auto_map: Phi-3.5-vision, ...); "
            "only for checkpoints you trust."
        },
    )
    image_dir: str | None = field(  # the flag follows --format (cli.train.FLAG_ORDER)
        default=None,
        metadata={
            "help": "Folder of the images the data names by path (default: the data file's folder; "
            "POVID: COCO train2014).",
            "cli_type": Path,
        },
    )
    # sampling from the policy (rs, online-dpo, mixed-dpo, bdhs)
    samples: int = field(  # the seed study sampled 4
        default=4, metadata={"help": "rs: answers sampled per prompt."}
    )
    temperature: float | None = field(  # None: DEFAULT_TEMPERATURE[method]
        default=None,
        metadata={"help": "Sampling temperature of rs / online / bdhs (default: rs 0.7, others 1.0)."},
    )
    max_new_tokens: int = field(default=128, metadata={"help": "Longest sampled answer (rs, online)."})
    reward: str | None = field(  # see training.rewards
        default=None,
        metadata={
            "help": "rs / online-dpo / mixed-dpo: reward function module:function or file.py:function "
            "(fn(prompt, response, reference, image) -> float), or built-in toy-objects."
        },
    )
    judge: str | None = field(
        default=None,
        metadata={"help": "rs / online-dpo / mixed-dpo: rate samples with openai:MODEL or hf:PATH."},
    )
    judge_base_url: str | None = field(default=None, metadata={"help": "Endpoint of an openai: judge."})
    judge_api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the judge's API key."}
    )
    judge_concurrency: int = field(default=16, metadata={"help": "Judge requests in flight at once."})
    offline_prob: float = field(  # seed (b): p = 0.5
        default=0.5, metadata={"help": "mixed-dpo: probability of training on the offline pair."}
    )
    steer: str | None = field(  # default: all 4
        default=None,
        metadata={
            "help": "steerlm: inference targets saved with the checkpoint, e.g. 'verbosity=2' (default 4)."
        },
    )
    embedder: str | None = field(  # default: training.embedding's
        default=None,
        metadata={"help": "bdhs: sentence-embedding model name or local folder (see the README)."},
    )
    bdhs_keep: float = field(  # 1 - rho_th, rho_th = 0.99
        default=0.01, metadata={"help": "BDHS: fraction of image tokens left visible."}
    )
    bdhs_threshold: float = field(
        default=0.97,
        metadata={"help": "bdhs: re-sample while the similarity to the chosen answer is >= this."},
    )
    bdhs_tries: int = field(  # N_BDHS; the last try is an unguided masked answer, accepted regardless
        default=5, metadata={"help": "bdhs: tries per example (the last one unguided)."}
    )
    bdhs_image: str = field(  # seed (b) Table 6: BDHS_attn vs BDHS_noise
        default="mask",
        metadata={
            "help": "BDHS: how the model sees the image while writing the rejected answer: mask (image "
            "tokens masked, BDHS_attn) or noise (diffusion-noised pixels, BDHS_noise)."
        },
    )
    noise_steps: int = field(
        default=500,
        metadata={
            "help": "--bdhs-image noise, --second-rejected distortion: diffusion steps N of 1000 (500)."
        },
    )
    second_rejected: str | None = field(  # seed (b)'s Avg-DPO ("Online-BDHS ∪ POVID")
        default=None,
        metadata={
            "help": "dpo: also train on a second rejected answer per pair, L = gamma L(y+,y-) + (1-gamma) "
            "L(y+,y2-), y2- from: data (each record's second_rejected field), bdhs (written by the starting "
            "model), online-bdhs (written by the current policy during training) or distortion (POVID: "
            "the model's teacher-forced prediction on a noised image, --noise-steps)."
        },
    )
    gamma: float = field(
        default=0.5, metadata={"help": "--second-rejected: weight of the pair's own rejected answer."}
    )
    progress: bool = field(  # `evalkit train`: on when stderr is a terminal
        default=False, metadata={"help": "Show progress bars.", "cli": False}
    )
    overwrite: bool = field(default=False, metadata={"help": "Start over even if OUTPUT holds a run."})
    # evalkit.trackers; a list in a config file, commas on the command line, as transformers' report_to
    report_to: str | list[str] = field(
        default="none",
        metadata={
            "help": "Log every step to experiment trackers: wandb, tensorboard (comma-separated) or none.",
            "cli_type": str,
        },
    )
    tracker_project: str | None = field(
        default=None,
        metadata={"help": "--report-to wandb: the project (default: $WANDB_PROJECT, else evalkit)."},
    )
    run_name: str | None = field(
        default=None, metadata={"help": "The run's name in the trackers (default: the output folder's name)."}
    )
    tracker_group: str | None = field(  # evalkit align: the plan's output folder name
        default=None,
        metadata={"help": "--report-to wandb: the run's group where WANDB_RUN_GROUP is not set."},
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every setting known, in range and applicable to the method, or one line naming it
        (`training.config_checks`)."""
        from evalkit.training.config_checks import check

        check(self)

    @property
    def uses_bdhs(self) -> bool:
        return self.method in ("bdhs", "online-bdhs") or self.second_rejected in ("bdhs", "online-bdhs")

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    @property
    def prescored(self) -> bool:
        """rs on the seed study's judged completions: the best is picked from the file's scores."""
        return self.method == "rs" and self.format in ("seed", "seed-best")

    @property
    def sample_temperature(self) -> float | None:
        if self.temperature is not None:
            return self.temperature
        return DEFAULT_TEMPERATURE.get(self.method)

    @property
    def reference_kind(self) -> str | None:
        if self.method not in DPO_METHODS:
            return None
        if self.reference is not None:
            return self.reference
        return "adapter-off" if self.lora_rank else "frozen"

    @property
    def protocol(self):
        """The generation protocol training renders prompts and prepares images with."""
        from evalkit.models.protocol import Protocol

        return Protocol(self.prompt_style, self.image_pad)

    @property
    def trackers(self):
        """Where the run is reported (`evalkit.trackers.TrackerSettings`)."""
        from evalkit.trackers import TrackerSettings

        return TrackerSettings.of(self.report_to, self.tracker_project, self.run_name)

    @property
    def alpha(self) -> float:
        return 2.0 * self.lora_rank if self.lora_alpha is None else self.lora_alpha

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(lr_used=self.learning_rate, reference_used=self.reference_kind, lora_alpha_used=self.alpha)
        out.update(temperature_used=self.sample_temperature)
        out["judge_base_url"] = public_url_or_none(self.judge_base_url)  # never write URL credentials
        return out

    def resume_key(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in RESUME_FREE}
