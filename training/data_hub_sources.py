"""The training sets evalkit knows on the Hugging Face hub (`TRAINING_SETS`): each one's repository, the
files it reads and how its images are stored (spec hub-data.md §14), and the generic reading of any
other `owner/name`.

No public file gives a full commit sha for these repositories, so none is pinned: each is read at its
`ref` (`main`; VLFeedback's parquet copy at `refs/pr/2`, its `main` being a loading script that
`datasets` ≥ 4 no longer runs) and the commit the cache resolves is recorded with every run.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalkit.hubdata.source import HubSource

COCO_TRAIN2014 = (
    "COCO train2014 (http://images.cocodataset.org/zips/train2014.zip, about 13 GB; unzip it and pass "
    "the train2014 folder)"
)


@dataclass(frozen=True)
class TrainingSet:
    """One hub training set: its `source`, whether evalkit declares it (`known`), and, for sets whose
    rows name their images by path, where those images come from (`external_images`)."""

    source: HubSource
    known: bool = True
    external_images: str = ""


TRAINING_SETS: dict[str, TrainingSet] = {
    ts.source.repo_id: ts
    for ts in (
        TrainingSet(
            HubSource(
                repo_id="openbmb/RLAIF-V-Dataset",
                revision=None,
                files=("RLAIF-V-Dataset_*.parquet",),
                split="train",
                rows=83132,
                note="RLAIF-V preference pairs (question, chosen, rejected) with embedded images",
            )
        ),
        TrainingSet(
            HubSource(
                repo_id="openbmb/RLHF-V-Dataset",
                revision=None,
                files=("RLHF-V-Dataset.parquet",),
                split="train",
                size="879 MB",
                note="RLHF-V (about 5.7k rows): `text` holds question / chosen / rejected as JSON; "
                "embedded images",
            )
        ),
        TrainingSet(
            HubSource(
                repo_id="MMInstruction/VLFeedback",
                revision=None,
                ref="refs/pr/2",
                files=("*.parquet",),
                split="train",
                rows=80258,
                size="4.1 GB",
                note="the parquet conversion with embedded images in refs/pr/2 (main is a loading script)",
            )
        ),
        TrainingSet(
            HubSource(
                repo_id="YiyangAiLab/POVID_preference_data_for_VLLMs",
                revision=None,
                files=("POVID_preference_data_for_VLLMs_version_1.json",),
                split="train",
                size="20.9 MB",
                note="LLaVA conversations with rejected_conversations; images are COCO train2014, by path",
            ),
            external_images=COCO_TRAIN2014,
        ),
    )
}


def training_set(dataset_id: str) -> TrainingSet:
    """The declared set, or any other repository's parquet / JSON / JSONL files at `main`."""
    if dataset_id in TRAINING_SETS:
        return TRAINING_SETS[dataset_id]
    source = HubSource(
        repo_id=dataset_id,
        revision=None,
        files=("*.parquet", "*.jsonl", "*.json"),
        split="train",
        note="not a training set evalkit declares: its parquet files (else JSON / JSONL) at main",
    )
    return TrainingSet(source, known=False)
