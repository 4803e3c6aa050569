"""MMHal-Bench-V judged in `evaluate` against a real OpenAI-compatible server on 127.0.0.1 that plays the
model under test ("candidate") and the judge (gpt-4o-2024-05-13), on a data folder written here: 96 records in
the official schema, each with its own noise image; records 2 and 10 have the same question, answer and image
contents, only their images differ.

The judge rates from the image it receives (decoded from the request body): a rule of its pixels, computed
here from the images this test wrote, so a judge that saw the wrong image (or none) or a cache that served one
image's rating for another gives other ratings.
"""

import base64
import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from evalkit.analysis.compare import Incomparable, compare_runs
from evalkit.judges.cache import JudgeCache
from evalkit.judges.judge import Judge, JudgeSpec
from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate
from evalkit.scoring import rescore_run
from evalkit.tasks.mmhal import MMHal
from evalkit.tasks.mmhal.protocol import N_ITEMS, QUESTION_TYPES
from evalkit.types import GenerationConfig, Message

pytestmark = pytest.mark.usefixtures("fast_retries")

LIMIT = 16
JUDGE = "gpt-4o-2024-05-13"


def noise(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)


def rule(pixels: np.ndarray) -> int:
    """The judge's rating of an image: a function of its pixels only."""
    return int(hashlib.sha256(pixels.tobytes()).digest()[0]) % 7


def write_data(root):
    records = []
    for i in range(N_ITEMS):
        same = i in (2, 10)  # the same text, two images
        records.append(
            {
                "question_type": QUESTION_TYPES[i % 8],
                "question_topic": "topic",
                "image_id": f"img{i}",
                "image_src": f"https://example.org/x/{i}_o.jpg",
                "image_content": ["Cat"] if same else [f"Thing{i}"],
                "question": "What is in the picture?" if same else f"Question number {i}?",
                "gt_answer": "A cat." if same else f"Answer {i}.",
            }
        )
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(noise(i)).save(root / "images" / f"{i}_o.jpg", "PNG")
    (root / "response_template.json").write_text(json.dumps(records))
    return root


def decoded(body) -> tuple[np.ndarray, str | None]:
    """The one image of a judge request, decoded from its data URL, and its detail."""
    (message,) = body["messages"]
    parts = message["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"]
    image = parts[0]["image_url"]
    head, data = image["url"].split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")), image.get("detail")


def play(body):
    if body["model"] == "candidate":
        return "I see " + body["messages"][-1]["content"][-1]["text"]
    pixels, _ = decoded(body)
    return f"Compared with the picture.\nRating: {rule(pixels)}"


def run(server, tmp_path, data_dir, name, detail=None, cache="judge.sqlite"):
    backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url, max_retries=1))
    settings = JudgeSettings(base_url=server.base_url, concurrency=4, cache_path=tmp_path / cache)
    return evaluate(
        backend,
        ["mmhal_v"],
        data_dir=data_dir,
        limit=LIMIT,
        output=tmp_path / name,
        judges=settings,
        task_options={"mmhal_v.detail": detail} if detail else None,
        progress=False,
        max_failure_rate=1.0,
    )


def rows_of(result):
    rows = [json.loads(line) for line in open(result.run_dir / "samples" / "mmhal_v.jsonl")]
    return sorted(rows, key=lambda r: int(r["id"]))


def judge_bodies(server):
    return [b for b in server.requests if b["model"] == JUDGE]


@pytest.fixture
def data_dir(tmp_path):
    return write_data(tmp_path / "data")


