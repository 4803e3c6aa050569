"""evalkit: benchmark harness and compact alignment trainer for multimodal language models."""

__version__ = "0.1.0"
__all__ = ["evaluate", "__version__"]


def __getattr__(name: str):
    # `evalkit.evaluate` is imported on first use so that `import evalkit.types` stays light.
    if name == "evaluate":
        from evalkit.runner import evaluate

        return evaluate
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
