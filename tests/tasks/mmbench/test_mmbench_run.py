"""MMBench through `evaluate` against a real OpenAI-compatible server on 127.0.0.1 that plays the model under
test ("candidate") and the official matcher (gpt-3.5-turbo-0613), on a TSV written here (base64 PNGs, no
circular rows, so the loader builds the rotations).

The candidate answers each question by a fixed rule (the right letter, the right option's text, a vague
phrase, or always "A"); the matcher answers by a fixed rule of the answer it is shown and of its call's seed
(run × 3 + try). Every expected number is computed here from those rules and the official protocol, never
read back from the code under test."""

import json
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import pytest
from support.mmbench import png_b64, write_tsv
from support.openai_server import FakeOpenAIServer, Fault, last_user_text

from evalkit.interop.exporting import export_run
from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate, plan_judging
from evalkit.scoring import rescore_run

pytestmark = pytest.mark.usefixtures("fast_retries")

JUDGE = "gpt-3.5-turbo-0613"
SUFFIX = "\nAnswer with the option's letter from the given choices directly."
#: (question, options, answer letter, how the candidate answers)
QUESTIONS = [
    ("What is in the box", ["ball", "cube", "cone", "ring"], "B", "letter"),
    ("Which fruit is yellow", ["apple", "banana", "plum"], "B", "text"),
    ("How is the sky", ["stormy", "clear", "foggy"], "B", "vague"),  # the matcher reads it at once
    ("Which animal barks", ["cat", "cow", "dog"], "C", "furry"),  # the matcher's first try is unreadable
    ("Which way", ["left", "right"], "A", "clueless"),  # three unreadable tries: the random fallback
    ("Is it day", ["yes", "no"], "B", "always A"),  # right only when the answer is A: one wrong rotation
]
#: the candidate's answer per behaviour, given the options it sees (letter → text) and the right text
ANSWERS = {
    "letter": lambda opts, right: next(k for k, v in opts.items() if v == right),
    "text": lambda opts, right: right,
    "vague": lambda opts, right: "It looks bright and cloudless today",
    "furry": lambda opts, right: "the furry one",
    "clueless": lambda opts, right: "no clue",
    "always A": lambda opts, right: "A",
}
OPTION_LINE = re.compile(r"^([A-D])\. (.*)$", re.M)


def tsv_rows(with_answers=True):
    rows = []
    for i, (question, options, answer, _) in enumerate(QUESTIONS, 1):
        row = {"index": i, "question": question + "?", "hint": "", "category": f"cat{i % 2}"}
        row.update({"l2-category": "L", "split": "dev", "image": png_b64((40 * i, 0, 0)), "source": "t"})
        row.update(dict(zip("ABCD", options, strict=False)))
        if with_answers:
            row["answer"] = answer
        rows.append(row)
    return rows


@pytest.fixture
def data_dir(tmp_path):
    write_tsv(tmp_path / "data" / "MMBench_DEV_EN.tsv", tsv_rows())
    return tmp_path / "data"


def behaviour(question):
    return next((q, o, a, b) for q, o, a, b in QUESTIONS if question.startswith(q))


def candidate_answer(prompt):
    """The candidate's rule, from the LLaVA prompt it is sent."""
    question = prompt.split("\n")[0]
    _, options, answer, how = behaviour(question)
    shown = dict(OPTION_LINE.findall(prompt))
    return ANSWERS[how](shown, options["ABCD".index(answer)])


def matcher_reply(prompt, seed):
    """The matcher's rule, from the answer and the options of the official prompt's third example."""
    example = prompt[prompt.index("Example 3: \n") :]
    shown = dict(OPTION_LINE.findall(example))
    answer = example.split("\nAnswer: ")[1].split("\nYour output: ")[0]
    if answer == "It looks bright and cloudless today":
        return next(k for k, v in shown.items() if v == "clear")
    if answer == "the furry one":
        return "Hmm, hard to say" if seed % 3 == 0 else next(k for k, v in shown.items() if v == "dog")
    return "I do not know"


