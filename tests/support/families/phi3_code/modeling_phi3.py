"""Phi3ForCausalLM, shipped with the checkpoint (transformers' own class under the hub's module name)."""

from transformers import Phi3ForCausalLM as NativePhi3ForCausalLM

from .configuration_phi3 import Phi3Config


class Phi3ForCausalLM(NativePhi3ForCausalLM):
    config_class = Phi3Config
