"""The sources of a user's own files: ``tensor`` (a .safetensors, .npz or .npy file) and
``image_folder`` (images, one sub-folder per class or none), read without unpickling."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .config import DataConfig
from .raw import RawData

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
IN_MEMORY_MAX_BYTES = 2 << 30
"""``in_memory: null`` holds an image folder as tensors when its float32 copy fits in this."""


# ----------------------------------------------------------------------------------- tensor


def _load_tensor_file(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(str(path)))
        if suffix == ".npy":
            return {"x": np.load(path, allow_pickle=False)}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"data.root: cannot read {path}: {type(exc).__name__}: {exc}") from exc
    raise DataError(f"data.root: {path} is not a .safetensors, .npz or .npy file")


def _tensor_x(arr: np.ndarray, path: Path, key: str) -> tuple[Tensor, int]:
    if arr.ndim < 2 or arr.ndim > 4:
        raise DataError(
            f"data.root: {path}[{key!r}] has shape {arr.shape}; expected (N, D), (N, H, W) or (N, C, H, W)"
        )
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr)), 255
    if arr.dtype == np.bool_:
        return torch.from_numpy(arr.astype(np.uint8)), 1
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"data.root: {path}[{key!r}] has dtype {arr.dtype}; expected uint8 (0..255) or float in [0, 1]")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if not torch.isfinite(x).all():
        raise DataError(f"data.root: {path}[{key!r}] contains NaN or inf")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise DataError(
            f"data.root: {path}[{key!r}] has values in [{x.min():.4g}, {x.max():.4g}]; expected [0, 1] "
            "(or uint8 0..255)"
        )
    return x, 1


def _tensor_y(arr: np.ndarray | None, n: int, path: Path, key: str) -> Tensor | None:
    if arr is None:
        return None
    if arr.ndim != 1 or len(arr) != n or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"data.root: {path}[{key!r}] must be {n} integer labels, got shape {arr.shape} {arr.dtype}")
    return torch.from_numpy(arr.astype(np.int64))


def load_tensor_source(cfg: DataConfig) -> RawData:
    """A ``.safetensors`` or ``.npz`` file (keys ``x``, optional ``y``, ``x_test``, ``y_test``) or
    a ``.npy`` file (just ``x``); ``uint8`` values are divided by 255, floats must lie in [0, 1]."""
    if cfg.root is None:
        raise DataError("data.root: set it to a .safetensors, .npz or .npy file for data.name=tensor")
    path = Path(cfg.root).expanduser()
    if not path.is_file():
        raise DataError(f"data.root: no file {path} (data.name=tensor needs a .safetensors, .npz or .npy file)")
    arrays = _load_tensor_file(path)
    if "x" not in arrays:
        raise DataError(f"data.root: {path} has no key 'x' (keys: {', '.join(sorted(arrays)) or 'none'})")
    x, levels = _tensor_x(arrays["x"], path, "x")
    raw = RawData(origin=str(path), train_x=x, train_y=_tensor_y(arrays.get("y"), len(x), path, "y"), levels=levels)
    if "x_test" in arrays:
        xt, levels_t = _tensor_x(arrays["x_test"], path, "x_test")
        if xt.shape[1:] != x.shape[1:] or levels_t != levels or xt.dtype != x.dtype:
            raise DataError(f"data.root: {path}: 'x_test' {tuple(xt.shape)} {xt.dtype} does not match 'x' {tuple(x.shape)} {x.dtype}")
        raw.test_x = xt
        raw.test_y = _tensor_y(arrays.get("y_test"), len(xt), path, "y_test")
        if (raw.train_y is None) != (raw.test_y is None):
            raise DataError(f"data.root: {path}: give labels for both 'x' and 'x_test' or for neither")
    return raw


# ----------------------------------------------------------------------------- image folder


def open_image(path: str | Path) -> Any:
    """``PIL.Image.open(path)``, lazily (only the header is read), refusing what cannot be decoded.

    ``DataError`` naming the file for a file that is not a readable image, and for one with
    more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (PIL's guard against decompression bombs,
    about 89 million by default; ``None`` turns it off), before any pixel is decoded.
    """
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():  # PIL warns above the limit and refuses above twice it: we refuse both
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise DataError(_too_many_pixels(path, int(found.group(1)) if found else None, limit)) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    w, h = im.size
    if limit is not None and w * h > limit:
        im.close()
        raise DataError(_too_many_pixels(path, w * h, limit, f"{w}x{h}"))
    return im


def _too_many_pixels(path: str | Path, pixels: int | None, limit: int, size: str = "") -> str:
    count = f"{size + ' = ' if size else ''}{pixels:,} pixels" if pixels is not None else "more pixels"
    return (
        f"{path}: {count} is more than the {limit:,} an image may have (PIL.Image.MAX_IMAGE_PIXELS, "
        "a guard against decompression bombs); not decoding it -- remove it or use a smaller image"
    )


def _unreadable(path: str | Path, exc: BaseException) -> DataError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"{path}: not a readable image ({detail}); remove or replace the file")


def load_image(path: str, mode: str, size: int | None) -> np.ndarray:
    """One image as ``uint8 (C, H, W)``: converted to ``mode`` ("L" or "RGB"); with ``size``,
    its shorter side resized to ``size`` (bicubic) and the centre cropped to ``size x size``.

    ``DataError`` naming the file for a corrupt or truncated file or a decompression bomb
    (see ``open_image``).
    """
    from PIL import Image

    try:
        with open_image(path) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                w, h = im.size
                scale = size / min(w, h)
                nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
                im = im.resize((nw, nh), Image.Resampling.BICUBIC)
                left, top = (nw - size) // 2, (nh - size) // 2
                im = im.crop((left, top, left + size, top + size))
            arr = np.array(im, dtype=np.uint8)
    except (DataError, MemoryError):
        raise
    except Exception as exc:  # truncated (OSError), a broken chunk (SyntaxError), ...
        raise _unreadable(path, exc) from exc
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def _image_files(folder: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return out


def _labelled(files: list[Path], folder: Path) -> list[str] | None:
    """Each file's top-level subfolder name, or None if any file lies directly in ``folder``."""
    names = []
    for f in files:
        parts = f.relative_to(folder).parts
        if len(parts) < 2:
            return None
        names.append(parts[0])
    return names