def play(body):
    text = last_user_text(body)
    if body["model"] == "candidate":
        return candidate_answer(text)
    assert body["model"] == JUDGE
    return matcher_reply(text, body.get("seed") or 0)


def run(server, tmp_path, data_dir, name="run", runs=None, **kw):
    backend = OpenAIBackend(
        "candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=2.0)
    )
    settings = JudgeSettings(
        base_url=server.base_url,
        concurrency=4,
        timeout_s=2.0,
        runs=runs,
        cache_path=tmp_path / f"{name}.sqlite",
    )
    return evaluate(
        backend,
        ["mmbench"],
        data_dir=data_dir,
        output=tmp_path / name,
        judges=settings,
        progress=False,
        **{"max_failure_rate": 1.0, **kw},  # the random fallback is part of the protocol under test
    )


def rows_of(result):
    return [json.loads(line) for line in open(result.run_dir / "samples" / "mmbench.jsonl")]


def expected_passes(n_runs=1):
    """Per pass (index): the letter each judge run settles on, by hand from the rules above."""
    out = {}
    for g, (_, options, answer, how) in enumerate(QUESTIONS, 1):
        n = len(options)
        for k in range(n):
            shown = {"ABCD"[j]: options[(j + k) % n] for j in range(n)}
            index = g + k * 1_000_000
            right = "ABCD"[(("ABCD".index(answer)) - k) % n]
            if how in ("letter", "text", "vague", "furry"):
                preds = [right] * n_runs  # by rule, or the matcher reads the right option
            elif how == "always A":
                preds = ["A"] * n_runs
            else:  # clueless: the documented draw, uniform over the options and Z
                preds = [
                    random.Random(f"mmbench:2680:{index}:{r}").choice([*shown, "Z"]) for r in range(n_runs)
                ]
            out[index] = (preds, right)
    return out


def expected_overall(n_runs=1):
    passes = expected_passes(n_runs)
    hits = []
    for g in range(1, len(QUESTIONS) + 1):
        mine = [v for i, v in passes.items() if i % 1_000_000 == g]
        hits.append(sum(all(preds[r] == right for preds, right in mine) for r in range(n_runs)) / n_runs)
    return 100 * sum(hits) / len(hits), hits


