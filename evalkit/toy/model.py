"""The built-in toy model: a tiny LLaVA with an offline word-level tokenizer.

It is built from transformers config classes (no download, random init: `build_toy_model`), then
`ensure_toy_model` warms it up briefly (`evalkit.toy.pretrain.warm_up`: POPE-style yes/no questions and
captions on toy-world scenes from a training seed disjoint from the evaluation seed 0, so it answers
"Yes"/"No" and stops, above chance) and saves it once as an ordinary checkpoint, which is from then on
loaded like any other checkpoint by `evalkit.models.hf`.

Shapes: LLaMA text (hidden 128, 4 layers, 4 heads, 2 KV heads) and CLIP vision (hidden 128, 2 layers,
48×48 images, patch 16 → 3×3 = 9 patches + CLS). With `vision_feature_select_strategy="default"` the model
drops CLS, so it yields 9 image features; the processor counts `9 + 1 (CLS) - 1 = 9` `<image>` tokens.
The PIL image processor (`CLIPImageProcessorPil`) is used because torchvision is not installed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from evalkit.toy.pretrain import warm_up
from evalkit.util import environment

#: the cache folder of the built checkpoint; its version names the build recipe (shapes, tokenizer, warm-up):
#: bump it with any change there, so that no cache keeps serving an older build under the same name
TOY_MODEL_NAME = "toy-llava-v3"
WARMUP_STEPS = 300  # about a minute on one thread (the log line below says so); toy POPE accuracy ~0.7
IMAGE_SIZE = 48
PATCH_SIZE = 16
NUM_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2

PAD, UNK, BOS, EOS, IMAGE = "<pad>", "<unk>", "<s>", "</s>", "<image>"
ROLE_TOKENS = ("<system>", "<user>", "<assistant>")
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, IMAGE, *ROLE_TOKENS)

# Renders `content` given as a string or as a list of {"type": "image"} / {"type": "text"} parts.
# Assistant turns end with EOS and are wrapped in {% generation %} so trainers can ask for an assistant mask.
CHAT_TEMPLATE = (
    "{% macro render(content) %}"
    "{% if content is string %}{{ content | trim }}"
    "{% else %}{% for part in content %}{{ '' if loop.first else ' ' }}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% endmacro %}"
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<' + message['role'] + '> ' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ render(message['content']) }}{{ eos_token }}{% endgeneration %}"
    "{% else %}{{ render(message['content']) }}{% endif %}"
    "{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}"
)

_PUNCTUATION = ". , ? ! : ; ' \" ( ) - / & % + = #"
_NUMBERS = " ".join(str(n) for n in [*range(101), 1000])
_CONTRACTION_PARTS = (
    "s t re ve ll d m don doesn didn isn aren wasn weren can won couldn wouldn shouldn haven hasn"
)
_FUNCTION_WORDS = """
a an the this that these those there here it its they them their he she him her his hers we us our
you your i me my mine is are was were be been being am do does did done doing have has had having can
could will would shall should may might must not no yes none nothing something anything everything
and or but if then than so because as of in on at to from by with without for about into onto over under
above below between behind beside near next inside outside through across around along up down out off
left right top bottom middle center centre front back side corner edge row column grid cell part half
what which who whom whose where when why how many much more most less least few several some any all
both each every either neither other another only just also too very really quite almost same different
one two three four five six seven eight nine ten eleven twelve zero first second third fourth last
number count total pair single double once twice
"""
_COMMON_WORDS = """
image picture photo photograph scene view frame object objects thing things item items shape shapes color
colour colors colours size kind type answer question caption description describe describes describing
see seen sees look looks looking show shows shown showing appear appears contain contains containing
visible present absent exist exists there's find found name named call called tell say said think know
please given choose option options correct true false wrong right best following word words sentence
detail details briefly short long explain reason because example note
big small large little tiny huge tall wide narrow thick thin long short round flat bright dark light
heavy empty full open closed new old young hot cold warm cool wet dry clean dirty good bad happy sad
fast slow high low early late hard soft loud quiet simple plain solid striped dotted filled outlined
sit sits sitting stand stands standing lie lies lying hold holds holding walk walks walking run runs
running ride rides riding eat eats eating drink play plays playing fly flies flying swim wear wears
wearing carry carries carrying make makes made use uses used go goes going come comes get gets put
move moves moving place placed placing give gives take takes keep want need like likes help try
man woman men women boy girl child children people person baby kid player someone somebody group
water sky ground grass field road street floor wall room table desk window door house building city
park beach sea ocean river lake mountain hill tree trees forest snow rain sun moon star cloud light
day night morning evening time year today background foreground
"""
_COLOURS = """
red green blue yellow orange purple pink brown black white gray grey cyan magenta violet gold silver
beige navy teal maroon olive
"""
_SHAPES = """
circle square triangle rectangle star diamond oval hexagon pentagon cross heart ring dot line arrow
cube sphere cone cylinder pyramid disk disc blob stripe spiral plus
"""
_NOUNS = """
person bicycle bike car motorcycle airplane plane bus train truck boat ship traffic sign bench bird cat
dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag bag tie suitcase frisbee ski
snowboard ball kite bat glove skateboard surfboard racket bottle glass cup fork knife spoon bowl plate
banana apple sandwich orange broccoli carrot pizza donut cake chair couch sofa plant bed toilet tv
television laptop computer mouse remote keyboard phone microwave oven toaster sink refrigerator fridge
book clock vase scissors teddy toothbrush lamp pillow blanket towel mirror shelf box basket bucket cap
hat shoe shirt dress coat jacket bag key coin ring watch pen pencil paper cards card flower leaf rock
stone stick log fence pole flag kite balloon candle bell drum guitar piano fish duck chicken rabbit
mouse fox lion tiger monkey frog snake turtle owl pig goat deer wolf egg bread cheese cookie cherry
grape lemon lime pear peach strawberry tomato potato onion corn mushroom pepper berry fruit vegetable
food meal drink tea coffee milk juice wine bottle jar pot pan kettle cup mug teapot wheel tire door
window roof chimney bridge tower castle tent boat anchor rocket robot doll toy block brick ladder rope
hammer saw tool bucket shovel sword shield crown umbrella
"""
_PLURAL_SOURCE = _SHAPES + _NOUNS + " ".join(["man", "woman", "child", "person", "tree", "cloud", "word"])
_IRREGULAR_PLURALS = {
    "man": "men",
    "woman": "women",
    "child": "children",
    "person": "people",
    "mouse": "mice",
}
_IRREGULAR_PLURALS |= {"fish": "fish", "sheep": "sheep", "deer": "deer", "knife": "knives", "leaf": "leaves"}
_IRREGULAR_PLURALS |= {"wolf": "wolves", "shelf": "shelves"}


def plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")) or noun in {"tomato", "potato"}:
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _world_words() -> list[str]:
    """Words of `evalkit.toy.world.OBJECTS` when that module exists (it is optional here)."""
    try:
        from evalkit.toy import world  # type: ignore[attr-defined]
    except ImportError:
        return []
    words: list[str] = []
    for obj in getattr(world, "OBJECTS", ()):
        name = (
            obj
            if isinstance(obj, str)
            else obj.get("name")
            if isinstance(obj, dict)
            else getattr(obj, "name", "")
        )
        for w in str(name or "").lower().split():
            words += [w, plural(w)]
    return words


def toy_vocab() -> list[str]:
    """Deterministic vocabulary: special tokens, punctuation, numbers, then words in first-seen order."""
    words = [*_PUNCTUATION.split(), *_NUMBERS.split(), *_CONTRACTION_PARTS.split()]
    for block in (_FUNCTION_WORDS, _COMMON_WORDS, _COLOURS, _SHAPES, _NOUNS):
        words += block.split()
    words += [plural(n) for n in _PLURAL_SOURCE.split()]
    words += _world_words()
    seen: dict[str, None] = dict.fromkeys(SPECIAL_TOKENS)
    for w in words:
        seen.setdefault(w, None)
    return list(seen)


def build_toy_tokenizer():
    """A lowercasing word-level tokenizer (splits on whitespace and punctuation) as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(toy_vocab())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    # WordPiece's decoder joins words with spaces and drops the space before . , ? ! (per token); the
    # wrapper's clean_up_tokenization_spaces then joins contractions ("it ' s" → "it's") on the whole string.
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_special_tokens(list(SPECIAL_TOKENS))  # matched before normalisation; ids stay as in `vocab`
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        extra_special_tokens={"image_token": IMAGE},
        model_max_length=2048,
        padding_side="left",
        clean_up_tokenization_spaces=True,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_toy_processor():
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=build_toy_tokenizer(),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped again by the "default" strategy
        chat_template=CHAT_TEMPLATE,
    )


