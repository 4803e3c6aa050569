"""DPO batching, log-probs, losses and references (spec training.md §5, tests 1-3 and 5) on the random toy
LLaVA (`build_toy_model`: no training needed) and on fixed tiny logits, entirely offline."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from support.models import tiny_qwen2_vl

from evalkit.models.base import BackendOptions
from evalkit.models.hf import HFBackend
from evalkit.toy.model import IMAGE, build_toy_model
from evalkit.training.batching import IGNORE_INDEX, Batch, Encoder
from evalkit.training.dpo import (
    AdapterOffReference,
    CachedReference,
    FrozenReference,
    answer_logps,
    dpo_forward,
    dpo_loss,
    sequence_logps,
)
from evalkit.types import GenerationConfig, Message, Request


@dataclass
class Pair:  # the attributes the trainer reads from the data module's PreferencePair
    prompt: str
    chosen: str
    rejected: str
    image: str | None = None
    id: str | None = None


@dataclass
class SFT:
    prompt: str
    response: str
    image: str | None = None
    id: str | None = None


@pytest.fixture(scope="module")
def toy():
    model, processor = build_toy_model(seed=0)
    return model, processor


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("dpo-images")
    out = {}
    for name, size, colour in [
        ("red", (48, 48), "red"),
        ("blue", (48, 48), "blue"),
        ("wide", (80, 60), "green"),
    ]:
        Image.new("RGB", size, colour).save(d / f"{name}.png")
        out[name] = str(d / f"{name}.png")
    return out


@pytest.fixture(scope="module")
def pairs(images) -> list[Pair]:
    return [
        Pair("is there a red circle?", "yes.", "no, there is a blue square.", images["red"], "p0"),
        Pair(
            "describe the image in one short sentence please.",
            "a blue square.",
            "a dog.",
            images["blue"],
            "p1",
        ),
        Pair(
            "what colour is it?",
            "green.",
            "it is red and there is a cat on the left side.",
            images["wide"],
            "p2",
        ),
        Pair("how many objects are there in the picture?", "one.", "two.", None, "p3"),
    ]


def _logps(model, batch):
    with torch.no_grad():
        return sequence_logps(model, batch)


# ---- 1. hand-computed losses (float64) ---------------------------------------------------------------


def _hand_logps(logits: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.zeros(len(ids))
    for r in range(len(ids)):
        for t in range(1, ids.shape[1]):
            if mask[r, t]:
                row = logits[r, t - 1]
                out[r] += row[ids[r, t]] - (np.log(np.sum(np.exp(row - row.max()))) + row.max())
    return out


def test_loss_matches_hand_computation_float64():
    rng = np.random.default_rng(0)
    n, t, v = 4, 7, 9
    logits = rng.normal(scale=3.0, size=(n, t, v))
    ids = rng.integers(0, v, size=(n, t))
    mask = np.zeros((n, t), dtype=bool)
    mask[0, 4:7], mask[1, 5:7], mask[2, 3:6], mask[3, 4:5] = True, True, True, True  # 2 pairs, ragged
    hand = _hand_logps(logits, ids, mask)

    got, counts = answer_logps(torch.tensor(logits), torch.tensor(ids), torch.tensor(mask))
    assert got.dtype == torch.float64 and counts.tolist() == [3, 2, 3, 1]
    np.testing.assert_allclose(got.numpy(), hand, rtol=0, atol=1e-12)

    # The same through sequence_logps with a model that honours logits_to_keep (only the answer span).
    class Fixed(torch.nn.Module):
        def forward(self, input_ids, logits_to_keep=0, **_):
            self.kept = logits_to_keep
            return SimpleNamespace(logits=torch.tensor(logits)[:, -logits_to_keep:])

    fixed = Fixed()
    am = torch.tensor(mask)
    batch = Batch(torch.tensor(ids), torch.ones(n, t, dtype=torch.long), torch.arange(t).repeat(n, 1), am)
    np.testing.assert_allclose(sequence_logps(fixed, batch).logps.numpy(), hand, rtol=0, atol=1e-12)
    assert fixed.kept == t - 3 + 1  # from the first answer column (3) on, not the whole sequence

    pc, pr = hand[:2], hand[2:]
    rc, rr = np.array([-9.5, -3.25]), np.array([-8.0, -7.75])
    beta = 0.3
    h = (pc - rc) - (pr - rr)
    expected = {
        "sigmoid": np.mean(np.log1p(np.exp(-beta * h))),
        "ipo": np.mean((h - 1 / (2 * beta)) ** 2),
    }
    t64 = [torch.tensor(x) for x in (pc, pr, rc, rr)]
    for loss_type, want in expected.items():
        out = dpo_loss(*t64, beta, loss_type)
        assert out.loss.dtype == torch.float64
        assert abs(out.loss.item() - want) < 1e-12, loss_type
        np.testing.assert_allclose(out.chosen_rewards.numpy(), beta * (pc - rc), atol=1e-12)
        np.testing.assert_allclose(out.rejected_rewards.numpy(), beta * (pr - rr), atol=1e-12)
        np.testing.assert_allclose(out.margins.numpy(), beta * h, atol=1e-12)
        assert out.accuracy.item() == np.mean(beta * (pc - rc) > beta * (pr - rr))
    sft = dpo_loss(*t64, beta, "sigmoid", sft_weight=0.5)
    assert abs(sft.loss.item() - (expected["sigmoid"] + 0.5 * np.mean(-pc))) < 1e-12
    nll = torch.tensor(-pc / np.array([3, 2]))  # per-token NLL, LLaMA-Factory's form
    sft = dpo_loss(*t64, beta, "sigmoid", sft_weight=0.5, chosen_nll=nll)
    assert abs(sft.loss.item() - (expected["sigmoid"] + 0.5 * np.mean(-pc / [3, 2]))) < 1e-12


@pytest.mark.parametrize("loss_type,sft_weight", [("sigmoid", 0.0), ("ipo", 0.0), ("sigmoid", 0.7)])
def test_gradcheck_dpo_loss(loss_type, sft_weight):
    gen = torch.Generator().manual_seed(1)
    inputs = [(-5 * torch.rand(3, generator=gen, dtype=torch.float64)).requires_grad_() for _ in range(4)]
    assert torch.autograd.gradcheck(
        lambda a, b, c, d: dpo_loss(a, b, c, d, 0.2, loss_type, sft_weight=sft_weight).loss, inputs
    )


LORA_SEED = 0


def test_lora_gradient_matches_finite_difference(toy, pairs):
    """Autograd through sequence_logps and the loss agrees with a central difference on one LoRA weight."""
    from peft import LoraConfig, get_peft_model

    base = copy.deepcopy(toy[0]).double()
    batch = Encoder(toy[1]).encode_pairs(pairs[:2])
    ref = FrozenReference(base)
    lora = LoraConfig(r=2, lora_alpha=4, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    with torch.random.fork_rng(devices=[]):  # peft draws lora_A from the global generator
        torch.manual_seed(LORA_SEED)
        policy = get_peft_model(base, lora).double()  # peft creates its LoRA weights in float32
    weight = policy.base_model.model.model.language_model.layers[1].self_attn.v_proj.lora_B["default"].weight
    with torch.no_grad():
        weight.normal_(std=0.05, generator=torch.Generator().manual_seed(0))  # away from the zero init

    def loss() -> torch.Tensor:
        return dpo_forward(policy, ref, batch, beta=0.5, sft_weight=0.1).loss

    loss().backward()
    # the entry with the largest gradient: a small one would drown in the loss's float32 rounding
    idx = tuple(int(i) for i in divmod(int(weight.grad.abs().argmax()), weight.shape[1]))

    def central(eps: float) -> float:
        with torch.no_grad():
            weight[idx] += eps
            up = loss().item()
            weight[idx] -= 2 * eps
            down = loss().item()
            weight[idx] += eps
        return (up - down) / (2 * eps)

    # LLaMA's RMSNorm runs in float32 even in a float64 model, so the loss carries float32 rounding
    # (~1e-7 relative): large steps keep the differences far above it, and Richardson's extrapolation of
    # two steps cancels the O(eps²) error such steps would leave in one central difference.
    estimate = (4 * central(2e-2) - central(4e-2)) / 3
    assert weight.dtype == torch.float64
    grad = weight.grad[idx].item()
    assert grad != 0
    assert abs(grad - estimate) < 1e-3 * abs(grad)


# ---- 2. masking, image tokens, padding and order ------------------------------------------------------


def test_only_answer_tokens_are_scored():
    """Targets and logits outside the answer (prompt, image, padding positions) never count."""
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(2, 8, 11)))
    ids = torch.tensor(rng.integers(0, 11, size=(2, 8)))
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, 5:7] = True
    base = answer_logps(logits, ids, mask).logps
    ids2, logits2 = ids.clone(), logits.clone()
    ids2[~mask] = (ids2[~mask] + 3) % 11  # every prompt/image/pad "label" changed
    shift = torch.cat([mask[:, 1:], torch.zeros(2, 1, dtype=torch.bool)], 1)  # logits predicting answers
    logits2[~shift] = torch.tensor(rng.normal(size=(int((~shift).sum()), 11)))
    assert torch.equal(answer_logps(logits2, ids2, mask).logps, base)
    ids3 = ids.clone()
    ids3[0, 6] = (ids3[0, 6] + 1) % 11  # an answer token
    changed = answer_logps(logits, ids3, mask).logps
    assert changed[0] != base[0] and changed[1] == base[1]


def test_pair_batch_layout(toy, pairs):
    _, processor = toy
    enc = Encoder(processor)
    batch = enc.encode_pairs(pairs)
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids(IMAGE)
    assert len(batch) == 8 and batch.n_pairs == 4 and batch.pair_ids == ["p0", "p1", "p2", "p3"]
    answers = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    for row, answer in enumerate(answers):
        scored = batch.input_ids[row][batch.answer_mask[row]].tolist()
        assert scored == [*tok(answer, add_special_tokens=False).input_ids, tok.eos_token_id]
        assert not (batch.answer_mask[row] & (batch.input_ids[row] == image_id)).any()
        assert (batch.labels[row] != IGNORE_INDEX).sum() == len(scored)
    # chosen and rejected rows of one pair share the prompt; images are repeated for both halves
    assert torch.equal(
        batch.input_ids[0, : batch.prompt_lengths[0]], batch.input_ids[4, : batch.prompt_lengths[0]]
    )
    assert batch.extras["pixel_values"].shape[0] == 6
    assert int((batch.input_ids == image_id).sum()) == 6 * 9
    # prompts left-padded, answers right-padded: every answer starts in the same column
    first = batch.answer_mask.float().argmax(1)
    assert len(set(first.tolist())) == 1
    assert torch.equal(batch.position_ids[batch.attention_mask.bool()][:3], torch.arange(3))


def test_image_token_count_matches_processor_and_model(toy, images):
    model, processor = toy
    enc = Encoder(processor)
    image_id = model.config.image_token_index
    size = processor.image_processor.crop_size
    per_image = (size["height"] // processor.patch_size) * (size["width"] // processor.patch_size)
    per_image += processor.num_additional_image_tokens - (
        processor.vision_feature_select_strategy == "default"
    )
    for name in ("red", "wide"):  # 48×48, and 80×60 resized/cropped by the processor
        batch = enc.encode_sft([SFT("what is it?", "a square.", images[name])])
        assert int((batch.input_ids == image_id).sum()) == per_image == 9
        feats = model.get_image_features(pixel_values=batch.extras["pixel_values"]).pooler_output
        assert sum(f.shape[0] for f in feats) == per_image
        _logps(model, batch)  # the model accepts it (features and image tokens match)


def test_masking_invariants_on_model(toy, pairs):
    """Changing an answer token changes that row's log-prob only; the image changes the context only."""
    model, processor = toy
    enc = Encoder(processor)
    batch = enc.encode_pairs(pairs[:2])
    base = _logps(model, batch).logps
    edited = copy.deepcopy(batch)
    col = int(edited.answer_mask[1].nonzero()[0])
    edited.input_ids[1, col] = processor.tokenizer.convert_tokens_to_ids("dog")
    out = _logps(model, edited).logps
    assert out[1] != base[1]
    torch.testing.assert_close(out[[0, 2, 3]], base[[0, 2, 3]], rtol=0, atol=1e-5)


