"""The data layer: sources, splits, preprocessing for the likelihood, and batching.

Everything here is offline: IDX, CIFAR-10, tensor and image files are written into tmp
folders; the real Fashion-MNIST test runs only where Debian's dataset-fashion-mnist is installed.
"""

from __future__ import annotations

import gzip
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import vaezoo
from vaezoo.components import Likelihood
from vaezoo.data import BatchIterator, DataConfig, InMemoryDataset, Splits, load_data, read_idx
from vaezoo.data.config import default_root
from vaezoo.errors import DataError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ------------------------------------------------------------------------------- helpers


def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file written by hand (independent of the reader under test)."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    code = codes[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_mnist_folder(folder: Path, n_train: int = 30, n_test: int = 12, gz: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        data = idx_bytes(arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


class FakeBernoulli(Likelihood):
    """A stand-in with the support check of a Bernoulli likelihood."""

    discrete = True

    def check_data(self, x):
        if not ((x == 0) | (x == 1)).all():
            raise DataError("FakeBernoulli needs binary data")


class FakeDiscretized(Likelihood):
    """A stand-in discretized likelihood on the grid k / (2^bits - 1)."""

    discrete = True

    def __init__(self, bits: int = 8):
        super().__init__()
        self.bits = bits

    def check_data(self, x):
        n = 2**self.bits - 1
        if ((x * n - torch.round(x * n)).abs() > 1e-3).any():
            raise DataError("FakeDiscretized: data off the grid")


class FakeContinuous(Likelihood):
    discrete = False


