"""Writing files so that a crash never leaves a half-written one (no torch import here).

Contract of ``atomic_write``: the new file appears whole or not at all, with the mode a
plain ``open()`` would give it (0644 under umask 022), and survives a power loss once the
call returns (the file and then its directory are fsync'd). A write that fails or is
interrupted removes its temporary file; one that is killed leaves it behind, named
``.<final name>.<host>-<pid>.<random>.tmp`` so that ``remove_stale_temp`` can tell it from
the temporary file of a writer that is still running.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

#: A temporary file older than this is stale whoever wrote it (another host, an old version).
STALE_SECONDS = 3600.0

# .<name>.<host>-<pid>.<random>.tmp|.part (ours); .tmpXXXXXX (safetensors' save_file, older versions)
_OURS = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.(tmp|part)$")
_LEGACY = re.compile(r"^(\..+\.[A-Za-z0-9_]+\.(tmp|part)|\.tmp[A-Za-z0-9]{6})$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"


def temp_file(path: str | os.PathLike[str], suffix: str = ".tmp") -> Path:
    """Create an empty temporary file beside ``path`` (same filesystem), with the default mode."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host()}-{os.getpid()}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0600; the final file gets the usual mode
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: a crash never leaves a half file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_file(path)
    except OSError as exc:
        raise naming(exc, path) from None
    try:
        write(str(tmp))
        replace_durably(tmp, path)
    except BaseException as exc:
        discard(tmp)
        if isinstance(exc, OSError):
            raise naming(exc, path) from None
        raise


def atomic_write_all(writes: Sequence[tuple[str | os.PathLike[str], Callable[[str], Any]]]) -> None:
    """``atomic_write`` of several files as one: every ``write(tmp_path)`` runs first, and only
    when all have succeeded are the files renamed into place. A failed write changes none of
    them and removes the folders it created; a rename that fails after others succeeded (rare:
    the targets were checked) removes the new files already in place, but a file it replaced
    stays replaced."""
    created: list[Path] = []
    temps: list[tuple[Path, Path]] = []
    placed: list[Path] = []  # renamed into place where no file was before
    try:
        for path, write in writes:
            path = Path(path)
            try:
                _make_parents(path.parent, created)
                tmp = temp_file(path)
            except OSError as exc:
                raise naming(exc, path) from None
            temps.append((tmp, path))
            try:
                write(str(tmp))
            except OSError as exc:
                raise naming(exc, path) from None
        for _, path in temps:  # the usual reason a rename fails: a folder in the way
            if path.is_dir() and not path.is_symlink():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        for tmp, path in temps:
            new = not os.path.lexists(path)
            try:
                replace_durably(tmp, path)
            except OSError as exc:
                raise naming(exc, path) from None
            if new:
                placed.append(path)
    except BaseException:
        for tmp, _ in temps:
            discard(tmp)
        for path in placed:
            discard(path)
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise


def _make_parents(folder: Path, created: list[Path]) -> None:
    """``folder.mkdir(parents=True, exist_ok=True)``, appending each folder it creates to ``created``."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        try:
            each.mkdir()
        except FileExistsError:
            if each.is_dir():  # made meanwhile by someone else: not ours to remove
                continue
            raise
        created.append(each)


def discard(tmp: str | os.PathLike[str]) -> None:
    """Remove a temporary file if it is there; never raises (the original error matters)."""
    try:
        os.unlink(tmp)
    except OSError:
        pass


def naming(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """``exc`` naming ``path`` when it names no file or a temporary file of ``path``."""
    name = exc.filename
    if name is not None and not Path(str(name)).name.startswith(f".{Path(path).name}."):
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))  # OSError picks the subclass of errno


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> None:
    """``atomic_write`` of ``data``."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write(path, write)


def replace_durably(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """fsync ``tmp``, rename it onto ``path``, fsync the directory (the rename survives a power loss)."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename itself is done
        pass
    finally:
        os.close(fd)


def default_file_mode() -> int:
    """0666 minus the process umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def remove_stale_temp(folders: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Delete the temporary files that killed writes left in ``folders`` (not recursive).

    A file is stale when its name records this host and a process that no longer runs, or
    when it is older than ``STALE_SECONDS``. Errors (a read-only folder, a file that another
    process removed first) are ignored: cleaning up never stops a command. Returns what was removed.
    """
    removed: list[Path] = []
    now = time.time()
    host = _host()
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if not name.startswith(".") or not (_OURS.match(name) or _LEGACY.match(name)):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                ours = _OURS.match(name)
                dead = ours is not None and ours["host"] == host and not _running(int(ours["pid"]))
                if dead or now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except OSError:
                continue
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but not ours, or cannot tell: assume it runs
        return True
    return True
