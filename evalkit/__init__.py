"""evalkit: benchmark harness and compact alignment trainer for multimodal language models."""

__version__ = "0.1.0"
__all__ = ["evaluate", "compare", "tax_table", "open_run", "__version__"]


def __getattr__(name: str):
    # the Python API (evalkit.cli.notebook) is imported on first use so that `import evalkit.types` stays
    # light; `evalkit.runner.evaluate` is the lower-level call it runs
    if name in ("evaluate", "compare", "tax_table", "open_run"):
        from evalkit.cli import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
