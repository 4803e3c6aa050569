"""A bad image is one counted `image_error` row, never the end of a run: an image over PIL's
decompression-bomb limit, a truncated, corrupt or missing file, through the real `evaluate` pipeline
(OpenAI-compatible server on 127.0.0.1) and through `load_image` itself (shared by both backends)."""

import json
import shutil

import pytest
from PIL import Image
from support.openai_server import last_user_text

from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate
from evalkit.tasks.pope.protocol import SPLITS
from evalkit.tasks.pope.toy import write_pope
from evalkit.util.images import ImageLoadError, load_image


def _bomb(path):
    """A tiny PNG (a few kB) whose pixel count is over PIL's hard limit (twice MAX_IMAGE_PIXELS)."""
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 16
    Image.new("1", (side, side)).save(path, format="PNG")
    return path


def _truncated(path, source):
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_every_kind_of_bad_image_is_an_image_load_error(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (32, 24), (200, 10, 10)).save(good)
    assert load_image(good).size == (32, 24)
    cases = {
        "bomb": _bomb(tmp_path / "bomb.png"),
        "truncated": _truncated(tmp_path / "truncated.png", good),
        "corrupt": tmp_path / "corrupt.png",
        "empty": tmp_path / "empty.jpg",
        "missing": tmp_path / "missing.png",
        "folder": tmp_path / "folder.png",
    }
    cases["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    cases["empty"].write_bytes(b"")
    cases["folder"].mkdir()
    for kind, path in cases.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        message = str(info.value)
        assert path.name in message and "\n" not in message, kind
    assert "too large" in str(pytest.raises(ImageLoadError, load_image, cases["bomb"]).value)


def _answer(body):
    return "No, there is not." if "cat" in last_user_text(body) else "Yes, there is."


@pytest.mark.parametrize("damage", ["bomb", "truncated", "missing"])
def test_a_bad_image_in_a_run_is_one_counted_row_per_question_and_a_rerun_goes_on(
    tmp_path, damage, openai_server
):
    data = write_pope(tmp_path / "pope", seed=0, n_images=10)
    data = shutil.copytree(data, tmp_path / "data")
    rows = {s: [json.loads(line) for line in open(data / f"coco_pope_{s}.json")] for s in SPLITS}
    image = rows["random"][6]["image"]  # the first image is where the task looks for the folder
    target = data / "images" / image
    if damage == "bomb":
        _bomb(target)
    elif damage == "truncated":
        _truncated(target, target)
    else:
        target.unlink()
    per_split = 10
    n_bad = sum(r["image"] == image for s in SPLITS for r in rows[s][:per_split])
    assert n_bad >= 3  # the same image is asked about in every split
    server = openai_server(responder=_answer)
    for attempt in range(2):  # the second run resumes the same folder and must not die either
        before = server.count
        result = evaluate(
            OpenAIBackend("m", BackendOptions(base_url=server.base_url, max_retries=1)),
            "pope",
            data_dir=data,
            limit=3 * per_split,
            output=tmp_path / "run",
            max_failure_rate=1.0,
            progress=False,
        )
        # a bad image is never sent; the resumed run re-reads only the bad image (no call at all)
        assert server.count - before == (3 * per_split - n_bad if attempt == 0 else 0)
        summary = result.metrics["pope"]
        assert summary["errors_by_type"] == {"image_error": n_bad}, attempt
        assert summary["n_scored"] == 3 * per_split - n_bad
    stored = [json.loads(line) for line in open(tmp_path / "run/samples/pope.jsonl")]
    errors = {r["id"] for r in stored if r["error"]}
    assert len(errors) == n_bad and all(image in r["meta"]["image"] for r in stored if r["id"] in errors)
