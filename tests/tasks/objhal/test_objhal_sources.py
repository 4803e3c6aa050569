"""Object HalBench has no hub copy and no file evalkit can fetch with a pinned checksum besides the synonym
list: without --data-dir a run, and `evalkit data list`, say in one line what to download from where and
where to put it."""

import hashlib
import json
import subprocess
import sys

import pytest

from evalkit.task import DataSpec
from evalkit.tasks.objhal import ObjHal
from evalkit.tasks.objhal.data import SYNONYM_SHA256, SYNONYM_URL
from evalkit.types import UserError

URLS = (
    "https://raw.githubusercontent.com/RLHF-V/RLHF-V/main/eval/data/obj_halbench_300_with_image.jsonl",
    "https://raw.githubusercontent.com/RLHF-V/RLHF-V/8daac8a8f30df123818ae9d3a0e3f0018497714c/eval/data/"
    "synonyms_refine.txt",
    "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
)
COCO = (
    "instances_val2014.json",
    "captions_val2014.json",
    "instances_train2014.json",
    "captions_train2014.json",
)


def says_what_and_where(text: str) -> None:
    assert "\n" not in text
    for url in URLS:
        assert url in text
    for name in COCO:
        assert name in text
    assert "into DIR/annotations" in text and "into DIR" in text and "--data-dir DIR" in text


def test_a_run_without_data_says_what_to_download_and_where():
    with pytest.raises(UserError) as err:
        ObjHal().load(DataSpec())
    message = str(err.value)
    assert message.startswith("objhal needs data: pass --data toy, or --data-dir DIR: download ")
    says_what_and_where(message)


def test_data_list_says_the_same():
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", "data", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (entry,) = [e for e in json.loads(proc.stdout) if e["task"] == "objhal"]
    assert entry["source"] == "by hand" and entry["hub"] == [] and entry["official"] == []
    says_what_and_where(entry["needs"])


def test_the_synonym_pin_is_the_official_file(shared):
    """The sha256 the message names is that of the verbatim synonyms_refine.txt of the pinned commit."""
    data = (shared / "objhal_bench" / "synonyms_refine.txt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == SYNONYM_SHA256
    assert SYNONYM_SHA256 in ObjHal.data_needs and SYNONYM_URL in ObjHal.data_needs
