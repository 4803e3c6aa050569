"""The sampler (`evalkit.training.sampling`) on the untrained toy LLaVA: greedy decoding equals transformers'
`generate`, prefixes continue like generation over prompt+prefix, seeded sampling does not depend on the
batch, and image masking equals running the model without the dropped image positions."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from evalkit.toy.model import build_toy_model
from evalkit.training.batching import Encoder
from evalkit.training.sampling import SampleRequest, keep_mask, sample


@pytest.fixture(scope="module")
def toy():
    model, processor = build_toy_model(seed=0)
    return model, Encoder(processor)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("sampling-images")
    out = []
    for i, colour in enumerate(["red", "blue", "green"]):
        img = Image.new("RGB", (48, 48), colour)
        img.paste((255, 255, 255), (16 * i, 8, 16 * i + 12, 30))
        img.save(d / f"{i}.png")
        out.append(str(d / f"{i}.png"))
    return out


def _generate(model, enc: Encoder, prompt: str, image, extra_ids=(), n=10) -> list[int]:
    """transformers' greedy generate on one unpadded row (EOS dropped, as the sampler reports it)."""
    p = enc.encode_prompt(prompt, image)
    ids = torch.tensor([p.ids + list(extra_ids)])
    out = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), **p.extras, do_sample=False, max_new_tokens=n
    )
    tokens = out[0, ids.shape[1] :].tolist()
    return tokens[: tokens.index(enc.eos_token_id)] if enc.eos_token_id in tokens else tokens


def test_greedy_equals_generate_in_a_padded_batch(toy, images):
    model, enc = toy
    reqs = [
        SampleRequest("is there a red circle in the image?", images[0]),
        SampleRequest("describe the image.", images[1]),
        SampleRequest("what colour is the square on the left side of the picture?", images[2]),
        SampleRequest("how many objects are there?"),  # text only
    ]
    got = sample(model, enc, reqs, max_new_tokens=10, temperature=0, batch_size=4)
    for req, s in zip(reqs, got, strict=True):
        want = _generate(model, enc, req.prompt, req.image)
        assert s.token_ids == want
        assert s.text == enc.tokenizer.decode(want, skip_special_tokens=True)
        assert s.finished == (len(want) < 10)
    assert [s.image_positions for s in got] == [9, 9, 9, 0] and [s.image_kept for s in got] == [9, 9, 9, 0]


def test_prefix_continues_like_generation_over_prompt_and_prefix(toy, images):
    model, enc = toy
    prefix = "there is a red"
    prefix_ids = enc.tokenizer(prefix, add_special_tokens=False)["input_ids"]
    reqs = [SampleRequest("describe the image.", images[0], prefix=prefix), SampleRequest("hi", None)]
    s = sample(model, enc, reqs, max_new_tokens=8, temperature=0)[0]
    want = _generate(model, enc, "describe the image.", images[0], prefix_ids, n=8)
    assert s.token_ids == want
    whole = enc.tokenizer.decode(prefix_ids + want, skip_special_tokens=True)
    assert prefix + s.text == whole  # the continuation joins the prefix as in the whole answer


def test_seeded_sampling_is_independent_of_batching(toy, images):
    model, enc = toy
    reqs = [SampleRequest(f"describe the image in {w} words.", images[i % 3]) for i, w in enumerate("abcde")]
    kw = dict(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=7)
    together = sample(model, enc, reqs, batch_size=5, **kw)
    alone = sample(model, enc, reqs, batch_size=1, **kw)
    assert [s.token_ids for s in together] == [s.token_ids for s in alone]
    # the same request among other companions, at the same index, draws the same sample
    swapped = sample(model, enc, [reqs[0], SampleRequest("hello there.")], batch_size=2, **kw)
    assert swapped[0].token_ids == together[0].token_ids
    other_seed = sample(model, enc, reqs, batch_size=5, **{**kw, "seed": 8})
    assert [s.token_ids for s in other_seed] != [s.token_ids for s in together]
    # an explicit per-request seed replaces (seed, index)
    own = [SampleRequest(r.prompt, r.image, seed=123) for r in reqs[:2]]
    a, b = sample(model, enc, own, **kw)
    assert a.token_ids != together[0].token_ids or b.token_ids != together[1].token_ids
    assert sample(model, enc, own[::-1], **kw)[1].token_ids == a.token_ids


def test_keep_mask_rate():
    g = torch.Generator().manual_seed(0)
    assert sum(keep_mask(100_000, 0.01, g)) == pytest.approx(1000, abs=4 * (1000 * 0.99) ** 0.5)
    assert not any(keep_mask(1000, 0.0, g)) and all(keep_mask(1000, 1.0, g))


