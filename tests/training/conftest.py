"""Fixtures of the training tests."""

import pytest
import torch
from support.training import write_train_world

from evalkit.toy.world import OBJECTS


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A saved random toy base model, 16 DPO pairs (chosen names an object in the image, rejected an
    absent one) and the matching SFT examples (support/training.py)."""
    return write_train_world(tmp_path_factory.mktemp("train-world"))


@pytest.fixture(scope="module")
def word_embedder(tmp_path_factory):
    """A tiny BERT over the toy nouns, saved as a local sentence-embedding folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", *OBJECTS, "and", ",", "."]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("embedder") / "bert"
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
