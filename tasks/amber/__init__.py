"""AMBER: LLM-free multi-dimensional hallucination benchmark (generative and yes/no discriminative).

Protocol (junyangwang0410/AMBER `inference.py`; rules in `protocol`, NLP backends in `nouns`):
the generative prompt is the query ("Describe this image."), the discriminative prompt is the query as is
(the repository leaves the suffix to the user and its README asks for "Yes"/"No" answers; option
`amber.suffix=short` appends LLaVA's "\\nAnswer the question using a single word or phrase.").

Metrics, each rounded to one decimal as the script prints them: CHAIR, Cover, Hal, Cog (generative);
accuracy, precision, recall and F1 with "No" as the positive class, F1 from the rounded precision and
recall — overall and for existence, attribute (and its state / number / action parts) and relation; and
the AMBER score (100 − CHAIR + F1) / 2 (AMBER paper §3), the headline. A discriminative answer counts
only when it is exactly "Yes" or "No"; `neither` counts those that are not. `amber.answers=normalize`
(opt-in, recorded in run.json and every row) reads a leading yes/no in any case instead; it is the
default with `--data toy` only, whose toy model lowercases every word it writes. Intervals are
95% bootstrap intervals resampling whole images (an image's description and questions are correlated).

Task options: `amber.evaluation_type=a|g|d|de|da|dr` (the official flag: which items are asked and which
numbers are reported; default a), `amber.nlp=auto|official|spacy|spacy:MODEL|basic` (default auto: the
most official backend available, recorded), `amber.similarity_score` (default 0.8), `amber.answers`,
`amber.suffix`.

Backend differences, measured on 1,004 synthetic descriptions (one per official image: some of its truth
objects, often one hallu object and one other vocabulary noun, some in the plural or capitalised), scored
with `basic` and with `spacy:en_core_web_md` (en_core_web_lg, the official model, is not installable
here, so `official` could not be measured): the vocabulary nouns extracted agree for 978 descriptions;
CHAIR 20.4 vs 19.0, Cover 45.2 vs 45.4, Hal 61.1 vs 56.9, Cog 9.3 vs 9.6. With similarity switched off
(threshold above 1) md gives 20.0 / 45.1 / 59.9 / 9.2, so most of the gap is md's coarse word vectors
passing unrelated nouns as synonyms; the rest is tagging (spaCy tags some rare nouns and "orange" as
non-nouns). Real descriptions, and lg against md, may differ by more.

Modules: this one holds the Task class; `protocol` the evaluation types, noun matching, answer parsing and
the official counter arithmetic (no I/O); `nouns` the pluggable noun extraction and word similarity (found
through `evalkit.tasks.nlp`); `data` the official data files and the images; `hub` the same files without
--data-dir (images from the hub, data files from GitHub pinned by sha256); `importing` `evalkit import`
of an official responses file; `toy` the toy set over the toy world.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.stats import Estimate, Statistic, per_cluster, unit_index
from evalkit.task import FAILURES, PERCENT, DataSpec, Imported, LoadedData, MetricInfo, Task, TaskOption
from evalkit.tasks.amber import hub, nouns
from evalkit.tasks.amber.data import OFFICIAL_COUNTS, AmberData, find_images, read_data
from evalkit.tasks.amber.importing import import_responses, write_answers
from evalkit.tasks.amber.protocol import (
    ANSWER_RULES,
    DEFAULT_SIMILARITY,
    EVALUATION_TYPES,
    F1_EPS_EXISTENCE,
    amber_score,
    generative_metrics,
    group_of,
    match_generative,
    normalized_answer,
    official_answer,
    qa_metrics,
    row_counters,
    selected,
    typed_options,
)
from evalkit.types import GenerationConfig, Message, Request, Sample, UserError
from evalkit.util.datafiles import sha256_file, toy_label

SHORT_SUFFIX = "\nAnswer the question using a single word or phrase."
SUFFIXES = {"none": "", "short": SHORT_SUFFIX}
OPTIONS = {
    "evaluation_type": TaskOption("which items to run and report", EVALUATION_TYPES, "a"),
    "nlp": TaskOption("generative NLP backend: auto, official, spacy, spacy:MODEL or basic", None, "auto"),
    "similarity_score": TaskOption("hallucination word-similarity threshold", None, str(DEFAULT_SIMILARITY)),
    "answers": TaskOption("yes/no reading (default exact; toy: normalize)", ANSWER_RULES, "exact"),
    "suffix": TaskOption("text appended to the yes/no questions", tuple(SUFFIXES), "none"),
}
#: metrics that are counts (reported without an interval)
COUNTS = ("neither", "unparsed")
GENERATIVE_GENERATION = GenerationConfig(max_new_tokens=512, temperature=0.0)
DISCRIMINATIVE_GENERATION = GenerationConfig(max_new_tokens=32, temperature=0.0)
#: reported groups: name → (annotation groups, F1 epsilon, evaluation types that print it)
QA_REPORTS = {
    "": (("state", "number", "action", "existence", "relation"), 1e-4, ("a", "d")),
    "existence/": (("existence",), F1_EPS_EXISTENCE, ("a", "d", "de")),
    "attribute/": (("state", "number", "action"), 1e-4, ("a", "d", "da")),
    "attribute/state/": (("state",), 1e-4, ("a", "d", "da")),
    "attribute/number/": (("number",), 1e-4, ("a", "d", "da")),
    "attribute/action/": (("action",), 1e-4, ("a", "d", "da")),
    "relation/": (("relation",), 1e-4, ("a", "d", "dr")),
}


def _limited(items: list[dict[str, Any]], data: AmberData, limit: int | None) -> list[dict[str, Any]]:
    """The first items of each dimension present, in turn, so a small limit still covers every one."""
    if limit is None:
        return items
    groups: dict[str, list[dict[str, Any]]] = {}
    for q in items:
        groups.setdefault(group_of(data.annotation(q["id"])["type"])[0], []).append(q)
    per = -(-limit // len(groups)) if groups else 0
    return [q for g in groups.values() for q in g[:per]][:limit]


class Amber(Task):
    """AMBER, rule-scored: one row per query id (generative 1–1,004, discriminative 1,005–15,220 in the
    official files). Generative rows store the extracted vocabulary nouns, which were hallucinated, which
    truth / hallu objects were covered, and the NLP backend used (`meta.nlp`, also what `rescore` uses)."""

    name = "amber"
    version = "1"
    description = (
        "AMBER hallucination (generative CHAIR/Cover/Hal/Cog; yes/no existence, attribute, relation)"
    )
    data_needs = (
        "none by default: the images from the hub (qgallouedec/amber, generative config) and the official "
        "data files from github.com/junyangwang0410/AMBER at a pinned commit (sha256-checked); or "
        "--data-dir DIR: the data/ folder of github.com/junyangwang0410/AMBER (annotations.json, "
        "relation.json, safe_words.txt, query/query_all.json) and the images AMBER_1.jpg … AMBER_1004.jpg "
        "(Google Drive link in its README) in DIR/image (or --image-dir); --data toy builds a toy set "
        "offline. Generative scoring uses NLTK + spaCy en_core_web_lg when installed (amber.nlp)"
    )
    hub_sources = (hub.SOURCE,)
    official_files = tuple(hub.OFFICIAL.values())
    headline = "amber_score"
    group = "hallucination"
    metric_info = {
        **{name: MetricInfo(-1, "%") for name in ("chair", "hal", "cog")},
        "neither": FAILURES,
        "unparsed": FAILURES,
    }
    default_metric = PERCENT
    tax_metrics = ("chair", "cover", "hal", "cog", "f1")
    generation = GENERATIVE_GENERATION
    supports_toy = True
    task_options = OPTIONS
    lmms_eval_unsupported = (
        "lmms-eval's amber_g log carries no AMBER item id per sample (only counters), so its answers "
        "cannot be matched to the official items; export {id, response} pairs and import those"
    )

    def lmms_eval_matches(self, record: Any) -> bool:
        """lmms-eval's `amber_g` records (their `amber_chair` counters)."""
        return "amber_chair" in record.fields

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "generation": {
                "generative": GENERATIVE_GENERATION.__dict__,
                "discriminative": DISCRIMINATIVE_GENERATION.__dict__,
            },
        }

    def request(self, sample: Sample, seed: int = 0) -> Request:
        gen = GENERATIVE_GENERATION if sample.meta["type"] == "generative" else DISCRIMINATIVE_GENERATION
        return Request(id=sample.id, messages=sample.messages, generation=gen, seed=seed)

    # --- data -----------------------------------------------------------------------------------------------

    def load(self, spec: DataSpec) -> LoadedData:
        # the toy model's tokenizer lowercases: it never says "Yes"
        opts = typed_options(self.read_options(spec, **({"answers": "normalize"} if spec.toy else {})))
        if spec.toy:
            from evalkit.tasks.amber.toy import default_toy_dir, write_amber

            data_dir = write_amber(default_toy_dir(spec.seed), seed=spec.seed)
        elif spec.data_dir is not None:
            data_dir = Path(spec.data_dir)
        else:
            instead = "pass --data toy, or --data-dir DIR with the official AMBER data/ and images"
            data_dir, found = hub.data_dir(self.name, instead)
        data = read_data(data_dir)
        items = [
            q for q in data.queries if selected(data.annotation(q["id"])["type"], opts["evaluation_type"])
        ]
        items = _limited(items, data, spec.limit)
        if not items:
            raise UserError(
                f"{data.paths['query/query_all.json']}: no items of evaluation type {opts['evaluation_type']}"
            )
        names = sorted({q["image"] for q in items})
        from_hub: dict[str, Any] = {}
        if spec.toy or spec.data_dir is not None:
            images = find_images(data, data_dir, spec.image_dir, names)
        else:
            images, from_hub = hub.write_images(self.name, data, names, found)
        nlp = self.backend(opts, data, items)
        samples = [self.sample(q, data, opts, nlp, str(images / q["image"])) for q in items]
        info = self.data_info(data, opts, nlp, "toy" if spec.toy else str(data.root), spec)
        return LoadedData(samples, {**info, **from_hub, "image_dir": str(images)})

    def backend(self, opts: dict[str, Any], data: AmberData, items: list[dict[str, Any]]) -> str | None:
        """The NLP backend id for `items` (loaded now), or None when none of them is generative."""
        if not any(data.annotation(q["id"])["type"] == "generative" for q in items):
            return None
        backend_id = nouns.resolve(opts["nlp"])
        nouns.get_backend(backend_id)  # load now: fail before any model is asked
        return backend_id

    def sample(
        self, q: dict[str, Any], data: AmberData, opts: dict[str, Any], nlp: str | None, image: str
    ) -> Sample:
        """The sample of query `q` (run and import build it alike)."""
        ann = data.annotation(q["id"])
        meta: dict[str, Any] = {
            "id": q["id"],
            "type": ann["type"],
            "image": q["image"],
            "evaluation_type": opts["evaluation_type"],
        }
        if ann["type"] == "generative":
            objects = list(dict.fromkeys(ann["truth"] + ann["hallu"]))
            target: Any = {
                "truth": ann["truth"],
                "hallu": ann["hallu"],
                "association": {o: data.association[o] for o in objects},
                "vocabulary": data.vocabulary,
                "safe_words": data.safe_words,
            }
            meta |= {"nlp": nlp, "similarity_score": opts["similarity_score"]}
            text = q["query"]
        else:
            target = ann["truth"]
            meta["answers"] = opts["answers"]
            text = q["query"] + SUFFIXES[opts["suffix"]]
        return Sample(str(q["id"]), (Message("user", text, (image,)),), target, q["image"], meta)

    def data_info(
        self, data: AmberData, opts: dict[str, Any], nlp: str | None, source: str, spec: DataSpec | None
    ) -> dict[str, Any]:
        """What identifies the data of a run or an import: version, file checksums, options, NLP backend."""
        n = len(data.annotations)
        n_gen = sum(a["type"] == "generative" for a in data.annotations)
        if toy_label(data.root):
            version = str(toy_label(data.root))
        elif (n, n_gen) == (OFFICIAL_COUNTS["items"], OFFICIAL_COUNTS["generative"]):
            version = "official (15,220 items; 1,004 generative)"
        else:
            version = f"unknown ({n} items; {n_gen} generative)"
        return {
            "source": source,
            "version": version,
            "files": {name: sha256_file(p) for name, p in data.paths.items()},
            "options": {k: opts[k] for k in OPTIONS},
            "nlp": nouns.get_backend(nlp).info() if nlp else None,
        }

    # --- scoring --------------------------------------------------------------------------------------------

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        if meta["type"] == "generative":
            backend = nouns.get_backend(meta["nlp"])
            vocabulary = frozenset(target["vocabulary"])
            result = match_generative(
                backend.nouns(response, vocabulary),
                target["truth"],
                target["hallu"],
                target["association"],
                vocabulary,
                target["safe_words"],
                backend.similarity,
                meta["similarity_score"],
            )
            return {"kind": "generative", "nlp": meta["nlp"], **result}
        exact = official_answer(response)
        answer = exact if meta.get("answers", "exact") == "exact" else normalized_answer(response)
        return {"kind": "discriminative", "answer": answer, "exact_answer": exact, "neither": exact is None}

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """Every metric as a function of image weights over the official counters summed per image. A
        single weight row (a point value) follows the script's scalar rules (Python rounding, 0 for an
        empty denominator); resample batches use numpy rounding and leave empty denominators out (NaN)."""
        clusters, units = unit_index(rows)
        per_row = np.stack([row_counters(r) for r in rows])
        counts = per_cluster(per_row, clusters, len(units))
        total = per_row.sum(axis=0)
        eval_types = {r["meta"].get("evaluation_type", "a") for r in rows}
        shown = lambda types: bool(eval_types & set(types))  # noqa: E731
        n_gen = int(total[7])
        disc = [r for r in rows if r["kind"] == "discriminative"]
        out: dict[str, Statistic] = {}

        def add(name: str, metric, n: int) -> None:
            def stat(w: np.ndarray) -> np.ndarray:
                c = w @ counts
                return np.array([metric(c[0], True)]) if w.shape[0] == 1 else metric(c, False)

            out[name] = Statistic(stat, units, n)

        gen_shown = n_gen and shown(("a", "g"))
        if gen_shown:
            for name in ("chair", "cover", "hal", "cog"):
                add(name, lambda c, exact, name=name: generative_metrics(c, exact)[name], n_gen)
        for prefix, (groups, eps, types) in QA_REPORTS.items():
            n = sum(
                1
                for r in disc
                if (group_of(r["meta"]["type"])[1] or group_of(r["meta"]["type"])[0]) in groups
            )
            if not n or not shown(types):
                continue
            for name in ("acc", "precision", "recall", "f1"):
                add(prefix + name, lambda c, exact, g=groups, e=eps, m=name: qa_metrics(c, g, e, exact)[m], n)
        if gen_shown and "f1" in out:
            all_groups = QA_REPORTS[""][0]

            def score(c, exact):
                return amber_score(
                    generative_metrics(c, exact)["chair"], qa_metrics(c, all_groups, 1e-4, exact)["f1"], exact
                )

            add("amber_score", score, len(rows))
        if disc:
            fields = {"neither": lambda r: r["neither"]}
            if any(r["meta"].get("answers") == "normalize" for r in disc):
                fields["unparsed"] = lambda r: r["answer"] is None
            for name, flag in fields.items():
                values = [float(r["kind"] == "discriminative" and flag(r)) for r in rows]
                per_unit = per_cluster(np.array(values), clusters, len(units))
                out[name] = Statistic(lambda w, v=per_unit: w @ v, units, len(disc))
        return out

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, stat in self.statistics(rows).items():
            if name in COUNTS:
                out[name] = _count(float(stat.stat(np.ones((1, len(stat.units))))[0]), stat.n)
            else:
                out[name] = _est(stat.estimate())
        return out

    # --- import ---------------------------------------------------------------------------------------------

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        """Score an official responses file (`[{"id": int, "response": str}]`, any subset of the ids) the
        way `inference.py --evaluation_type a` does, with the default options."""
        return import_responses(self, answers, questions, data_dir, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """The official responses file of the run's answers (`importing.write_answers`)."""
        return write_answers(rows, folder)


def _est(est: Estimate) -> dict[str, Any]:
    def clean(x: float) -> float | None:
        return None if math.isnan(x) else x

    return {"value": est.value, "ci_low": clean(est.ci_low), "ci_high": clean(est.ci_high), "n": est.n}


def _count(value: int, n: int) -> dict[str, Any]:
    return {"value": float(value), "ci_low": None, "ci_high": None, "n": n}