def test_run_sends_the_official_prompts_and_scores_by_the_official_rules(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir)
        model_bodies = [b for b in server.requests if b["model"] == "candidate"]
        judge_bodies = [b for b in server.requests if b["model"] == JUDGE]
    n_passes = sum(len(o) for _, o, _, _ in QUESTIONS)  # 4 + 3 + 3 + 3 + 2 + 2 = 17
    assert len(model_bodies) == n_passes == 17
    # the matcher: 3 passes × 1 try (vague), 3 × 2 (furry), 2 × 3 (clueless)
    assert len(judge_bodies) == 3 + 6 + 6
    assert sorted(b["seed"] for b in judge_bodies) == sorted([0] * 8 + [1] * 5 + [2] * 2)

    body = next(b for b in model_bodies if last_user_text(b).startswith("What is in the box?\nA. cube"))
    (message,) = body["messages"]
    assert [p["type"] for p in message["content"]] == ["image_url", "text"]
    assert message["content"][1]["text"] == "What is in the box?\nA. cube\nB. cone\nC. ring\nD. ball" + SUFFIX
    assert (body["temperature"], body["max_tokens"]) == (0.0, 1024)

    # the matcher prompt of "How is the sky?" in its second rotation, by hand
    expected = (
        "You are an AI assistant who will help me to match an answer with several options of a single-choice "
        "question. You are provided with a question, several options, and an answer, and you need to find "
        "which option is most similar to the answer. If the meaning of all options are significantly "
        "different from the answer, output Z. Your should output a single uppercase character in A, B, C, D "
        "(if they are valid options), and Z. \nExample 1: \nQuestion: What is the main object in image?\n"
        "Options: A. teddy bear B. rabbit C. cat D. dog\nAnswer: a cute teddy bear\nYour output: A\n"
        "Example 2: \nQuestion: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat "
        "D. dog\nAnswer: Spider\nYour output: Z\nExample 3: \nQuestion: How is the sky??\n"
        "Options: There are several options: \nA. clear\nB. foggy\nC. stormy\n\n"
        "Answer: It looks bright and cloudless today\nYour output: "
    )
    bodies = [b for b in judge_bodies if b["messages"][0]["content"] == expected]
    assert len(bodies) == 1 and bodies[0]["messages"] == [{"role": "user", "content": expected}]
    assert (bodies[0]["temperature"], bodies[0]["max_tokens"], bodies[0]["seed"]) == (0.0, 1024, 0)

    rows = {int(r["id"]): r for r in rows_of(result)}
    for index, (preds, _) in expected_passes().items():
        assert rows[index]["preds"] == preds, index
    assert rows[4]["methods"] == ["llm"] and rows[4]["matcher_tries"] == [2]
    assert rows[4]["judge"]["outputs"] == [["Hmm, hard to say", "C"]]
    assert rows[4]["matcher_parsed"] == [[None, "C"]]
    assert rows[5]["methods"] == ["random"] and rows[5]["judge"]["outputs"] == [["I do not know"] * 3]
    assert rows[1]["methods"] == ["rule"] and rows[1]["judge"]["outputs"] == [[]]
    assert rows[1]["judge"]["fingerprint"]["model"] == f"openai:{JUDGE}"

    overall, hits = expected_overall()
    metrics = result.metrics["mmbench"]["metrics"]
    assert hits[0:4] == [1, 1, 1, 1] and hits[5] == 0  # the always-A question misses its second rotation
    assert metrics["overall"]["value"] == pytest.approx(overall)
    assert metrics["category/cat1"]["value"] == pytest.approx(100 * (hits[0] + hits[2] + hits[4]) / 3)
    assert metrics["category/cat0"]["value"] == pytest.approx(100 * (hits[1] + hits[3] + hits[5]) / 3)
    counts = {k: metrics[f"passes/{k}"]["value"] for k in ("rule", "llm", "random")}
    assert counts == {"rule": 4 + 3 + 2, "llm": 3 + 3, "random": 2}
    assert metrics["matcher_unparsed"]["value"] == 3 + 6  # one per furry pass, three per clueless pass
    summary = result.metrics["mmbench"]  # the clueless question's 2 passes fell back after the matcher
    assert (summary["n_unparsed"], summary["n_failed"]) == (2, 2) and summary["n_samples"] == 17
    assert rescore_run(result.run_dir)["mmbench"]["metrics"] == metrics


def test_judge_runs_faults_and_reruns(tmp_path, data_dir, monkeypatch):
    with FakeOpenAIServer(responder=play) as server:
        clean = run(server, tmp_path, data_dir, "clean", runs=2)
        n_judge = sum(b["model"] == JUDGE for b in server.requests)
    assert n_judge == 2 * 15
    rows = {int(r["id"]): r for r in rows_of(clean)}
    for index, (preds, _) in expected_passes(2).items():
        assert rows[index]["preds"] == preds, index
    # run 1's calls carry seeds 3, 4, 5 (a try is its own cache entry)
    assert sorted(c["run"] for c in rows[5]["judge"]["calls"]) == [0, 1, 2, 3, 4, 5]
    overall, _ = expected_overall(2)
    assert clean.metrics["mmbench"]["metrics"]["overall"]["value"] == pytest.approx(overall)

    faults = {1: "429", 4: "500", 9: "malformed", 13: Fault("delay", seconds=3.0), 20: "503", 31: "close"}
    with FakeOpenAIServer(responder=play, faults=faults) as server:
        faulty = run(server, tmp_path, data_dir, "faulty", runs=2)
        assert len(server.requests) > 17 + n_judge  # the faults were hit and retried
        n = server.count
        again = run(server, tmp_path, data_dir, "faulty", runs=2)
        assert server.count == n  # a finished run makes no request
    assert faulty.metrics == again.metrics
    assert clean.metrics["mmbench"]["metrics"] == faulty.metrics["mmbench"]["metrics"]
    strip = ("latency_s",)
    for a, b in zip(rows_of(clean), rows_of(faulty), strict=True):
        a, b = ({k: v for k, v in r.items() if k not in strip} for r in (a, b))
        a["judge"]["fingerprint"].pop("backend"), b["judge"]["fingerprint"].pop("backend")  # another port
        assert a == b


