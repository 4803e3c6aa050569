"""evalkit: benchmark harness and compact alignment trainer for multimodal language models."""

__version__ = "0.1.0"
