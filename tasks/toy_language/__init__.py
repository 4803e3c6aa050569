"""Toy language: text-only questions about which toy-world objects go together (`--data toy` only).

It measures the language side of the toy story: what a model knows of the world without seeing it, the
skill a visual-instruction stage can cost. 156 prompts, no image: both forms of `evalkit.toy.language`
("Name things that go with a kite and a dog.", "Describe a scene with a kite.") for every one- and
two-object combination of the 12 classes. An answer's other objects (the named ones left out) are scored
by how often they share a scene with the named objects (`evalkit.toy.language.score_answer`, reference
statistics from 20,000 scenes of the `--seed` world); each prompt is its own bootstrap unit.

The package holds the task only: the prompts, the reference statistics and the scoring belong to the toy
world (`evalkit.toy.language`); there is no official file to read or import.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from evalkit.stats import Statistic, mean_statistic
from evalkit.task import PERCENT, DataSpec, LoadedData, MetricInfo, Task
from evalkit.toy.language import FORMS, N_REFERENCE, all_named, companions, prompt, score_answer
from evalkit.types import GenerationConfig, Message, Sample, UserError


class ToyLanguage(Task):
    name = "toy_language"
    version = "1"
    description = "Toy text-only task: which toy-world objects go together (no image; --data toy only)"
    data_source = "toy only"
    data_needs = "none: built from the toy world (--data toy); there is no official version"
    headline = "precision"
    group = "language instruction-following"
    tax_metrics = ("answered", "well_formed")
    #: "objects": other objects named per answer, neither better nor worse
    metric_info = {"objects": MetricInfo(0, "objects")}
    default_metric = PERCENT
    generation = GenerationConfig(max_new_tokens=32, temperature=0.0)
    supports_toy = True

    def load(self, spec: DataSpec) -> LoadedData:
        if not spec.toy:
            raise UserError("toy_language is a toy-world task with no official data: pass --data toy")
        shares = companions(spec.seed)
        samples = []
        for form in FORMS:
            for named in all_named():
                text = prompt(form, named)
                samples.append(
                    Sample(
                        id=f"{form}-{'+'.join(named)}",
                        messages=(Message("user", text),),
                        target={
                            "named": list(named),
                            "shares": {o: round(v, 6) for o, v in shares[named].items()},
                        },
                        meta={"form": form, "n_named": len(named)},
                    )
                )
        if spec.limit is not None:
            samples = samples[: spec.limit]
        digest = hashlib.sha256(
            json.dumps([[s.id, s.messages[0].text, s.target] for s in samples], sort_keys=True).encode()
        ).hexdigest()
        info = {
            "source": "toy",
            "version": f"toy world (seed {spec.seed}, {N_REFERENCE} reference scenes)",
            "sha256": digest,
        }
        return LoadedData(samples, info)

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        return score_answer(response, target["named"], target["shares"])

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        keys = [r["id"] for r in rows]
        out = {
            "precision": mean_statistic([r["precision"] for r in rows], keys, scale=100.0),
            "answered": mean_statistic([float(r["answered"]) for r in rows], keys, scale=100.0),
            "well_formed": mean_statistic([float(r["well_formed"]) for r in rows], keys, scale=100.0),
            "objects": mean_statistic([len(r["others"]) for r in rows], keys),
        }
        for form in FORMS:
            part = [r for r in rows if r["meta"]["form"] == form]
            if part:
                out[f"{form}/precision"] = mean_statistic(
                    [r["precision"] for r in part], [r["id"] for r in part], scale=100.0
                )
        return out
