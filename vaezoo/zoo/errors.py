"""Errors of the model zoo; all are ``VaezooError`` (the CLI prints them as one line, exit 2)."""

from __future__ import annotations

from ..errors import VaezooError


class ZooError(VaezooError):
    """A zoo entry that is invalid, unknown, ambiguous, or whose weights cannot be had."""


class InvalidEntryError(ZooError, ValueError):
    """A ``PretrainedEntry`` field with the wrong type or value; the message names entry and field."""


class UnknownModelError(ZooError, KeyError):
    """No zoo entry of that name (the message suggests close names and lists the available ones)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DownloadError(ZooError):
    """Weights could not be fetched: HTTP error, unreachable host, truncated transfer."""


class ChecksumError(ZooError):
    """A weights file whose sha256 is not the one the entry records (nothing is cached)."""
