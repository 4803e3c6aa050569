"""MMHal-Bench judged in `evaluate` against a real OpenAI-compatible server on 127.0.0.1 that plays the model
under test ("candidate") and the official judge (gpt-4-0314), on a data folder written here: the official
96-record template with tiny PNGs named as the loader expects (the last part of each image_src URL).

The judge's reviews follow a fixed rule of the record index and the judge run (its seed), including reviews
with no rating and with two ratings (both scored 0 by the official rule); every expected number below is
computed by hand or from that rule, never from the code under test.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from support.openai_server import FakeOpenAIServer, Fault, last_user_text

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate, plan_judging
from evalkit.scoring import rescore_run
from evalkit.task import DataSpec
from evalkit.tasks.mmhal import MMHal
from evalkit.tasks.mmhal.protocol import JUDGE_TEMPLATE
from evalkit.toy.world import STYLE
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("fast_retries")

LIMIT = 16
JUDGE = "gpt-4-0314"
QUESTION = re.compile(r"### Question\n(.*)\n\n### Standard Human-Generated Answer\n(.*)\n\n### LMM", re.S)


@pytest.fixture
def records(shared):
    return json.loads((shared / "mmhal_bench" / "mmhal-bench_answer_template.json").read_text())


def write_data(root, records, name="response_template.json", images="images"):
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(records))
    (root / images).mkdir(exist_ok=True)
    for i, r in enumerate(records):
        # a PNG under the URL's file name (…_o.jpg): images are read by content
        Image.new("RGB", (4, 4), (i, 2 * i, 255 - i)).save(
            root / images / r["image_src"].split("/")[-1], "PNG"
        )
    return root


@pytest.fixture
def data_dir(tmp_path, records):
    return write_data(tmp_path / "mmhal", records)


def answer_of(question):
    return f"Looking at the picture: {question[::-1]}"


def review(i, run):
    """The judge's rule: none (i % 6 == 4) or two ratings (i % 6 == 5) score 0; else (i + 3 run) % 7."""
    if i % 6 == 4:
        return "The response is partly right, but I will not commit to a verdict."
    if i % 6 == 5:
        return "Rating: 2, very informative, with hallucination.\nOn reflection, Rating: 5."
    return f"The response was compared with the image contents.\nRating: {(i + 3 * run) % 7}, as explained."


def rule_rating(i, run):
    return 0 if i % 6 in (4, 5) else (i + 3 * run) % 7


def responder(records):
    index = {(r["question"], r["gt_answer"]): i for i, r in enumerate(records[:LIMIT])}
    assert len(index) == LIMIT  # the judge can tell the records apart

    def play(body):
        text = last_user_text(body)
        if body["model"] == "candidate":
            return answer_of(text)
        question, gt = QUESTION.search(text).groups()
        return review(index[(question, gt)], body.get("seed") or 0)

    return play


def run(server, tmp_path, data_dir, name="run", runs=None, timeout_s=5.0):
    backend = OpenAIBackend(
        "candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=timeout_s)
    )
    settings = JudgeSettings(
        base_url=server.base_url,
        concurrency=4,
        timeout_s=timeout_s,
        runs=runs,
        cache_path=tmp_path / f"{name}-judge.sqlite",
    )
    return evaluate(
        backend,
        ["mmhal"],
        data_dir=data_dir,
        limit=LIMIT,
        output=tmp_path / name,
        judges=settings,
        progress=False,
        max_failure_rate=1.0,  # reviews rated 0 for want of one rating are part of the protocol under test
    )


def rows_of(result):
    rows = [json.loads(line) for line in open(result.run_dir / "samples" / "mmhal.jsonl")]
    return sorted(rows, key=lambda r: int(r["id"]))


def judge_bodies(server):
    return [b for b in server.requests if b["model"] == JUDGE]


