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

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from evalkit.models.base import public_url_or_none
from evalkit.types import UserError

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
        if self.method not in METHODS:
            raise UserError(f"unknown training method {self.method!r}; methods: {', '.join(METHODS)}")
        if self.schedule not in ("linear", "cosine"):
            raise UserError(f"--schedule must be linear or cosine, got {self.schedule!r}")
        if self.projector_lr is not None and self.lora_rank == 0:
            raise UserError("--projector-lr applies to LoRA; full fine-tuning trains the projector at --lr")
        if self.loss not in ("sigmoid", "ipo", "slic"):
            raise UserError(f"--loss must be sigmoid, ipo or slic, got {self.loss!r}")
        if self.flip_fraction and self.method not in FLIP_METHODS:
            raise UserError(
                f"--flip-fraction flips preference pairs read from the data: it applies to "
                f"{' and '.join(FLIP_METHODS)}, not --method {self.method}"
            )
        if self.reference is not None and self.reference not in REFERENCES:
            raise UserError(f"--reference must be one of {', '.join(REFERENCES)}, got {self.reference!r}")
        if self.reference == "adapter-off" and self.lora_rank == 0:
            raise UserError("--reference adapter-off needs LoRA (--lora-rank > 0); use frozen or cached")
        if self.method in SFT_METHODS and self.reference is not None:
            raise UserError(f"--reference applies to the DPO methods ({', '.join(DPO_METHODS)}) only")
        if self.sft_weight and self.method in SFT_METHODS:
            raise UserError(f"--sft-weight applies to the DPO methods ({', '.join(DPO_METHODS)}) only")
        if self.reward and self.judge:
            raise UserError("give --reward or --judge, not both")
        if self.method in RANKED_METHODS and not (self.reward or self.judge) and not self.prescored:
            raise UserError(
                f"--method {self.method} ranks samples of the policy: pass --reward (a function, e.g. "
                "module:function) or --judge openai:MODEL"
            )
        if (self.reward or self.judge) and self.method not in RANKED_METHODS:
            raise UserError(f"--reward / --judge apply to {', '.join(RANKED_METHODS)} only")
        self.protocol  # noqa: B018 - a known --prompt-style and --image-pad, or one line naming them
        if self.steer is not None and self.method != "steerlm":
            raise UserError("--steer applies to --method steerlm only")
        if self.steer is not None:
            from evalkit.models.steerlm import parse_steer

            parse_steer(self.steer)
        if self.reference == "cached" and self.method in ONLINE_METHODS:
            raise UserError(
                f"--reference cached cannot serve --method {self.method}: its pairs are sampled during "
                "training; use adapter-off (LoRA) or frozen"
            )
        self._check_second_rejected()
        self._check_values()
        self.trackers  # noqa: B018 - known tracker names, or one line naming them

    def _check_second_rejected(self) -> None:
        """--second-rejected, --gamma, --bdhs-image: known values on the methods they apply to."""
        if self.second_rejected is not None:
            if self.second_rejected not in SECOND_SOURCES:
                raise UserError(
                    f"--second-rejected must be one of {', '.join(SECOND_SOURCES)}, "
                    f"got {self.second_rejected!r}"
                )
            if self.method != "dpo":
                raise UserError(
                    "--second-rejected adds a rejected answer to the data's pairs: it applies to "
                    f"--method dpo, not {self.method}"
                )
            if self.reference == "cached":
                raise UserError(
                    "--reference cached cannot serve --second-rejected; use adapter-off (LoRA) or frozen"
                )
        elif self.gamma != 0.5:
            raise UserError("--gamma weighs the two rejected answers: give --second-rejected too")
        if self.bdhs_image not in ("mask", "noise"):
            raise UserError(f"--bdhs-image must be mask or noise, got {self.bdhs_image!r}")
        if self.bdhs_image == "noise" and not self.uses_bdhs:
            raise UserError(
                "--bdhs-image noise applies where BDHS writes rejected answers: --method bdhs or "
                "online-bdhs, or --second-rejected bdhs / online-bdhs"
            )

    @property
    def uses_bdhs(self) -> bool:
        return self.method in ("bdhs", "online-bdhs") or self.second_rejected in ("bdhs", "online-bdhs")

    def _check_values(self) -> None:
        """Every number in range and finite (`--lr inf` trained NaN weights and exited 0)."""
        fin = math.isfinite

        def opt(x, rule) -> bool:
            return x is None or rule(x)

        checks = [
            ("batch_size", lambda: self.batch_size >= 1, "an integer >= 1"),
            ("grad_accum", lambda: self.grad_accum >= 1, "an integer >= 1"),
            ("lora_rank", lambda: self.lora_rank >= 0, "an integer >= 0"),
            ("lora_alpha", lambda: opt(self.lora_alpha, lambda x: fin(x) and x > 0), "a finite number > 0"),
            ("lora_dropout", lambda: 0 <= self.lora_dropout < 1, "in [0, 1)"),
            ("beta", lambda: fin(self.beta) and self.beta > 0, "a finite number > 0"),
            ("sft_weight", lambda: fin(self.sft_weight) and self.sft_weight >= 0, "a finite number >= 0"),
            ("slic_delta", lambda: fin(self.slic_delta) and self.slic_delta > 0, "a finite number > 0"),
            ("flip_fraction", lambda: 0 <= self.flip_fraction <= 1, "in [0, 1]"),
            ("epochs", lambda: fin(self.epochs) and self.epochs > 0, "a finite number > 0"),
            ("max_steps", lambda: opt(self.max_steps, lambda x: x >= 1), "an integer >= 1"),
            ("lr", lambda: opt(self.lr, lambda x: fin(x) and x > 0), "a finite number > 0"),
            (
                "projector_lr",
                lambda: opt(self.projector_lr, lambda x: fin(x) and x > 0),
                "a finite number > 0",
            ),
            ("warmup_ratio", lambda: 0 <= self.warmup_ratio < 1, "in [0, 1)"),
            (
                "weight_decay",
                lambda: fin(self.weight_decay) and self.weight_decay >= 0,
                "a finite number >= 0",
            ),
            (
                "max_grad_norm",
                lambda: fin(self.max_grad_norm) and self.max_grad_norm > 0,
                "a finite number > 0",
            ),
            ("save_every", lambda: self.save_every >= 0, "an integer >= 0"),
            ("max_length", lambda: opt(self.max_length, lambda x: x >= 2), "an integer >= 2"),
            ("samples", lambda: self.samples >= 2, "an integer >= 2"),
            (
                "temperature",
                lambda: opt(self.temperature, lambda x: fin(x) and x >= 0),
                "a finite number >= 0",
            ),
            ("max_new_tokens", lambda: self.max_new_tokens >= 1, "an integer >= 1"),
            ("judge_concurrency", lambda: self.judge_concurrency >= 1, "an integer >= 1"),
            ("offline_prob", lambda: 0 <= self.offline_prob <= 1, "in [0, 1]"),
            ("bdhs_keep", lambda: 0 <= self.bdhs_keep <= 1, "in [0, 1]"),
            (
                "bdhs_threshold",
                lambda: fin(self.bdhs_threshold) and self.bdhs_threshold > 0,
                "a finite number > 0",
            ),
            ("bdhs_tries", lambda: self.bdhs_tries >= 1, "an integer >= 1"),
            ("noise_steps", lambda: 1 <= self.noise_steps <= 1000, "an integer in [1, 1000]"),
            ("gamma", lambda: 0 <= self.gamma <= 1, "in [0, 1]"),
            ("seed", lambda: 0 <= self.seed < 2**32, "an integer in [0, 2^32)"),  # torch seeds are 64-bit
        ]
        bad = []
        for name, ok, rule in checks:
            try:
                good = bool(ok())
            except TypeError:
                good = False
            if not good:
                bad.append(f"--{name.replace('_', '-')} {getattr(self, name)!r} (must be {rule})")
        if bad:
            raise UserError(f"invalid value for {'; '.join(bad)}")

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
