"""What each training method trains on: the data it reads and the examples it makes before the first
update (the loop itself is `training.trainer`).

- sft, dpo: the file as loaded (`load_sft` / `load_preferences`); dpo and mixed-dpo pairs with
  `flip_fraction` of them swapped (`training.label_noise`).
- steerlm: SFT examples with attribute scores (`steerlm` format, or generic SFT records with an
  `attributes` mapping); each prompt gets its own scores written in (`evalkit.models.steerlm`).
- rs: on the seed study's judged completions (`--format seed` / `seed-best`) the best by their scores;
  otherwise the starting model samples `samples` answers per prompt, the scorer rates them and the best
  one is kept (`training.rejection`).
- bdhs: SFT examples whose response is the chosen answer; the starting model writes the rejected one
  with the image masked (`training.bdhs`).
- online-dpo: prompts (SFT or preference records); mixed-dpo: preference pairs. Their pairs are made
  during training (`training.online`); online-bdhs: SFT examples, rejected answers written during training
  (`training.online_bdhs`).
- dpo with `second_rejected` (`training.avg_dpo`): `data` checks every pair has the field; `bdhs` has the
  starting model write it before the first update (pairs it made none for are dropped and counted);
  `distortion` checks every pair has an image (`training.distortion` scores it during training).

What rs and bdhs make before training is stored in CKPT/prepared/<name>.jsonl (first line: the settings
it was made with) and reused when the run is started again with the same settings, so a crash during
training never repeats the sampling.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evalkit.training.config import TrainConfig
from evalkit.training.data_records import Loaded, PreferencePair, SFTExample
from evalkit.types import UserError

PREPARED_FORMAT = "evalkit-prepared/1"


def load_data(cfg: TrainConfig) -> Loaded:
    from evalkit.training.data import load_preferences, load_prompts, load_sft

    images = {"image_root": cfg.image_dir} if cfg.image_dir else {}

    if cfg.method in ("dpo", "mixed-dpo"):
        from evalkit.training.label_noise import flip_pairs

        data = load_preferences(cfg.data, cfg.format, seed=cfg.seed, **images)
        if cfg.second_rejected == "data":
            _check_second_field(data)
        if cfg.second_rejected == "distortion" and any(p.image is None for p in data.items):
            first = next(p.source for p in data.items if p.image is None)
            raise UserError(f"--second-rejected distortion noises each pair's image; {first} has none")
        return flip_pairs(data, cfg.flip_fraction, cfg.seed)
    if cfg.method == "online-dpo":
        return load_prompts(cfg.data, cfg.format, seed=cfg.seed, **images)
    if cfg.method == "rs" and cfg.prescored:
        return load_sft(cfg.data, "seed-best", **images)
    if cfg.method == "steerlm":
        data = load_sft(cfg.data, cfg.format, seed_as="steerlm", **images)
        unscored = [ex.source for ex in data.items if not ex.attributes]
        if unscored:
            raise UserError(
                f"--method steerlm needs attribute scores on every example; {unscored[0]} has none "
                f"({len(unscored)} of {len(data.items)} examples; use --format steerlm for seed-study "
                "records, or an `attributes` mapping in generic SFT records)"
            )
        return data
    return load_sft(cfg.data, cfg.format, **images)


def _check_second_field(data: Loaded) -> None:
    from evalkit.training.data_formats import SECOND_REJECTED

    missing = [p.source for p in data.items if p.second_rejected is None]
    if missing:
        raise UserError(
            f"--second-rejected data reads each record's {SECOND_REJECTED!r} field; {missing[0]} has none "
            f"({len(missing)} of {len(data.items)} pairs; the generic JSONL format carries it)"
        )


def steerlm_examples(items: list[SFTExample]) -> list[SFTExample]:
    from dataclasses import replace

    from evalkit.models.steerlm import steer_prompt

    return [replace(ex, prompt=steer_prompt(ex.prompt, ex.attributes)) for ex in items]


def prepared(
    out: Path, name: str, key: dict[str, Any], build: Callable[[], tuple[list[dict], dict]]
) -> tuple[list[dict], dict, bool]:
    """(rows, stats, reused): CKPT/prepared/<name>.jsonl when it was made with `key`, else `build()`."""
    path = out / "prepared" / f"{name}.jsonl"
    if path.is_file():
        lines = path.read_text().splitlines()
        header = json.loads(lines[0]) if lines else {}
        if header.get("format") == PREPARED_FORMAT and header.get("key") == key:
            return [json.loads(x) for x in lines[1:] if x.strip()], header.get("stats", {}), True
    rows, stats = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    header = {"format": PREPARED_FORMAT, "key": key, "stats": stats}
    tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in [header, *rows]))
    os.replace(tmp, path)
    return rows, stats, False


@dataclass
class Prepared:
    items: list[Any]
    info: dict[str, Any]


def _key(cfg: TrainConfig, data: Loaded, *names: str) -> dict[str, Any]:
    return {
        "data_sha256": data.info.get("sha256") or data.info.get("hub_id"),
        "model": cfg.model,
        "seed": cfg.seed,
        **{n: getattr(cfg, n) for n in names},
    }


def prepare(cfg: TrainConfig, data: Loaded, model, encoder, out: Path, say, progress) -> Prepared:
    """The examples the loop trains on (module docstring), made with the starting `model`."""
    if cfg.method == "steerlm":
        return Prepared(steerlm_examples(data.items), {})
    if cfg.method == "rs" and not cfg.prescored:
        return _rejection_sampling(cfg, data, model, encoder, out, say, progress)
    if cfg.method == "bdhs":
        return _bdhs(cfg, data, model, encoder, out, say, progress)
    if cfg.second_rejected == "bdhs":
        return _second_bdhs(cfg, data, model, encoder, out, say, progress)
    return Prepared(list(data.items), {})


def _rejection_sampling(cfg, data, model, encoder, out, say, progress) -> Prepared:
    from evalkit.training.rejection import best_of_n, sft_examples
    from evalkit.training.rewards import scorer_for

    scorer = scorer_for(cfg)
    key = {**_key(cfg, data, "samples", "max_new_tokens", "max_length"), "scorer": scorer.describe()}
    key["temperature"] = cfg.sample_temperature

    def build():
        say(f"rejection sampling: {cfg.samples} samples for each of {len(data.items)} prompts…")
        with progress:
            task = progress.add_task("sample + rate", total=len(data.items))
            return best_of_n(
                model,
                encoder,
                data.items,
                scorer,
                n=cfg.samples,
                temperature=cfg.sample_temperature,
                max_new_tokens=cfg.max_new_tokens,
                seed=cfg.seed,
                batch_size=cfg.batch_size,
                advance=lambda k: progress.update(task, advance=k),
            )

    records, stats, reused = prepared(out, "rs_samples", key, build)
    items = sft_examples(records)
    if not items:
        raise UserError("rejection sampling rated none of the samples; check the reward or the judge")
    say(
        f"rejection sampling: {len(items)} best samples{' (reused)' if reused else ''}; {stats or 'no skips'}"
    )
    info = {"rejection_sampling": {"prompts": len(records), "kept": len(items), "counts": stats}}
    info["rejection_sampling"]["scorer"] = scorer.describe()
    if getattr(scorer, "usage", None):
        info["rejection_sampling"]["judge_usage"] = scorer.usage
    return Prepared(items, info)


def _bdhs(cfg, data, model, encoder, out, say, progress) -> Prepared:
    from evalkit.training.bdhs import bdhs_pairs
    from evalkit.training.embedding import load_embedder
    from evalkit.training.online_bdhs import bdhs_settings

    embed = load_embedder(cfg.embedder)
    settings = bdhs_settings(cfg)
    key = {**_key(cfg, data, "max_length"), "bdhs": asdict(settings), "embedder": embed.fingerprint}

    def build():
        say(
            f"BDHS: writing rejected answers for {len(data.items)} examples "
            f"({settings.keep:.0%} of the image visible)…"
        )
        with progress:
            pairs, stats = bdhs_pairs(model, encoder, data.items, embed, settings, progress=progress)
        return [asdict(p) for p in pairs], stats

    rows, stats, reused = prepared(out, "bdhs_pairs", key, build)
    items = [PreferencePair(**r) for r in rows]
    if not items:
        raise UserError("BDHS made no pairs (every rejected answer equalled its chosen one)")
    say(f"BDHS: {len(items)} pairs{' (reused)' if reused else ''}")
    return Prepared(items, {"bdhs": {"pairs": len(items), "stats": stats, "embedder": embed.fingerprint}})


def _second_bdhs(cfg, data, model, encoder, out, say, progress) -> Prepared:
    """`--second-rejected bdhs`: the starting model writes each pair's second rejected answer from its
    chosen one; a pair BDHS made nothing for is dropped and counted."""
    from dataclasses import replace

    from evalkit.training.bdhs import bdhs_pairs
    from evalkit.training.embedding import load_embedder
    from evalkit.training.online_bdhs import bdhs_settings

    embed = load_embedder(cfg.embedder)
    settings = bdhs_settings(cfg)
    key = {**_key(cfg, data, "max_length"), "bdhs": asdict(settings), "embedder": embed.fingerprint}
    examples = [SFTExample(p.prompt, p.chosen, p.image, p.source, p.id) for p in data.items]

    def build():
        say(f"BDHS: writing second rejected answers for {len(examples)} pairs…")
        with progress:
            pairs, stats = bdhs_pairs(model, encoder, examples, embed, settings, progress=progress)
        return [{"id": p.id, "second_rejected": p.rejected} for p in pairs], stats

    rows, stats, reused = prepared(out, "bdhs_second_rejected", key, build)
    second = {r["id"]: r["second_rejected"] for r in rows}
    items = [replace(p, second_rejected=second[p.id]) for p in data.items if p.id in second]
    if not items:
        raise UserError("BDHS made no second rejected answer (every one equalled its chosen answer)")
    reused_text = " (reused)" if reused else ""
    say(f"BDHS: {len(items)} of {len(data.items)} pairs have a second rejected answer{reused_text}")
    info = {"pairs": len(items), "dropped": len(data.items) - len(items), "stats": stats}
    return Prepared(items, {"second_rejected_bdhs": {**info, "embedder": embed.fingerprint}})
