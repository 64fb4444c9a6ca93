"""Two CPU processes under torchrun (gloo): disjoint shards, all-reduced metrics, one writer,
no ``module.`` prefix, and a distributed resume."""

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
    "log.loggers=[jsonl]",
    "train.device=cpu",
    "log.interval=2",
    "log.progress=false",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path, *args: str) -> subprocess.CompletedProcess:
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
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "x 2 processes" in proc.stdout
    return proc


def epoch_records(out):
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return records, [r for r in records if r["kind"] == "epoch"]


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="torch built without gloo"
)
def test_two_processes_with_gloo(tmp_path):
    from vaezoo.config import load_config
    from vaezoo.data import BatchIterator, load_data
    from vaezoo.data.preprocess import derive_seed

    out = tmp_path / "ddp"
    # epoch 1: every update skipped, so the weights stay the initial ones and the epoch's
    # loss can be recomputed here from the two ranks' shards
    first = ["train.epochs=1", "train.skip_threshold=1e-12", "objective.kl_warmup_epochs=0", "eval.at_end=false"]
    proc = torchrun(tmp_path, *TINY, *first, "--out", str(out))
    assert proc.stdout.count("run folder: ") == 1  # only rank 0 reports
    _, epochs = epoch_records(out)
    assert len(epochs) == 1  # one writer
    # 128 examples -> 115 for training, padded to 116: 58 per rank -> 4 batches of 16 per rank
    assert epochs[0]["step"] == 4
    assert epochs[0]["train/skipped"] == 2 * 4  # summed over both ranks

    cfg = load_config(out / "config.yaml")
    torch.manual_seed(int(cfg.train.seed))
    model = vaezoo.build_model(cfg.model)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in ckpt.load(out).group("model").items():
        assert torch.equal(value, initial[key]), key
    splits = load_data(cfg.data, likelihood=model.likelihood)
    model.train()
    shards, sums, counts = [], [], []
    with torch.no_grad():
        for rank in (0, 1):
            it = BatchIterator(
                splits.train, int(cfg.train.batch_size), shuffle=True, seed=int(cfg.train.seed), rank=rank, world_size=2
            )
            it.set_epoch(0)
            shards.append(it.indices(0).tolist())
            torch.manual_seed(derive_seed(int(cfg.train.seed), "train", 0, rank))  # what the trainer seeds
            total = 0.0
            for x, _ in it:
                total += float(model.elbo(x, num_samples=1, beta=1.0)["loss"].sum())
            sums.append(total)
            counts.append(len(shards[-1]))
    n = len(splits.train)
    assert n == 115 and counts == [58, 58]
    assert set(shards[0]) | set(shards[1]) == set(range(n))
    assert len(set(shards[0]) & set(shards[1])) == 1  # disjoint but for the one example that pads to 116
    union_loss = sum(sums) / sum(counts)
    assert epochs[0]["train/loss"] == pytest.approx(union_loss, rel=1e-6)
    assert abs(sums[0] / counts[0] - union_loss) > 1e-3  # rank 0 alone would not match: the metric is all-reduced

    # epoch 2, resumed under torchrun, trains for real
    proc = torchrun(tmp_path, "--resume", str(out), "train.epochs=2", "train.skip_threshold=0", "eval.at_end=true")
    assert "resuming" in proc.stdout and proc.stdout.count("run folder: ") == 1
    records, epochs = epoch_records(out)
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert epochs[-1]["step"] == 2 * 4 and epochs[-1]["train/skipped"] == 0
    assert all(r["train/loss"] == r["train/loss"] for r in epochs)
    assert len([r for r in records if r["kind"] == "eval"]) == 1
    last = ckpt.load(out).group("model")
    assert not any(k.startswith("module.") for k in last)
    assert any(not torch.equal(v, initial[k]) for k, v in last.items())  # the updates were applied

    weights = load_file(out / "model" / "model.safetensors")
    assert not any(k.startswith("module.") for k in weights)
    assert set(weights) == set(vaezoo.from_pretrained(out / "model").state_dict())


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="torch built without gloo"
)
def test_a_hierarchical_model_trains_under_torchrun(tmp_path):
    """The hierarchy goes through DistributedDataParallel like the flat model: one writer, all-reduced
    per-level metrics, weights without the ``module.`` prefix."""
    out = tmp_path / "hier"
    hier = ["model.architecture=hierarchical", "model.latent_dims=[4,2]", "model.hidden=[16]",
            "model.prior=normal", "model.likelihood=bernoulli"]
    base = [a for a in TINY if not a.startswith(("model.latent_dim=", "model.encoder", "model.decoder"))]
    proc = torchrun(tmp_path, *base, *hier, "--out", str(out))
    assert proc.stdout.count("run folder: ") == 1
    _, epochs = epoch_records(out)
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all(abs(r["train/kl"] - r["train/kl_1"] - r["train/kl_2"]) < 1e-3 for r in epochs)
    weights = load_file(out / "model" / "model.safetensors")
    assert not any(k.startswith("module.") for k in weights)
    assert vaezoo.from_pretrained(out / "model").config["architecture"] == "hierarchical"
