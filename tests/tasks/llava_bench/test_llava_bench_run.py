"""LLaVA-Bench in `evalkit run`: the model answers each question with its image, GPT-4 (played by a real
OpenAI-compatible server on 127.0.0.1) reviews the answer against the GPT-4 reference with the official
request in each of N runs, unparseable reviews score (-1, -1) inside the means, and the relative score is
the mean over runs of each run's ratio of means — every number here is recomputed by hand from the
responder's rule. Also: faults change nothing, `rescore` reproduces the metrics, missing files are named,
and the toy data set has the official schema."""

import hashlib
import json
import struct
import zlib

import pytest
from support.openai_server import FakeOpenAIServer, Fault, last_user_text

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.registry import get_task
from evalkit.runner import evaluate, plan_judging
from evalkit.scoring import rescore_run
from evalkit.task import DataSpec
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("fast_retries")

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
JUDGE = "gpt-4-0314"
CAPTIONS = {
    "001.png": "A red apple sits on a wooden table next to a blue cup.",
    "002.png": "A brown dog chases a yellow ball in a green park.",
}
QUESTIONS = [  # (question_id, image, category, question, GPT-4 reference)
    (0, "001.png", "conv", "What fruit is on the table?", "There is a red apple on the table."),
    (1, "001.png", "detail", "Describe the image in detail.", "A red apple and a blue cup on a table."),
    (2, "002.png", "complex", "Why might the dog be running?", "The dog is probably chasing the ball."),
    (3, "002.png", "conv", "What color is the ball?", "The ball is yellow."),
    (4, "001.png", "complex", "What meal could this be part of?", "It could be a light breakfast."),
]
N = len(QUESTIONS)


