"""The task interface: a task owns its data loading, prompt, parser, scoring and aggregation.

A task never knows which backend answers. Scoring reads only what the store keeps (the response text,
`target` and `meta` of a row), so `evalkit rescore` can recompute everything from the stored samples.
A task also declares what the analysis core needs to read its results (`group`, `metric_info`,
`default_metric`, `tax_metrics`): compare, leaderboard and the tax table name no benchmark. Likewise the
interop core: a task names the lmms-eval tasks whose logs it imports (`lmms_eval_names`, `lmms_eval_matches`,
`lmms_eval_convert`, or `lmms_eval_unsupported` saying why not), the official answer files it imports and
writes (`import_answers`, `write_answers`, `imports_official_files`) and the submission file it exports
(`export_file`, `export_submission`), so `evalkit.interop` iterates over the registry instead. Its data
sources (`hub_sources`, `official_files`, `data_source`) are what `evalkit data` lists, fetches and verifies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.hubdata.official import OfficialFile
from evalkit.hubdata.source import HubSource
from evalkit.stats import Statistic
from evalkit.types import GenerationConfig, Request, Sample, UserError

if TYPE_CHECKING:
    from evalkit.judges.judge import JudgeCall, JudgeSpec


@dataclass(frozen=True)
class DataSpec:
    """Where a task finds its data: the built-in toy world, or the user's folders."""

    toy: bool = False
    data_dir: Path | None = None
    image_dir: Path | None = None
    seed: int = 0
    limit: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskOption:
    """One `--task-option TASK.NAME=VALUE` a task reads. `choices`: the allowed values (None: any, such as
    a path or a number); `default`: the value when the option is not given (None: absent)."""

    help: str
    choices: tuple[str, ...] | None = None
    default: str | None = None


@dataclass(frozen=True)
class MetricInfo:
    """How `compare`, `leaderboard` and the tax table read one metric. `direction`: +1 higher is better,
    −1 lower is better, 0 neither (a spread, a length, a tally); `unit`: what the value is reported in
    ("%", "count", "score 1–10", ...; "" when not stated), differences being in the same unit; `kind`:
    "rate" (a rate, mean or score over samples) or "count" (a tally of samples or events)."""

    direction: int = 1
    unit: str = ""
    kind: str = "rate"

    def __post_init__(self) -> None:
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"MetricInfo direction must be +1, -1 or 0, not {self.direction!r}")
        if self.kind not in ("rate", "count"):
            raise ValueError(f"MetricInfo kind must be 'rate' or 'count', not {self.kind!r}")


#: a percentage (rate, accuracy, score ×100), higher is better
PERCENT = MetricInfo(1, "%")
#: a tally of samples or events, neither better nor worse
COUNT = MetricInfo(0, "count", "count")
#: a tally of failures (unparsed answers, judge fallbacks, dropped samples): lower is better
FAILURES = MetricInfo(-1, "count", "count")
#: the groups of the alignment-tax table, in table order; a task may name another (shown after these)
TAX_GROUPS = (
    "language instruction-following",
    "visual instruction-following",
    "hallucination",
    "visual knowledge",
)


@dataclass
class Imported:
    """One answer produced elsewhere, with the official judge's record when the benchmark is judged:
    `judge = {"fingerprint": {...}, "outputs": [raw judge output per run], ...}`. A multi-turn answer
    gives every turn in `responses` (the first equal to `response`), stored as a run stores them."""

    sample: Sample
    response: str
    judge: dict[str, Any] | None = None
    responses: list[str] | None = None


@dataclass
class LoadedData:
    """A task's samples plus what identifies the data (checksums of the files read, version notes)."""

    samples: list[Sample]
    info: dict[str, Any]


