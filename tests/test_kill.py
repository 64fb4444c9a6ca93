"""kill -9, again and again: no checkpoint is ever corrupted and the run can always be continued.

A real ``vaezoo train`` process is killed at least 15 times, about half of the kills while
the checkpoint is being written (the moment its temporary file appears), the others at
random moments (data loading, mid-epoch, while the final model is written). After every kill
the checkpoint that is there must load, and ``vaezoo train --resume`` must take the folder
(whatever state it is in). The finished run must have exactly the weights of a run that was
never interrupted, and no temporary file may be left in it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vaezoo.training import checkpoint as ckpt

KILLS = 16
RECIPE = [
    "data.limit=400",
    "model.encoder.hidden=[1024,1024]",
    "model.decoder.hidden=[1024,1024]",
    "train.epochs=40",
    "train.batch_size=100",
    "eval.num_samples=4",
    "log.images=false",
    "log.loggers=[jsonl]",
    "log.progress=false",
]


def _start(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "VAEZOO_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "vaezoo", "train", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def _writing_checkpoint(run: Path) -> bool:
    try:
        return any(e.name.startswith(".checkpoint.safetensors.") for e in os.scandir(run))
    except FileNotFoundError:
        return False


def _kill(proc: subprocess.Popen, run: Path, during_save: bool, rng: random.Random) -> tuple[bool, bool]:
    """Kill ``proc``: at its next checkpoint write, or after a random delay. Returns (killed, while saving)."""
    deadline = time.monotonic() + (30.0 if during_save else rng.uniform(1.0, 4.0))
    while time.monotonic() < deadline and proc.poll() is None:
        if during_save and _writing_checkpoint(run):
            break
        time.sleep(0.0005 if during_save else 0.01)
    saving = _writing_checkpoint(run)
    if proc.poll() is not None:
        return False, False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return True, saving


@pytest.mark.slow
def test_kill_9_loop_never_corrupts_and_always_continues(tmp_path):
    rng = random.Random(0)
    run = tmp_path / "killed"
    kills = during_saves = corrupted = 0
    proc = _start(*RECIPE, "--out", str(run))
    rounds = 0
    while True:
        rounds += 1
        assert rounds < 200, "the run made no progress"
        if kills < KILLS:
            killed, saving = _kill(proc, run, during_save=kills % 2 == 0, rng=rng)
        else:
            proc.wait(timeout=600)
            killed, saving = False, False
        err = proc.stderr.read().decode() if proc.stderr else ""
        proc.stderr.close()
        if not killed:
            assert proc.returncode == 0, err
            break
        kills += 1
        during_saves += saving
        if (run / ckpt.CHECKPOINT_NAME).exists():
            try:
                ckpt.load(run)
            except Exception:  # noqa: BLE001 - counted, asserted below
                corrupted += 1
        proc = _start("--resume", str(run))  # whatever the state, --resume takes the folder
    assert kills >= 15 and corrupted == 0
    assert during_saves >= 5, f"only {during_saves} of {kills} kills hit a checkpoint write"

    whole = tmp_path / "whole"
    done = subprocess.run(
        [sys.executable, "-m", "vaezoo", "train", *RECIPE, "--out", str(whole)],
        capture_output=True,
        env={**os.environ, "VAEZOO_PLUGINS": "", "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode()
    a = load_file(str(run / "model" / "model.safetensors"))
    b = load_file(str(whole / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    leftovers = [p.name for p in run.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
