"""AlpacaEval 1.0 and 2.0 generated and judged by `evaluate` against a real OpenAI-compatible server on
127.0.0.1 that plays the model under test ("candidate") and both official judges (gpt-4 answers a ranking,
gpt-4-1106-preview the top-5 logprobs of its one token). Expected prompts, preferences and win rates are
built by hand (tests/support/alpaca_eval.py) from the official templates and the responders' rules."""

import json
import math

import pytest
from support.alpaca_eval import (
    INSTRUCTIONS,
    JUDGE_MODEL,
    M_LOGIT,
    REFERENCE,
    TASKS,
    N,
    answer,
    expected_messages,
    hand_preference,
    hand_win_rate,
    play,
    reference_output,
    rows_of,
    run,
    switched,
    write_data,
)
from support.openai_server import FakeOpenAIServer, Fault

from evalkit.judges.settings import JudgeSettings
from evalkit.registry import get_task
from evalkit.runner import plan_judging
from evalkit.scoring import rescore_run
from evalkit.task import DataSpec
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def data_dir(tmp_path):
    return write_data(tmp_path / "data")


def test_both_versions_judged_by_the_official_protocol(tmp_path, data_dir):
    assert {switched(i) for i in INSTRUCTIONS[1:]} == {True, False}  # both orders are exercised
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir)
        bodies = server.requests
    assert sum(b["model"] == "candidate" for b in bodies) == 2 * N
    for task in TASKS:
        judged = [b for b in bodies if b["model"] == JUDGE_MODEL[task]]
        assert len(judged) == N - 1  # identical outputs are not sent to the judge
        by_instruction = {
            i: b for i in INSTRUCTIONS for b in judged if f'"""{i}"""' in b["messages"][1]["content"]
        }
        assert INSTRUCTIONS[0] not in by_instruction
        for instruction in (INSTRUCTIONS[1], INSTRUCTIONS[2], INSTRUCTIONS[3]):
            expected = expected_messages(
                task, instruction, reference_output(task, instruction), answer(instruction)
            )
            assert by_instruction[instruction]["messages"] == expected
        body = by_instruction[INSTRUCTIONS[1]]
        if task == "alpaca_eval":
            settings = (body["temperature"], body["max_tokens"], body["logprobs"], body["top_logprobs"])
            assert settings == (1, 1, True, 5)
        else:
            assert (body["temperature"], body["max_tokens"]) == (0, 100) and "logprobs" not in body
        assert body["seed"] == 0

        rows = rows_of(result, task)
        assert [r["prompt"] for r in rows] == INSTRUCTIONS and [r["id"] for r in rows] == [
            str(k) for k in range(N)
        ]
        prefs = [hand_preference(task, i) for i in INSTRUCTIONS]
        assert [r["preference"] for r in rows] == pytest.approx(prefs, abs=1e-12)
        same = rows[0]
        assert same["judge"]["calls"] == [] and same["judge"]["outputs"] == []
        assert same["preference_source"] == "identical_outputs"
        bad = rows[4]
        assert bad["parse_status"] == ["unparsable"] and bad["preference"] is None
        assert all(r["parse_status"] == ["parsed"] for r in rows[1:] if r is not bad)
        assert all(r["judge"]["switched"] == switched(r["prompt"]) for r in rows)
        assert all(r["judge"]["official_preference"] is None for r in rows)
        assert rows[0]["meta"] == {"index": 0, "dataset": "selfinstruct", "reference": REFERENCE[task]}
        first = rows[1]["judge"]["outputs"][0]
        if task == "alpaca_eval":  # the stored choice holds the first token's top logprobs
            assert first["logprobs"]["content"][0]["top_logprobs"][0]["token"] == "m"
        else:
            assert first.startswith("[{'model': 'model_1'")

        metrics = result.metrics[task]["metrics"]
        win, se = hand_win_rate(prefs)
        assert metrics["win_rate"]["value"] == pytest.approx(win, rel=1e-12)
        assert metrics["standard_error"]["value"] == pytest.approx(se, rel=1e-12)
        assert metrics["n_invalid"]["value"] == 1 and metrics["n_unparsable_outputs"]["value"] == 1
        assert metrics["n_total"]["value"] == N - 1
        summary = result.metrics[task]  # the UNPARSABLE instruction's row counts as failed
        assert (summary["n_unparsed"], summary["n_failed"], summary["failure_rate"]) == (1, 1, 1 / N)
        assert metrics["n_draws"]["value"] == sum(p == 1.5 for p in prefs)
        assert metrics["n_wins"]["value"] == sum(p is not None and p > 1.5 for p in prefs)
        assert metrics["n_preference_mismatch"]["value"] == 0
        if task == "alpaca_eval":  # no made-up LC number: the refit is not implemented, and it says so
            lc = metrics["length_controlled_win_rate"]
            assert lc["value"] is None and "not computed" in lc["note"] and "refit" in lc["note"]
            assert "lc_standard_error" not in metrics
        else:
            assert "length_controlled_win_rate" not in metrics

    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["judges"]["alpaca_eval"]["fingerprint"]["model"] == "openai:gpt-4-1106-preview"
    assert header["judges"]["alpaca_eval_v1"]["fingerprint"]["max_tokens"] == 100
    assert not header["tasks"]["alpaca_eval"]["data"]["length_controlled"]["computed"]
    assert rescore_run(result.run_dir) == result.metrics  # from the stored rows alone


