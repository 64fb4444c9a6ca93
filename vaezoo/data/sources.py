"""Data sources: each reads raw examples (no preprocessing, no splitting into train/val).

A source returns a ``RawData``: a training pool and, when the data set defines one, a
test split. Pixel arrays stay ``uint8`` (``levels`` = their maximum value) until
``load_data`` has chosen the examples, so no float copy of unused data is made.
Nothing here unpickles: IDX, CIFAR-10's binary version, safetensors, ``.npy``/``.npz``
without pickle, and images through PIL.
"""

from __future__ import annotations

import functools
import os
import re
import tarfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .config import DataConfig, default_root
from .idx import read_idx

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
DEBIAN_FOLDER = {"fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}
CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
    "cifar10": [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ],
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR10_TEST = "test_batch.bin"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
DIGITS_TEST_FRACTION = 0.2
FOLDER_TEST_FRACTION = 0.1
IN_MEMORY_MAX_BYTES = 2 << 30
"""``in_memory: null`` holds an image folder as tensors when its float32 copy fits in this."""


@dataclass
class RawData:
    """A source's examples before preprocessing.

    In memory: ``train_x``/``test_x`` are ``(N, C, H, W)`` or ``(N, D)`` tensors, ``uint8``
    (divide by ``levels``) or float in [0, 1]. Streaming: ``train_files``/``test_files``.
    ``test_x``/``test_files`` None means the source has no test split: ``load_data`` carves
    ``test_fraction`` of the pool with a fixed seed.
    """

    origin: str
    train_x: Tensor | None = None
    train_y: Tensor | None = None
    test_x: Tensor | None = None
    test_y: Tensor | None = None
    levels: int = 255
    test_fraction: float = FOLDER_TEST_FRACTION
    classes: list[str] | None = None
    # streaming image folders
    train_files: list[str] | None = None
    test_files: list[str] | None = None
    image_mode: str = "RGB"
    image_shape: tuple[int, ...] = field(default_factory=tuple)

    @property
    def streaming(self) -> bool:
        return self.train_files is not None

    @property
    def has_test(self) -> bool:
        return self.test_x is not None or self.test_files is not None


def load_source(cfg: DataConfig) -> RawData:
    """Read the raw examples of ``cfg.name``."""
    return SOURCES[cfg.name](cfg)


# ---------------------------------------------------------------------------------- digits


def load_digits_source(cfg: DataConfig) -> RawData:
    """scikit-learn's 8x8 digits (1797 examples, values 0..16), shipped with scikit-learn."""
    images, target = _digits_arrays()
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    y = torch.from_numpy(target.copy())
    return RawData(
        origin="scikit-learn load_digits",
        train_x=x,
        train_y=y,
        levels=16,
        test_fraction=DIGITS_TEST_FRACTION,
        classes=[str(i) for i in range(10)],
    )


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.uint8), d.target.astype(np.int64)


# ------------------------------------------------------------------------ MNIST-style IDX


