"""Two CPU processes under torchrun (gloo): sharded data, one writer, no ``module.`` prefix."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import vaezoo
from vaezoo.training import checkpoint as ckpt

TINY = [
    "data.limit=128",
    "model.latent_dim=4",
    "model.encoder.hidden=[16]",
    "model.decoder.hidden=[16]",
    "train.epochs=2",
    "train.batch_size=16",
    "eval.num_samples=4",
    "log.num_images=8",
    "log.tensorboard=false",
    "train.device=cpu",
    "log.interval=2",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="torch built without gloo"
)
def test_two_processes_with_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VAEZOO_PLUGINS": ""}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "-m",
        "vaezoo",
        "train",
        *TINY,
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "x 2 processes" in proc.stdout
    assert proc.stdout.count("run folder: ") == 1  # only rank 0 reports

    weights = load_file(out / "model" / "model.safetensors")
    assert not any(k.startswith("module.") for k in weights)
    model = vaezoo.from_pretrained(out / "model")
    assert set(weights) == set(model.state_dict())
    assert not any(k.startswith("module.") for k in ckpt.load(out).group("model"))

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]  # one writer: each epoch once
    # each rank sees half of the 115 training examples (padded to 116): 58 per rank -> 4 batches of 16
    assert epochs[-1]["step"] == 2 * 4
    assert all(r["train/loss"] == r["train/loss"] for r in epochs)
    assert len([r for r in records if r["kind"] == "eval"]) == 1