def build_toy_config(tokenizer) -> Any:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id}
    ids["eos_token_id"] = tokenizer.eos_token_id
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        **ids,
    )
    vision = CLIPVisionConfig(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=128,
    )
    return LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=NUM_IMAGE_TOKENS,
        **ids,
    )


def build_toy_model(seed: int = 0):
    """(model, processor): a randomly initialised tiny LLaVA; the same seed gives the same weights.

    The global torch RNG state is left untouched (initialisation runs inside `fork_rng`).
    """
    import torch
    from transformers import LlavaForConditionalGeneration

    processor = build_toy_processor()
    config = build_toy_config(processor.tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    model.eval()
    gen = model.generation_config
    gen.pad_token_id, gen.bos_token_id, gen.eos_token_id = (
        config.pad_token_id,
        config.bos_token_id,
        config.eos_token_id,
    )
    return model, processor


def cache_root(cache_dir: Path | None = None) -> Path:
    """`cache_dir`, else `$EVALKIT_CACHE`, else `~/.cache/evalkit`."""
    return Path(cache_dir) if cache_dir is not None else environment.cache_root()


def ensure_toy_model(cache_dir: Path | None = None) -> Path:
    """Path of the saved toy checkpoint, building (seed 0), warming up and saving it on first use.

    The checkpoint is written to a temporary sibling folder and renamed into place, so the final folder
    exists only when complete; a concurrent builder that loses the race discards its copy.
    """
    final = cache_root(cache_dir) / "models" / TOY_MODEL_NAME
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{TOY_MODEL_NAME}.tmp-", dir=final.parent))
    try:
        print("building the toy model (one-time, about a minute)…", file=sys.stderr, flush=True)
        with environment.torch_threads(1):  # the same weights whatever the caller's thread count
            model, processor = build_toy_model(seed=0)
            warm_up(model, processor, steps=WARMUP_STEPS, seed=0)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Writing model shards" bar for a one-file checkpoint
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a lost race: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _remove_stale_temp_dirs(parent: Path, max_age_s: float = 3600.0) -> None:
    """Remove temp folders left by killed builds (older than an hour, so live builders are safe)."""
    for p in parent.glob(f".{TOY_MODEL_NAME}.tmp-*"):
        try:
            if time.time() - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
