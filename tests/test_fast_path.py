"""The fast paths give the same numbers as the plain ones.

* ``VAE.elbo`` computes KL(q || N(0, I)) directly for a diagonal Gaussian q and the built-in
  normal prior: bit for bit what ``torch.distributions.kl_divergence`` gives, gradients too;
* ``VAE.log_likelihood`` runs the decoder over cache-sized pieces: the same samples, the same
  estimate (to float rounding);
* ``train.compile=true`` compiles the whole training objective: the same losses and weights
  as the eager trainer (to float tolerance), and a diverging run still stops cleanly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from diverging import DIVERGING_RUN
from torch.distributions import Independent, Laplace, Normal, kl_divergence

import vaezoo
import vaezoo.architectures.vae as vaezoo_model
from vaezoo.config import load_config
from vaezoo.priors.normal import StandardNormal, StandardNormalDistribution
from vaezoo.training import NonFiniteLossError, train


class _PlainNormal(StandardNormal):
    """The same prior as a plain ``Independent(Normal(0, 1))``: KL through torch's own rules."""

    def distribution(self):
        zeros = self._anchor.new_zeros(self.latent_dim)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)


def _model(encoder: str = "mlp", likelihood: str = "bernoulli", shape=(1, 8, 8)) -> vaezoo.VAE:
    params = {"hidden": [16]} if encoder == "mlp" else {"channels": [4], "hidden": 8}
    dec = {"hidden": [16]} if encoder == "mlp" else {"channels": [4], "hidden": 8}
    return vaezoo.build_model(
        {
            "data_shape": list(shape),
            "latent_dim": 3,
            "encoder": {"name": encoder, **params},
            "decoder": {"name": encoder, **dec},
            "prior": "normal",
            "likelihood": likelihood,
        }
    )


def _plain_copy(model: vaezoo.VAE) -> vaezoo.VAE:
    plain = _model()
    plain.load_state_dict(model.state_dict())
    plain.prior.__class__ = _PlainNormal
    return plain


def _binary(n: int = 5) -> torch.Tensor:
    return (torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.5).float()


@pytest.mark.parametrize("free_bits", [0.0, 0.3])
def test_registered_standard_normal_kl_is_bit_identical_with_gradients(free_bits):
    """vaezoo's register_kl rule for N(0, I) gives torch's Normal-Normal numbers bit for bit."""
    torch.manual_seed(0)
    fast = _model()
    plain = _plain_copy(fast)
    x = _binary()
    q = fast.encode(x)
    assert isinstance(fast.prior.distribution(), StandardNormalDistribution)
    assert not isinstance(plain.prior.distribution(), StandardNormalDistribution)
    assert torch.equal(kl_divergence(q, fast.prior.distribution()), kl_divergence(q, plain.prior.distribution()))
    outs, grads = [], []
    for model in (fast, plain):
        torch.manual_seed(7)
        out = model.elbo(x, num_samples=2, beta=0.7, free_bits=free_bits)
        model.zero_grad()
        out["loss"].mean().backward()
        outs.append(out)
        grads.append([p.grad.clone() for p in model.parameters()])
    for key in outs[0]:
        assert torch.equal(outs[0][key], outs[1][key]), key
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_the_registered_rule_applies_to_its_pair_only():
    from torch.distributions.kl import _dispatch_kl

    assert _dispatch_kl(Independent, StandardNormalDistribution).__module__ == "vaezoo.priors.normal"
    assert _dispatch_kl(Independent, Independent).__module__ == "torch.distributions.kl"
    torch.manual_seed(0)
    model = _model()
    x = _binary()
    torch.manual_seed(1)
    analytic = model.elbo(x)["kl"]
    model.kl_mode = "mc"
    torch.manual_seed(1)
    assert not torch.equal(model.elbo(x)["kl"], analytic)  # the Monte Carlo KL was asked for
    laplace = Independent(Laplace(torch.randn(2, 3), torch.rand(2, 3) + 0.5), 1)
    plain = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
    assert torch.equal(kl_divergence(laplace, model.prior.distribution()), kl_divergence(laplace, plain))  # torch's rule


