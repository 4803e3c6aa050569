"""Text-only causal LMs: Llama 3 (meta-llama/Llama-3.2-1B-Instruct), Qwen2 (Qwen/Qwen2.5-0.5B-Instruct) and
Phi-3 (microsoft/Phi-3-mini-4k-instruct) shapes: each family's model class and config quirks (Llama 3's
rope scaling and tied embeddings, Qwen2's q/k/v biases, Phi-3's fused qkv_proj), its special tokens
(bos/eos/pad as its tokenizer_config.json names them, the end-of-turn ids of its generation_config.json)
and its chat template (the hub's, without the tool-calling branches)."""

from __future__ import annotations

import json
from pathlib import Path

from support.families import Family
from support.families.common import TEXT, save, seeded, tokenizer

#: Llama-3.2-1B-Instruct's template (tools left out): a system header with the knowledge-cutoff and date
#: lines always written, then one header per message, each turn closed by <|eot_id|>
LLAMA3_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    '{%- set date_string = strftime_now("%d %b %Y") %}{%- else %}{%- set date_string = "26 Jul 2024" %}'
    "{%- endif %}{%- endif %}\n"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    '{%- set messages = messages[1:] %}{%- else %}{%- set system_message = "" %}{%- endif %}\n'
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}\n'
    '{{- "Cutting Knowledge Date: December 2023\\n" }}\n'
    '{{- "Today Date: " + date_string + "\\n\\n" }}\n'
    "{{- system_message }}\n"
    '{{- "<|eot_id|>" }}\n'
    "{%- for message in messages %}\n"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim"
    " + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}\n"
)

#: Qwen2.5-0.5B-Instruct's template (tools left out): the default system prompt when none is given
QWEN2_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}{%- endif %}\n"
    "{%- for message in messages %}"
    '{%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
    '(message.role == "assistant") %}'
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n"
)

#: Phi-3-mini-4k-instruct's template
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)


def family_tokenizer(specials: list[str], template: str, bos: str | None, eos: str, pad: str | None):
    """The offline tokenizer with the family's special tokens, its bos/eos/pad as the family names them."""
    tok = tokenizer(specials=specials, chat_template=template)
    tok.bos_token, tok.eos_token = bos, eos
    if pad is not None:
        tok.pad_token = pad
    return tok


def save_with_stops(path: Path, model, tok, stops: list[str]) -> None:
    """Save, then give generation_config.json the family's end-of-turn ids (as its hub repo lists them)."""
    from transformers import GenerationConfig

    save(path, model, tok)
    gen = GenerationConfig.from_pretrained(path)
    gen.eos_token_id = [tok.convert_tokens_to_ids(s) for s in stops]
    gen.save_pretrained(path)


def build_llama3(path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"]
    specials += ["<|eom_id|>", "<|eot_id|>"]
    tok = family_tokenizer(specials, LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>", None)
    tok.pad_token = None  # Llama 3 has no pad token
    stops = ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"]
    rope = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    config = LlamaConfig(
        vocab_size=len(tok),
        **TEXT,
        rope_parameters=rope,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=[tok.convert_tokens_to_ids(s) for s in stops],
    )
    save_with_stops(path, seeded(LlamaForCausalLM, config), tok, stops)


def build_qwen2(path: Path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = family_tokenizer(specials, QWEN2_TEMPLATE, None, "<|im_end|>", "<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tok),
        **TEXT,
        tie_word_embeddings=True,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.eos_token_id,
    )
    save_with_stops(path, seeded(Qwen2ForCausalLM, config), tok, ["<|im_end|>", "<|endoftext|>"])


def build_phi3(path: Path) -> None:
    from transformers import Phi3Config, Phi3ForCausalLM

    specials = ["<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>"]
    tok = family_tokenizer(specials, PHI3_TEMPLATE, "<s>", "<|endoftext|>", "<|endoftext|>")
    config = Phi3Config(
        vocab_size=len(tok),
        **TEXT,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    save_with_stops(path, seeded(Phi3ForCausalLM, config), tok, ["<|endoftext|>", "<|assistant|>", "<|end|>"])
    # the hub's config.json names its own copy of the Phi-3 code, which transformers' native classes replace
    # without --trust-remote-code
    settings = json.loads((path / "config.json").read_text())
    settings["auto_map"] = {
        "AutoConfig": "configuration_phi3.Phi3Config",
        "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM",
    }
    (path / "config.json").write_text(json.dumps(settings, indent=2))


FAMILIES = [
    Family("Llama 3 (text)", build_llama3, images=False, notes="text-only causal LM"),
    Family("Qwen2 (text)", build_qwen2, images=False, notes="text-only causal LM"),
    Family("Phi-3 (text)", build_phi3, images=False, notes="text-only; fused `qkv_proj`"),
]
