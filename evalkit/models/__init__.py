"""Model backends: one interface (`Backend.generate`), several ways to answer."""

from evalkit.models.base import Backend, load_backend

__all__ = ["Backend", "load_backend"]
