"""How the ``vaezoo`` command ends: its exit statuses, and every failure or warning as one line.

``user_error_code`` sorts an exception into a status (None: a bug, shown with its traceback);
``one_line`` renders it as ``vaezoo: error: ...`` text (an I/O failure names the path and
what to do); ``one_line_warnings`` does the same for vaezoo's own warnings.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROG = "vaezoo"

# Exit status (docs/cli.md).
EXIT_OK = 0
EXIT_DIVERGED = 1  # training stopped: the loss or the weights became NaN/infinite
EXIT_USER_ERROR = 2  # a mistake in the command, the config or the files named
EXIT_IO_ERROR = 3  # the system refused: disk full, read-only file system, permission, vanished folder
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE, as a shell reports it)


class Parser(argparse.ArgumentParser):
    """argparse with vaezoo's one-line errors: ``vaezoo: error: <what> (see 'vaezoo train --help')``."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        print(f"{PROG}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)



@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show vaezoo's own warnings (plugin problems, data notes) as ``vaezoo: warning: ...`` lines."""
    import warnings

    package = str(Path(__file__).resolve().parent.parent)  # vaezoo/
    with warnings.catch_warnings():  # restores warnings.showwarning afterwards
        original = warnings.showwarning

        def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
            from ..plugins import PluginWarning

            if issubclass(category, PluginWarning) or (
                issubclass(category, UserWarning) and str(Path(filename).resolve()).startswith(package)
            ):
                print(f"{PROG}: warning: {one_line(message)}", file=file or sys.stderr)
            else:
                original(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def user_error_code(exc: BaseException) -> int | None:
    from ..errors import VaezooError

    if type(exc).__name__ == "NonFiniteLossError":
        return EXIT_DIVERGED
    if isinstance(exc, VaezooError):
        return EXIT_USER_ERROR
    if isinstance(exc, OSError):  # the system refused: disk full, read-only, permission, a vanished folder
        return EXIT_IO_ERROR
    module = type(exc).__module__ or ""
    if module.startswith("omegaconf"):
        return EXIT_USER_ERROR
    return None


# What the system said, and what to do about it.
_IO_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EROFS: "write to a folder on a writable file system",
    errno.EACCES: "check the permissions, or write elsewhere",
    errno.EPERM: "check the permissions, or write elsewhere",
    errno.ENOENT: "the file or folder is gone (moved or deleted while vaezoo ran?)",
    errno.EEXIST: "a file stands where a folder is needed; give another path",
    errno.ENOTDIR: "part of the path is a file where a folder is needed; give another path",
    errno.EISDIR: "a folder stands where a file is needed; give a file name",
}


def one_line(exc: BaseException) -> str:
    from ..errors import VaezooError

    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, VaezooError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        hint = _IO_HINTS.get(exc.errno or 0)
        text = f"{where}{exc.strerror}" + (f" ({hint})" if hint else "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(exc).__name__


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def print_warnings(problems: list[str]) -> None:
    """Each message as one ``vaezoo: warning: ...`` line on stderr."""
    for message in problems:
        print(f"{PROG}: warning: {one_line(Exception(message))}", file=sys.stderr)
