"""Pages of docs/ with a generated part: the text between two marker lines is rebuilt from
the code (the component tables of docs/configs.md, the zoo tables of docs/zoo.md), the rest
is prose. One replacer, one writer and one ``--check`` report serve every such page."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path


def replace_between(text: str, begin: str, end: str, body: str) -> str:
    """``text`` with what lies between the lines ``begin`` and ``end`` replaced by ``body``."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"the markers are missing; the page must contain the lines\n{begin}\n{end}")
    return text[: start + len(begin)] + body + text[stop:]


def update_page(path: str | os.PathLike[str], render: Callable[[str], str], *, check: bool = False) -> bool:
    """Rewrite ``path`` as ``render(its text)`` (atomically); True if it was (or, with ``check``, would be) changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    new = render(text)
    if new == text:
        return False
    if not check:
        from .fileio import atomic_write

        atomic_write(path, lambda p: Path(p).write_text(new, encoding="utf-8"))
    return True


def run_update(prog: str, path: Path, update: Callable[..., bool], *, check: bool, page: str, fix: str) -> int:
    """The command line's end of a page regenerator: 0 updated/up to date, 1 out of date (``check``), 2 no page.

    ``page`` is the page's usual place (named when ``path`` is missing), ``fix`` the command that
    regenerates it (named when ``check`` finds it out of date)."""
    if not path.is_file():
        print(f"{prog}: error: {path} not found; pass --path {page}", file=sys.stderr)
        return 2
    changed = update(path, check=check)
    if check:
        if changed:
            print(f"{path} is out of date; run: {fix}", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    print(f"{'updated' if changed else 'unchanged'}: {path}")
    return 0