def test_padding_invariance(toy, pairs):
    model, processor = toy
    enc = Encoder(processor)
    together = _logps(model, enc.encode_pairs(pairs))
    b = len(pairs)
    for k, pair in enumerate(pairs):
        alone = _logps(model, enc.encode_pairs([pair]))
        torch.testing.assert_close(alone.logps, together.logps[[k, b + k]], rtol=0, atol=1e-5)
        assert alone.n_tokens.tolist() == together.n_tokens[[k, b + k]].tolist()
    sft = enc.encode_sft([SFT(p.prompt, p.chosen, p.image) for p in pairs])
    torch.testing.assert_close(_logps(model, sft).logps, together.logps[:b], rtol=0, atol=1e-5)


def test_pair_order_invariance(toy, pairs):
    model, processor = toy
    enc = Encoder(processor)
    ref = FrozenReference(build_toy_model(seed=1)[0])  # a different model, so losses are not all ln 2
    forward = enc.encode_pairs(pairs)
    backward = enc.encode_pairs(pairs[::-1])
    with torch.no_grad():
        a = dpo_forward(model, ref, forward, beta=0.1)
        b = dpo_forward(model, ref, backward, beta=0.1)
    torch.testing.assert_close(a.losses, b.losses.flip(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(a.margins, b.margins.flip(0), rtol=0, atol=1e-6)
    assert len(set(a.losses.tolist())) == len(pairs)


def test_truncation_cuts_only_the_answer(toy, images):
    _, processor = toy
    enc = Encoder(processor)
    prompt = enc.encode_prompt("is there a dog?", images["red"])
    enc_len = len(prompt.ids)
    short = Encoder(processor, max_length=enc_len + 2)
    batch = short.encode_sft([SFT("is there a dog?", "no, there is a red square.", images["red"])])
    assert batch.truncated == [True] and batch.input_ids.shape[1] == enc_len + 2
    assert (
        int(batch.answer_mask.sum()) == 2 and processor.tokenizer.eos_token_id not in batch.input_ids[0, -2:]
    )
    assert short.encode_sft([SFT("is there a dog?", "no", images["red"])]).truncated == [False]  # no + EOS
    with pytest.raises(ValueError, match="image and prompt tokens are never truncated"):
        Encoder(processor, max_length=enc_len).encode_sft([SFT("is there a dog?", "no.", images["red"])])


def test_prompt_tokens_are_what_evaluation_sends(toy, images, tmp_path, monkeypatch):
    model, processor = toy
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    backend = HFBackend(str(tmp_path), BackendOptions())
    sent = []

    def fake_generate(input_ids, **kwargs):
        sent.append(input_ids)
        return torch.cat([input_ids, torch.full_like(input_ids[:, :1], backend.tokenizer.eos_token_id)], 1)

    monkeypatch.setattr(backend.model, "generate", fake_generate)
    enc = Encoder(backend.processor)
    for prompt, image in [("is there a red circle?", images["red"]), ("how many objects?", None)]:
        backend.generate(
            [Request("r", (Message("user", prompt, (image,) if image else ()),), GenerationConfig())]
        )
        assert sent[-1][0].tolist() == enc.encode_prompt(prompt, image).ids


def test_text_only_tokenizer(images):
    from evalkit.toy.model import build_toy_tokenizer

    tok = build_toy_tokenizer()
    enc = Encoder(tok)
    batch = enc.encode_pairs([Pair("is there a dog?", "no.", "yes, a big dog.", None, "t")])
    assert batch.extras == {} and batch.input_ids.shape[0] == 2
    prompt = batch.input_ids[0][batch.attention_mask[0].bool() & ~batch.answer_mask[0]].tolist()
    assert (
        prompt
        == tok.apply_chat_template(
            [{"role": "user", "content": "is there a dog?"}], add_generation_prompt=True, tokenize=True
        )["input_ids"]
    )
    assert prompt.count(tok.bos_token_id) == 1  # the template writes BOS; none is added twice
    with pytest.raises(ValueError, match="text-only"):
        enc.encode_pairs([Pair("is there a dog?", "no.", "yes.", images["red"], "t")])


# ---- 3. references and step 0 -------------------------------------------------------------------------


def test_step_zero_loss_is_ln2_and_rewards_zero(toy, pairs):
    model, processor = toy
    batch = Encoder(processor).encode_pairs(pairs)
    ref = FrozenReference(model)
    with torch.no_grad():
        out = dpo_forward(model, ref, batch, beta=0.1)
        ipo = dpo_forward(model, ref, batch, beta=0.5, loss_type="ipo")
    assert abs(out.loss.item() - math.log(2)) < 1e-6
    assert out.chosen_rewards.abs().max() < 1e-6 and out.rejected_rewards.abs().max() < 1e-6
    assert out.margins.abs().max() < 1e-6 and out.accuracy.item() == 0.0
    assert abs(ipo.loss.item() - 1.0) < 1e-6  # (0 - 1/(2β))² at β = 0.5


def test_references_agree_and_stay_frozen(toy, pairs, tmp_path):
    from peft import LoraConfig, get_peft_model

    base, processor = copy.deepcopy(toy[0]), toy[1]
    enc = Encoder(processor)
    frozen = FrozenReference(base)  # taken before peft injects its layers into `base`
    policy = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    )
    adapter_off = AdapterOffReference(policy)
    cached = CachedReference.compute(policy, enc, pairs, batch_size=3)  # before any update
    cached_json = CachedReference.load(cached.save(tmp_path / "ckpt" / "ref_logps.json"))
    with pytest.raises(ValueError, match="no pickles"):  # a pickle could run code when read back
        cached.save(tmp_path / "ckpt" / "ref_logps.pt")

    batch = enc.encode_pairs(pairs)
    want = torch.cat(frozen.logps(batch))
    for ref in (adapter_off, cached, cached_json):
        # float32 sums of ~20 nats: batch composition moves the last bit (relative 1e-7)
        torch.testing.assert_close(torch.cat(ref.logps(batch)), want, rtol=1e-6, atol=1e-6)
    assert torch.equal(
        torch.cat(cached_json.logps(batch)), torch.cat(cached.logps(batch))
    )  # exact round trip

    # step 0: the zero-initialised adapter is the reference
    policy.train()
    out = dpo_forward(policy, cached, batch, beta=0.1)
    assert abs(out.loss.item() - math.log(2)) < 1e-6 and out.margins.abs().max() < 1e-6
    frozen_before = {k: v.clone() for k, v in frozen.model.state_dict().items()}
    base_before = {k: v.clone() for k, v in policy.named_parameters() if "lora_" not in k}
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    out.loss.backward()
    opt.step()
    assert all(torch.equal(v, frozen.model.state_dict()[k]) for k, v in frozen_before.items())
    assert all(torch.equal(v, dict(policy.named_parameters())[k]) for k, v in base_before.items())
    assert not any(p.requires_grad for p in frozen.model.parameters())
    torch.testing.assert_close(torch.cat(adapter_off.logps(batch)), want, rtol=0, atol=1e-6)
    with torch.no_grad():
        moved = sequence_logps(policy, batch).logps
    assert (moved - want).abs().max() > 1e-4  # the policy itself did move
    assert policy.training  # the reference pass restored the mode


def test_cached_reference_refuses_mismatches(toy, pairs):
    model, processor = toy
    cached = CachedReference.compute(model, Encoder(processor), pairs[:2])
    assert len(cached) == 2 and cached.meta["dtype"] == "float32"
    with pytest.raises(KeyError, match="p2"):
        cached.logps(Encoder(processor).encode_pairs(pairs[1:3]))
    with pytest.raises(ValueError, match="answer tokens"):
        room = len(Encoder(processor).encode_prompt(pairs[0].prompt, pairs[0].image).ids) + 2
        cached.logps(Encoder(processor, max_length=room).encode_pairs([pairs[0]]))
    with pytest.raises(ValueError, match="unique"):
        CachedReference.compute(model, Encoder(processor), [pairs[0], pairs[0]])


# ---- a model with multimodal RoPE (§5's tiny Qwen2-VL) --------------------------------------------------


def test_qwen2_vl_mrope_padding_and_native_forward(tmp_path):
    model, processor = tiny_qwen2_vl()
    paths = []
    for i, size in enumerate([(56, 84), (56, 56), (112, 112)]):  # different grids → different token counts
        Image.new("RGB", size, ["red", "blue", "green"][i]).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    pairs = [
        Pair("is it red?", "yes.", "no, it is a blue square.", paths[0], "a"),
        Pair("describe the image in a few words please.", "a blue thing.", "a cat.", paths[1], "b"),
        Pair("what is it?", "green.", "red.", paths[2], "c"),
        Pair("how many objects are there?", "one.", "two.", None, "d"),
    ]
    enc = Encoder(processor)
    batch = enc.encode_pairs(pairs)
    grids = batch.extras["image_grid_thw"]
    n_image = int((batch.input_ids == model.config.image_token_id).sum())
    assert n_image == int(grids.prod(-1).sum()) // 4 and len({int(g.prod()) for g in grids[:3]}) == 3
    together = _logps(model, batch)
    for k, pair in enumerate(pairs):
        alone_batch = enc.encode_pairs([pair])
        alone = _logps(model, alone_batch)
        torch.testing.assert_close(alone.logps, together.logps[[k, 4 + k]], rtol=0, atol=1e-5)
        # the model's own forward on the unpadded sequence (its own 3D positions) gives the same sum
        native = {
            k2: v[:1] if k2 != "pixel_values" else v[: len(v) // 2] for k2, v in alone_batch.extras.items()
        }
        with torch.no_grad():
            logits = model(input_ids=alone_batch.input_ids[:1], **native).logits
        want = answer_logps(logits, alone_batch.input_ids[:1], alone_batch.answer_mask[:1]).logps
        torch.testing.assert_close(alone.logps[:1], want, rtol=0, atol=1e-5)
