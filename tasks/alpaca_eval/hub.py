"""AlpacaEval from the Hugging Face hub: tatsu-lab/alpaca_eval, read file by file (the repository is a
loading-script dataset, which `datasets` ≥ 4 no longer runs), exactly as --data-dir reads the same files.

A run reads the reference model's outputs of its version: `alpaca_eval_gpt4_baseline.json` (gpt4_1106_preview,
2.0) or `alpaca_eval.json` (text_davinci_003, 1.0), each the 805 records of the `alpaca_eval` configs
(instruction, output, generator, dataset); 2.0 also reads `df_gamed.csv`, the rows the length-controlled
win rate's GLM is refitted on (the official `glm_winrate.py` fetches it from this repository too). The
snapshot folder is then handed to the --data-dir code path, so samples, targets and the refit are those
of the same files given by hand. 1.0 is pinned to the commit public code links its file at; 2.0 reads the
commit `main` names and records it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.source import HubSource
from evalkit.tasks.alpaca_eval.data import GAMED_FILE
from evalkit.tasks.alpaca_eval.protocol import get_version

REPO = "tatsu-lab/alpaca_eval"
#: the commit whose alpaca_eval.json public code links to (FasterDecoding/Medusa medusa/eval/README.md,
#: hmarkc/parallel-prompt-decoding README.md: .../tatsu-lab/alpaca_eval/blob/<commit>/alpaca_eval.json);
#: that it also holds the 2.0 files is not established, so 2.0 is not pinned
V1_COMMIT = "0cd24d711fe90d0c1aae5bde03fe98ee48ae52f8"
UNPINNED = (
    "Not pinned: no public file establishes a commit of this repository holding these files, so the "
    "cache's main is read and the resolved commit recorded in run.json"
)
SOURCES = {
    "2.0": HubSource(
        repo_id=REPO,
        revision=None,
        files=(get_version("2.0").hub_file, GAMED_FILE),
        config="alpaca_eval_gpt4_baseline (json) + df_gamed.csv",
        split="eval",
        rows=805,
        size="about 2 MB",
        note=(
            "the gpt4_1106_preview reference outputs AlpacaEval 2.0 compares against (the same 805 records "
            "as results/gpt4_1106_preview/model_outputs.json of the alpaca_eval repository) and df_gamed.csv "
            f"for the length-controlled win rate's refit, read as --data-dir reads them. {UNPINNED}"
        ),
    ),
    "1.0": HubSource(
        repo_id=REPO,
        revision=V1_COMMIT,
        files=(get_version("1.0").hub_file,),
        config="alpaca_eval (json)",
        split="eval",
        rows=805,
        size="about 0.6 MB",
        note=(
            "the text_davinci_003 reference outputs AlpacaEval 1.0 compares against (the same 805 records "
            "as results/text_davinci_003/model_outputs.json of the alpaca_eval repository), read as "
            "--data-dir reads them, at the commit public evaluation code links it at (Medusa's and "
            "Parallel Prompt Decoding's READMEs)"
        ),
    ),
}


def locate_files(task: str, version: str, instead: str) -> tuple[Path, dict[str, Any]]:
    """The cached snapshot folder (laid out as a --data-dir holding the hub's files) and the data info a
    run records of it; the cache's files are checked against their hub checksums first."""
    snap = locate(SOURCES[version], task, instead=instead)
    sums = checksums(snap, task)  # before reading: a damaged cache is named as such
    info = {
        "source": snap.uri,
        "hub": {**snap.record(), "files": sums},
    }
    return snap.folder, info