def load_image_folder_source(cfg: DataConfig) -> RawData:
    """Every image under ``data.root`` (recursively). Labels are top-level subfolder names when
    every image lies in one; ``train/`` and ``test/`` subfolders, if both exist, are the splits."""
    if cfg.root is None:
        raise DataError("data.root: set it to a folder of images for data.name=image_folder")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root: {root} is not a folder (data.name=image_folder)")
    if (root / "train").is_dir() and (root / "test").is_dir():
        groups = {"train": root / "train", "test": root / "test"}
    else:
        groups = {"train": root}
    files = {k: _image_files(v) for k, v in groups.items()}
    for k, v in files.items():
        if not v:
            raise DataError(
                f"data.root: no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {groups[k]}"
            )
    names = {k: _labelled(v, groups[k]) for k, v in files.items()}
    labelled = all(n is not None for n in names.values())
    classes = sorted({c for n in names.values() for c in n}) if labelled else None
    mode = "L" if cfg.grayscale else "RGB"
    channels = 1 if cfg.grayscale else 3

    if cfg.image_size is not None:
        hw = (cfg.image_size, cfg.image_size)
    else:
        hw = _common_size([f for v in files.values() for f in v])
    shape = (channels, *hw)
    total = sum(len(v) for v in files.values())
    in_memory = cfg.in_memory if cfg.in_memory is not None else total * int(np.prod(shape)) * 4 <= IN_MEMORY_MAX_BYTES

    def labels(k: str) -> Tensor | None:
        if classes is None:
            return None
        index = {c: i for i, c in enumerate(classes)}
        return torch.tensor([index[c] for c in names[k]], dtype=torch.int64)

    raw = RawData(origin=str(root), classes=classes, image_mode=mode, image_shape=shape)
    for k, v in files.items():
        setattr(raw, f"{k}_y", labels(k))
        if in_memory:
            x = torch.empty((len(v), *shape), dtype=torch.uint8)
            for i, f in enumerate(v):
                x[i] = torch.from_numpy(load_image(str(f), mode, cfg.image_size))
            setattr(raw, f"{k}_x", x)
        else:
            setattr(raw, f"{k}_files", [str(f) for f in v])
    return raw


def _common_size(files: list[Path]) -> tuple[int, int]:
    first: tuple[tuple[int, int], Path] | None = None
    for f in files:
        with open_image(f) as im:  # the header only
            w, h = im.size
        if first is None:
            first = ((h, w), f)
        elif (h, w) != first[0]:
            raise DataError(
                f"data.image_size: images have different sizes ({first[0][1]}x{first[0][0]} in {first[1]}, "
                f"{w}x{h} in {f}); set data.image_size to resize them to one square size"
            )
    assert first is not None
    return first[0]