def epoch_batches(it: BatchIterator, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    it.set_epoch(epoch)
    return list(it)


# --------------------------------------------------------------------------------- digits


def test_digits_shapes_ranges_and_disjoint_splits():
    from sklearn.datasets import load_digits

    s = load_data(DataConfig())
    assert isinstance(s, Splits)
    assert s.data_shape == (1, 8, 8)
    assert (len(s.train), len(s.val), len(s.test)) == (1294, 144, 359)
    assert s.num_bins is None and s.dequantized_bins is None
    assert s.classes == [str(i) for i in range(10)]
    ids = [set(d.ids.tolist()) for d in (s.train, s.val, s.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set().union(*ids) == set(range(1797))
    images = torch.from_numpy(load_digits().images).float() / 16
    for d in (s.train, s.val, s.test):
        assert d.x.dtype == torch.float32 and d.y.dtype == torch.int64
        assert d.x.shape[1:] == (1, 8, 8)
        assert 0 <= d.x.min() and d.x.max() <= 1
        assert torch.equal(d.x[:, 0], images[d.ids])
    assert "digits" in s.description and "1294" in s.description


def test_digits_split_deterministic_and_test_independent_of_seed():
    a, b = load_data({"name": "digits"}), load_data({"name": "digits"})
    c = load_data({"name": "digits", "seed": 3})
    assert torch.equal(a.train.ids, b.train.ids) and torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.val.ids, c.val.ids)  # val depends on data.seed
    assert torch.equal(a.test.ids, c.test.ids)  # test does not
    d = load_data({"name": "digits", "val_fraction": 0.0, "limit": 100})
    assert (len(d.train), len(d.val)) == (100, 0)


def test_flatten_gives_vectors():
    s = load_data({"name": "digits", "flatten": True})
    assert s.data_shape == (64,) and s.train.x.shape[1:] == (64,)
    empty_val = load_data({"name": "digits", "flatten": True, "val_fraction": 0.0})
    assert empty_val.val.x.shape == (0, 64) and empty_val.data_shape == (64,)


# ------------------------------------------------------------------------- binarization


def test_static_binarization_is_binary_and_deterministic():
    a = load_data({"name": "digits", "binarize": "static"})
    b = load_data({"name": "digits", "binarize": "static"})
    c = load_data({"name": "digits", "binarize": "static", "seed": 1})
    for d in (a.train, a.val, a.test):
        assert set(d.x.unique().tolist()) == {0.0, 1.0}
        assert d.binarize == "none"
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert torch.equal(a.test.x, c.test.x)  # the test set is binarized with a fixed seed
    assert a.num_bins == 2
    # batches of statically binarized data are the data themselves
    x, _ = next(iter(BatchIterator(a.train, 1000, shuffle=False)))
    assert torch.equal(x, a.train.x[:1000])


def test_dynamic_binarization_resampled_per_batch_and_reproducible():
    s = load_data({"name": "digits", "binarize": "dynamic"})
    assert s.train.binarize == "dynamic" and len(s.train.x.unique()) > 2  # kept grayscale
    assert set(s.val.x.unique().tolist()) <= {0.0, 1.0}
    assert set(s.test.x.unique().tolist()) <= {0.0, 1.0}
    it = BatchIterator(s.train, 64, shuffle=False, seed=5)
    e0, e1 = epoch_batches(it, 0), epoch_batches(it, 1)
    assert set(e0[0][0].unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(e0[0][0], e1[0][0])  # same examples, new draw each epoch
    twin = BatchIterator(s.train, 64, shuffle=False, seed=5)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(e1, epoch_batches(twin, 1)))
    # each batch's draw follows its pixel probabilities
    draws = []
    for e in range(200):
        it.set_epoch(e)
        draws.append(next(iter(it))[0])
    xs = torch.stack(draws).mean(0)
    assert (xs - s.train.x[:64]).abs().max() < 0.15


# ------------------------------------------------------------------ quantization / dequantization


def test_quantized_to_likelihood_grid():
    s = load_data({"name": "digits"}, FakeDiscretized(8))
    assert s.num_bins == 256
    k = s.train.x * 255
    assert torch.equal(k, torch.round(k))
    raw = load_data({"name": "digits"})
    assert torch.equal(s.train.x, torch.round(raw.train.x * 255) / 255)
    assert len(s.train.x.unique()) == 17  # digits' 17 levels on 17 of the 256 grid points
    with pytest.warns(UserWarning, match="data.bits=8 but the likelihood"):
        s5 = load_data({"name": "digits"}, FakeDiscretized(5))
    assert s5.num_bins == 32 and torch.equal(s5.train.x * 31, torch.round(s5.train.x * 31))


def test_dequantization_per_batch_for_continuous_likelihood():
    s = load_data({"name": "digits", "dequantize": True, "bits": 8}, FakeContinuous())
    assert s.num_bins is None and s.dequantized_bins == 256
    it = BatchIterator(s.train, 128, shuffle=False)
    x0, x1 = epoch_batches(it, 0)[0][0], epoch_batches(it, 1)[0][0]
    assert not torch.equal(x0, x1)
    assert (x0 >= 0).all() and (x0 < 1).all()
    k = torch.round(s.train.x[:128] * 255)
    assert torch.equal(torch.floor(x0 * 256), k)
    assert torch.equal(torch.floor(s.test.x * 256), torch.round(load_data({"name": "digits"}).test.x * 255))
    with pytest.raises(DataError, match="data.dequantize"):
        load_data({"name": "digits", "dequantize": True}, FakeDiscretized(8))


# -------------------------------------------------------------------------- BatchIterator


def test_batch_iterator_covers_each_example_once_and_order_depends_on_seed_and_epoch():
    x = torch.arange(103, dtype=torch.float32)[:, None]
    ds = InMemoryDataset(x, torch.arange(103))
    it = BatchIterator(ds, 10, shuffle=True, seed=7)
    assert len(it) == 11
    seen = torch.cat([y for _, y in epoch_batches(it, 0)])
    assert sorted(seen.tolist()) == list(range(103))
    # epoch 2's order is the same however we got there
    for e in range(3):
        order_a = torch.cat([y for _, y in epoch_batches(it, e)])
    order_b = torch.cat([y for _, y in epoch_batches(BatchIterator(ds, 10, seed=7), 2)])
    assert torch.equal(order_a, order_b)
    assert not torch.equal(order_a, torch.cat([y for _, y in epoch_batches(it, 1)]))
    assert not torch.equal(order_a, torch.cat([y for _, y in epoch_batches(BatchIterator(ds, 10, seed=8), 2)]))
    # an iteration that runs to the end advances the epoch
    fresh = BatchIterator(ds, 10, seed=7)
    first = torch.cat([y for _, y in fresh])
    second = torch.cat([y for _, y in fresh])
    assert fresh.epoch == 2 and not torch.equal(first, second)
    # no shuffle: identity order; drop_last: full batches only
    plain = torch.cat([y for _, y in BatchIterator(ds, 10, shuffle=False)])
    assert torch.equal(plain, torch.arange(103))
    dl = BatchIterator(ds, 10, drop_last=True)
    assert len(dl) == 10 and all(len(b[0]) == 10 for b in dl)


def test_batch_iterator_resume_mid_epoch():
    ds = InMemoryDataset(torch.rand(50, 3))
    it = BatchIterator(ds, 8, seed=1, binarize="dynamic")
    full = epoch_batches(it, 4)
    it.set_epoch(4, start_batch=3)
    rest = list(it)
    assert len(rest) == len(full) - 3
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[3:], rest))
    assert rest[0][1] is None  # unlabelled data yield y=None


