"""Bad input that used to end in a traceback: each is one ``vaezoo: error: ...`` line, exit 2, nothing written.

Weights metadata that is not JSON, files that are not safetensors, decompression bombs and
corrupt images in an image folder, sizes too large to allocate, and broken interpolations.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from test_cli import TINY, one_error_line

import vaezoo
from vaezoo.cli import main
from vaezoo.errors import CheckpointError, ConfigError

TINY_MODEL = {
    "data_shape": [1, 8, 8],
    "latent_dim": 2,
    "encoder": {"name": "mlp", "hidden": [8]},
    "decoder": {"name": "mlp", "hidden": [8]},
    "prior": {"name": "normal"},
    "likelihood": {"name": "bernoulli"},
}


def save_tiny_model(folder: Path, *, data_shape=(1, 8, 8), metadata: dict[str, str] | None = None) -> Path:
    """A small untrained model folder (config.json + model.safetensors) with extra weights metadata."""
    model = vaezoo.build_model({**TINY_MODEL, "data_shape": list(data_shape)})
    model.save_pretrained(str(folder), extra_metadata=metadata)
    return folder


# -- 1. weights metadata ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "metadata 'vaezoo_run' is not valid JSON"),
        ("[1, 2]", "metadata 'vaezoo_run' holds [1, 2], expected a JSON object"),
        ('"digits"', "metadata 'vaezoo_run' holds \"digits\", expected a JSON object"),
        ('{"data": 5}', "metadata 'vaezoo_run' has 'data' = 5, expected a JSON object"),
    ],
    ids=["not-json", "a-list", "a-string", "data-not-an-object"],
)
def test_run_metadata_that_is_not_a_json_object_is_one_line(tmp_path, capsys, text, expected):
    folder = save_tiny_model(tmp_path / "m", metadata={"vaezoo_run": text})
    assert main(["eval", str(folder), "-k", "1"]) == 2
    line = one_error_line(capsys)
    assert str(folder / "model.safetensors") in line and expected in line
    from vaezoo.evaluation import run_data_config

    with pytest.raises(CheckpointError, match="vaezoo_run"):
        run_data_config(folder, required=False)


def test_run_metadata_that_is_a_json_object_still_gives_the_data(tmp_path):
    from vaezoo.evaluation import run_data_config

    folder = save_tiny_model(tmp_path / "m", metadata={"vaezoo_run": '{"data": {"name": "digits"}}'})
    assert run_data_config(folder) == {"name": "digits"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"hello, not safetensors at all", "not a readable safetensors file (SafetensorError"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":", "not a readable safetensors file (SafetensorError"),
        (None, "no such weights file"),
    ],
    ids=["garbage", "truncated-header", "missing"],
)
def test_read_metadata_of_a_file_that_is_not_safetensors_names_the_file(tmp_path, content, expected):
    from vaezoo.serialization import read_metadata

    path = tmp_path / "model.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        read_metadata(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)
    assert "\n" not in str(info.value)


# -- 2. images that cannot or must not be decoded ------------------------------------------------
def write_png(path: Path, size: tuple[int, int] = (8, 8), seed: int = 0) -> Path:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0]), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path)
    return path


def claim_size(path: Path, width: int, height: int) -> None:
    """Rewrite the IHDR chunk of the PNG at ``path`` to claim ``width x height`` (with a valid CRC)."""
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:20], data[20:24] = width.to_bytes(4, "big"), height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def image_folder(tmp_path: Path, n: int = 6) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(n):
        write_png(folder / f"img{i}.png", seed=i)
    return folder


def train_on(folder: Path, out: Path, *extra: str) -> int:
    return main(
        ["train", *TINY, "data.name=image_folder", f"data.root={folder}", "data.grayscale=true",
         "data.binarize=dynamic", *extra, "--out", str(out)]
    )


def test_a_png_whose_header_claims_ten_billion_pixels_is_refused_naming_the_file(tmp_path, capsys):
    from PIL import Image

    folder = image_folder(tmp_path)
    bomb = write_png(folder / "img3.png")
    claim_size(bomb, 100_000, 100_000)
    out = tmp_path / "r"
    assert train_on(folder, out) == 2
    line = one_error_line(capsys)
    assert f"{bomb}: 10,000,000,000 pixels is more than the {Image.MAX_IMAGE_PIXELS:,}" in line
    assert "decompression bomb" in line
    assert not out.exists()


@pytest.mark.parametrize("image_size", [None, 8], ids=["sizes-read-from-headers", "resized-on-load"])
def test_an_image_above_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch, capsys, image_size):
    from PIL import Image

    folder = image_folder(tmp_path)
    big = write_png(folder / "img2.png", size=(40, 40))
    # 1600 pixels: above the limit, below twice it, where PIL itself would only warn and decode
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    out = tmp_path / "r"
    extra = [] if image_size is None else [f"data.image_size={image_size}"]
    assert train_on(folder, out, *extra) == 2
    line = one_error_line(capsys)  # and no DecompressionBombWarning besides it
    assert f"{big}: 40x40 = 1,600 pixels is more than the 1,000 an image may have" in line
    assert not out.exists()


def _truncated(path: Path) -> None:
    data = write_png(path, size=(8, 8)).read_bytes()
    path.write_bytes(data[: len(data) - 30])


@pytest.mark.parametrize(
    ("name", "make", "detail"),
    [
        ("img2.png", lambda p: p.write_bytes(b"this is not an image"), "cannot identify image file"),
        ("img2.png", lambda p: p.write_bytes(b""), "cannot identify image file"),
        ("img2.png", _truncated, "image file is truncated"),
        ("img2.pgm", lambda p: p.write_bytes(b"P5\n8 8\n2x5\n" + bytes(64)), "invalid literal"),  # a ValueError
    ],
    ids=["garbage", "empty", "truncated", "bad-pgm-header"],
)
def test_a_corrupt_image_is_one_line_naming_the_file(tmp_path, capsys, name, make, detail):
    folder = image_folder(tmp_path)
    bad = folder / name
    (folder / "img2.png").unlink()
    make(bad)
    out = tmp_path / "r"
    assert train_on(folder, out) == 2
    line = one_error_line(capsys)
    assert f"{bad}: not a readable image (" in line and detail in line
    assert not out.exists()


# -- 3. sizes too large to allocate ------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.latent_dim=1000000000000"], "model.latent_dim: 1,000,000,000,000 is too large; at most 2,147,483,648"),
        (
            ["model.data_shape=[1, 100000000, 100000]"],
            "model.data_shape: [1, 100000000, 100000] is 10,000,000,000,000 values per example; at most 2,147,483,648",
        ),
        (["model.latent_dim=2147483648", "model.encoder.hidden=[100000]"], "model.encoder: MLPEncoder: "),
        (["model.encoder.hidden=[10000000, 10000000]"], "model.encoder: MLPEncoder: "),
        (["model.decoder.hidden=[10000000, 10000000]"], "model.decoder: MLPDecoder: "),
        (
            ["model.encoder.name=conv", "model.decoder.name=conv", "model.encoder.channels=[100000000, 100000000]"],
            "model.encoder: ConvEncoder: ",
        ),
        (
            ["model.encoder.name=conv", "model.decoder.name=conv", "model.decoder.hidden=100000000000000"],
            "model.decoder: ConvDecoder: ",
        ),
        # a prior's components: checked before anything is allocated, as the nets are
        (["model.prior.name=mixture", "model.prior.components=1000000000000000", "model.kl=mc"], "model.prior: GaussianMixture: "),
        (["model.prior.name=vamp", "model.prior.components=1000000000000000"], "model.prior.components: VampPrior: "),
    ],
    ids=["latent-dim", "data-shape", "encoder-head", "encoder-hidden", "decoder-hidden", "conv-channels", "conv-dense", "mixture", "vamp"],
)
def test_absurd_sizes_are_refused_in_one_line_and_write_nothing(tmp_path, capsys, overrides, expected):
    out = tmp_path / "r"
    assert main(["train", *TINY, *overrides, "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert expected in line, line
    if "Encoder" in expected or "Decoder" in expected or "Prior" in expected or "Mixture" in expected:
        assert "is more than the 2,147,483,648 (8 GiB) a vaezoo network may hold; its largest layer" in line
    assert not out.exists()


def test_the_largest_network_allowed_is_counted_exactly():
    from vaezoo.nets.layers import MAX_WEIGHTS
    from vaezoo.nets.mlp import MLPDecoder

    # Linear(1 -> n) holds 2n weights and biases: n = MAX_WEIGHTS // 2 is allowed, one more is
    # refused (on the meta device: nothing is allocated even if the check were missing)
    import torch

    with torch.device("meta"):
        MLPDecoder(latent_dim=1, param_shape=(MAX_WEIGHTS // 2,), hidden=[])
        with pytest.raises(ValueError, match=r"MLPDecoder: 2,147,483,650 weights .* Linear\(1 -> 1073741825\)"):
            MLPDecoder(latent_dim=1, param_shape=(MAX_WEIGHTS // 2 + 1,), hidden=[])


def test_sample_refuses_a_grid_too_large_before_loading(tmp_path, capsys):
    folder = save_tiny_model(tmp_path / "m")
    target = tmp_path / "s.png"
    assert main(["sample", str(folder), "--n", "100000000", "--out", str(target)]) == 2
    line = one_error_line(capsys)
    assert "--n: 100,000,000 samples is too many for one grid; at most 10,000 are allowed" in line
    assert not target.exists()


def test_sample_refuses_a_grid_too_large_for_the_model(tmp_path, capsys):
    from vaezoo.evaluation import MAX_GRID_VALUES, max_grid_samples, sample_grid

    folder = save_tiny_model(tmp_path / "m", data_shape=(1, 256, 256))  # 65,536 outputs per sample
    model = vaezoo.from_pretrained(folder)
    assert max_grid_samples(model) == MAX_GRID_VALUES // 65_536 == 4096
    target = tmp_path / "s.png"
    assert main(["sample", str(folder), "--n", "5000", "--out", str(target)]) == 2
    line = one_error_line(capsys)
    assert "--n: 5,000 samples would take 1.2 GiB (65,536 decoder outputs each); a grid holds at most 4,096" in line
    assert not target.exists()
    with pytest.raises(ConfigError, match=r"^n: 4,097 samples .* at most 4,096"):
        sample_grid(model, 4097, target)
    assert not target.exists()
    assert main(["sample", str(folder), "--n", "4", "--out", str(target)]) == 0 and target.is_file()


# -- 4. interpolations ------------------------------------------------------------------------------
def test_a_broken_interpolation_in_log_name_is_one_line_and_creates_no_run_folder(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *TINY, "log.name=${oops}", "--out", str(out)]) == 2
    assert "log.name: interpolation ${oops} refers to a key that does not exist" in one_error_line(capsys)
    assert not out.exists()


def test_a_broken_interpolation_without_out_leaves_log_root_empty(tmp_path, capsys):
    root = tmp_path / "runs"
    root.mkdir()
    assert main(["train", *TINY, "log.name=${oops}", f"log.root={root}"]) == 2
    assert "log.name: interpolation ${oops} refers to a key that does not exist" in one_error_line(capsys)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["log.name=${data.nme}"], "log.name: interpolation ${data.nme} refers to a key that does not exist. Did you mean 'data.name'?"),
        (["log.name=abc", "train.epochs=${log.name}"], "train.epochs: cannot resolve interpolation ${log.name}: "),
        (["log.name=${oc.env:VAEZOO_TEST_UNSET_VARIABLE}"], "log.name: cannot resolve interpolation ${oc.env:VAEZOO_TEST_UNSET_VARIABLE}: "),
    ],
    ids=["misspelled-key", "wrong-type", "unset-environment-variable"],
)
def test_interpolation_errors_name_the_key(tmp_path, monkeypatch, capsys, overrides, expected):
    monkeypatch.delenv("VAEZOO_TEST_UNSET_VARIABLE", raising=False)
    out = tmp_path / "r"
    assert main(["train", *TINY, *overrides, "--out", str(out)]) == 2
    assert expected in one_error_line(capsys)
    assert not out.exists()


def test_a_broken_interpolation_in_a_recipe_names_the_key(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model:\n  encoder:\n    name: mlp\n    hidden: [16, '${model.widths}']\n")
    tiny = [o for o in TINY if not o.startswith("model.encoder.")]
    assert main(["train", str(recipe), *tiny, "--out", str(tmp_path / "r")]) == 2
    assert "model.encoder.hidden[1]: interpolation ${model.widths} refers to a key that does not exist" in one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_a_missing_value_in_a_recipe_names_the_key(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model:\n  encoder:\n    name: conv\n    channels: ???\n")
    assert main(["train", str(recipe), "--out", str(tmp_path / "r")]) == 2
    assert "model.encoder.channels: no value given (???)" in one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_working_interpolations_are_resolved():
    from vaezoo.config import load_config, to_container

    cfg = load_config(None, ["log.name=${data.name}-small", "train.batch_size=${eval.num_samples}", "eval.num_samples=7"])
    assert cfg.log.name == "digits-small" and cfg.train.batch_size == 7
    assert to_container(cfg)["log"]["name"] == "digits-small"