class Task(ABC):
    name: str
    version: str
    description: str
    #: One paragraph for `evalkit tasks`: which files the task reads and where they come from.
    data_needs: str
    #: The metric printed first and used by leaderboards.
    headline: str
    generation: GenerationConfig = GenerationConfig()
    supports_toy: bool = False
    #: the hub repositories the task reads when neither --data toy nor --data-dir is given (`evalkit data`)
    hub_sources: tuple[HubSource, ...] = ()
    #: files of the official release fetched with a pinned sha256 where the hub lacks them (`evalkit data`)
    official_files: tuple[OfficialFile, ...] = ()
    #: where the data comes from without --data-dir when there is no hub source: "by hand" (`data_needs`
    #: says what and why), "bundled" (shipped with evalkit) or "toy only" (no official data)
    data_source: str = "by hand"
    #: the `--task-option` names this task reads (without the "TASK." prefix); `read_options` checks them
    task_options: dict[str, TaskOption] = {}
    #: the alignment-tax table's group (one of `TAX_GROUPS`, or a name of the task's own); "other" if unset
    group: str = "other"
    #: how each metric reads (see `metric`): exact names, and patterns such as "type/*" for families
    metric_info: dict[str, MetricInfo] = {}
    #: a metric that matches no entry of `metric_info`: higher is better, unit not stated, a rate
    default_metric: MetricInfo = MetricInfo()
    #: metrics the tax table shows by default besides the headline (those the benchmark's papers report)
    tax_metrics: tuple[str, ...] = ()
    #: lmms-eval task names whose `--log_samples` logs import as this task (`evalkit.interop.lmms_eval`)
    lmms_eval_names: tuple[str, ...] = ()
    #: what a logged record of this benchmark carries (named when a log's records lack it)
    lmms_eval_fields: str = ""
    #: why this benchmark's lmms-eval logs cannot be imported (None: they can, or lmms-eval lacks it)
    lmms_eval_unsupported: str | None = None
    #: the file `evalkit export` writes into the run folder by default (None: no submission format)
    export_file: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        old = [a for a in ("directions", "units", "tax_group") if a in cls.__dict__]
        if old:
            raise TypeError(
                f"{cls.__name__} declares {', '.join(old)}: declare `group` and `metric_info` "
                "(metric → MetricInfo(direction, unit, kind)) instead"
            )

    def metric(self, name: str) -> MetricInfo:
        """How metric `name` reads: its exact entry in `metric_info`, else the first pattern entry
        (`fnmatch`, "*" also matching "/") that matches it, in declaration order, else `default_metric`."""
        if name in self.metric_info:
            return self.metric_info[name]
        for pattern, info in self.metric_info.items():
            if any(c in pattern for c in "*?[") and fnmatchcase(name, pattern):
                return info
        return self.default_metric

    @abstractmethod
    def load(self, spec: DataSpec) -> LoadedData:
        """Read the samples (raise `UserError` naming what is missing and where to put it)."""

    def read_options(self, spec: DataSpec, **defaults: str | None) -> dict[str, str | None]:
        """This task's `--task-option` values by name, every declared option present: the given value,
        else `defaults[name]` (for defaults that depend on the data, e.g. toy), else the declared default.
        An undeclared name or a value outside `choices` is a `UserError` saying what the task takes."""
        out = {name: defaults.get(name, opt.default) for name, opt in self.task_options.items()}
        prefix = f"{self.name}."
        for key, value in spec.options.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :]
            if name not in self.task_options:
                takes = ", ".join(f"{prefix}{k}" for k in self.task_options) or "no option"
                raise UserError(f"--task-option {key}: {self.name} takes {takes}")
            choices = self.task_options[name].choices
            if choices is not None and str(value) not in choices:
                raise UserError(f"--task-option {key}={value}: expected one of {', '.join(choices)}")
            out[name] = str(value)
        return out

    def request(self, sample: Sample, seed: int = 0) -> Request:
        return Request(id=sample.id, messages=sample.messages, generation=self.generation, seed=seed)

    def n_turns(self, sample: Sample) -> int:
        """Model turns per sample; a task with more than one builds each later turn in `turn_request`."""
        return 1

    def turn_request(self, sample: Sample, turn: int, previous: list[str], seed: int = 0) -> Request:
        """The request of turn `turn` (2, 3, ...) given the model's answers to the earlier turns."""
        raise NotImplementedError(f"{self.name} has one turn per sample")

    @abstractmethod
    def score(self, response: str, target: Any, meta: dict[str, Any]) -> dict[str, Any]:
        """Parse one response and score it; the returned fields are stored in the sample row."""

    def score_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """Score fields of a stored row. Judged tasks override this to parse the row's stored `judge`
        outputs, so `rescore` never calls a judge."""
        return self.score(row["response"], row["target"], row["meta"])

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Metrics from scored rows (errors already removed): name → `Estimate.to_dict()`. By default the
        estimates of `statistics`; a task whose reported numbers differ from them by design (rounding, an
        interval of its own) overrides it."""
        return {name: s.estimate().to_dict() for name, s in self.statistics(rows).items()}

    def statistics(self, rows: list[dict[str, Any]]) -> dict[str, Statistic]:
        """The metrics of `aggregate` as `evalkit.stats.Statistic`s (functions of bootstrap weights over
        units), which `evalkit compare` evaluates with the same resamples on two runs. Point values
        (`stat` at unit weights) must equal `aggregate`'s values."""
        raise NotImplementedError(f"task {self.name} does not expose per-unit statistics")

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "generation": self.generation.__dict__}

    # --------------------------------------------------------------- official answer files

    @property
    def imports_official_files(self) -> bool:
        """Whether `evalkit import` reads this benchmark's official answer files: true when the task
        overrides `import_answers` (else it imports lmms-eval logs only)."""
        return type(self).import_answers is not Task.import_answers

    def import_answers(
        self, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
    ) -> tuple[list[Imported], dict[str, Any]]:
        """The answers produced elsewhere in the benchmark's official answer file `answers` (with its
        question file, data folder and official judge output files where the benchmark has them), paired
        with their samples, and the data info `evalkit import` keeps in run.json. A task that imports
        official files overrides this, and `write_answers` with it."""
        raise UserError(f"task {self.name!r} imports lmms-eval logs only; {answers} is not one")

    def write_answers(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
        """The inverse of `import_answers`: a run's stored rows (answers, and judge outputs for a judged
        task) written under `folder` in the benchmark's official answer and judgment file formats.
        Returns the `import_answers` inputs it wrote (`answers`, and `questions` and `judgments` where
        the benchmark has them); the data folder, when the import needs one, is the one the run read."""
        raise NotImplementedError(f"{self.name} writes no official answer files")

    # ------------------------------------------------------------------- lmms-eval logs and export

    def lmms_eval_matches(self, record: Any) -> bool:
        """Whether a logged lmms-eval record (`evalkit.interop.lmms_eval.Record`: its per-sample `fields`,
        its `doc` when logged) is of this benchmark; the records, never the file name, decide."""
        return False

    def lmms_eval_convert(
        self, records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
    ) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
        """The imported answers, the data info and the pairing counts (kept in run.json) of the records of
        lmms-eval log `path` (task `lmms_task` when its name says), working in the empty folder `tmp`."""
        raise NotImplementedError(f"{self.name} does not import lmms-eval logs")

    def export_submission(self, rows: list[dict[str, Any]], path: Path) -> tuple[int, int]:
        """Write the stored rows as the benchmark's submission file at `path`: (rows written, rows
        without a prediction). Tasks with an `export_file` implement it."""
        raise NotImplementedError(f"{self.name} has no submission format")


class JudgedTask(Task):
    """A benchmark scored by an LLM judge. The runner asks `judge_calls` for a row's next calls until it
    returns none (so a task can re-ask after an unparseable answer), then stores `judge_record` — the same
    record `import` writes from official judge files — and scores the row with `score_row`, which reads
    only that record. `n_runs` is the number of independent judge runs per row."""

    #: the official judge: model, sampling, runs and parser version
    judge_spec: JudgeSpec

    @abstractmethod
    def judge_prompt_hash(self) -> str:
        """sha256 of every prompt template this task's judge may receive (part of the fingerprint)."""

    @abstractmethod
    def judge_calls(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> list[JudgeCall]:
        """The calls still needed for `row`, given those answered so far (`done`, in order: `{"slot",
        "run", "output", ...}`); [] when the row is judged. Slots are unique within a row."""

    @abstractmethod
    def judge_record(self, row: dict[str, Any], done: list[dict[str, Any]], n_runs: int) -> dict[str, Any]:
        """The row's judge record (raw outputs and whatever `score_row` needs) from its answered calls."""

    def unparsed_judgments(self, row: dict[str, Any]) -> int:
        """How many judgments of a scored row never parsed and took the task's official failure rule
        (dropped, a fallback score, a (-1, -1) pair, ...), read from the parse status `score_row` stored.
        `summarize` counts a row with any as unparsed (`n_unparsed`): it stays in the official number
        but counts as failed toward `--max-failure-rate`. Every task whose judge output is parsed
        overrides this; the default (0) is for a judge whose answers cannot fail to parse."""
        return 0
