"""MMHal-Bench-V: MMHal-Bench with a judge that sees the image (Amirloo et al. 2024, "Understanding
Alignment in Multimodal LLMs").

The study reports it beside MMHal-Bench with "the same prompts" and GPT-4o as the judge, the image given to
it. Everything but the judge's messages is MMHal-Bench's (`evalkit.tasks.mmhal`): the 96 records, the model's
prompt, the official judge template, the rating parser and the summary. The judge's one user message carries
the record's image (the picture the model answered about, the row's stored image) before the template text,
with OpenAI's image `detail` set by `--task-option mmhal_v.detail=...`.

Judge: `gpt-4o-2024-05-13`. The study (arXiv 2407.02477, July 2024) names only "GPT-4o"; until October
2024 the `gpt-4o` alias pointed to the 2024-05-13 snapshot, the only one that existed while the study was
judged, so that snapshot is pinned (a later alias would silently change the judge).

Detail: default `auto`. The study does not say; `auto` is the API's own default when no detail is sent,
what a harness that attaches an image without thinking of it gets, and so the most likely setting. It is
sent explicitly and recorded in the judge fingerprint (`image_detail`), with the judge's model, so runs
judged at another detail (or by a text-only judge) are never compared as if the same.

No official outputs exist for -V, so `evalkit import` reads none (MMHal-Bench's official reviews come from a
judge that did not see the image and would be scored as if it had).
"""

from __future__ import annotations

from typing import Any

from evalkit.judges.judge import JudgeCall, JudgeSpec, prompt_sha256
from evalkit.task import DataSpec, LoadedData, TaskOption
from evalkit.tasks.mmhal import INSTEAD, MMHalBench, _row_item
from evalkit.tasks.mmhal.protocol import JUDGE_SPEC, JUDGE_TEMPLATE, render_judge
from evalkit.types import GenerationConfig, Message, UserError

JUDGE_MODEL = "gpt-4o-2024-05-13"
DETAILS = ("auto", "low", "high")
DEFAULT_DETAIL = "auto"
#: where the image goes in the judge's message (part of the prompt hash): OpenAI image parts, then the text
IMAGE_PLACEMENT = "the record's image as an image part before the template text, in the one user message"


def render_judge_with_image(row: dict[str, Any], detail: str) -> tuple[Message, ...]:
    """MMHal-Bench's judge message for the row, with the row's image attached."""
    images = tuple(row.get("images") or ())
    if len(images) != 1:
        raise UserError(
            f"mmhal_v row {row.get('id')!r} holds {len(images)} images where one is expected; "
            "re-run the task so each row records the image the model answered about"
        )
    (message,) = render_judge(_row_item(row), row["response"])
    return (Message(message.role, message.text, images, detail),)


class MMHalV(MMHalBench):
    """MMHal-Bench-V: MMHal-Bench's records, prompts, parser and metrics (see `MMHalBench`), judged by GPT-4o
    (`gpt-4o-2024-05-13`, temperature 0) that sees each record's image at the `detail` task option
    (auto, low or high; default auto), which the judge fingerprint records. Data as MMHal-Bench's
    (hub, --data-dir, --data toy). No `evalkit import`: no official -V outputs exist."""

    name = "mmhal_v"
    version = "1"
    description = "MMHal-Bench-V: MMHal-Bench judged by GPT-4o seeing the image (rates 0-6)"
    data_needs = MMHalBench.data_needs.replace("data fetch mmhal`", "data fetch mmhal_v`").replace(
        "judged by gpt-4-0314", f"judged by {JUDGE_MODEL}, which sees each image"
    )
    task_options = {
        "detail": TaskOption(
            "the OpenAI image detail the judge sees the image at (the study's setting is not stated; "
            "auto is the API's default)",
            DETAILS,
            DEFAULT_DETAIL,
        )
    }
    instead = INSTEAD.split("; to score answers")[0]
    #: set by `load` from the `detail` task option
    image_detail = DEFAULT_DETAIL

    @property
    def judge_spec(self) -> JudgeSpec:  # type: ignore[override]
        return JudgeSpec(
            JUDGE_MODEL,
            temperature=JUDGE_SPEC.temperature,
            max_tokens=JUDGE_SPEC.max_tokens,
            n_runs=JUDGE_SPEC.n_runs,
            parser_version=JUDGE_SPEC.parser_version,
            image_detail=self.image_detail,
        )

    def load(self, spec: DataSpec) -> LoadedData:
        detail = self.read_options(spec)["detail"]
        assert detail is not None  # declared with a default
        self.image_detail = detail
        return super().load(spec)

    def judge_prompt_hash(self) -> str:
        return prompt_sha256(JUDGE_TEMPLATE, IMAGE_PLACEMENT)

    def judge_calls(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> list[JudgeCall]:
        """As MMHal-Bench's (one call per run not answered yet), the image attached."""
        answered = {d["run"] for d in done}
        spec = self.judge_spec
        gen = GenerationConfig(max_new_tokens=spec.max_tokens, temperature=spec.temperature)
        messages = render_judge_with_image(row, self.image_detail)
        return [JudgeCall(f"run{r}", messages, gen, r) for r in range(n_runs) if r not in answered]
