"""forgeml: from raw data to a trained, evaluated, tracked model on the compute you have.

The package root stays light (``forgeml --help`` must be fast): heavy modules load on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "load", "train", "evaluate", "predict"]


def __getattr__(name: str):
    if name in ("load", "train", "evaluate", "predict", "quickstart"):
        from forgeml import api

        return getattr(api, name)
    raise AttributeError(name)