def test_judged_run_sends_the_official_prompts_and_scores_by_the_official_rule(tmp_path, data_dir, records):
    with FakeOpenAIServer(responder=responder(records)) as server:
        result = run(server, tmp_path, data_dir)
        model_bodies = [b for b in server.requests if b["model"] == "candidate"]
        judged = judge_bodies(server)
    assert len(model_bodies) == LIMIT and len(judged) == LIMIT

    # the model: its image, then the bare question; greedy, 1,024 new tokens
    body = next(b for b in model_bodies if last_user_text(b) == records[3]["question"])
    (message,) = body["messages"]
    assert [p["type"] for p in message["content"]] == ["image_url", "text"]
    assert message["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert (body["temperature"], body["max_tokens"]) == (0.0, 1024)

    # the judge: one user message, the official template filled in by hand for record 3
    r = records[3]
    expected = (
        JUDGE_TEMPLATE[: JUDGE_TEMPLATE.index("### Image Contents\n{}")]
        + "### Image Contents\n"
        + ", ".join(r["image_content"])
        + "\n\n### Question\n"
        + r["question"]
        + "\n\n### Standard Human-Generated Answer\n"
        + r["gt_answer"]
        + "\n\n### LMM Response to Evaluate\n"
        + answer_of(r["question"])
        + "\n"
    )
    body = next(b for b in judged if r["gt_answer"] in b["messages"][0]["content"])
    assert body["messages"] == [{"role": "user", "content": expected}]
    assert (body["temperature"], body["max_tokens"]) == (0.0, 1024)

    rows = rows_of(result)
    assert [r["id"] for r in rows] == [str(i) for i in range(LIMIT)]
    # by hand: i % 7, except 4, 5, 10, 11 (no rating / two ratings) which score 0
    ratings = [0, 1, 2, 3, 0, 0, 6, 0, 1, 2, 0, 0, 5, 6, 0, 1]
    assert [row["ratings"] for row in rows] == [[s] for s in ratings]
    assert [row["rating"] for row in rows] == ratings
    assert [row["unparsed"] for row in rows] == [int(i in (4, 5, 10, 11)) for i in range(LIMIT)]
    summary = result.metrics["mmhal"]  # those four rows count as failed, beside the official 0 rating
    assert (summary["n_unparsed"], summary["n_failed"], summary["failure_rate"]) == (4, 4, 4 / LIMIT)
    assert rows[4]["parsed"] == [False] and rows[4]["ratings_found"] == []
    assert rows[5]["parsed"] == [False] and rows[5]["ratings_found"] == [2, 5]
    assert rows[3]["parsed"] == [True] and rows[3]["ratings_found"] == [3]
    assert rows[3]["judge"]["outputs"] == [review(3, 0)]
    assert rows[3]["target"] == records[3]["gt_answer"] and rows[3]["cluster"] == records[3]["image_id"]
    assert rows[3]["meta"] == {
        "index": 3,
        "question_type": "counting",
        "question_topic": records[3]["question_topic"],
        "image_id": records[3]["image_id"],
        "image_content": records[3]["image_content"],
    }
    fp = rows[0]["judge"]["fingerprint"]
    settings = (fp["model"], fp["temperature"], fp["max_tokens"], fp["n_runs"])
    assert settings == (f"openai:{JUDGE}", 0.0, 1024, 1)

    metrics = result.metrics["mmhal"]["metrics"]
    values = {k: m["value"] for k, m in metrics.items()}
    assert values == pytest.approx(
        {
            "score": 27 / 16,
            "hallucination_rate": 12 / 16,  # all but records 3, 6, 12, 13 rate < 3
            "informativeness": 15 / 3 / 16 * 100,  # (s-3 if s>=3 else s)/3: 0,1,2,0,0,0,3,0,1,2,0,0,2,3,0,1
            "type/attribute": 0.5,  # records 0, 8
            "type/adversarial": 1.5,
            "type/comparison": 1.0,
            "type/counting": 1.5,
            "type/relation": 2.5,
            "type/environment": 3.0,
            "type/holistic": 3.0,
            "type/other": 0.5,
            "unparsed": 4.0,
        }
    )
    assert rescore_run(result.run_dir)["mmhal"]["metrics"] == metrics


def test_judge_runs_are_separate_calls_averaged_per_row(tmp_path, data_dir, records):
    with FakeOpenAIServer(responder=responder(records)) as server:
        result = run(server, tmp_path, data_dir, runs=2)
        seeds = sorted(b["seed"] for b in judge_bodies(server))
    assert seeds == [0] * LIMIT + [1] * LIMIT
    rows = rows_of(result)
    for i, row in enumerate(rows):
        assert row["judge"]["outputs"] == [review(i, 0), review(i, 1)]
        assert row["ratings"] == [rule_rating(i, 0), rule_rating(i, 1)]
        assert row["unparsed"] == (2 if i % 6 in (4, 5) else 0)
        assert sorted(c["run"] for c in row["judge"]["calls"]) == [0, 1]
    assert rows[0]["judge"]["fingerprint"]["n_runs"] == 2
    # by hand: run 0 as in the single-run test (sum 27, 12 below 3); run 1 rates (i + 3) % 7 except records
    # 4, 5, 10, 11: 3,4,5,6,0,0,2,3,4,5,0,0,1,2,3,4 (sum 42; below 3: records 4,5,6,10,11,12,13 → 7)
    metrics = result.metrics["mmhal"]["metrics"]
    assert metrics["score"]["value"] == pytest.approx((27 + 42) / 32)
    assert metrics["hallucination_rate"]["value"] == pytest.approx((12 / 16 + 7 / 16) / 2)
    assert metrics["type/attribute"]["value"] == pytest.approx((0 + 3 + 1 + 4) / 4)  # records 0, 8
    assert metrics["unparsed"]["value"] == 8.0 and metrics["score"]["n"] == LIMIT
    assert rescore_run(result.run_dir)["mmhal"]["metrics"] == metrics


def test_faults_do_not_change_the_judgments(tmp_path, data_dir, records):
    with FakeOpenAIServer(responder=responder(records)) as server:
        clean = run(server, tmp_path, data_dir, "clean")
    faults = {1: "429", 4: "500", 9: "malformed", 13: Fault("delay", seconds=3.0), 18: "503", 20: "close"}
    faults.update({k: "500" for k in range(24, 27)})
    with FakeOpenAIServer(responder=responder(records), faults=faults) as server:
        faulty = run(server, tmp_path, data_dir, "faulty", timeout_s=2.0)
        assert len(server.requests) > 2 * LIMIT  # the faults were hit and retried
    strip = ("latency_s",)
    for a, b in zip(rows_of(clean), rows_of(faulty), strict=True):
        a, b = ({k: v for k, v in r.items() if k not in strip} for r in (a, b))
        a["judge"]["fingerprint"].pop("backend"), b["judge"]["fingerprint"].pop("backend")  # other port
        assert a == b
    assert clean.metrics["mmhal"]["metrics"] == faulty.metrics["mmhal"]["metrics"]
    assert faulty.metrics["mmhal"]["n_errors"] == 0


def test_dry_run_counts_one_call_per_record_and_run(data_dir):
    settings = JudgeSettings(base_url="http://127.0.0.1:9/v1", runs=3)
    plan = plan_judging(["mmhal"], settings, data_dir=data_dir, limit=LIMIT)["mmhal"]
    assert (plan["calls"], plan["cached"]) == (3 * LIMIT, 0)
    assert plan["est_completion_tokens"] == 3 * LIMIT * 1024


def test_load_reads_either_template_name_and_names_missing_files(tmp_path, records):
    task = MMHal()
    with pytest.raises(UserError, match=r"response_template\.json.*mmhal-bench_answer_template\.json"):
        task.load(DataSpec(data_dir=tmp_path))
    with pytest.raises(UserError, match="--data toy, or --data-dir"):
        task.load(DataSpec())

    root = write_data(tmp_path / "rlhfv", records, name="mmhal-bench_answer_template.json")
    data = task.load(DataSpec(data_dir=root, limit=5))
    assert [s.id for s in data.samples] == ["0", "1", "2", "3", "4"]
    first = data.samples[0].messages[0]
    assert first.text == records[0]["question"]
    assert first.images == (str(root / "images" / "7206072054_c53d53b97d_o.jpg"),)

    missing = records[2]["image_src"].split("/")[-1]
    (root / "images" / missing).unlink()
    (root / "images" / records[7]["image_src"].split("/")[-1]).unlink()
    with pytest.raises(UserError) as err:
        task.load(DataSpec(data_dir=root, limit=10))
    text = str(err.value)
    assert f"{missing} (record 2, {records[2]['image_src']}) and 1 more of 10" in text
    assert "Shengcao1006/MMHal-Bench" in text and "--image-dir" in text
    assert len(task.load(DataSpec(data_dir=root, limit=2)).samples) == 2  # only the records asked for

    other = tmp_path / "pictures"
    shutil.copytree(root / "images", other)
    (other / missing).write_bytes((root / "images" / records[0]["image_src"].split("/")[-1]).read_bytes())
    (other / records[7]["image_src"].split("/")[-1]).write_bytes((other / missing).read_bytes())
    data = task.load(DataSpec(data_dir=root, image_dir=other))
    assert len(data.samples) == 96 and data.samples[2].messages[0].images == (str(other / missing),)


COLOURS = {
    "red": "apple",
    "pink": "cake",
    "blue": "cup",
    "white": "egg",
    "brown": "dog",
    "yellow": "ball",
    "green": "tree",
    "magenta": "kite",
    "cyan": "car",
    "orange": "bus",
    "purple": "umbrella",
    "grey": "clock",
}


def test_toy_data_loads_in_template_form(shared):
    task = MMHal()
    data = task.load(DataSpec(toy=True))
    assert task.supports_toy and len(data.samples) == 96 and data.info["source"] == "toy"
    again = task.load(DataSpec(toy=True))
    assert [(s.messages, s.target) for s in again.samples] == [(s.messages, s.target) for s in data.samples]
    other = task.load(DataSpec(toy=True, seed=1))
    assert [s.target for s in other.samples] != [s.target for s in data.samples]
    types = ["attribute", "adversarial", "comparison", "counting", "relation", "environment", "holistic"]
    for i, s in enumerate(data.samples):
        meta, (message,) = s.meta, s.messages
        assert meta["question_type"] == [*types, "other"][i % 8] and s.id == str(i)
        (image,) = message.images
        with Image.open(image) as img:
            colours = {c for _, c in img.convert("RGB").getcolors()}
        present = {n.capitalize() for n, (_, rgb) in STYLE.items() if rgb in colours}
        assert set(meta["image_content"]) == present  # the labels are what the picture shows
        if meta["question_type"] == "attribute":  # the answer's colour is the asked object's colour
            noun = re.fullmatch(r"What color is the (\w+) in the image\?", message.text).group(1)
            colour = re.fullmatch(rf"The {noun} in the image is (\w+)\.", s.target).group(1)
            assert COLOURS[colour] == noun and noun.capitalize() in present
        if meta["question_type"] == "adversarial":
            noun = re.fullmatch(r"What color is the (\w+) in the image\?", message.text).group(1)
            assert noun.capitalize() not in present and s.target.startswith(f"There is no {noun}")
        if meta["question_type"] == "counting":
            assert s.target == f"There are {len(present)} objects in the image."
    root = Path(data.samples[0].messages[0].images[0]).parents[1]
    toy = json.loads((root / "response_template.json").read_text())
    official = json.loads((shared / "mmhal_bench" / "mmhal-bench_answer_template.json").read_text())
    assert [set(r) for r in toy] == [set(official[0])] * 96  # the official record schema