def test_dry_run_counts_one_matcher_call_per_unread_pass(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        settings = JudgeSettings(base_url=server.base_url, cache_path=tmp_path / "plan.sqlite")
        plan = plan_judging(["mmbench"], settings, data_dir=data_dir)
        assert server.count == 0
    # a placeholder answer ("xxx…") is unreadable by rule: each of the 17 passes needs a first try
    assert plan["mmbench"]["calls"] == 17 and plan["mmbench"]["judge"] == f"openai:{JUDGE}"


def read_xlsx(path):
    """The first sheet as rows of cell texts (inline strings and numbers), by an independent reader."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as z:
        assert "[Content_Types].xml" in z.namelist() and "xl/workbook.xml" in z.namelist()
        sheet = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    out = []
    for r in sheet.iter(f"{{{ns['m']}}}row"):
        cells = {}
        for c in r.findall("m:c", ns):
            col = re.match(r"[A-Z]+", c.get("r")).group()
            t = c.find("m:is/m:t", ns)
            cells[col] = t.text if t is not None else c.find("m:v", ns).text
        out.append(cells)
    return out


def test_test_split_is_answered_not_judged_and_exported(tmp_path, capsys):
    columns = ["index", "question", "hint", "A", "B", "C", "D", "category", "l2-category", "split", "image"]
    write_tsv(tmp_path / "data" / "MMBench_TEST_EN.tsv", tsv_rows(with_answers=False), columns)
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, tmp_path / "data", task_options={"mmbench.split": "test"})
        assert all(b["model"] == "candidate" for b in server.requests)
    metrics = result.metrics["mmbench"]["metrics"]
    assert "overall" not in metrics and metrics["passes/unscored"]["value"] == 17

    path, n, missing = export_run(result.run_dir, None)
    assert (path.name, n, missing) == ("mmbench_submission.xlsx", 17, 0)
    table = read_xlsx(path)
    header = ["index", "question", "A", "B", "C", "D", "prediction", "category", "l2-category", "split"]
    assert [table[0][c] for c in "ABCDEFGHIJ"] == header
    first = table[1]  # index 1, the box question as asked, answered by its right letter
    assert first == {
        "A": "1",
        "B": "What is in the box?",
        "C": "ball",
        "D": "cube",
        "E": "cone",
        "F": "ring",
    } | {
        "G": "B",
        "H": "cat1",
        "I": "L",
        "J": "dev",
    }
    fallback = next(r for r in table[1:] if r["A"] == "1000005")  # "Which way?" rotated: no C or D cell
    assert fallback == {"A": "1000005", "B": "Which way?", "C": "right", "D": "left", "G": "no clue"} | {
        "H": "cat1",
        "I": "L",
        "J": "dev",
    }
    assert [int(r["A"]) for r in table[1:]] == sorted(int(r["A"]) for r in table[1:])
    import openpyxl  # what the server's pandas.read_excel reads with

    sheet = openpyxl.load_workbook(path).active
    assert next(sheet.iter_rows(values_only=True)) == tuple(header)

    cli = [sys.executable, "-m", "evalkit", "export"]
    done = subprocess.run(
        [*cli, str(result.run_dir), "--output", str(tmp_path / "out" / "sub.xlsx")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "out" / "sub.xlsx").is_file()
    assert subprocess.run([*cli, str(tmp_path / "nowhere")], capture_output=True).returncode == 2