def test_judge_runs_are_averaged(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir, runs=2)
        judged = [b for b in server.requests if b["model"] != "candidate"]
    assert len(judged) == 2 * 2 * (N - 1) and {b["seed"] for b in judged} == {0, 1}
    for task in TASKS:
        rows = rows_of(result, task)
        prefs = [hand_preference(task, i, seeds=(0, 1)) for i in INSTRUCTIONS]
        assert [r["preference"] for r in rows] == pytest.approx(prefs, abs=1e-12)
        assert all(len(r["judge"]["outputs"]) == 2 and len(r["run_preferences"]) == 2 for r in rows[1:])
        metrics = result.metrics[task]["metrics"]
        assert metrics["win_rate"]["value"] == pytest.approx(hand_win_rate(prefs)[0], rel=1e-12)
        assert metrics["n_unparsable_outputs"]["value"] == 2 and metrics["n_invalid"]["value"] == 1
    assert rescore_run(result.run_dir) == result.metrics


def test_faults_do_not_change_the_judgments(tmp_path, data_dir):
    with FakeOpenAIServer(responder=play) as server:
        clean = run(server, tmp_path, data_dir, "clean")
    faults = {1: "429", 5: "500", 9: "malformed", 11: Fault("delay", seconds=3.0), 14: "close", 22: "503"}
    with FakeOpenAIServer(responder=play, faults=faults) as server:
        faulty = run(server, tmp_path, data_dir, "faulty")
        assert server.count > 4 * N - 2  # the faults were hit and retried
    for task in TASKS:
        strip = ("latency_s",)
        for a, b in zip(rows_of(clean, task), rows_of(faulty, task), strict=True):
            a, b = ({k: v for k, v in r.items() if k not in strip} for r in (a, b))
            a["judge"]["fingerprint"].pop("backend"), b["judge"]["fingerprint"].pop("backend")  # other port
            assert a == b
        assert clean.metrics[task]["metrics"] == faulty.metrics[task]["metrics"]
        assert faulty.metrics[task]["n_errors"] == 0