def test_image_keep_rate_in_the_sampler(toy, images):
    model, enc = toy
    reqs = [SampleRequest("is there a cup?", images[i % 3], image_keep=0.3) for i in range(60)]
    got = sample(model, enc, reqs, max_new_tokens=1, temperature=0, batch_size=30)
    k = sum(s.image_positions for s in got)
    kept = sum(s.image_kept for s in got)
    assert k == 540 and kept == pytest.approx(0.3 * k, abs=4 * (k * 0.3 * 0.7) ** 0.5)
    assert all(len(s.kept_positions) == s.image_kept for s in got)


def _greedy_without(model, enc: Encoder, prompt: str, image, dropped: set[int], n: int) -> list[int]:
    """Greedy decoding, without cache or attention mask, of the prompt's merged input embeddings with the
    `dropped` positions deleted and every other position keeping its original position id."""
    p = enc.encode_prompt(prompt, image)
    ids = torch.tensor([p.ids])
    captured = {}

    def grab(_module, _args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"]

    lm = model.model.language_model
    handle = lm.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids), **p.extras)
    handle.remove()
    keep = [i for i in range(len(p.ids)) if i not in dropped]
    embeds = captured["embeds"][:, keep]
    positions = torch.tensor([keep])
    tokens: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            mask = torch.ones(positions.shape, dtype=torch.long)  # None would read the gaps as packed rows
            hidden = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False)
            hidden = hidden.last_hidden_state
            token = int(model.lm_head(hidden[:, -1]).argmax(-1))
            if token == enc.eos_token_id:
                break
            tokens.append(token)
            embeds = torch.cat([embeds, model.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
            positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
    return tokens


@pytest.mark.parametrize("keep", [0.0, 0.5])
def test_masked_image_equals_deleting_those_positions(toy, images, keep):
    model, enc = toy
    prompts = ["describe the image.", "is there a dog in the picture?"]
    reqs = [SampleRequest(q, images[i], image_keep=keep) for i, q in enumerate(prompts)]
    got = sample(model, enc, reqs, max_new_tokens=8, temperature=0, seed=3)
    if keep == 0.5:
        assert 0 < sum(s.image_kept for s in got) < 18
    unmasked = sample(
        model, enc, [SampleRequest(r.prompt, r.image) for r in reqs], max_new_tokens=8, temperature=0
    )
    for req, s, full in zip(reqs, got, unmasked, strict=True):
        ids = enc.encode_prompt(req.prompt, req.image).ids
        image_pos = {i for i, t in enumerate(ids) if t == model.config.image_token_index}
        assert set(s.kept_positions) <= image_pos and len(image_pos) == s.image_positions == 9
        dropped = image_pos - set(s.kept_positions)
        assert s.token_ids == _greedy_without(model, enc, req.prompt, req.image, dropped, 8)
        assert full.token_ids == _greedy_without(model, enc, req.prompt, req.image, set(), 8)
    assert [s.token_ids for s in got] != [s.token_ids for s in unmasked]  # the mask has an effect


def test_keep_one_is_unmasked(toy, images):
    model, enc = toy
    a = sample(model, enc, [SampleRequest("what is it?", images[0], image_keep=1.0)], max_new_tokens=6)
    b = sample(model, enc, [SampleRequest("what is it?", images[0])], max_new_tokens=6)
    assert a[0].token_ids == b[0].token_ids and a[0].image_kept == 9


def test_peft_model_samples_and_keeps_train_mode(toy, images):
    from peft import LoraConfig, get_peft_model

    model, enc = toy
    base_out = sample(model, enc, [SampleRequest("describe the image.", images[1])], max_new_tokens=6)
    import copy

    policy = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    )
    policy.train()
    out = sample(
        policy, enc, [SampleRequest("describe the image.", images[1], image_keep=0.5)], max_new_tokens=6
    )
    assert policy.training and out[0].image_positions == 9  # image token id found through the wrapper
    same = sample(policy, enc, [SampleRequest("describe the image.", images[1])], max_new_tokens=6)
    assert same[0].token_ids == base_out[0].token_ids  # fresh LoRA (B = 0) is the base model
    model.eval()
    sample(model, enc, [SampleRequest("hi")], max_new_tokens=1)
    assert not model.training


# ---- stopping rules, on a scripted model ---------------------------------------------------------------


class _Scripted(torch.nn.Module):
    """Emits a fixed token sequence whatever the input (the step is the cache length)."""

    def __init__(self, script: list[int], vocab: int, image_token_index: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.script, self.vocab = script, vocab
        self.config = type("C", (), {"image_token_index": image_token_index})()
        self.calls: list[dict] = []

    def forward(self, input_ids, attention_mask, past_key_values=None, **kwargs):
        self.calls.append({"input_ids": input_ids, "attention_mask": attention_mask, **kwargs})
        step = 0 if past_key_values is None else past_key_values
        logits = torch.zeros(input_ids.shape[0], 1, self.vocab)
        logits[:, -1, self.script[min(step, len(self.script) - 1)]] = 10.0
        return type("O", (), {"logits": logits, "past_key_values": step + 1})()


def _script(enc: Encoder, text: str) -> list[int]:
    return enc.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_stop_at_sentence_end_and_eos(toy):
    _, enc = toy
    vocab, img = len(enc.tokenizer), enc.tokenizer.convert_tokens_to_ids("<image>")
    fake = _Scripted(_script(enc, "there is a dog . it is red ."), vocab, img)
    s = sample(fake, enc, [SampleRequest("describe.")], temperature=0, stop_at_sentence_end=True)[0]
    assert (s.text, s.finished, s.token_ids) == ("there is a dog.", True, _script(enc, "there is a dog ."))
    s = sample(fake, enc, [SampleRequest("describe.")], temperature=0, max_new_tokens=3)[0]
    assert (s.text, s.finished) == ("there is a", False)
    fake = _Scripted([*_script(enc, "a cup"), enc.eos_token_id], vocab, img)
    s = sample(fake, enc, [SampleRequest("describe.")], temperature=0, stop_at_sentence_end=True)[0]
    assert (s.text, s.finished, s.token_ids) == ("a cup", True, _script(enc, "a cup"))


def test_positions_ignore_the_image_mask(toy, images):
    _, enc = toy
    vocab, img = len(enc.tokenizer), enc.tokenizer.convert_tokens_to_ids("<image>")
    fake = _Scripted(_script(enc, "a b c"), vocab, img)
    reqs = [SampleRequest("what is it?", images[0], image_keep=0.0), SampleRequest("what is it now, then?")]
    sample(fake, enc, reqs, temperature=0, max_new_tokens=3)
    first, second = fake.calls[0], fake.calls[1]
    mask, pos = first["attention_mask"], first["position_ids"]
    ids = first["input_ids"]
    assert (mask[0][ids[0] == img] == 0).all() and int((ids[0] == img).sum()) == 9
    pad = (ids[0] == enc.pad_token_id).sum()
    assert pos[0, pad:].tolist() == list(range(ids.shape[1] - int(pad)))  # no gap at the masked image
    assert second["position_ids"][:, 0].tolist() == [int(pos[0, -1]) + 1, int(pos[1, -1]) + 1]
    assert "pixel_values" in first and "pixel_values" not in second


def test_models_with_own_positions_refuse_image_masking(toy, images):
    _, enc = toy
    vocab, img = len(enc.tokenizer), enc.tokenizer.convert_tokens_to_ids("<image>")

    class OwnPositions(_Scripted):
        def get_rope_index(self, *args, **kwargs):
            raise AssertionError("not called")

    fake = OwnPositions(_script(enc, "a b c"), vocab, img)
    fake.rope_deltas = torch.tensor([[-5]])  # what a Qwen2-VL prefill stores: 3D position - text position
    with pytest.raises(ValueError, match="image_keep is not supported"):
        sample(fake, enc, [SampleRequest("what is it?", images[0], image_keep=0.01)], max_new_tokens=2)
    sample(fake, enc, [SampleRequest("what is it?", images[0])], max_new_tokens=3, temperature=0)
    prefill, step1, step2 = fake.calls
    n = prefill["input_ids"].shape[1]
    assert "position_ids" not in prefill  # the model computes its own (multimodal) positions
    assert (
        step1["position_ids"].tolist() == [[[n - 5]]] * 3
        and step2["position_ids"].tolist() == [[[n - 4]]] * 3
    )


def test_qwen2_vl_greedy_equals_generate(tmp_path):
    from support.models import tiny_qwen2_vl  # the tiny offline Qwen2-VL of the DPO tests

    model, processor = tiny_qwen2_vl()
    enc = Encoder(processor)
    paths = []
    for i, size in enumerate([(56, 84), (56, 56)]):  # different grids: different image-token counts
        Image.new("RGB", size, ["red", "blue"][i]).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    reqs = [
        SampleRequest("describe the image please.", paths[0]),
        SampleRequest("what?", paths[1]),
        SampleRequest("hello there my friend, how are you?"),
    ]
    got = sample(model, enc, reqs, max_new_tokens=8, temperature=0)
    for req, s in zip(reqs, got, strict=True):
        assert s.token_ids == _generate(model, enc, req.prompt, req.image, n=8)
    assert got[0].image_positions != got[1].image_positions and got[2].image_positions == 0
    with pytest.raises(ValueError, match="image_keep is not supported"):
        sample(model, enc, [SampleRequest("what?", paths[1], image_keep=0.5)], max_new_tokens=2)
