"""The official LLaVA generation protocol (`--prompt-style`, `--image-pad`): prompt strings written out by
hand from haotian-liu/LLaVA's `conversation.py` (conv_vicuna_v1, conv_llava_v1, SeparatorStyle.TWO), the
token ids of its `tokenizer_image_token`, `expand2square` padding checked on pixels, the run identity, and
training encoding exactly what evaluation sends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support.families.llava import build_llava_15

from evalkit.models.base import BackendOptions, load_backend
from evalkit.models.prompt import LLAVA_CONVERSATIONS, render_llava
from evalkit.models.protocol import PROTOCOL_FILE, Protocol, check_protocol, write_protocol_file
from evalkit.types import GenerationConfig, Message, Request, UserError

pytestmark = pytest.mark.usefixtures("one_thread")

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
LLAVA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions."
)
#: a token the test tokenizer writes at the start of every separately tokenized text (after BOS), as
#: LLaMA's sentencepiece writes its "▁" dummy prefix: LLaVA tokenizes each piece between images on its own
PREFIX = "umbrellas"


def _vicuna(*turns: Message) -> str:
    return render_llava(turns, LLAVA_CONVERSATIONS["llava_v1.5"])


def test_vicuna_v1_one_turn_with_an_image():
    prompt = _vicuna(Message("user", "What is shown?", ("a.png",)))
    assert prompt == VICUNA_SYSTEM + " USER: <image>\nWhat is shown? ASSISTANT:"


def test_vicuna_v1_multi_turn_closes_answers_with_eos():
    prompt = _vicuna(
        Message("user", "What is shown?", ("a.png",)),
        Message("assistant", "A cat."),
        Message("user", "What colour is it?"),
    )
    assert prompt == (
        VICUNA_SYSTEM
        + " USER: <image>\nWhat is shown? ASSISTANT: A cat.</s>USER: What colour is it? ASSISTANT:"
    )


def test_llava_v1_has_its_own_system_prompt():
    prompt = render_llava((Message("user", "Is it red?"),), LLAVA_CONVERSATIONS["llava_v1"])
    assert prompt == LLAVA_V1_SYSTEM + " USER: Is it red? ASSISTANT:"


def test_a_system_message_replaces_the_template_system_prompt():
    prompt = _vicuna(Message("system", "Be brief."), Message("user", "Hi"))
    assert prompt == "Be brief. USER: Hi ASSISTANT:"


@pytest.mark.parametrize(
    "turns",
    [
        (Message("assistant", "Hello"), Message("user", "Hi")),
        (Message("user", "Hi"), Message("assistant", "Hello")),
        (Message("user", "Hi"), Message("user", "Again")),
    ],
)
def test_turns_that_are_not_user_assistant_alternating_are_refused(turns):
    with pytest.raises(ValueError, match="vicuna_v1"):
        _vicuna(*turns)


def test_unknown_protocol_names_are_one_line_errors():
    with pytest.raises(UserError, match="--prompt-style 'llava' is not one of chat-template, llava_v1.5"):
        load_backend("toy", BackendOptions(prompt_style="llava"))
    with pytest.raises(UserError, match="--image-pad 'pad'"):
        Protocol(image_pad="pad")
    with pytest.raises(UserError, match="--sampling 'hf'"):
        load_backend("toy", BackendOptions(sampling="hf"))
    with pytest.raises(UserError, match="apply to local checkpoints"):
        load_backend("openai:gpt-4o", BackendOptions(prompt_style="llava_v1.5"))


def test_llava_styles_need_a_processor_that_expands_the_llava_placeholder():
    class Processor:  # a processor whose image placeholder is not LLaVA's
        image_token = "<|image_pad|>"
        image_token_id = 7

    with pytest.raises(UserError, match="'<image>' placeholder, which 'm'.s processor does not expand"):
        check_protocol(Protocol("llava_v1.5"), Processor(), None, "m")
    with pytest.raises(UserError, match="--image-pad square applies to image models"):
        check_protocol(Protocol(image_pad="square"), None, None, "m")


# ---- a tiny LLaVA-1.5 whose tokenizer adds BOS and a prefix token, as LLaMA's does ----------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from tokenizers import processors
    from transformers import AutoProcessor

    path = tmp_path_factory.mktemp("llava15-bos")
    build_llava_15(path)
    processor = AutoProcessor.from_pretrained(path)
    tok = processor.tokenizer
    assert PREFIX in tok.get_vocab()  # a word of the toy vocabulary that no prompt here uses
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tok.bos_token} {PREFIX} $A",
        special_tokens=[(tok.bos_token, tok.bos_token_id), (PREFIX, tok.convert_tokens_to_ids(PREFIX))],
    )
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def wide_image(tmp_path_factory) -> str:
    """40x20, red with a blue block: padded to 40x40 it has 10 rows of the mean colour above and below."""
    path = tmp_path_factory.mktemp("protocol-images") / "wide.png"
    image = Image.new("RGB", (40, 20), (220, 20, 20))
    image.paste((20, 20, 220), (5, 5, 15, 15))
    image.save(path)
    return str(path)


def _backend(path: Path, **options):
    return load_backend(str(path), BackendOptions(device="cpu", dtype="float32", **options))


def _inputs_of_first_forward(backend, requests: list[Request]) -> dict:
    """The tensors `generate` hands the model (prompt ids, pixel values), recorded around the real call."""
    seen: list[dict] = []
    real = backend.model.generate

    def recording(**kwargs):
        seen.append({k: v.clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
        return real(**kwargs)

    backend.model.generate = recording
    try:
        responses = backend.generate(requests)
    finally:
        del backend.model.generate
    assert all(r.error is None for r in responses), responses
    return seen[0]


def _ask(question: str, image: str | None = None, rid: str = "q") -> Request:
    msg = Message("user", question, (image,) if image else ())
    return Request(rid, (msg,), GenerationConfig(max_new_tokens=3))


def test_llava_prompt_is_tokenized_piecewise_with_one_bos(checkpoint, wide_image):
    """LLaVA's tokenizer_image_token: each piece between images tokenized alone (so each starts with the
    tokenizer's prefix token), BOS kept once, the placeholder expanded to the processor's image tokens."""
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    config = AutoConfig.from_pretrained(checkpoint)
    backend = _backend(checkpoint, prompt_style="llava_v1.5")
    seen = _inputs_of_first_forward(backend, [_ask("what is it", wide_image)])

    def words(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    pfx = tok.convert_tokens_to_ids(PREFIX)
    expected = [
        tok.bos_token_id,
        pfx,
        *words(VICUNA_SYSTEM + " USER: "),
        *[config.image_token_index] * config.image_seq_length,
        pfx,
        *words("\nwhat is it ASSISTANT:"),
    ]
    assert seen["input_ids"][0].tolist() == expected


def test_default_protocol_keeps_the_checkpoint_template_and_encoding(checkpoint, wide_image):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    backend = _backend(checkpoint)
    ids = _inputs_of_first_forward(backend, [_ask("what is it", wide_image)])["input_ids"][0].tolist()
    assert ids.count(tok.bos_token_id) == 1 and ids.count(tok.convert_tokens_to_ids(PREFIX)) == 1
    assert tok.decode(ids, skip_special_tokens=False).count("chat") == 0  # no system prompt
    assert "protocol" not in backend.fingerprint() and "sampling" not in backend.fingerprint()


def test_llava_style_batches_like_one_at_a_time(checkpoint, wide_image, tmp_path):
    square = tmp_path / "square.png"
    Image.new("RGB", (30, 30), (10, 200, 10)).save(square)
    backend = _backend(checkpoint, prompt_style="llava_v1.5", image_pad="square")
    requests = [
        _ask("what is it", wide_image, "a"),
        _ask("is the square green or is it red", str(square), "b"),
        _ask("hello", None, "c"),
    ]
    together = backend.generate(requests)
    alone = [backend.generate([r])[0] for r in requests]
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.prompt_tokens for r in together] == [r.prompt_tokens for r in alone]


def test_square_padding_uses_the_image_processor_mean_colour(checkpoint, wide_image):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(checkpoint)
    mean = processor.image_processor.image_mean
    background = tuple(int(x * 255) for x in mean)
    by_hand = Image.new("RGB", (40, 40), background)
    by_hand.paste(Image.open(wide_image).convert("RGB"), (0, 10))
    want = processor.image_processor(images=[by_hand], return_tensors="pt")["pixel_values"]

    padded = _inputs_of_first_forward(_backend(checkpoint, image_pad="square"), [_ask("what", wide_image)])
    torch.testing.assert_close(padded["pixel_values"], want)
    # the 32x32 model input: its top rows are the padding, the mean colour normalised
    std = torch.tensor(processor.image_processor.image_std)
    pad_value = (torch.tensor(background) / 255 - torch.tensor(mean)) / std
    torch.testing.assert_close(padded["pixel_values"][0, :, :5, :], pad_value[:, None, None].expand(3, 5, 32))

    cropped = _inputs_of_first_forward(_backend(checkpoint), [_ask("what", wide_image)])
    assert not torch.allclose(cropped["pixel_values"][0, :, :5, :], pad_value[:, None, None].expand(3, 5, 32))


def test_protocol_is_part_of_the_run_identity(checkpoint):
    from evalkit.runner import evaluate

    runs = {}
    for name, options in {
        "default": BackendOptions(device="cpu", dtype="float32"),
        "llava": BackendOptions(device="cpu", dtype="float32", prompt_style="llava_v1.5", image_pad="square"),
    }.items():
        runs[name] = evaluate(
            str(checkpoint),
            "pope",
            data="toy",
            limit=2,
            results_root=checkpoint.parent / "results",
            backend_options=options,
            progress=False,
        )
    default, llava = runs["default"], runs["llava"]
    assert default.run_dir != llava.run_dir
    assert default.header["config_hash"] != llava.header["config_hash"]
    assert "protocol" not in default.header["model"]["fingerprint"]
    recorded = llava.header["model"]["fingerprint"]["protocol"]
    assert recorded == {"prompt_style": "llava_v1.5", "image_pad": "square"}
    assert llava.header["model"]["protocol"]["source"] == "options"


def test_a_checkpoint_records_its_protocol_and_evaluation_uses_it(checkpoint, tmp_path):
    trained = tmp_path / "trained"
    shutil.copytree(checkpoint, trained)
    write_protocol_file(trained, Protocol("llava_v1", "square"))
    assert json.loads((trained / PROTOCOL_FILE).read_text())["prompt_style"] == "llava_v1"

    backend = _backend(trained)
    assert backend.protocol == Protocol("llava_v1", "square")
    assert backend.info()["protocol"]["source"] == "checkpoint"
    assert backend.fingerprint()["protocol"] == {"prompt_style": "llava_v1", "image_pad": "square"}
    assert backend.prompting.render((Message("user", "Hi"),)).startswith(LLAVA_V1_SYSTEM)

    explicit = _backend(trained, prompt_style="chat-template", image_pad="none")
    assert explicit.protocol == Protocol() and "protocol" not in explicit.fingerprint()
    assert explicit.info()["protocol"]["source"] == "checkpoint+options"
    assert write_protocol_file(tmp_path, Protocol()) is None  # the default records nothing


def test_training_encodes_exactly_what_evaluation_sends(checkpoint, wide_image):
    from transformers import AutoProcessor

    from evalkit.training.batching import Encoder

    protocol = Protocol("llava_v1.5", "square")
    backend = _backend(checkpoint, prompt_style="llava_v1.5", image_pad="square")
    seen = _inputs_of_first_forward(backend, [_ask("what is it", wide_image)])
    encoder = Encoder(AutoProcessor.from_pretrained(checkpoint), protocol=protocol)
    prompt = encoder.encode_prompt("what is it", wide_image)
    assert prompt.ids == seen["input_ids"][0].tolist()
    np.testing.assert_allclose(prompt.extras["pixel_values"].numpy(), seen["pixel_values"].numpy())


def test_train_records_the_protocol_in_the_checkpoint(checkpoint, wide_image, tmp_path):
    from evalkit.training.trainer import train

    pairs = tmp_path / "pairs.jsonl"
    row = {"prompt": "what is it", "image": wide_image, "chosen": "a red circle", "rejected": "a blue dog"}
    pairs.write_text("".join(json.dumps({**row, "id": f"p{i}"}) + "\n" for i in range(2)))
    out = tmp_path / "out"
    train(
        method="dpo",
        model=str(checkpoint),
        data=str(pairs),
        output=str(out),
        max_steps=1,
        batch_size=2,
        lora_rank=0,
        save_every=0,
        prompt_style="llava_v1.5",
        image_pad="square",
    )
    config = json.loads((out / "train_config.json").read_text())["config"]
    assert (config["prompt_style"], config["image_pad"]) == ("llava_v1.5", "square")
    assert json.loads((out / PROTOCOL_FILE).read_text())["prompt_style"] == "llava_v1.5"
    assert _backend(out).protocol == Protocol("llava_v1.5", "square")
    with pytest.raises(UserError, match="--prompt-style 'vicuna'"):
        train(method="dpo", model=str(checkpoint), data=str(pairs), output=str(out), prompt_style="vicuna")
