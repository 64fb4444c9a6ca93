"""Errors vaezoo raises for user mistakes, and the helper that makes them teach."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VaezooError(Exception):
    """Base class: a mistake in how vaezoo was called or configured (not a bug)."""


class MissingFileError(VaezooError, FileNotFoundError):
    """A file or folder named by the user does not exist (a user error, not an I/O failure)."""


class UnknownComponentError(VaezooError, KeyError):
    """A component kind or name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ComponentParamError(VaezooError, TypeError):
    """A component was given a parameter it does not accept, or one of the wrong type."""


class PluginError(VaezooError):
    """A plugin failed to load, to register, or broke a registration rule."""


class DataError(VaezooError, ValueError):
    """Data outside a likelihood's support, or of the wrong shape."""


class CheckpointError(VaezooError):
    """A saved model or checkpoint that cannot be loaded as asked."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def one_of(choices: Iterable[str]) -> str:
    """Render choices for an error message: ``'a', 'b', 'c'``."""
    choices = sorted(set(choices))
    return ", ".join(repr(c) for c in choices) if choices else "(none)"


class ConfigError(VaezooError, ValueError):
    """A config key that is unknown, missing or of the wrong type; the message names its path."""
