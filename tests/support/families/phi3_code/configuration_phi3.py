"""Phi3Config, shipped with the checkpoint (transformers' own class under the hub's module name)."""

from transformers import Phi3Config as NativePhi3Config


class Phi3Config(NativePhi3Config):
    pass