@pytest.mark.parametrize("n,drop_last", [(100, False), (101, False), (101, True)])
def test_batch_iterator_sharding_disjoint_and_equal(n, drop_last):
    ds = InMemoryDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n))
    ranks = [BatchIterator(ds, 16, seed=3, rank=r, world_size=2, drop_last=drop_last) for r in range(2)]
    got = [torch.cat([y for _, y in epoch_batches(it, 5)]) for it in ranks]
    assert len(ranks[0]) == len(ranks[1])
    assert len(got[0]) == len(got[1])
    union = set(got[0].tolist()) | set(got[1].tolist())
    if n % 2 == 0:
        assert not set(got[0].tolist()) & set(got[1].tolist())
        assert union == set(range(n))
    elif drop_last:
        assert not set(got[0].tolist()) & set(got[1].tolist())
        assert len(got[0]) == 48  # 50 per rank, cut to whole batches of 16
    else:  # padded by wrapping around: every example seen, one twice
        assert union == set(range(n)) and len(got[0]) + len(got[1]) == n + 1
    # the two ranks slice the same permutation
    single = BatchIterator(ds, 1000, seed=3).indices(5)
    assert torch.equal(ranks[0].indices(5), single[0::2][: len(ranks[0].indices(5))])


def test_batch_iterator_device_and_validation():
    ds = InMemoryDataset(torch.rand(10, 2), torch.arange(10))
    x, y = next(iter(BatchIterator(ds, 4, device="cpu")))
    assert x.device.type == "cpu" and y.dtype == torch.int64
    with pytest.raises(ValueError, match="rank"):
        BatchIterator(ds, 4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator(ds, 0)
    assert len(list(BatchIterator(InMemoryDataset(torch.rand(0, 2)), 4))) == 0


# ------------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_roundtrip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(arr)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == np.uint8 and np.array_equal(out, arr)
    ints = np.array([1, -2, 300000], dtype=np.int32)
    (tmp_path / "i.idx").write_bytes(idx_bytes(ints))
    assert np.array_equal(read_idx(tmp_path / "i.idx", expected_ndim=1), ints)


def test_idx_reader_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot idx")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(bad)
    good = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(good + b"\0")
    with pytest.raises(DataError, match="trailing"):
        read_idx(tmp_path / "long")
    (tmp_path / "ok").write_bytes(good)
    with pytest.raises(DataError, match="expected 3"):
        read_idx(tmp_path / "ok", expected_ndim=3)
    (tmp_path / "broken.gz").write_bytes(gzip.compress(good)[:-8] + b"garbage!")
    with pytest.raises(DataError, match="broken.gz"):
        read_idx(tmp_path / "broken.gz")


# ------------------------------------------------------------------- MNIST-style folders


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_from_idx_folder(tmp_path, gz):
    arrays = write_mnist_folder(tmp_path, gz=gz)
    s = load_data({"name": "fashion_mnist", "root": str(tmp_path), "val_fraction": 0.2})
    assert s.data_shape == (1, 28, 28)
    assert (len(s.train), len(s.val), len(s.test)) == (24, 6, 12)
    assert torch.equal(s.test.x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float() / 255)
    assert torch.equal(s.test.y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    assert torch.equal(s.train.x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"][s.train.ids.numpy()]).float() / 255)
    assert s.classes[0] == "T-shirt/top"


def test_mnist_from_torchvision_layout(tmp_path):
    write_mnist_folder(tmp_path / "MNIST" / "raw", gz=True)
    s = load_data({"name": "mnist", "root": str(tmp_path), "binarize": "static"})
    assert len(s.test) == 12 and s.num_bins == 2


def test_missing_data_error_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="data.download") as info:
        load_data({"name": "mnist", "root": str(tmp_path)})
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    write_mnist_folder(tmp_path / "part")
    (tmp_path / "part" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte"):
        load_data({"name": "fashion_mnist", "root": str(tmp_path / "part")})
    with pytest.raises(DataError, match="data.download"):
        load_data({"name": "cifar10", "root": str(tmp_path)})


def test_download_path_offline(tmp_path, monkeypatch):
    """download=true goes through torchvision (faked here: no network in tests)."""
    import torchvision.datasets as tvd

    calls = []

    class FakeMNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_mnist_folder(Path(root) / "MNIST" / "raw", gz=False)

    monkeypatch.setattr(tvd, "MNIST", FakeMNIST)
    s = load_data({"name": "mnist", "root": str(tmp_path), "download": True})
    assert len(s.test) == 12 and calls and all(c[2] for c in calls)
    calls.clear()
    load_data({"name": "mnist", "root": str(tmp_path), "download": True})
    assert not calls  # already there: nothing fetched

    class Offline:
        def __init__(self, root, train, download):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz\nmore")

    monkeypatch.setattr(tvd, "FashionMNIST", Offline)
    with pytest.raises(DataError, match="data.download: could not download fashion_mnist") as info:
        load_data({"name": "fashion_mnist", "root": str(tmp_path / "none"), "download": True})
    assert "\n" not in str(info.value)


def test_default_root_respects_vaezoo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEZOO_HOME", str(tmp_path))
    assert default_root() == tmp_path / "data"
    write_mnist_folder(tmp_path / "data" / "mnist")
    assert len(load_data({"name": "mnist"}).test) == 12
    monkeypatch.delenv("VAEZOO_HOME")
    assert default_root() == Path("~/.cache/vaezoo/data").expanduser()


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian_folder():
    s = load_data({"name": "fashion_mnist", "root": str(DEBIAN_FASHION), "binarize": "dynamic"}, FakeBernoulli())
    assert (len(s.train), len(s.val), len(s.test)) == (54000, 6000, 10000)
    assert s.data_shape == (1, 28, 28) and s.test.y.unique().tolist() == list(range(10))


# ------------------------------------------------------------------------------ CIFAR-10


def cifar_batch(n: int, rng) -> tuple[bytes, np.ndarray, np.ndarray]:
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    raw = b"".join(bytes([labels[i]]) + images[i].tobytes() for i in range(n))
    return raw, images, labels


@pytest.mark.parametrize("as_archive", [False, True])
def test_cifar10_binary_version(tmp_path, as_archive):
    rng = np.random.default_rng(0)
    folder = tmp_path / "src" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    test_images = None
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        raw, images, _ = cifar_batch(2, rng)
        (folder / name).write_bytes(raw)
        test_images = images
    root = tmp_path / "src"
    if as_archive:
        root = tmp_path / "arch"
        root.mkdir()
        with tarfile.open(root / "cifar-10-binary.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-bin")
    s = load_data({"name": "cifar10", "root": str(root), "val_fraction": 0.2})
    assert s.data_shape == (3, 32, 32) and (len(s.train), len(s.val), len(s.test)) == (8, 2, 2)
    assert torch.equal(s.test.x, torch.from_numpy(test_images).float() / 255)
    (folder / "test_batch.bin").write_bytes(b"\0" * 100)
    if not as_archive:
        with pytest.raises(DataError, match="not a CIFAR-10 binary batch"):
            load_data({"name": "cifar10", "root": str(root)})


def test_cifar10_refuses_pickled_version(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="never unpickles"):
        load_data({"name": "cifar10", "root": str(tmp_path)})


# -------------------------------------------------------------------------------- tensor


def test_tensor_source_safetensors(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 1, 4, 4), dtype=np.uint8)
    y = rng.integers(0, 3, 40).astype(np.int64)
    xt = rng.integers(0, 256, (7, 1, 4, 4), dtype=np.uint8)
    save_file({"x": x, "y": y, "x_test": xt, "y_test": np.zeros(7, dtype=np.int64)}, str(tmp_path / "d.safetensors"))
    s = load_data({"name": "tensor", "root": str(tmp_path / "d.safetensors")})
    assert s.data_shape == (1, 4, 4) and len(s.test) == 7 and len(s.train) + len(s.val) == 40
    assert torch.equal(s.test.x, torch.from_numpy(xt).float() / 255)
    assert torch.equal(s.train.y, torch.from_numpy(y[s.train.ids.numpy()]))


def test_tensor_source_npy(tmp_path):
    x = np.random.default_rng(0).random((50, 6), dtype=np.float32)
    np.save(tmp_path / "d.npy", x)
    s = load_data({"name": "tensor", "root": str(tmp_path / "d.npy")})
    assert s.data_shape == (6,) and s.train.y is None
    assert (len(s.train), len(s.val), len(s.test)) == (40, 5, 5)  # fixed 10% test split
    x, y = next(iter(BatchIterator(s.train, 8)))
    assert y is None and x.shape == (8, 6)
    np.save(tmp_path / "big.npy", np.full((4, 2), 3.0))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        load_data({"name": "tensor", "root": str(tmp_path / "big.npy")})
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="cannot read"):
        load_data({"name": "tensor", "root": str(tmp_path / "obj.npy")})
    with pytest.raises(DataError, match="data.root"):
        load_data({"name": "tensor"})


# -------------------------------------------------------------------------- image folder


def make_image_folder(root: Path, size=(6, 5)) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        for i in range(5):
            write_png(root / cls / f"{i}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def test_image_folder_labels_from_subfolders(tmp_path):
    make_image_folder(tmp_path)
    s = load_data({"name": "image_folder", "root": str(tmp_path), "val_fraction": 0.2})
    assert s.data_shape == (3, 6, 5) and s.classes == ["cat", "dog"]
    assert len(s.train) + len(s.val) + len(s.test) == 10 and len(s.test) == 1
    assert set(torch.cat([s.train.y, s.val.y, s.test.y]).tolist()) == {0, 1}
    g = load_data({"name": "image_folder", "root": str(tmp_path), "grayscale": True, "image_size": 4})
    assert g.data_shape == (1, 4, 4)


def test_image_folder_train_test_layout_and_unlabelled(tmp_path):
    make_image_folder(tmp_path / "train")
    make_image_folder(tmp_path / "test")
    s = load_data({"name": "image_folder", "root": str(tmp_path), "val_fraction": 0.0})
    assert (len(s.train), len(s.test)) == (10, 10) and s.classes == ["cat", "dog"]
    flat = tmp_path / "flat"
    for i in range(4):
        write_png(flat / f"{i}.png", np.full((3, 3), 40 * i, dtype=np.uint8))
    u = load_data({"name": "image_folder", "root": str(flat), "grayscale": True, "val_fraction": 0.0})
    assert u.train.y is None and u.classes is None and u.data_shape == (1, 3, 3)


def test_image_folder_streaming_matches_in_memory(tmp_path):
    make_image_folder(tmp_path)
    cfg = {"name": "image_folder", "root": str(tmp_path), "flatten": True}
    mem = load_data({**cfg, "in_memory": True})
    stream = load_data({**cfg, "in_memory": False})
    assert not stream.train.in_memory and stream.data_shape == mem.data_shape == (90,)
    xs, ys = zip(*BatchIterator(stream.train, 3, shuffle=False))
    assert torch.equal(torch.cat(xs), mem.train.x) and torch.equal(torch.cat(ys), mem.train.y)
    b = load_data({**cfg, "in_memory": False, "binarize": "dynamic"}, FakeBernoulli())
    x, _ = next(iter(BatchIterator(b.train, 4)))
    assert set(x.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "cfg",
    [
        {"name": "digits"},
        {"name": "digits", "flatten": True},
        {"name": "image_folder", "in_memory": True},
        {"name": "image_folder", "in_memory": False, "grayscale": True},
        {"name": "image_folder", "in_memory": False, "flatten": True},
    ],
)
def test_source_shape_is_known_before_preparing_and_raw_is_reused(tmp_path, monkeypatch, cfg):
    from vaezoo.data import load, read_source, source_shape

    if cfg["name"] == "image_folder":
        make_image_folder(tmp_path)
        cfg = {**cfg, "root": str(tmp_path)}
    raw = read_source(cfg)
    shape = source_shape(raw, cfg)
    monkeypatch.setattr(load, "load_source", lambda _cfg: pytest.fail("the source was read twice"))
    splits = load_data(cfg, raw=raw)
    assert shape == splits.data_shape == tuple(splits.train[0][0].shape)


def test_image_folder_errors(tmp_path):
    make_image_folder(tmp_path)
    write_png(tmp_path / "dog" / "big.png", np.zeros((9, 9, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="data.image_size"):
        load_data({"name": "image_folder", "root": str(tmp_path)})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_data({"name": "image_folder", "root": str(tmp_path / "empty")})


# ------------------------------------------------------------------- likelihood support


def test_check_against_bernoulli_support():
    try:
        bern = vaezoo.create("likelihood", "bernoulli")
    except Exception:  # pragma: no cover - the built-in may be missing in a partial tree
        bern = FakeBernoulli()
    with pytest.raises(DataError, match="binarize"):
        load_data({"name": "digits", "binarize": "none"}, bern)  # left unset it would be binarized
    for mode in ("dynamic", "static"):
        s = load_data({"name": "digits", "binarize": mode}, bern)
        assert s.num_bins == 2


def test_discretized_likelihood_accepts_quantized_digits():
    try:
        lik = vaezoo.create("likelihood", "discretized_logistic")
    except Exception:  # pragma: no cover
        lik = FakeDiscretized(8)
    s = load_data({"name": "digits"}, lik)
    assert s.num_bins == 2 ** lik.bits


# ------------------------------------------------------------------------------- config


def test_config_errors_name_the_key():
    with pytest.raises(DataError, match="Did you mean 'fashion_mnist'"):
        load_data({"name": "fashoin_mnist"})
    with pytest.raises(DataError, match="data.binarise: unknown key"):
        load_data({"binarise": "dynamic"})
    with pytest.raises(DataError, match="data.binarize"):
        load_data({"binarize": "dinamic"})
    with pytest.raises(DataError, match="data.val_fraction"):
        load_data({"val_fraction": 1.0})
    with pytest.raises(DataError, match="data.dequantize"):
        load_data({"dequantize": True, "binarize": "static"})


def test_omegaconf_config_accepted():
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.structured(DataConfig), {"binarize": "static", "limit": 50})
    s = load_data(cfg)
    assert len(s.train) + len(s.val) == 50
