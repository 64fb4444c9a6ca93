"""Data sources: each reads raw examples (no preprocessing, no splitting into train/val);
``SOURCES`` is the table of them. The named data sets live here, a user's own files in
``files.py``.

A source returns a ``RawData``: a training pool and, when the data set defines one, a
test split. Pixel arrays stay ``uint8`` (``levels`` = their maximum value) until
``load_data`` has chosen the examples, so no float copy of unused data is made.
Nothing unpickles: IDX, CIFAR-10's binary version, safetensors, ``.npy``/``.npz``
without pickle, and images through PIL.
"""

from __future__ import annotations

import functools
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .config import DataConfig, default_root
from .files import load_image_folder_source, load_tensor_source
from .idx import read_idx
from .raw import RawData

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
DIGITS_TEST_FRACTION = 0.2


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


SOURCES: dict[str, Callable[[DataConfig], RawData]] = {
    "digits": load_digits_source,
    "mnist": load_idx_source,
    "fashion_mnist": load_idx_source,
    "cifar10": load_cifar10_source,
    "image_folder": load_image_folder_source,
    "tensor": load_tensor_source,
}
