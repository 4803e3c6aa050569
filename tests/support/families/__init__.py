"""Tiny random checkpoints of every model family evalkit supports, built offline from transformers config
classes, and what each family is expected to do (tests/models/test_families.py checks every cell; the
README's "Supported models" table is rendered from the same declarations by `readme_table`).

A family's `build(path)` writes a checkpoint folder shaped like the family's hub repos: config.json,
safetensors weights, the tokenizer (the offline word-level toy tokenizer plus the family's special tokens),
the processor's configs under the family's real processor class, and the family's own chat template.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: the matrix's cells, in the README's column order
CELLS = ("evaluate", "batch", "dpo-lora", "dpo-full", "reload")


@dataclass(frozen=True)
class Family:
    name: str  # as the README names it, e.g. "Qwen2-VL"
    build: Callable[[Path], None]  # writes the tiny checkpoint folder
    images: bool = True  # image-text-to-text (False: a text-only causal LM)
    #: prefixes of saved weight names (as in model.safetensors) that full fine-tuning must leave unchanged
    #: (the vision tower); each must name at least one weight
    frozen_prefixes: tuple[str, ...] = ()
    #: endings of saved weight names a merged default-LoRA step may change (its attention projections)
    lora_weights: tuple[str, ...] = ("proj.weight",)
    trust_remote_code: bool = False  # its modelling code ships with the checkpoint
    requires: tuple[str, ...] = ()  # importable modules the family needs (e.g. num2words); skipped without
    notes: str = ""  # the README's notes column
    #: cell -> a fragment of the one-line error evalkit gives where the family cannot work
    unsupported: dict[str, str] = field(default_factory=dict)
    #: cell -> why it does not work yet (the test is a strict xfail, so a fix shows up as XPASS)
    pending: dict[str, str] = field(default_factory=dict)

    def status(self, cell: str) -> str:
        return "no" if cell in self.unsupported else "pending" if cell in self.pending else "yes"


def _families() -> dict[str, Family]:
    from support.families import gemma, idefics, llava, molmo, phi, qwen, text

    modules = (llava, qwen, idefics, gemma, phi, molmo, text)  # the README table's row order
    found = [f for module in modules for f in module.FAMILIES]
    return {f.name: f for f in found}


FAMILIES: dict[str, Family] = _families()


def readme_table() -> str:
    """The README's "Supported models" table: one row per family, from the declarations the matrix checks."""
    mark = {"yes": "✅", "no": "❌", "pending": "…"}
    head = "| family | evaluate | batch | DPO (LoRA) | DPO (full) | reload | notes |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    for f in FAMILIES.values():
        cells = " | ".join(mark[f.status(c)] for c in CELLS)
        rows.append(f"| {f.name} | {cells} | {f.notes} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(readme_table(), end="")
