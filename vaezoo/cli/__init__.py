"""The ``vaezoo`` command line (also ``python -m vaezoo``).

Commands: ``train``, ``eval``, ``compare``, ``sample``, ``list``, ``describe``, ``plugins`` and ``zoo`` (``vaezoo.zoo.cli``). Imports are lazy so that
``vaezoo --help`` does not load torch. User errors (bad config, missing files, unknown
names) print one line ``vaezoo: error: ...`` on stderr and exit with status 2; a diverged
training run exits with status 1; an I/O failure (disk full, read-only, permission) prints
one line naming the path and exits with status 3; everything else is a bug and shows its
traceback.
vaezoo's own warnings (plugin problems, data notes) print as one line ``vaezoo: warning: ...``.

``vaezoo.cli.models`` holds the commands on models, ``vaezoo.cli.components`` those on the
installed components and plugins, ``vaezoo.cli.exits`` the exit statuses and one-line messages.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import components, models
from .exits import (EXIT_BROKEN_PIPE, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_IO_ERROR, EXIT_OK, EXIT_USER_ERROR, PROG,
                    Parser, one_line, one_line_warnings, silence_stdout, user_error_code)

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_DIVERGED", "EXIT_USER_ERROR", "EXIT_IO_ERROR", "EXIT_INTERRUPTED",
           "EXIT_BROKEN_PIPE"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no heavy imports)."""
    parser = Parser(
        prog=PROG,
        description="Variational autoencoders in which every part is a plugin.",
        epilog="Run 'vaezoo COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    models.add_parsers(sub)
    components.add_parsers(sub)

    from ..zoo.cli import add_zoo_parser  # light: argparse only until a zoo action runs

    add_zoo_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (``EXIT_*``: 0 ok, 1 diverged, 2 user error, 3 I/O error)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # `train CONFIG --out DIR key=value`: overrides may follow options
        stray = [e for e in extra if e.startswith("-") or "=" not in e or getattr(args, "command", None) != "train"]
        if stray:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
        args.overrides = [*args.overrides, *extra]
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        with one_line_warnings():
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `vaezoo zoo list | head -3`: the reader has gone, say nothing more
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        code = user_error_code(exc)
        if code is None:
            raise
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return code


def _version() -> str:
    from .. import __version__

    return __version__