def test_missing_or_wrong_reference_files_are_user_errors(tmp_path, data_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    for task, hub in (
        ("alpaca_eval", "alpaca_eval_gpt4_baseline.json"),
        ("alpaca_eval_v1", "alpaca_eval.json"),
    ):
        with pytest.raises(UserError) as err:
            get_task(task).load(DataSpec(data_dir=empty))
        message = str(err.value)
        assert f"results/{REFERENCE[task]}/model_outputs.json" in message and hub in message
        assert str(empty) in message and f"--task-option {task}.reference=PATH" in message
        assert "\n" not in message
        missing = tmp_path / "nowhere.json"
        with pytest.raises(UserError, match=f"--task-option {task}.reference: {missing} not found"):
            get_task(task).load(DataSpec(options={f"{task}.reference": str(missing)}))
    # the other version's reference outputs are refused
    wrong = data_dir / "results" / "text_davinci_003" / "model_outputs.json"
    with pytest.raises(
        UserError, match="'text_davinci_003'; AlpacaEval 2.0 compares against 'gpt4_1106_preview'"
    ):
        get_task("alpaca_eval").load(DataSpec(options={"alpaca_eval.reference": str(wrong)}))


def test_reference_file_layouts_and_limit(tmp_path, data_dir):
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "alpaca_eval.json").write_bytes(
        (data_dir / "results/text_davinci_003/model_outputs.json").read_bytes()
    )
    via_hub = get_task("alpaca_eval_v1").load(DataSpec(data_dir=hub, limit=3))
    assert [s.messages[0].text for s in via_hub.samples] == INSTRUCTIONS[:3]
    assert via_hub.samples[1].target == reference_output("alpaca_eval_v1", INSTRUCTIONS[1])
    given = data_dir / "results" / "gpt4_1106_preview" / "model_outputs.json"
    via_option = get_task("alpaca_eval").load(DataSpec(options={"alpaca_eval.reference": str(given)}))
    assert [s.id for s in via_option.samples] == [str(k) for k in range(N)]
    assert via_option.samples[2].target == reference_output("alpaca_eval", INSTRUCTIONS[2])
    assert list(via_option.info["files"]) == ["model_outputs.json"]


def test_dry_run_counts_one_call_per_instruction_and_run(data_dir):
    plan = plan_judging(TASKS, JudgeSettings(base_url="http://127.0.0.1:9/v1", runs=2), data_dir=data_dir)
    assert {t: plan[t]["calls"] for t in TASKS} == {"alpaca_eval": 2 * N, "alpaca_eval_v1": 2 * N}


@pytest.fixture
def m_judge_path(tmp_path):
    """A tiny LlamaForCausalLM (toy tokenizer) that gives every prompt the same next-token logits: "m" at
    M_LOGIT, every other token 0. All input embeddings are equal, so every position's hidden state is the
    same whatever the prompt; the output layer then reads only that state's direction."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from evalkit.toy.model import build_toy_tokenizer

    tok = build_toy_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        model.model.embed_tokens.weight[:] = torch.linspace(-1.0, 1.0, 16)
        h = model.model(input_ids=torch.tensor([[5, 6]])).last_hidden_state[0, -1]
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.convert_tokens_to_ids("m")] = M_LOGIT * h / h.dot(h)
    path = tmp_path / "m-judge"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_a_local_transformers_model_serves_the_2_0_judge(tmp_path, data_dir, m_judge_path):
    with FakeOpenAIServer(responder=play) as server:
        result = run(server, tmp_path, data_dir, tasks=["alpaca_eval"], model=f"hf:{m_judge_path}")
    rows = rows_of(result, "alpaca_eval")
    vocab = len(json.loads((m_judge_path / "tokenizer.json").read_text())["model"]["vocab"])
    logprob_m = M_LOGIT - math.log(math.exp(M_LOGIT) + vocab - 1)  # log_softmax of (M_LOGIT, 0, 0, ...)
    prefs = []
    for r in rows:
        assert r["error"] is None and r["judge"]["fingerprint"]["model"] == f"hf:{m_judge_path}"
        if r["prompt"] == INSTRUCTIONS[0]:
            prefs.append(1.5)
            continue
        (output,) = r["judge"]["outputs"]
        (first,) = output["logprobs"]["content"]  # one token, its top 5 (max_tokens 1, top_logprobs 5)
        assert len(first["top_logprobs"]) == 5 and first["top_logprobs"][0]["token"] == "m"
        assert first["top_logprobs"][0]["logprob"] == pytest.approx(logprob_m, abs=1e-4)
        # only "m" is there (P(M) = 0): the judge prefers output_1, whichever answer the order put there
        prefs.append(2.0 if switched(r["prompt"]) else 1.0)
    assert [r["preference"] for r in rows] == pytest.approx(prefs, abs=1e-9)
    metrics = result.metrics["alpaca_eval"]["metrics"]
    assert metrics["win_rate"]["value"] == pytest.approx(hand_win_rate(prefs)[0], abs=1e-9)
