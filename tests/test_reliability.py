"""Nothing lost: exploded last steps, runs killed at awkward moments, stale temporary files,
file modes and durable renames."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vaezoo import fileio
from vaezoo.cli import main
from vaezoo.config import load_config, read_yaml
from vaezoo.training import NonFiniteLossError, train
from vaezoo.training import checkpoint as ckpt

TINY = [
    "data.limit=60",
    "model.latent_dim=4",
    "model.encoder.hidden=[16]",
    "model.decoder.hidden=[16]",
    "train.epochs=2",
    "train.batch_size=64",
    "eval.num_samples=4",
    "log.progress=false",
    "log.images=false",
    "log.loggers=[jsonl]",
]
QUIET = {"echo": lambda _msg: None}


def run(folder: Path, *overrides: str):
    return train(load_config(None, [*TINY, *overrides, f"log.dir={folder}"]), **QUIET)


def resume(folder: Path, *overrides: str):
    cfg = load_config(None, list(overrides), base=read_yaml(folder / "config.yaml"))
    return train(cfg, resume=folder, **QUIET)


def max_abs_weight(folder: Path) -> float:
    return max(v.abs().max().item() for v in ckpt.load(folder).group("model").values())


@pytest.mark.parametrize("val_fraction", ["0", "0.5"])
def test_an_exploded_last_step_is_never_checkpointed(tmp_path, val_fraction):
    """One step per epoch and lr=1e30: the loss of the step is finite (it is the loss of the
    weights before it), the weights after it are not usable; the epoch-2 checkpoint survives."""
    folder = tmp_path / "run"
    run(folder, f"data.val_fraction={val_fraction}")
    before = (folder / "checkpoint.safetensors").read_bytes()
    with pytest.raises(NonFiniteLossError) as info:
        resume(folder, "train.epochs=4", "train.lr=1e30", "train.warmup_epochs=0")
    message = str(info.value)
    assert "epoch 3" in message and "last good checkpoint (epoch 2) is kept" in message, message
    assert (folder / "checkpoint.safetensors").read_bytes() == before
    assert max_abs_weight(folder) < 1e3
    done = resume(folder, "train.epochs=4", "train.lr=1e-3")  # a sane learning rate continues
    assert done.stop_reason == "completed" and ckpt.load(folder).state["epoch"] == 4


def test_killed_after_the_last_checkpoint_resume_finishes_without_training(tmp_path, capsys):
    folder = tmp_path / "run"
    run(folder)
    checkpoint = (folder / "checkpoint.safetensors").read_bytes()
    weights = load_file(str(folder / "model" / "model.safetensors"))
    shutil.rmtree(folder / "model")
    (folder / "eval.json").unlink()
    assert main(["eval", str(folder)]) == 2
    assert "--resume" in capsys.readouterr().err  # the error names the way forward
    result = resume(folder)
    assert result.epochs == 2 and (folder / "eval.json").is_file()
    assert (folder / "checkpoint.safetensors").read_bytes() == checkpoint  # no step was taken
    again = load_file(str(folder / "model" / "model.safetensors"))
    assert all(torch.equal(again[k], weights[k]) for k in weights)
    assert main(["eval", str(folder), "-k", "2"]) == 0


def test_killed_before_the_first_checkpoint_resume_trains_from_the_start(tmp_path, capsys):
    folder = tmp_path / "run"
    whole = run(tmp_path / "whole")
    run(folder)
    for name in ("checkpoint.safetensors", "eval.json", "loss_curve.png"):
        (folder / name).unlink()
    shutil.rmtree(folder / "model")
    assert main(["train", *TINY, "--out", str(folder)]) == 2
    assert f"vaezoo train --resume {folder}" in capsys.readouterr().err
    result = resume(folder)
    assert result.stop_reason == "completed" and result.epochs == 2
    a = load_file(str(folder / "model" / "model.safetensors"))
    b = load_file(str(whole.run_dir / "model" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    kinds = [r["epoch"] for r in map(__import__("json").loads, (folder / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]
    assert kinds == [1, 2]  # the first attempt's records are gone


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_are_removed_when_the_run_folder_is_opened(tmp_path):
    folder = tmp_path / "run"
    run(folder, "train.epochs=1")
    host = fileio._host()
    dead = folder / f".checkpoint.safetensors.{host}-{_dead_pid()}.abcd1234.tmp"
    alive = folder / f".config.yaml.{host}-{os.getpid()}.abcd1234.tmp"
    legacy_old = folder / ".tmpAbC123"  # safetensors' own, from an older vaezoo
    legacy_new = folder / "model" / ".tmpXyZ789"
    other_host = folder / "model" / ".model.safetensors.elsewhere-1.abcd1234.tmp"
    user_file = folder / ".notes.tmp.txt"
    for path in (dead, alive, legacy_old, legacy_new, other_host, user_file):
        path.write_bytes(b"x" * 1000)
    hour_ago = time.time() - fileio.STALE_SECONDS - 60
    os.utime(legacy_old, (hour_ago, hour_ago))
    resume(folder, "train.epochs=2")
    assert not dead.exists() and not legacy_old.exists()
    assert alive.exists() and legacy_new.exists() and other_host.exists() and user_file.exists()


def test_stale_temporary_files_are_removed_from_the_cache(tmp_path, monkeypatch):
    from test_download import DIGEST, PAYLOAD, make_entry

    from vaezoo.zoo.download import cache_path, ensure_weights

    monkeypatch.setenv("VAEZOO_HOME", str(tmp_path / "home"))
    served = tmp_path / "served.bin"
    served.write_bytes(PAYLOAD)
    entry = make_entry(served.as_uri(), DIGEST)
    cache = cache_path(entry).parent
    cache.mkdir(parents=True)
    dead = cache / f".{cache_path(entry).name}.{fileio._host()}-{_dead_pid()}.abcd1234.part"
    dead.write_bytes(b"half")
    assert ensure_weights(entry, progress=False).read_bytes() == PAYLOAD
    assert sorted(p.name for p in cache.iterdir()) == [cache_path(entry).name]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_of_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        result = run(tmp_path / "run", "train.epochs=1", "log.images=true", "log.num_images=4")
    finally:
        os.umask(old)
    d = result.run_dir
    for rel in ("checkpoint.safetensors", "config.yaml", "eval.json", "model/model.safetensors", "model/config.json", "samples.png", "loss_curve.png"):
        assert (d / rel).stat().st_mode & 0o777 == mode, rel


def test_every_atomic_write_fsyncs_its_folder_after_the_rename(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_replace, real_fsync_dir = os.replace, fileio.fsync_dir
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (events.append(("replace", str(Path(b).parent))), real_replace(a, b)))
    monkeypatch.setattr(fileio, "fsync_dir", lambda d: (events.append(("fsync_dir", str(d))), real_fsync_dir(d)))
    fileio.atomic_write_bytes(tmp_path / "a" / "f.bin", b"data")
    assert events == [("replace", str(tmp_path / "a")), ("fsync_dir", str(tmp_path / "a"))]
    events.clear()
    run(tmp_path / "run", "train.epochs=1")
    replaced = [d for kind, d in events if kind == "replace"]
    synced = [d for kind, d in events if kind == "fsync_dir"]
    assert replaced and replaced == synced


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def half(tmp):
        Path(tmp).write_text("ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as info:
        fileio.atomic_write(target, half)
    assert info.value.filename == str(target)  # named by the file meant, not the temporary one
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_a_set_of_files_is_written_all_or_none(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "a.txt").write_text("old a")

    def text(value):
        return lambda tmp: Path(tmp).write_text(value)

    def fails(tmp):
        Path(tmp).write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as info:
        fileio.atomic_write_all([(tmp_path / "old" / "a.txt", text("new a")), (tmp_path / "new" / "deep" / "b.txt", fails)])
    assert info.value.filename == str(tmp_path / "new" / "deep" / "b.txt")
    # the first file is untouched, no temporary file stays, the folders made for the second are gone
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["old", "old/a.txt"]
    assert (tmp_path / "old" / "a.txt").read_text() == "old a"
    (tmp_path / "old" / "b.txt").mkdir()  # a folder where the second file should go: refused before any rename
    with pytest.raises(IsADirectoryError):
        fileio.atomic_write_all([(tmp_path / "old" / "a.txt", text("new a")), (tmp_path / "old" / "b.txt", text("b"))])
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["a.txt", "b.txt"]
    assert (tmp_path / "old" / "a.txt").read_text() == "old a"
    fileio.atomic_write_all([(tmp_path / "old" / "a.txt", text("new a")), (tmp_path / "c" / "c.txt", text("c"))])
    assert (tmp_path / "old" / "a.txt").read_text() == "new a" and (tmp_path / "c" / "c.txt").read_text() == "c"


def test_a_set_whose_later_rename_fails_names_the_file_and_removes_the_new_ones(tmp_path, monkeypatch):
    real = fileio.replace_durably

    def second_fails(tmp, path):
        if Path(path).name == "b.txt":
            raise PermissionError(1, "Operation not permitted", str(tmp))  # os.replace names the temporary
        real(tmp, path)

    monkeypatch.setattr(fileio, "replace_durably", second_fails)
    with pytest.raises(PermissionError) as info:
        fileio.atomic_write_all([(tmp_path / "a.txt", lambda t: Path(t).write_text("a")),
                                 (tmp_path / "b.txt", lambda t: Path(t).write_text("b"))])
    assert info.value.filename == str(tmp_path / "b.txt")
    assert list(tmp_path.iterdir()) == []  # a.txt was new: removed again; no temporary left