def png(path, rgb):
    """A valid 2×2 RGB PNG written byte by byte."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(rgb) * 2 for _ in range(2))
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_wild(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    png(root / "images/001.png", (200, 30, 30))
    png(root / "images/002.png", (30, 200, 30))
    jsonl(
        root / "questions.jsonl",
        [{"question_id": q, "image": im, "text": t, "category": c} for q, im, c, t, _ in QUESTIONS],
    )
    jsonl(root / "context.jsonl", [{"image": im, "caption": cap} for im, cap in CAPTIONS.items()])
    jsonl(
        root / "answers_gpt4.jsonl",
        [
            {"question_id": q, "prompt": t, "answer_id": f"ref{q}", "model_id": "gpt-4-0314", "text": ref}
            for q, _, _, t, ref in QUESTIONS
        ],
    )
    return root


def rule_prompt(key):
    from evalkit.tasks.llava_bench.data import RULE_FILE

    path = RULE_FILE
    return json.loads(path.read_text())[key]["prompt"]


def expected_review(question, reference, answer, context, rule_key):
    """The review request of `eval_gpt_review_bench.py`, written out from the official f-string."""
    return (
        f"[Context]\n{context}\n\n[Question]\n{question}\n\n"
        f"[Assistant 1]\n{reference}\n\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{answer}\n\n[End of Assistant 2]\n\n"
        f"[System]\n{rule_prompt(rule_key)}\n\n"
    )


def digest(text):
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def model_answer(question):
    return f"Answer {digest(question) % 1000}: it is what it is."


def review(content, run):
    """The judge's review of a request in run `run`: a pair on the first line, except for one in four
    requests, which get a first line the official parser rejects ("8, 6" becomes "8  6": three tokens)."""
    h = digest(f"{content}|{run}")
    if h % 4 == 0:
        return "8, 6\nAssistant 1 is more detailed." if h % 8 == 0 else "Scores: 8 and 6\nBoth fine."
    return f"{h % 4 + 6} {h // 7 % 10 + 1}\nAssistant 1 is grounded in the context."


def expected_pair(content, run):
    """What the official parser makes of `review(content, run)`, worked out from the rule above."""
    h = digest(f"{content}|{run}")
    return (-1.0, -1.0) if h % 4 == 0 else (float(h % 4 + 6), float(h // 7 % 10 + 1))


def play(body):
    if body["model"] == "candidate":
        return model_answer(last_user_text(body))
    assert body["model"] == JUDGE
    return review(last_user_text(body), body.get("seed"))


def run(server, tmp_path, data_dir, name="run", task="llava_bench", runs=3, **kw):
    backend = OpenAIBackend(
        "candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=2.0)
    )
    settings = JudgeSettings(base_url=server.base_url, concurrency=4, timeout_s=2.0, runs=runs)
    return evaluate(
        backend,
        [task],
        data_dir=data_dir,
        output=tmp_path / name,
        judges=settings,
        progress=False,
        **{"max_failure_rate": 1.0, **kw},  # unparseable reviews are part of the protocol under test
    )


def rows_of(result, task="llava_bench"):
    return [json.loads(line) for line in open(result.run_dir / "samples" / f"{task}.jsonl")]


def hand_relative(pairs_by_run, select):
    """Mean over runs of round(mean_2, 3) / round(mean_1, 3) × 100 over the selected questions."""
    rels = []
    for pairs in pairs_by_run:
        chosen = [pairs[i] for i in select]
        ref = round(sum(p[0] for p in chosen) / len(chosen), 3)
        model = round(sum(p[1] for p in chosen) / len(chosen), 3)
        rels.append(model / ref * 100)
    return round(sum(rels) / len(rels), 1), rels


def test_judged_run_sends_the_official_review_and_scores_it(tmp_path):
    data = write_wild(tmp_path / "wild")
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data)
        bodies = server.requests
    candidate = [b for b in bodies if b["model"] == "candidate"]
    judge = [b for b in bodies if b["model"] == JUDGE]
    assert len(candidate) == N and len(judge) == 3 * N

    # the model sees its image and the bare question, decoded greedily with 1,024 new tokens
    first = next(b for b in candidate if last_user_text(b) == QUESTIONS[0][3])
    parts = first["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"] and parts[1]["text"] == QUESTIONS[0][3]
    assert (first["temperature"], first["max_tokens"]) == (0.0, 1024)

    # the judge request of question 0 in run 0, written out by hand
    q0 = [b for b in judge if QUESTIONS[0][3] in last_user_text(b) and b["seed"] == 0]
    assert len(q0) == 1
    expected_user = (
        "[Context]\nA red apple sits on a wooden table next to a blue cup.\n\n"
        "[Question]\nWhat fruit is on the table?\n\n"
        "[Assistant 1]\nThere is a red apple on the table.\n\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{model_answer('What fruit is on the table?')}\n\n[End of Assistant 2]\n\n"
        "[System]\nWe would like to request your feedback on the performance of two AI assistants in "
        "response to the user question displayed above. The user asks the question on observing an "
        "image. For your reference, the visual content in the image is represented with a few sentences "
        "describing the image. \nPlease rate the helpfulness, relevance, accuracy, level of details of "
        "their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher "
        "score indicates better overall performance.\nPlease first output a single line containing only "
        "two values indicating the scores for Assistant 1 and 2, respectively. The two scores are "
        "separated by a space.\nIn the subsequent line, please provide a comprehensive explanation of "
        "your evaluation, avoiding any potential bias and ensuring that the order in which the responses "
        "were presented does not affect your judgment.\n\n"
    )
    assert q0[0]["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": expected_user},
    ]
    assert (q0[0]["temperature"], q0[0]["max_tokens"]) == (0.2, 1024)
    assert sorted(b["seed"] for b in judge) == sorted([0, 1, 2] * N)  # one call per question and run

    rows = {r["id"]: r for r in rows_of(result)}
    contents = [
        expected_review(t, ref, model_answer(t), CAPTIONS[im], f"llava_bench_{c}")
        for _, im, c, t, ref in QUESTIONS
    ]
    pairs_by_run = [[expected_pair(c, r) for c in contents] for r in range(3)]
    n_failed = n_rows_failed = 0
    for i, (qid, im, cat, _, ref) in enumerate(QUESTIONS):
        row = rows[str(qid)]
        want = [list(pairs_by_run[r][i]) for r in range(3)]
        assert row["judge_scores"] == want
        assert row["judge_parse"] == ["fallback" if p == [-1.0, -1.0] else "ok" for p in want]
        assert row["judge"]["outputs"] == [review(contents[i], r) for r in range(3)]
        assert row["judge"]["official_scores"] == want
        assert (
            row["judge"]["fingerprint"]["model"] == f"openai:{JUDGE}"
            and row["judge"]["fingerprint"]["n_runs"] == 3
        )
        assert (row["target"], row["cluster"], row["meta"]["category"]) == (ref, im, cat)
        assert row["meta"]["context"] == CAPTIONS[im]
        n_failed += sum(p == [-1.0, -1.0] for p in want)
        n_rows_failed += any(p == [-1.0, -1.0] for p in want)
    assert n_failed > 0  # the rule above does produce failed parses here, and they stay in the means

    metrics = result.metrics["llava_bench"]["metrics"]
    headline, per_run = hand_relative(pairs_by_run, range(N))
    assert metrics["relative"]["value"] == headline and metrics["relative"]["n"] == N
    assert [metrics[f"run{r + 1}/relative"]["value"] for r in range(3)] == [round(x, 1) for x in per_run]
    for cat in ("conv", "detail", "complex"):
        select = [i for i, q in enumerate(QUESTIONS) if q[2] == cat]
        assert metrics[f"cat/{cat}"]["value"] == hand_relative(pairs_by_run, select)[0]
        assert metrics[f"cat/{cat}"]["n"] == len(select)
    assert metrics["judge_fallbacks"]["value"] == float(n_failed)
    summary = result.metrics["llava_bench"]  # a row with a (-1, -1) review counts as failed
    assert (summary["n_unparsed"], summary["n_failed"], summary["n_errors"]) == (n_rows_failed,) * 2 + (0,)
    assert summary["failure_rate"] == n_rows_failed / N


def test_coco_review_carries_captions_and_boxes(tmp_path):
    root = tmp_path / "coco"
    (root / "val2014").mkdir(parents=True)
    png(
        root / "val2014/COCO_val2014_000000000042.jpg", (10, 10, 200)
    )  # val2014.zip's name for 000000000042.jpg
    jsonl(
        root / "qa90_questions.jsonl",
        [
            {"question_id": 0, "image": "000000000042.jpg", "text": "What is blue?", "category": "conv"},
            {"question_id": 1, "image": "000000000042.jpg", "text": "Describe it.", "category": "detail"},
        ],
    )
    jsonl(
        root / "qa90_gpt4_answer.jsonl",
        [
            {"question_id": 0, "text": "The sky is blue.", "category": "conv"},
            {"question_id": 1, "text": "A blue sky over a kite.", "category": "detail"},
        ],
    )
    caps = {
        "id": "000000000042",
        "image": "000000000042.jpg",
        "captions": ["A kite in the sky.", "Blue sky.", "A kite flies.", "Sky and kite.", "A red kite."],
        "instances": [
            {"category": "kite", "bbox": [0.25, 0.5, 0.75, 1.0]},
            {"category": "person", "bbox": [0, 0.1, 0.2, 1]},
        ],
    }
    jsonl(root / "caps_boxes_coco2014_val_80.jsonl", [caps])
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, root, task="llava_bench_coco", runs=1, image_dir=root / "val2014")
        judge = [b for b in server.requests if b["model"] == JUDGE]
    assert len(judge) == 1 * 2
    context = (
        "A kite in the sky.\nBlue sky.\nA kite flies.\nSky and kite.\nA red kite.\n\n"
        "kite: [0.25, 0.5, 0.75, 1.0]\nperson: [0, 0.1, 0.2, 1]"
    )
    sent = next(b for b in judge if "What is blue?" in last_user_text(b))
    want = expected_review(
        "What is blue?", "The sky is blue.", model_answer("What is blue?"), context, "conv"
    )
    assert sent["messages"][1]["content"] == want and "bounding box" in want
    rows = rows_of(result, "llava_bench_coco")
    assert [len(r["judge_scores"]) for r in rows] == [1, 1]
    assert rows[0]["images"][0].endswith("COCO_val2014_000000000042.jpg")


def test_faults_do_not_change_the_judgments(tmp_path, monkeypatch):
    data = write_wild(tmp_path / "wild")
    with FakeOpenAIServer(responder=play) as clean_server:
        monkeypatch.setenv("EVALKIT_JUDGE_CACHE", str(tmp_path / "judge-clean.sqlite"))
        clean = run(clean_server, tmp_path, data, "clean")
    faults = {0: "429", 3: "500", 6: "malformed", 8: Fault("delay", seconds=3.0), 11: "503", 14: "close"}
    with FakeOpenAIServer(responder=play, faults=faults) as server:
        monkeypatch.setenv("EVALKIT_JUDGE_CACHE", str(tmp_path / "judge-faulty.sqlite"))
        faulty = run(server, tmp_path, data, "faulty")
        assert len(server.requests) > len(clean_server.requests)  # the faults were hit and retried
    strip = ("latency_s", "images")
    for a, b in zip(rows_of(clean), rows_of(faulty), strict=True):
        a, b = ({k: v for k, v in r.items() if k not in strip} for r in (a, b))
        a["judge"]["fingerprint"].pop("backend"), b["judge"]["fingerprint"].pop("backend")  # other port
        assert a == b
    assert clean.metrics["llava_bench"]["metrics"] == faulty.metrics["llava_bench"]["metrics"]
    assert faulty.metrics["llava_bench"]["n_errors"] == 0


def test_rescore_reproduces_the_metrics_and_a_rerun_asks_nothing(tmp_path):
    data = write_wild(tmp_path / "wild")
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data)
        n = server.count
        again = run(server, tmp_path, data)
        assert server.count == n
    assert again.metrics == result.metrics
    (result.run_dir / "metrics.json").write_text("{}")
    assert rescore_run(result.run_dir) == result.metrics
    assert json.loads((result.run_dir / "metrics.json").read_text()) == json.loads(json.dumps(result.metrics))


def test_dry_run_counts_one_call_per_question_and_run(tmp_path):
    data = write_wild(tmp_path / "wild")
    settings = JudgeSettings(base_url="http://127.0.0.1:9/v1")
    plan = plan_judging(["llava_bench"], settings, data_dir=data)["llava_bench"]
    assert plan["calls"] == 3 * N and plan["judge"] == f"openai:{JUDGE}"
    one = plan_judging(
        ["llava_bench"], JudgeSettings(base_url="http://127.0.0.1:9/v1", runs=1), data_dir=data
    )
    assert one["llava_bench"]["calls"] == N


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("questions.jsonl", "questions.jsonl not found; questions.jsonl comes from the Hugging Face dataset"),
        ("context.jsonl", "context.jsonl not found; context.jsonl comes from the Hugging Face dataset"),
        (
            "answers_gpt4.jsonl",
            "answers_gpt4.jsonl not found; answers_gpt4.jsonl comes from the Hugging Face",
        ),
        ("images/002.png", r"1 of 2 images not found in .*images \(first: 002.png\)"),
    ],
)
def test_missing_files_are_named(tmp_path, missing, message):
    data = write_wild(tmp_path / "wild")
    (data / missing).unlink()
    with pytest.raises(UserError, match=message):
        get_task("llava_bench").load(DataSpec(data_dir=data))


def test_other_data_errors(tmp_path):
    task = get_task("llava_bench_coco")
    with pytest.raises(UserError, match=r"--data-dir.*--data toy.*evalkit import --task llava_bench_coco"):
        task.load(DataSpec())
    with pytest.raises(UserError, match="qa90_questions.jsonl not found.*coco2014_val_qa_eval"):
        task.load(DataSpec(data_dir=tmp_path))
    data = write_wild(tmp_path / "wild")
    refs = (data / "answers_gpt4.jsonl").read_text().splitlines()
    (data / "answers_gpt4.jsonl").write_text("\n".join([refs[1], refs[0], *refs[2:]]) + "\n")
    with pytest.raises(
        UserError, match="answers_gpt4.jsonl:1: answers question 1, but line 1 .* is question 0"
    ):
        get_task("llava_bench").load(DataSpec(data_dir=data))
    limited = get_task("llava_bench").load(DataSpec(data_dir=write_wild(tmp_path / "ok"), limit=2))
    assert [s.id for s in limited.samples] == ["0", "1"] and limited.info["n_questions"] == N


def test_toy_data_has_the_official_schema(tmp_path, monkeypatch):
    from PIL import Image

    from evalkit.tasks.llava_bench.toy import COLOURS, write_toy
    from evalkit.toy.world import OBJECTS

    assert sorted(COLOURS) == sorted(OBJECTS)
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    wild = get_task("llava_bench").load(DataSpec(toy=True, seed=3))
    coco = get_task("llava_bench_coco").load(DataSpec(toy=True, seed=3, limit=6))
    root = tmp_path / "cache/toy" / next(p.name for p in (tmp_path / "cache/toy").iterdir() if p.is_dir())
    questions = [json.loads(x) for x in (root / "questions.jsonl").read_text().splitlines()]
    answers = [json.loads(x) for x in (root / "answers_gpt4.jsonl").read_text().splitlines()]
    contexts = {
        json.loads(x)["image"]: json.loads(x)["caption"]
        for x in (root / "context.jsonl").read_text().splitlines()
    }
    assert len(questions) == len(wild.samples) == 3 * len(contexts)
    assert [q["category"] for q in questions[:3]] == ["conv", "detail", "complex"]
    assert all(set(q) == {"question_id", "image", "text", "category"} for q in questions)
    assert [a["question_id"] for a in answers] == [q["question_id"] for q in questions]
    assert all({"question_id", "prompt", "answer_id", "model_id", "text"} <= set(a) for a in answers)
    for q in questions[:6]:
        with Image.open(root / "images" / q["image"]) as img:
            assert img.size == (48, 48)
        assert any(f"{c} {o} " in contexts[q["image"]] for o, c in ((o, COLOURS[o]) for o in OBJECTS))
    caps = [json.loads(x) for x in (root / "caps_boxes_coco2014_val_80.jsonl").read_text().splitlines()]
    assert all(
        len(c["captions"]) == 5 and all(0 <= v <= 1 for i in c["instances"] for v in i["bbox"]) for c in caps
    )
    assert len(coco.samples) == 6 and "\n\n" in coco.samples[0].meta["context"]
    # deterministic from the seed: a second copy is byte-identical, another seed differs
    again = write_toy(tmp_path / "again", seed=3)
    other = write_toy(tmp_path / "other", seed=4)
    for name in (
        "questions.jsonl",
        "context.jsonl",
        "answers_gpt4.jsonl",
        "caps_boxes_coco2014_val_80.jsonl",
    ):
        assert (again / name).read_bytes() == (root / name).read_bytes()
    assert (other / "context.jsonl").read_bytes() != (root / "context.jsonl").read_bytes()


def test_bundled_rule_file_is_the_official_copy(shared):
    from evalkit.tasks.llava_bench.data import RULE_FILE

    assert RULE_FILE.read_bytes() == (shared / "llava_bench/judge/rule.json").read_bytes()


def test_official_coco_files_load(shared, tmp_path):
    """The shipped COCO files (with stand-in images) give 90 questions on 30 images; each review request is
    the one `review_requests` builds from the same files, as the official script pairs them."""
    from evalkit.tasks.llava_bench.data import read_answers, read_contexts, read_questions, read_rules
    from evalkit.tasks.llava_bench.protocol import review_requests

    base = shared / "llava_bench/coco"
    questions = read_questions(base / "qa90_questions.jsonl")
    (tmp_path / "images").mkdir()
    for name in {q["image"] for q in questions}:
        png(tmp_path / "images" / name, (1, 2, 3))
    for name in ("qa90_questions.jsonl", "qa90_gpt4_answer.jsonl", "caps_boxes_coco2014_val_80.jsonl"):
        (tmp_path / name).write_bytes((base / name).read_bytes())
    task = get_task("llava_bench_coco")
    samples = task.load(DataSpec(data_dir=tmp_path)).samples
    assert len(samples) == 90 and len({s.cluster for s in samples}) == 30
    assert [sum(s.meta["category"] == c for s in samples) for c in ("conv", "detail", "complex")] == [30] * 3
    gpt4 = read_answers(base / "qa90_gpt4_answer.jsonl")
    model = [{"question_id": a["question_id"], "text": f"answer {a['question_id']}"} for a in gpt4]
    official = review_requests(
        questions,
        gpt4,
        model,
        read_contexts(base / "caps_boxes_coco2014_val_80.jsonl"),
        read_rules(shared / "llava_bench/judge/rule.json"),
        in_the_wild=False,
    )
    for s, req in zip(samples, official, strict=True):
        row = {"prompt": s.messages[0].text, "target": s.target, "response": f"answer {s.id}", "meta": s.meta}
        assert task.review_request(row)[1].text == req.content
