"""A run folder as a Hugging Face dataset repository: the folder `evalkit push` uploads.

    README.md             dataset card; its YAML `configs:` give `load_dataset(repo)` (the metrics) and
                          `load_dataset(repo, "rows")` (every sample row)
    data/metrics.parquet  task, metric, value, ci_low, ci_high, n, headline: one row per metric
    data/rows/<task>.parquet  task, id, prompt, response, target, error, fields (the rest of the row, JSON)
    run.json, metrics.json, samples/<task>.jsonl   the run folder itself, so that `evalkit compare` and
                          `evalkit leaderboard` read the repository as a run (`hf://user/name`)

Nothing secret leaves the machine: run.json and metrics.json keep endpoints only as `public_url` writes them
(no user info, query or fragment) and lose any value stored under a secret-like key (api_key, token,
password, secret, authorization); then every file is searched for the values of the API-key variables the
run names (and HF_TOKEN), bearer tokens, OpenAI / Hugging Face key shapes and URLs carrying credentials
(user info, or a key in the query: a stored error message may quote one), and a hit stops the push naming
the file (never the value)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from evalkit.models.base import public_url
from evalkit.runner.results import metric_records
from evalkit.store import RunStore, write_json_atomic
from evalkit.trackers.redaction import key_env_names
from evalkit.types import UserError

SECRET_KEY = re.compile(r"(^|_)(api_key|token|secret|password|passwd|authorization)$", re.IGNORECASE)
URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)
TOKEN_SHAPES = (
    ("a bearer token", re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{12,}")),
    ("an OpenAI-style API key", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    (
        "a URL with credentials",
        re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@\"'<>]+:[^/\s@\"'<>]+@", re.IGNORECASE),
    ),
    (
        "a URL with a key in its query",
        re.compile(
            r"://[^\s\"'<>]*[?&](api[-_]?key|key|token|access_token|sig|signature)=[^&\s\"'<>]{8,}", re.I
        ),
    ),
)
#: the fixed columns of the "rows" config; everything else in a row goes, as JSON, into `fields`
ROW_COLUMNS = ("id", "prompt", "response", "target", "error")


def scrub(value: Any) -> Any:
    """`value` (run.json, metrics.json) with URLs made public and secret-like keys' string values dropped."""
    if isinstance(value, dict):
        return {
            k: "[redacted]" if SECRET_KEY.search(str(k)) and isinstance(v, str) and v else scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return URL.sub(lambda m: public_url(m.group(0)), value)
    return value


def check_no_secrets(folder: Path, header: dict[str, Any]) -> None:
    """Refuse (UserError) when a file under `folder` holds a secret: the value of an API-key variable the
    run names, of OPENAI_API_KEY or HF_TOKEN, a bearer token, or an OpenAI / Hugging Face key shape."""
    names = key_env_names(header) | {"OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}
    values = {name: os.environ[name] for name in sorted(names) if len(os.environ.get(name, "")) >= 8}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".parquet"):
        text = path.read_text(encoding="utf-8", errors="replace")
        what = next((f"the value of ${name}" for name, v in values.items() if v in text), None)
        what = what or next((label for label, shape in TOKEN_SHAPES if shape.search(text)), None)
        if what is not None:
            rel = path.relative_to(folder)
            raise UserError(
                f"not pushed: {rel} would publish {what}; remove it from the run folder's {rel} first"
            )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def row_record(task: str, row: dict[str, Any]) -> dict[str, Any]:
    """One sample row in the "rows" config's fixed columns."""
    prompt, response = row.get("prompt"), row.get("response")
    return {
        "task": task,
        "id": str(row["id"]),
        "prompt": prompt if isinstance(prompt, str) else _json(prompt),
        "response": response if isinstance(response, str) else _json(response),
        "target": _json(row.get("target")),
        "error": _json(row.get("error")),
        "fields": _json({k: v for k, v in row.items() if k not in ROW_COLUMNS}),
    }


def _write_parquet(path: Path, records: list[dict[str, Any]], schema) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path)


def card(repo_id: str | None, header: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The dataset card: the `configs:` YAML, what the run evaluated and its headline metrics."""
    model = (header.get("command") or {}).get("model") or (header.get("model") or {}).get("backend") or "?"
    name = repo_id or "USER/NAME"
    lines = [
        "---",
        "configs:",
        "- config_name: metrics",
        "  data_files:",
        "  - split: train",
        "    path: data/metrics.parquet",
        "  default: true",
        "- config_name: rows",
        "  data_files:",
        "  - split: train",
        "    path: data/rows/*.parquet",
        "tags:",
        "- evalkit",
        "- evaluation",
        "---",
        "",
        f"# evalkit run `{header.get('run_id', '?')}`",
        "",
        f"Model: `{model}`; evalkit {header.get('evalkit_version', '?')}; "
        f"created {header.get('created', '?')}, status {header.get('status', '?')}.",
        "",
        "| task | metric | value | 95% CI | n |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        if r["headline"]:
            ci = "" if r["ci_low"] is None else f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]"
            value = "" if r["value"] is None else f"{r['value']:.4g}"
            lines.append(f"| {r['task']} | {r['metric']} | {value} | {ci} | {r['n'] or ''} |")
    lines += [
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'metrics = load_dataset("{name}")  # task, metric, value, ci_low, ci_high, n, headline',
        f'rows = load_dataset("{name}", "rows")  # one row per sample; `fields` holds the rest as JSON',
        "```",
        "",
        f"`run.json`, `metrics.json` and `samples/` are the evalkit run folder: `evalkit leaderboard hf://{name}`"
        f" and `evalkit compare hf://{name} OTHER_RUN` read it.",
        "",
    ]
    return "\n".join(lines)


def build_dataset_folder(run_dir: str | Path, dest: str | Path, repo_id: str | None = None) -> Path:
    """Write the repository's files for the finished run in `run_dir` into the empty folder `dest`."""
    import pyarrow as pa

    store, dest = RunStore(Path(run_dir)), Path(dest)
    header = store.read_header()
    if header.get("status") not in ("finished", "failed"):
        raise UserError(
            f"{run_dir} is not finished (status {header.get('status', 'unknown')!r}); finish it (re-run the "
            "same command) or `evalkit merge` its shards before pushing"
        )
    metrics = store.read_metrics()
    header, metrics = scrub(header), scrub(metrics)
    write_json_atomic(dest / "run.json", header)
    write_json_atomic(dest / "metrics.json", metrics)
    records = metric_records(metrics)
    string, number = pa.string(), pa.float64()
    _write_parquet(
        dest / "data" / "metrics.parquet",
        records,
        pa.schema(
            [("task", string), ("metric", string), ("value", number), ("ci_low", number)]
            + [("ci_high", number), ("n", pa.int64()), ("headline", pa.bool_())]
        ),
    )
    row_schema = pa.schema([(c, string) for c in ("task", *ROW_COLUMNS, "fields")])
    tasks = [t for t in header.get("tasks", {}) if store.samples_path(t).exists()]
    for task in tasks:
        source = store.samples_path(task)
        (dest / "samples").mkdir(parents=True, exist_ok=True)
        (dest / "samples" / source.name).write_bytes(source.read_bytes())
        rows = store.read_samples(task)
        records_of_rows = [row_record(task, r) for r in rows]
        _write_parquet(dest / "data" / "rows" / f"{task}.parquet", records_of_rows, row_schema)
    (dest / "README.md").write_text(card(repo_id, header, records), encoding="utf-8")
    check_no_secrets(dest, header)
    return dest