def test_the_judge_sees_each_records_image_and_rates_it(tmp_path, data_dir, openai_server):
    server = openai_server(responder=play)
    result = run(server, tmp_path, data_dir, "auto")
    bodies = judge_bodies(server)
    assert len(bodies) == LIMIT
    seen = {}
    for body in bodies:
        pixels, detail = decoded(body)
        assert detail == "auto"  # the default, sent explicitly
        text = body["messages"][0]["content"][1]["text"]
        assert text.startswith("Please act as an impartial and objective judge")
        seen.setdefault(text, []).append(pixels)
    for i in range(LIMIT):
        if i in (2, 10):
            continue
        (pixels,) = seen[next(t for t in seen if f"Question number {i}?" in t)]
        assert np.array_equal(pixels, noise(i))
    # records 2 and 10: one judge text, and the two images each sent once
    (twin,) = [v for t, v in seen.items() if "What is in the picture?" in t]
    assert sorted(p.tobytes() for p in twin) == sorted(noise(i).tobytes() for i in (2, 10))

    expected = [rule(noise(i)) for i in range(LIMIT)]
    assert rule(noise(2)) != rule(noise(10))  # the data tells the twins apart
    rows = rows_of(result)
    assert [r["rating"] for r in rows] == expected
    fp = rows[0]["judge"]["fingerprint"]
    assert (fp["model"], fp["image_detail"], fp["temperature"]) == (f"openai:{JUDGE}", "auto", 0.0)

    # MMHal-Bench's aggregation, on the same ratings, by hand and through MMHal itself
    values = {k: m["value"] for k, m in result.metrics["mmhal_v"]["metrics"].items()}
    assert values["score"] == pytest.approx(sum(expected) / LIMIT)
    assert values["hallucination_rate"] == pytest.approx(sum(s < 3 for s in expected) / LIMIT)
    assert result.metrics["mmhal_v"]["metrics"] == MMHal().aggregate(rows)
    assert rescore_run(result.run_dir)["mmhal_v"]["metrics"] == result.metrics["mmhal_v"]["metrics"]


def test_the_detail_reaches_the_request_the_fingerprint_and_the_cache_key(tmp_path, data_dir, openai_server):
    server = openai_server(responder=play)
    auto = run(server, tmp_path, data_dir, "auto")
    assert len(judge_bodies(server)) == LIMIT
    high = run(server, tmp_path, data_dir, "high", detail="high")  # same judge cache: nothing it holds fits
    bodies = judge_bodies(server)[LIMIT:]
    assert len(bodies) == LIMIT and {decoded(b)[1] for b in bodies} == {"high"}
    fp_auto, fp_high = (rows_of(r)[0]["judge"]["fingerprint"] for r in (auto, high))
    assert fp_auto["image_detail"] == "auto" and fp_high["image_detail"] == "high"
    assert {k for k in fp_auto if fp_auto[k] != fp_high[k]} == {"image_detail"}
    with pytest.raises(Incomparable, match="different judges.*image_detail"):
        compare_runs(auto.run_dir, high.run_dir)

    run(server, tmp_path, data_dir, "auto-again")  # the first run's answers, from the cache
    assert len(judge_bodies(server)) == 2 * LIMIT


def test_a_changed_image_under_the_same_path_is_judged_again(tmp_path, openai_server):
    server = openai_server(responder=play)
    path = tmp_path / "same.png"
    spec = JudgeSpec(JUDGE, image_detail="low")
    backend = OpenAIBackend(JUDGE, BackendOptions(base_url=server.base_url, max_retries=0))
    judge = Judge(spec, backend, "hash", JudgeCache(tmp_path / "cache.sqlite"))
    messages = (Message("user", "Rate this.", (str(path),), "low"),)
    gen = GenerationConfig(max_new_tokens=8, temperature=0.0)

    def ask():
        (a,) = judge.ask([("x", messages)], temperature=gen.temperature)
        return a

    answers = []
    for i in (0, 1, 0):
        Image.fromarray(noise(i)[: 4 + i]).save(path, "PNG")  # another size: another file version
        answers.append(ask())
    assert server.count == 2  # the third image is the first one again: its answer is cached
    assert [a.cached for a in answers] == [False, False, True]
    assert [a.text.split()[-1] for a in answers] == [str(rule(noise(i)[: 4 + i])) for i in (0, 1, 0)]


@pytest.mark.parametrize(
    ("size", "detail", "tokens"),
    [
        ((1024, 1024), "high", 765),  # OpenAI's worked examples: 768×768, 4 tiles
        ((2048, 4096), "high", 1105),  # 1024×2048, then 768×1536: 6 tiles
        ((2048, 4096), "auto", 1105),  # auto: the API may choose high, the bound
        ((2048, 4096), "low", 85),
        ((6, 5), "high", 255),  # never scaled up: one tile
    ],
)
def test_the_estimate_counts_each_image_at_the_vision_rate(tmp_path, size, detail, tokens):
    path = tmp_path / "img.png"
    Image.new("RGB", size).save(path)
    spec = JudgeSpec(JUDGE, image_detail=detail)
    judge = Judge(spec, OpenAIBackend(JUDGE, BackendOptions(base_url="http://127.0.0.1:9")), "hash")
    text = "x" * 400
    est = judge.estimate([("a", (Message("user", text, (str(path),), detail),))])
    assert est["est_prompt_tokens"] == 100 + tokens
    assert est["est_cost_usd"] == pytest.approx(((100 + tokens) * 5.0 + 1024 * 15.0) / 1e6)