def _find_idx_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    found, missing = {}, []
    for key, base in IDX_FILES.items():
        for candidate in (folder / base, folder / f"{base}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(base)
    return found, missing


def _idx_candidates(name: str, root: Path | None) -> list[Path]:
    """Folders that may hold the IDX files: ``root`` and torchvision's ``root/<Name>/raw``;
    without a root, ``<default>/<name>``, ``<default>/<Name>/raw`` and (Fashion-MNIST) Debian's
    folder. The bare default root is not searched: MNIST and Fashion-MNIST files share names."""
    tv = TORCHVISION_FOLDER[name]
    if root is not None:
        return [root, root / tv / "raw"]
    out = [default_root() / name, default_root() / tv / "raw"]
    if name in DEBIAN_FOLDER:
        out.append(DEBIAN_FOLDER[name])
    return out


def _locate_idx(name: str, root: Path | None) -> tuple[dict[str, Path] | None, list[Path], str]:
    candidates = _idx_candidates(name, root)
    partial = ""
    for folder in candidates:
        found, missing = _find_idx_files(folder)
        if not missing:
            return found, candidates, ""
        if found and not partial:
            partial = f" ({folder} lacks {', '.join(missing)})"
    return None, candidates, partial


def load_idx_source(cfg: DataConfig) -> RawData:
    """MNIST / Fashion-MNIST from a folder of the four IDX files (plain or .gz), torchvision's
    ``<root>/MNIST/raw`` layout, or (``data.download=true``) a torchvision download."""
    name = cfg.name
    root = Path(cfg.root).expanduser() if cfg.root is not None else None
    files, looked, partial = _locate_idx(name, root)
    if files is None and cfg.download:
        target = root if root is not None else default_root()
        _torchvision_download(name, target)
        files, looked, partial = _locate_idx(name, target)
    if files is None:
        where = ", ".join(str(p) for p in dict.fromkeys(looked))
        raise DataError(
            f"data.root: no {name} IDX files found (looked in {where}){partial}. Set "
            f"data.download=true to fetch them, or set data.root to a folder holding the four "
            f"IDX files ({', '.join(IDX_FILES.values())}, optionally .gz)"
        )
    arrays = {}
    for key, path in files.items():
        arr = read_idx(path, expected_ndim=3 if key.endswith("_x") else 1)
        if arr.dtype != np.uint8:
            raise DataError(f"{path}: expected unsigned bytes (IDX type 0x08), got {arr.dtype}")
        arrays[key] = arr
    for split in ("train", "test"):
        nx, ny = len(arrays[f"{split}_x"]), len(arrays[f"{split}_y"])
        if nx != ny:
            raise DataError(f"{files[split + '_x']}: {nx} images but {files[split + '_y']} has {ny} labels")
    folder = files["train_x"].parent
    return RawData(
        origin=str(folder),
        train_x=torch.from_numpy(arrays["train_x"]).unsqueeze(1),
        train_y=torch.from_numpy(arrays["train_y"].astype(np.int64)),
        test_x=torch.from_numpy(arrays["test_x"]).unsqueeze(1),
        test_y=torch.from_numpy(arrays["test_y"].astype(np.int64)),
        classes=list(CLASSES[name]),
    )


def _torchvision_download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[name]
    try:
        cls(root=str(root), train=True, download=True)
        cls(root=str(root), train=False, download=True)
    except Exception as exc:
        raise DataError(
            f"data.download: could not download {name} into {root}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Without internet, set data.root to a "
            "folder holding the four IDX files"
        ) from exc


# -------------------------------------------------------------------------------- CIFAR-10


def _parse_cifar_records(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    record = 1 + 3 * 32 * 32
    if len(raw) == 0 or len(raw) % record:
        raise DataError(f"{name}: not a CIFAR-10 binary batch ({len(raw)} bytes is not a multiple of {record})")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{name}: not a CIFAR-10 binary batch (label {labels.max()} > 9)")
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def _read_cifar_folder(folder: Path) -> dict[str, bytes]:
    out = {}
    for fname in [*CIFAR10_TRAIN, CIFAR10_TEST]:
        try:
            out[fname] = (folder / fname).read_bytes()
        except OSError as exc:
            raise DataError(f"{folder / fname}: cannot read CIFAR-10 batch: {exc}") from exc
    return out


def _read_cifar_archive(path: Path) -> dict[str, bytes]:
    wanted = {f"{CIFAR10_FOLDER}/{f}": f for f in [*CIFAR10_TRAIN, CIFAR10_TEST]}
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                key = wanted.get(member.name.lstrip("./"))
                if key is not None and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        out[key] = f.read()
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise DataError(f"{path}: cannot read the CIFAR-10 archive: {exc}") from exc
    missing = sorted(set(wanted.values()) - set(out))
    if missing:
        raise DataError(f"{path}: the CIFAR-10 archive lacks {', '.join(missing)}")
    return out


def _locate_cifar(root: Path) -> Callable[[], dict[str, bytes]] | None:
    for folder in (root, root / CIFAR10_FOLDER):
        if all((folder / f).is_file() for f in [*CIFAR10_TRAIN, CIFAR10_TEST]):
            return lambda folder=folder: _read_cifar_folder(folder)
    for archive in (root / CIFAR10_ARCHIVE, root):
        if archive.is_file() and archive.name.endswith((".tar.gz", ".tgz")):
            return lambda archive=archive: _read_cifar_archive(archive)
    return None


def load_cifar10_source(cfg: DataConfig) -> RawData:
    """CIFAR-10 from its binary version (``cifar-10-batches-bin`` or ``cifar-10-binary.tar.gz``,
    read in place); ``data.download=true`` fetches that archive through torchvision."""
    root = Path(cfg.root).expanduser() if cfg.root is not None else default_root()
    reader = _locate_cifar(root)
    if reader is None and cfg.download:
        from torchvision.datasets.utils import download_url

        try:
            download_url(CIFAR10_URL, str(root), CIFAR10_ARCHIVE, CIFAR10_MD5)
        except Exception as exc:
            raise DataError(
                f"data.download: could not download CIFAR-10 into {root}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}. Without internet, set data.root to a "
                f"folder holding {CIFAR10_FOLDER}/ or {CIFAR10_ARCHIVE}"
            ) from exc
        reader = _locate_cifar(root)
    if reader is None:
        pickled = root / "cifar-10-batches-py"
        extra = (
            f" (found {pickled}, torchvision's pickled version: vaezoo never unpickles data files)"
            if pickled.is_dir()
            else ""
        )
        raise DataError(
            f"data.root: no CIFAR-10 binary version found in {root}{extra}. Set data.download=true "
            f"to fetch it, or set data.root to a folder holding {CIFAR10_FOLDER}/ or {CIFAR10_ARCHIVE}"
        )
    batches = reader()
    train = [_parse_cifar_records(batches[f], f) for f in CIFAR10_TRAIN]
    test_x, test_y = _parse_cifar_records(batches[CIFAR10_TEST], CIFAR10_TEST)
    return RawData(
        origin=str(root),
        train_x=torch.from_numpy(np.concatenate([t[0] for t in train])),
        train_y=torch.from_numpy(np.concatenate([t[1] for t in train])),
        test_x=torch.from_numpy(test_x),
        test_y=torch.from_numpy(test_y),
        classes=list(CLASSES["cifar10"]),
    )


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


SOURCES: dict[str, Callable[[DataConfig], RawData]] = {
    "digits": load_digits_source,
    "mnist": load_idx_source,
    "fashion_mnist": load_idx_source,
    "cifar10": load_cifar10_source,
    "image_folder": load_image_folder_source,
    "tensor": load_tensor_source,
}