@pytest.mark.parametrize("piece", [7, 64 * 3, 64 * 40, 2**30])  # row blocks, whole samples, one piece
def test_log_likelihood_pieces_do_not_change_the_estimate(monkeypatch, piece):
    torch.manual_seed(0)
    model = _model().double()
    x = _binary(9).double()
    torch.manual_seed(3)
    reference = model.log_likelihood(x, num_samples=30, max_elements=64 * 9 * 7)  # chunks of 7 samples
    monkeypatch.setattr(vaezoo_model, "EVAL_PIECE_ELEMENTS", piece)
    torch.manual_seed(3)
    pieces = model.log_likelihood(x, num_samples=30, max_elements=64 * 9 * 7)
    torch.testing.assert_close(pieces, reference, rtol=1e-12, atol=1e-12)


TINY = [
    "data.limit=96",
    "data.val_fraction=0",  # 3 full batches of 32: one compiled graph
    "model.latent_dim=4",
    "model.encoder.hidden=[16]",
    "model.decoder.hidden=[16]",
    "train.batch_size=32",
    "objective.kl_warmup_epochs=1",  # beta changes every step: must not recompile
    "eval.at_end=false",
    "log.progress=false",
    "log.images=false",
    "log.loggers=[jsonl]",
]


def _epochs(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]


def test_compiled_training_gives_the_same_losses_and_weights(tmp_path):
    from safetensors.torch import load_file

    losses, weights = {}, {}
    for compiled in (False, True):
        run_dir = tmp_path / f"compile-{compiled}"
        cfg = load_config(None, [*TINY, "train.epochs=2", f"train.compile={str(compiled).lower()}", f"log.dir={run_dir}"])
        train(cfg, echo=lambda _msg: None)
        losses[compiled] = [(r["train/loss"], r["train/elbo"], r["train/kl"]) for r in _epochs(run_dir)]
        weights[compiled] = load_file(run_dir / "model" / "model.safetensors")
    for eager, compiled in zip(losses[False], losses[True]):
        for a, b in zip(eager, compiled):
            assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5), (eager, compiled)
    for key, value in weights[False].items():
        torch.testing.assert_close(weights[True][key], value, rtol=1e-4, atol=1e-5)


def test_compiled_training_still_stops_cleanly_when_the_loss_diverges(tmp_path):
    overrides = [
        *TINY,
        "train.compile=true",
        *DIVERGING_RUN,
        f"log.dir={tmp_path / 'run'}",
    ]
    with pytest.raises(NonFiniteLossError, match="lower train.lr"):
        train(load_config(None, overrides), echo=lambda _msg: None)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_step_is_the_optimizers_own_step_bit_for_bit(name):
    import copy
    from types import SimpleNamespace

    from torch import nn

    from vaezoo.training.optim import FusedStep, build_optimizer, is_fused

    torch.manual_seed(0)
    plain_model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    fast_model = copy.deepcopy(plain_model)
    cfg = SimpleNamespace(optimizer=name, lr=1e-2, betas=[0.8, 0.99], eps=1e-6, weight_decay=0.1)
    plain, fast = build_optimizer(plain_model.parameters(), cfg), build_optimizer(fast_model.parameters(), cfg)
    assert is_fused(plain) and is_fused(fast)
    step = FusedStep(fast)
    for i in range(5):
        x = torch.randn(8, 5)
        for model, opt in ((plain_model, plain), (fast_model, fast)):
            for group in opt.param_groups:
                group["lr"] = 1e-2 / (i + 1)  # a schedule
            opt.zero_grad(set_to_none=True)
            model(x).square().sum().backward()
        skip = torch.tensor(float(i == 3))  # one skipped update
        plain.found_inf = skip
        plain.step()
        if i > 0:  # from the second step on, the optimizer's own step() must not be needed
            fast.step = None
        step(skip)
    for a, b in zip(plain_model.parameters(), fast_model.parameters()):
        assert torch.equal(a, b)
    sa, sb = plain.state_dict()["state"], fast.state_dict()["state"]
    for key in sa:
        for field in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[key][field], sb[key][field]), (key, field)
