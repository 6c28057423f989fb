"""User-facing errors: one clear message that says what to do; the CLI prints it and exits with code 2.

Bugs are not wrapped: they keep their traceback.
"""
from __future__ import annotations


class ForgeMLError(Exception):
    """Base of every error caused by the user's input (data, config, arguments)."""

    exit_code = 2


class DataError(ForgeMLError):
    """The data cannot be read or does not fit the task."""


class ConfigError(ForgeMLError):
    """The config file or a command-line option is invalid."""


class RunError(ForgeMLError):
    """A run directory is missing, incomplete or incompatible."""


class MissingExtraError(ForgeMLError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, feature: str):
        super().__init__(
            f"{feature} needs the '{package}' package. Install it with: pip install 'forgeml[{extra}]'"
        )


def require(module: str, extra: str, feature: str):
    """Import an optional module or raise a message naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra, feature) from exc


class InputError(ValueError):
    """A request value the model cannot take (forgeml.features.records); the message names the field. Not a
    ForgeMLError: the server answers it with 422, and predict from a file never sees it."""

    def __init__(self, message: str, field: str | None = None, row: int | None = None):
        super().__init__(message)
        self.field, self.row = field, row
