"""The trainer on tiny digits runs: every likelihood, resume bit-exactness, crash safety, NaN stop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from diverging import DIVERGING_RUN
from safetensors.torch import load_file

import vaezoo
from vaezoo.config import load_config
from vaezoo.training import NonFiniteLossError, train
from vaezoo.training import checkpoint as ckpt
from vaezoo.components import warmup
from vaezoo.training.optim import EMA, lr_at

TINY = [
    "data.limit=96",
    "model.latent_dim=4",
    "model.encoder.hidden=[16]",
    "model.decoder.hidden=[16]",
    "train.epochs=1",
    "train.batch_size=32",
    "eval.num_samples=4",
    "log.progress=false",
    "log.num_images=8",
    "log.loggers=[jsonl]",
]


def run(tmp_path: Path, *overrides: str, name: str = "run", **kwargs):
    cfg = load_config(None, [*TINY, *overrides, f"log.dir={tmp_path / name}"])
    return train(cfg, echo=lambda _msg: None, **kwargs)


def epochs_in(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "epoch"]


LIKELIHOODS = [
    ("bernoulli", "dynamic"),
    ("continuous_bernoulli", "none"),
    ("gaussian", "none"),
    ("laplace", "none"),
    ("discretized_logistic", "none"),
    ("discretized_logistic_mixture", "none"),
]


@pytest.mark.parametrize(("likelihood", "binarize"), LIKELIHOODS)
def test_a_short_run_per_likelihood(tmp_path, likelihood, binarize):
    result = run(tmp_path, f"model.likelihood.name={likelihood}", f"data.binarize={binarize}")
    d = result.run_dir
    assert result.stop_reason == "completed" and result.epochs == 1
    for name in (
        "config.yaml",
        "checkpoint.safetensors",
        "metrics.jsonl",
        "eval.json",
        "samples.png",
        "reconstructions.png",
        "loss_curve.png",
        "images/samples_e001.png",
        "model/config.json",
        "model/model.safetensors",
    ):
        assert (d / name).is_file(), name
    scores = json.loads((d / "eval.json").read_text())
    assert all(math.isfinite(scores[k]) for k in ("elbo", "nll", "bits_per_dim"))
    model = vaezoo.from_pretrained(d / "model")
    assert model.data_shape == (1, 8, 8)
    assert model.config["likelihood"]["name"] == likelihood
    saved = load_config(d / "config.yaml")  # the resolved config loads again, data_shape filled
    assert list(saved.model.data_shape) == [1, 8, 8] and saved.log.dir == str(d)


def test_resume_is_bit_exact(tmp_path):
    extra = [
        "train.epochs=4",
        "train.ema=0.9",
        "objective.kl_warmup_epochs=1.5",
        "objective.free_bits=0.05",
        "model.prior.name=mixture",
        "model.prior.components=3",
        "train.grad_clip=50",
    ]
    straight = run(tmp_path, *extra, name="straight")
    paused = run(tmp_path, *extra, name="resumed", until_epoch=2)
    assert paused.stop_reason == "paused" and paused.model_dir is None
    assert ckpt.load(paused.run_dir).state["epoch"] == 2
    cfg = load_config(None, base=_yaml(paused.run_dir / "config.yaml"))
    resumed = train(cfg, resume=paused.run_dir, echo=lambda _msg: None)
    assert resumed.stop_reason == "completed"
    a = load_file(straight.run_dir / "model" / "model.safetensors")
    b = load_file(resumed.run_dir / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ca, cb = ckpt.load(straight.run_dir), ckpt.load(resumed.run_dir)
    for group in ("optimizer", "ema"):
        for key, value in ca.group(group).items():
            assert torch.equal(value, cb.group(group)[key]), (group, key)
    assert [r["train/loss"] for r in epochs_in(straight.run_dir)] == [
        r["train/loss"] for r in epochs_in(resumed.run_dir)
    ]


def _yaml(path):
    from vaezoo.config import read_yaml

    return read_yaml(path)


def test_checkpoint_is_pickle_free_and_complete(tmp_path, monkeypatch):
    import pickle

    from safetensors import safe_open

    result = run(tmp_path, "train.ema=0.5", "train.epochs=2", until_epoch=1)
    path = result.run_dir / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as fh:  # a safetensors file: header, tensors, JSON metadata
        assert fh.metadata()["format"] == ckpt.FORMAT
        assert {key.partition("/")[0] for key in fh.keys()} == {"model", "optimizer", "ema", "best"}
    c = ckpt.load(path)
    assert set(c.groups) == {"model", "optimizer", "ema", "best"}
    assert c.state["epoch"] == 1 and c.state["step"] == 3
    assert not any(k.startswith("module.") for k in c.group("model"))
    assert c.state["optimizer"]["param_groups"][0]["lr"] > 0

    def no_pickle(*args, **kwargs):
        raise AssertionError("unpickling while resuming from a checkpoint")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, no_pickle)
    cfg = load_config(None, base=_yaml(result.run_dir / "config.yaml"))
    done = train(cfg, resume=result.run_dir, echo=lambda _msg: None)
    assert done.stop_reason == "completed" and ckpt.load(path).state["epoch"] == 2


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    first = run(tmp_path, "train.epochs=2", until_epoch=1)
    path = first.run_dir / "checkpoint.safetensors"
    before = path.read_bytes()

    import vaezoo.fileio

    real_replace = vaezoo.fileio.replace_durably

    def dying_replace(tmp, dest):
        if Path(dest).name == "checkpoint.safetensors":
            data = Path(tmp).read_bytes()
            Path(tmp).write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt  # as if the process were killed mid-write
        real_replace(tmp, dest)

    monkeypatch.setattr(vaezoo.fileio, "replace_durably", dying_replace)
    cfg = load_config(None, base=_yaml(first.run_dir / "config.yaml"))
    with pytest.raises(KeyboardInterrupt):
        train(cfg, resume=first.run_dir, echo=lambda _msg: None)
    assert path.read_bytes() == before
    assert ckpt.load(path).state["epoch"] == 1
    assert [p.name for p in first.run_dir.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.setattr(vaezoo.fileio, "replace_durably", real_replace)
    done = train(
        load_config(None, base=_yaml(first.run_dir / "config.yaml")), resume=first.run_dir, echo=lambda _m: None
    )
    assert done.stop_reason == "completed" and ckpt.load(path).state["epoch"] == 2
    assert [r["epoch"] for r in epochs_in(first.run_dir)] == [1, 2]  # the interrupted epoch's record is not doubled


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from vaezoo.architectures.vae import VAE

    real_elbo = VAE.elbo
    calls = {"n": 0}

    def poisoned(self, x, *args, **kwargs):
        out = real_elbo(self, x, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] > 3:  # epoch 1 has 3 steps; epoch 2 diverges
                out = {**out, "loss": out["loss"] * float("nan")}
        return out

    monkeypatch.setattr(VAE, "elbo", poisoned)
    with pytest.raises(NonFiniteLossError) as info:
        run(tmp_path, "train.epochs=3", "log.interval=1")
    message = str(info.value)
    assert "NaN or infinite in epoch 2" in message and "last good checkpoint (epoch 1)" in message
    c = ckpt.load(tmp_path / "run")
    assert c.state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in c.group("model").values())


def test_huge_learning_rate_is_caught(tmp_path):
    with pytest.raises(NonFiniteLossError, match="lower train.lr"):
        run(tmp_path, *DIVERGING_RUN)


def test_skipped_updates_leave_the_weights_alone_and_early_stopping(tmp_path):
    result = run(tmp_path, "train.skip_threshold=1e-12", "train.epochs=5", "train.patience=2")
    records = epochs_in(result.run_dir)
    assert all(r["train/skipped"] == 3 for r in records)
    assert result.stop_reason == "early_stopping" and result.epochs == 3  # no improvement after epoch 1
    config = vaezoo.from_pretrained(result.run_dir / "model").config
    torch.manual_seed(0)  # train.seed: the run's initial weights
    fresh = vaezoo.build_model(config)
    trained = load_file(result.run_dir / "model" / "model.safetensors")
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, trained[key]), key


@pytest.mark.parametrize("kernel", ["fused", "foreach"])
def test_a_non_finite_gradient_is_skipped_with_either_optimizer_kernel(tmp_path, monkeypatch, kernel):
    from vaezoo.architectures.vae import VAE
    from vaezoo.training import trainer as trainer_module

    real_build, real_elbo = trainer_module.build_optimizer, VAE.elbo
    kernels = []

    def build(params, train_cfg):
        if kernel == "fused":
            opt = real_build(params, train_cfg)
        else:  # as on a device or torch without the fused kernel
            opt = torch.optim.Adam([p for p in params if p.requires_grad], lr=float(train_cfg.lr), foreach=True)
        kernels.append(trainer_module.is_fused(opt))
        return opt

    def nan_gradient(self, x, *args, **kwargs):
        out = real_elbo(self, x, *args, **kwargs)
        if self.training:  # a finite loss whose gradient is NaN: d/dw 0 * sqrt(w - w) = 0 * inf
            w = next(self.parameters()).sum()
            out = {**out, "loss": out["loss"] + 0.0 * torch.sqrt(w - w.detach())}
        return out

    monkeypatch.setattr(trainer_module, "build_optimizer", build)
    monkeypatch.setattr(VAE, "elbo", nan_gradient)
    result = run(tmp_path, "train.grad_clip=1.0", "train.skip_threshold=0", "log.interval=1")
    assert kernels == [kernel == "fused"]
    assert [r["train/skipped"] for r in epochs_in(result.run_dir)] == [3]  # every step skipped
    config = vaezoo.from_pretrained(result.run_dir / "model").config
    torch.manual_seed(0)  # train.seed: the run's initial weights, untouched
    fresh = vaezoo.build_model(config)
    trained = load_file(result.run_dir / "model" / "model.safetensors")
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, trained[key]), key


def test_iwae_bf16_and_adamw(tmp_path, monkeypatch):
    from vaezoo.architectures.vae import VAE
    from vaezoo.training import trainer as trainer_module

    optimizers, calls = [], []
    real_build = trainer_module.build_optimizer

    def spy_build(params, train_cfg):
        optimizers.append(real_build(params, train_cfg))
        return optimizers[-1]

    real_weights = VAE.log_weights

    def spy_weights(self, x, num_samples, **kwargs):
        if self.training:
            calls.append(
                {
                    "num_samples": num_samples,
                    "autocast": torch.is_autocast_enabled("cpu"),
                    "dtype": torch.get_autocast_dtype("cpu"),
                }
            )
        return real_weights(self, x, num_samples, **kwargs)

    monkeypatch.setattr(trainer_module, "build_optimizer", spy_build)
    monkeypatch.setattr(VAE, "log_weights", spy_weights)
    result = run(
        tmp_path,
        "objective.name=iwae",
        "objective.num_samples=3",
        "train.precision=bf16",
        "train.optimizer=adamw",
        "train.weight_decay=0.01",
        "train.schedule=linear",
        "train.device=cpu",
    )
    assert math.isfinite(result.metrics["train/loss"])
    assert len(optimizers) == 1 and type(optimizers[0]) is torch.optim.AdamW
    assert optimizers[0].param_groups[0]["weight_decay"] == 0.01
    assert len(calls) == 3  # 3 training steps
    assert all(c == {"num_samples": 3, "autocast": True, "dtype": torch.bfloat16} for c in calls)


def test_two_dimensional_latent_space_draws_the_classic_figures(tmp_path):
    result = run(tmp_path, "model.latent_dim=2")
    assert (result.run_dir / "latent_scatter.png").is_file()
    assert (result.run_dir / "latent_manifold.png").is_file()


def test_resume_refuses_a_finished_run(tmp_path):
    from vaezoo.errors import ConfigError

    result = run(tmp_path)
    cfg = load_config(None, base=_yaml(result.run_dir / "config.yaml"))
    with pytest.raises(ConfigError, match="already trained all 1 epochs"):
        train(cfg, resume=result.run_dir, echo=lambda _msg: None)
    with pytest.raises(ConfigError, match="already holds a run"):
        run(tmp_path)


def test_schedules():
    kw = dict(lr=1.0, total_steps=100, warmup_steps=10, min_lr=0.0)
    assert lr_at(0, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_at(9, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_at(10, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_at(55, schedule="cosine", **kw) == pytest.approx(0.5)
    assert lr_at(100, schedule="cosine", **kw) == pytest.approx(0.0)
    assert lr_at(55, schedule="linear", **kw) == pytest.approx(0.5)
    assert lr_at(99, schedule="constant", **kw) == 1.0
    assert warmup(0, 2.0, 4) == pytest.approx(0.5)
    assert warmup(3, 2.0, 4) == pytest.approx(2.0)
    assert warmup(0, 2.0, 0) == 2.0


def test_ema_tracks_and_swaps():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, 0.5)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    for _ in range(50):
        ema.update(net)
    assert torch.allclose(ema.state["weight"], start + 1.0)
    with torch.no_grad():  # the live weights move on: now they differ from the averages
        net.weight.add_(5.0)
    live, averaged = net.weight.detach().clone(), ema.state["weight"].clone()
    assert not torch.allclose(live, averaged)
    ema.swap(net)
    assert torch.equal(net.weight, averaged) and torch.equal(ema.state["weight"], live)
    ema.swap(net)  # twice: undone
    assert torch.equal(net.weight, live) and torch.equal(ema.state["weight"], averaged)
