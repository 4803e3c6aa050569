"""Object HalBench (RLHF-V): 300 COCO val2014 images, each with a request for a detailed description; CHAIR
hallucination rates of the descriptions against the COCO objects of the image.

Modules: this one holds the Task class; `protocol` the synonym vocabulary, CHAIR matching, the official
extraction prompt and its parser (no I/O); `data` the question, synonym and COCO annotation files and the
ground truth built from them; `nouns` the language tools of the matching (tokenizer, tagger, lemmatizer,
found through `evalkit.tasks.nlp`); `importing` `evalkit import` of official answer and review files; `toy`
the toy set over the toy world.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.judges.judge import JudgeCall, prompt_sha256
from evalkit.stats import Estimate, Statistic, per_cluster, unit_index
from evalkit.task import (
    COUNT,
    FAILURES,
    PERCENT,
    DataSpec,
    Imported,
    JudgedTask,
    LoadedData,
    MetricInfo,
    TaskOption,
)
from evalkit.tasks.objhal.data import (
    DOWNLOAD,
    cached_ground_truth,
    checked_vocabulary,
    find_coco,
    find_questions,
    find_synonyms,
    read_questions,
    read_vocabulary,
)
from evalkit.tasks.objhal.nouns import Nlp, resolve
from evalkit.tasks.objhal.protocol import (
    COUNT_FIELDS,
    GENERATION,
    JUDGE_GENERATION,
    JUDGE_SPEC,
    MAX_TRIES,
    PROMPT_TEMPLATE,
    RATES,
    RETRY_STRIDE,
    Vocabulary,
    caption_words,
    clean_answer,
    coco_words,
    is_short,
    parse_object_list,
    refine_phrases,
    render_extraction,
    score_mentions,
)
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import read_jsonl, sha256_file, toy_label

MODES = ("llm", "words")
OPTIONS = {
    "extraction": TaskOption(
        "object extraction: llm (judge) or words (no judge; the toy default)", MODES, "llm"
    ),
    "nlp": TaskOption(
        "the words-mode NLP: auto (spaCy/NLTK when installed) or builtin", ("auto", "builtin"), "auto"
    ),
    "questions": TaskOption("path of obj_halbench_300_with_image.jsonl"),
    "synonyms": TaskOption("path of synonyms_refine.txt"),
    "coco": TaskOption("folder of the COCO 2014 annotations"),
}
#: the options that name a file or folder (any of them stands in for --data-dir)
PATH_OPTIONS = ("questions", "synonyms", "coco")
#: the judge fingerprint of a words-mode run: no prompt is ever sent
NO_JUDGE = "objhal words mode: classic CHAIR matching, no judge call"
#: count field → reported name (summed over responses, averaged over judge runs; no interval)
COUNT_LABELS = {
    "with_mentions": "responses_with_objects",
    "mentions": "mentions",
    "hall_mentions": "hallucinated_mentions",
    "correct": "correct_classes",
    "gt": "gt_classes",
}


@lru_cache(maxsize=8)
def _tools(nlp: str, path: str, sha256: str) -> tuple[Vocabulary, Nlp]:
    vocab = checked_vocabulary(path, sha256)
    return vocab, resolve(nlp).with_lexicon(vocab.lexicon())


def _attempts(done: list[dict[str, Any]], n_runs: int) -> list[list[Any]]:
    tries: list[list[Any]] = [[] for _ in range(n_runs)]
    for d in done:
        tries[d["run"] % RETRY_STRIDE].append(d["output"])
    return tries


def _extraction(tries: list[Any]) -> tuple[list[Any], str]:
    """The phrases of the first parseable reply and how it parsed; no phrases and 'failed' when none did."""
    for output in tries:
        phrases, status = parse_object_list(output)
        if phrases is not None:
            return phrases, status
    return [], "failed"


def _counts(row: dict[str, Any], run: int) -> list[int]:
    """The `COUNT_FIELDS` of one scored row in one judge run."""
    n, h = len(row["objects"][run]), len(row["hallucinated_objects"][run])
    return [1, int(h > 0), int(n > 0), h, n, row["n_correct_classes"][run], row["n_gt"]]


def _nan_free(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in m.items()}
        for name, m in metrics.items()
    }


class ObjHal(JudgedTask):
    """Object HalBench. One row per question record (id = its 0-based line), `cluster` the COCO image id,
    `target` the image's ground-truth classes. The model sees the image and the question (greedy, 1,024 new
    tokens). Objects are extracted from the answer ("Assistant:" removed, stripped) in one of two modes,
    `--task-option objhal.extraction=llm|words`:

    - `llm` (default with real data; the official reported numbers): gpt-3.5-turbo-0613 (temperature 0.2,
      512 tokens) gets the official prompt as a system message and lists the objects as JSON; answers of at
      most 3 words get an empty list and no call; an unparseable reply is asked again (a fresh draw, up to
      100 tries per run; a run that never parses counts as no object and is counted in `unparsed`).
    - `words` (default with `--data toy`): classic CHAIR word matching of the answer; no judge call, so no
      API key and no server are needed.

    The judge record keeps every reply (`attempts`, per run) and the final one (`outputs`); `score_row`
    re-parses them, refines the phrases (lemmas, double words, nouns) and maps them through the synonyms, so
    `rescore` recomputes everything from the stored rows (it reads the synonym list the row names). With
    `--judge-runs N` each run extracts independently and every metric is the mean of the N runs' values.

    Metrics (rates in percent): CHAIRs_refine (headline; the reported "Response Hall"), CHAIRs, CHAIRi (the
    reported "Object Hall", per mention), obj_recall, with intervals resampling images; counts beside them.
    NLP tools (`objhal.nlp=auto|builtin`): NLTK with WordNet and spaCy (official: en_core_web_trf) when
    installed, built-in stand-ins otherwise; the choice is recorded in every row and in run.json.

    Import: an official answer file (`--answers`, `--data-dir` with the synonyms and COCO annotations),
    matched by the classic rules, or with `--judgments hall_*.json` by the objects of the official review."""

    name = "objhal"
    version = "1"
    description = "Object HalBench: CHAIR object hallucination of detailed descriptions (COCO val2014)"
    data_needs = (
        f"--data-dir DIR: {DOWNLOAD} (the question file carries its images inline as base64); "
        "or --task-option objhal.questions=, objhal.synonyms=, "
        "objhal.coco=DIR; objhal.extraction=llm (gpt-3.5-turbo-0613 judge, default) or words (no judge); "
        "--data toy builds a toy set offline (words mode by default)"
    )
    headline = "CHAIRs_refine"
    group = "hallucination"
    metric_info = {
        **{name: MetricInfo(-1, "%") for name in ("CHAIRs_refine", "CHAIRs", "CHAIRi")},
        "unparsed": FAILURES,
        **{name: COUNT for name in (*COUNT_LABELS.values(), "reasks")},
        "avg_word_len": MetricInfo(0, "words"),
    }
    default_metric = PERCENT
    tax_metrics = ("CHAIRs", "CHAIRi", "obj_recall")
    import_usage = "--answers ANSWERS.jsonl --data-dir DIR [--questions Q.jsonl] [--judgments hall_*.json]"
    generation = GENERATION
    supports_toy = True
    judge_spec = JUDGE_SPEC
    task_options = OPTIONS
    #: the extraction mode of the loaded data (set by `load`; rows carry their own)
    extraction = "llm"

    # --------------------------------------------------------------------------------------------- data

    def load(self, spec: DataSpec) -> LoadedData:
        options = self.read_options(spec, **({"extraction": "words"} if spec.toy else {}))
        mode, nlp_name = str(options["extraction"]), str(options["nlp"])
        if spec.toy:
            from evalkit.tasks.objhal.toy import default_toy_dir, write_toy_objhal

            data_dir: Path | None = write_toy_objhal(default_toy_dir(spec.seed), seed=spec.seed)
            options = {}
        elif spec.data_dir is None and not any(options[k] for k in PATH_OPTIONS):
            raise UserError(f"objhal needs data: pass --data toy, or --data-dir DIR: {DOWNLOAD}")
        else:
            data_dir = spec.data_dir
        paths, errors = {}, []
        for key, find in (("questions", find_questions), ("synonyms", find_synonyms), ("coco", find_coco)):
            try:
                paths[key] = find(data_dir, options)
            except UserError as exc:
                errors.append(str(exc))
        if errors:
            raise UserError("; ".join(errors))
        vocab = read_vocabulary(paths["synonyms"])
        nlp = resolve(nlp_name).with_lexicon(vocab.lexicon())
        questions = read_questions(paths["questions"], spec.image_dir, spec.limit)
        gt, digests = cached_ground_truth(
            {q.image_id for q in questions}, paths["coco"], paths["synonyms"], vocab, nlp
        )
        synonyms = str(paths["synonyms"].resolve())
        meta = {"extraction": mode, "nlp": nlp.name, "synonyms": synonyms}
        meta["synonyms_sha256"] = digests[paths["synonyms"].name]
        samples = [
            Sample(
                id=str(q.index),
                messages=(Message("user", q.question, (str(q.image),)),),
                target=sorted(gt[q.image_id]),
                cluster=str(q.image_id),
                meta={"image_id": q.image_id, **meta},
            )
            for q in questions
        ]
        self.extraction = mode
        digests[paths["questions"].name] = sha256_file(paths["questions"])
        info = {
            "source": "toy" if spec.toy else str(data_dir or paths["questions"].parent),
            "version": toy_label(paths["questions"].parent)
            or f"Object HalBench ({len(read_jsonl(paths['questions']))} questions)",
            "files": digests,
            "extraction": mode,
            "nlp": nlp.name,
            "image_dir": str(questions[0].image.parent),
        }
        return LoadedData(samples, info)

    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        raise UserError(f"{self.name} rows are scored from their stored judge record")

    # -------------------------------------------------------------------------------------------- judge

    def judge_prompt_hash(self) -> str:
        return prompt_sha256(PROMPT_TEMPLATE if self.extraction == "llm" else NO_JUDGE)

    def judge_calls(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> list[JudgeCall]:
        """Per run, the next try until a reply parses or `MAX_TRIES` did not; none in words mode or for a
        short answer. The question in the prompt is the row's prompt (the question the model was asked)."""
        if row["meta"].get("extraction") != "llm":
            return []
        answer = clean_answer(row["response"])
        if is_short(answer):
            return []
        if n_runs >= RETRY_STRIDE:
            raise UserError(f"objhal: at most {RETRY_STRIDE - 1} judge runs")
        messages = render_extraction(row["prompt"], answer)
        calls = []
        for run, tries in enumerate(_attempts(done, n_runs)):
            if len(tries) >= MAX_TRIES or any(parse_object_list(t)[0] is not None for t in tries):
                continue
            index = run + RETRY_STRIDE * len(tries)
            calls.append(JudgeCall(f"run{run}/try{len(tries) + 1}", messages, JUDGE_GENERATION, index))
        return calls

    def judge_record(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> dict[str, Any]:
        mode = row["meta"].get("extraction", "llm")
        if mode != "llm":
            return {"extraction": mode, "outputs": []}
        attempts = _attempts(done, n_runs)
        return {
            "extraction": "llm",
            "outputs": [tries[-1] if tries else None for tries in attempts],
            "attempts": attempts,
        }

    def score_row(self, row: dict[str, Any]) -> dict[str, Any]:
        meta, judge = row["meta"], row["judge"]
        vocab, nlp = _tools(meta["nlp"], meta["synonyms"], meta["synonyms_sha256"])
        gt = set(row["target"])
        answer = clean_answer(row["response"])
        runs: list[tuple[list[str], str, int]] = []
        if judge.get("extraction") == "words":
            runs.append((caption_words(answer, vocab, nlp), "words", 0))
        elif "refined" in judge:  # imported: the objects the official script refined from its extraction
            runs += [(coco_words(list(words), vocab), "imported", 0) for words in judge["refined"]]
        else:
            attempts = judge.get("attempts") or [[o] for o in judge["outputs"]]
            for tries in attempts:
                if is_short(answer):
                    runs.append(([], "short", 0))
                    continue
                phrases, status = _extraction(tries)
                runs.append((coco_words(refine_phrases(phrases, vocab, nlp), vocab), status, len(tries)))
        records = [score_mentions(words, vocab, gt) for words, _, _ in runs]
        return {
            "objects": [r["mentions"] for r in records],
            "hallucinated_objects": [r["hallucinated"] for r in records],
            "n_correct_classes": [r["n_correct_classes"] for r in records],
            "n_gt": len(gt),
            "n_words": len(answer.strip().split(" ")),
            "extraction_status": [status for _, status, _ in runs],
            "unparsed": sum(status == "failed" for _, status, _ in runs),
            "reasks": sum(max(0, n - 1) for _, _, n in runs),
        }

    def unparsed_judgments(self, row: dict[str, Any]) -> int:
        """Runs whose extraction never parsed and count as naming no object."""
        return int(row["unparsed"])

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        """An official answer file, matched by the classic rules, or with the official review file's LLM
        extraction (`--judgments hall_*.json`); see `importing`."""
        from evalkit.tasks.objhal.importing import import_answers

        return import_answers(answers, questions, data_dir, judgments)

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """The answer file of a run with the word rules (`importing.write_answers`)."""
        from evalkit.tasks.objhal.importing import write_answers

        return write_answers(rows, folder)

    # ------------------------------------------------------------------------------------------ metrics

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """Every metric as a function of image weights. Each rate is computed per judge run from counts
        summed over images, then averaged over runs; counts are averaged over runs."""
        n_runs = min(len(r["objects"]) for r in rows)
        counts = np.array([[_counts(r, j) for j in range(n_runs)] for r in rows], dtype=float)
        n = len(rows)
        clusters, units = unit_index(rows)
        k = len(units)
        sums = per_cluster(counts.reshape(n, -1), clusters, k).reshape(k, n_runs, len(COUNT_FIELDS))

        def rate(num: int, den: int):
            def stat(w: np.ndarray) -> np.ndarray:
                totals = np.einsum("bk,krf->brf", w, sums)
                with np.errstate(invalid="ignore", divide="ignore"):
                    return 100 * np.mean(totals[..., num] / totals[..., den], axis=1)

            return stat

        def linear(per_unit: np.ndarray):
            return lambda w: w @ per_unit

        out: dict[str, Statistic] = {}
        for name, (num, den) in RATES.items():
            out[name] = Statistic(rate(COUNT_FIELDS.index(num), COUNT_FIELDS.index(den)), units, n)
        mean_counts = sums.mean(axis=1)  # (k, fields): per image, averaged over runs
        for field, label in COUNT_LABELS.items():
            out[label] = Statistic(linear(mean_counts[:, COUNT_FIELDS.index(field)]), units, n)
        words = per_cluster(np.array([r["n_words"] for r in rows], dtype=float), clusters, k)
        size = per_cluster(np.ones(n), clusters, k)
        out["avg_word_len"] = Statistic(lambda w: (w @ words) / (w @ size), units, n)
        for field in ("unparsed", "reasks"):
            out[field] = Statistic(
                linear(per_cluster(np.array([r[field] for r in rows]), clusters, k)), units, n
            )
        return out

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        nan = float("nan")
        for name, stat in self.statistics(rows).items():
            if name in RATES:
                out[name] = stat.estimate().to_dict()
            else:
                value = float(stat.stat(np.ones((1, len(stat.units))))[0])
                out[name] = Estimate(value, nan, nan, stat.n).to_dict()
        return _nan_free(out)
