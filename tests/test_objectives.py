"""The objectives against independent float64 computations and exact identities."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

import vaezoo
from vaezoo.config import load_config
from vaezoo.errors import ConfigError
from vaezoo.objectives.beta_tc import decompose_kl
from vaezoo.objectives.mmd import mmd
from vaezoo.testing.objectives import SMALL_VAE as SMALL


def binary(n: int, seed: int = 1) -> torch.Tensor:
    return (torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) < 0.5).double()


def small(**changes) -> vaezoo.VAE:
    torch.manual_seed(0)
    return vaezoo.build_model({**SMALL, **changes}).double()


# -- elbo and iwae ------------------------------------------------------------------------------
def test_the_elbo_objective_is_the_models_elbo_bit_for_bit():
    model, x = small(), binary(6)
    objective = vaezoo.build_objective({"name": "elbo", "beta": 0.5, "free_bits": 0.1, "num_samples": 2}, model)
    torch.manual_seed(3)
    loss, metrics = objective(model, x, beta=0.3)
    torch.manual_seed(3)
    direct = model.elbo(x, num_samples=2, beta=0.3, free_bits=0.1)
    assert torch.equal(loss, direct["loss"].mean())
    assert all(torch.equal(metrics[k], direct[k]) for k in direct)


def test_elbo_warm_up_schedule_in_steps():
    objective = vaezoo.build_objective({"name": "elbo", "beta": 2.0, "kl_warmup_epochs": 1.5})
    objective.setup(steps_per_epoch=4, dataset_size=100)
    betas = [objective.schedule(step)["beta"] for step in range(8)]
    assert betas == pytest.approx([2 * (s + 1) / 6 for s in range(6)] + [2.0, 2.0])


def test_iwae_bound_against_a_direct_float64_computation():
    model, x = small(), binary(5)
    objective = vaezoo.build_objective({"name": "iwae", "num_samples": 7}, model)
    torch.manual_seed(4)
    _, metrics = objective(model, x)
    torch.manual_seed(4)  # the same z: recompute log w term by term
    q = model.encode(x)
    z = q.rsample((7,))
    logits = model.decode(z)
    log_px_z = (x * torch.nn.functional.logsigmoid(logits) + (1 - x) * torch.nn.functional.logsigmoid(-logits)).sum((-1, -2, -3))
    log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
    loc, scale = q.base_dist.loc, q.base_dist.scale
    log_qz = (-0.5 * ((z - loc) / scale).pow(2) - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_w = log_px_z + log_pz - log_qz
    bound = torch.logsumexp(log_w, 0) - math.log(7)
    torch.testing.assert_close(metrics["elbo"], bound, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(metrics["loss"], -bound, rtol=1e-10, atol=1e-10)


def _encoder_and_decoder_grads(model, objective, x, seed):
    model.zero_grad()
    torch.manual_seed(seed)
    loss, _ = objective(model, x)
    loss.backward()
    enc = torch.cat([p.grad.flatten() for p in model.encoder.parameters()])
    dec = torch.cat([p.grad.flatten() for p in model.decoder.parameters()])
    return enc, dec


def test_dreg_has_the_iwae_gradient_in_expectation_with_lower_variance():
    """Tucker et al. 2019: the doubly reparameterised estimator is unbiased for the encoder's
    IWAE gradient, with lower variance; the decoder's gradient is the same draw by draw."""
    model = small(likelihood={"name": "gaussian"}, encoder={"name": "mlp", "hidden": []}, decoder={"name": "mlp", "hidden": []})
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2)).double()
    iwae = vaezoo.build_objective({"name": "iwae", "num_samples": 20}, model)
    dreg = vaezoo.build_objective({"name": "iwae", "num_samples": 20, "dreg": True}, model)
    a, b = [], []
    for seed in range(300):
        ea, da = _encoder_and_decoder_grads(model, iwae, x, seed)
        eb, db = _encoder_and_decoder_grads(model, dreg, x, seed)
        torch.testing.assert_close(da, db, rtol=1e-9, atol=1e-9)  # the generative model's gradient is the bound's
        a.append(ea)
        b.append(eb)
    a, b = torch.stack(a), torch.stack(b)
    se = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
    z = (a.mean(0) - b.mean(0)).abs() / se.clamp_min(1e-12)
    assert z.mean() < 1.5 and (z > 4).float().mean() < 0.01, "DReG's mean differs from the IWAE gradient's"
    assert b.var(0).sum() < 0.5 * a.var(0).sum(), "DReG should have a much lower variance"


def test_dreg_reports_the_same_bound():
    model, x = small(), binary(4)
    plain = vaezoo.build_objective({"name": "iwae", "num_samples": 5}, model)
    dreg = vaezoo.build_objective({"name": "iwae", "num_samples": 5, "dreg": True}, model)
    torch.manual_seed(0)
    la, ma = plain(model, x)
    torch.manual_seed(0)
    lb, mb = dreg(model, x)
    torch.testing.assert_close(la, lb, rtol=1e-12, atol=1e-12)
    assert all(torch.allclose(ma[k], mb[k], rtol=1e-12, atol=1e-12) for k in ma)


# -- beta-TC ------------------------------------------------------------------------------------
def _normal_logpdf(z: float, loc: float, scale: float) -> float:
    return -0.5 * ((z - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def test_beta_tc_terms_against_a_direct_float64_computation():
    model, x = small(latent_dim=2), binary(5)
    q = model.encode(x)
    torch.manual_seed(5)
    z = q.rsample()
    n = 1000
    terms = decompose_kl(q, z, model.prior.distribution(), n)
    loc, scale = q.base_dist.loc.tolist(), q.base_dist.scale.tolist()
    m, d = z.shape
    for i in range(m):
        zi = z[i].tolist()
        log_q_pairs = [[_normal_logpdf(zi[k], loc[j][k], scale[j][k]) for k in range(d)] for j in range(m)]
        log_qz = math.log(sum(math.exp(sum(row)) for row in log_q_pairs)) - math.log(n * m)
        log_prod = sum(math.log(sum(math.exp(log_q_pairs[j][k]) for j in range(m))) - math.log(n * m) for k in range(d))
        log_qzx = sum(log_q_pairs[i])
        log_pz = sum(_normal_logpdf(v, 0.0, 1.0) for v in zi)
        assert terms["mi"][i].item() == pytest.approx(log_qzx - log_qz, abs=1e-9)
        assert terms["tc"][i].item() == pytest.approx(log_qz - log_prod, abs=1e-9)
        assert terms["dwkl"][i].item() == pytest.approx(log_prod - log_pz, abs=1e-9)


def test_beta_tc_terms_add_up_to_the_kl_in_expectation():
    """Chen et al. 2018, eq. 2: mi + tc + dwkl = E_q[log q(z|x) - log p(z)] = KL(q(z|x) || p(z))."""
    model, x = small(), binary(8)
    objective = vaezoo.build_objective("beta_tc", model)
    objective.setup(steps_per_epoch=1, dataset_size=500)
    with torch.no_grad():
        draws = torch.stack([objective(model, x)[1]["kl"] for _ in range(4000)])
        analytic = model.elbo(x)["kl"]
        _, one = objective(model, x)
    torch.testing.assert_close(one["mi"] + one["tc"] + one["dwkl"], one["kl"], rtol=0, atol=1e-10)
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - analytic).abs() < 4 * se + 1e-6).all()


def test_beta_tc_loss_weights_the_terms():
    model, x = small(), binary(6)
    objective = vaezoo.build_objective({"name": "beta_tc", "alpha": 0.5, "beta": 3.0, "gamma": 2.0, "dataset_size": 60}, model)
    torch.manual_seed(1)
    loss, m = objective(model, x)
    torch.testing.assert_close(m["loss"], -(m["log_px_z"] - 0.5 * m["mi"] - 3.0 * m["tc"] - 2.0 * m["dwkl"]))
    torch.testing.assert_close(loss, m["loss"].mean())


@pytest.mark.parametrize("prior", [{"name": "mixture", "components": 2}, {"name": "vamp", "components": 2}])
def test_beta_tc_refuses_a_prior_that_does_not_factorise(prior):
    model = small(prior=prior)
    with pytest.raises(ConfigError) as info:
        vaezoo.build_objective("beta_tc", model)
    message = str(info.value)
    assert "\n" not in message and "factorises" in message and prior["name"] in message


# -- MMD ----------------------------------------------------------------------------------------
def _direct_mmd(a: list[list[float]], b: list[list[float]], kernel: str, scale: float) -> float:
    d = len(a[0])

    def k(u, v):
        d2 = sum((ui - vi) ** 2 for ui, vi in zip(u, v))
        return 2 * d * scale**2 / (2 * d * scale**2 + d2) if kernel == "imq" else math.exp(-d2 / (2 * d * scale**2))

    n, m = len(a), len(b)
    aa = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    bb = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    ab = sum(k(u, v) for u in a for v in b) / (n * m)
    return aa + bb - 2 * ab


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_mmd_on_fixed_samples_equals_a_direct_computation(kernel, scale):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, 3, generator=g, dtype=torch.float64) * 1.5 + 0.2
    assert mmd(a, b, kernel=kernel, scale=scale).item() == pytest.approx(_direct_mmd(a.tolist(), b.tolist(), kernel, scale), abs=1e-12)


def test_mmd_is_unbiased_for_equal_distributions_and_positive_for_different_ones():
    g = torch.Generator().manual_seed(1)
    same = torch.stack([mmd(torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g)) for _ in range(500)])
    apart = torch.stack([mmd(torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g) + 1.5) for _ in range(50)])
    assert same.mean().abs() < 4 * same.std() / math.sqrt(len(same))
    assert (apart > 0).all()


def test_infovae_loss_weights_the_terms():
    model, x = small(), binary(6)
    objective = vaezoo.build_objective({"name": "mmd", "alpha": 0.25, "lam": 10.0}, model)
    torch.manual_seed(2)
    loss, m = objective(model, x)
    torch.testing.assert_close(m["loss"], -(m["log_px_z"] - 0.75 * m["kl"] - (0.25 + 10.0 - 1.0) * m["mmd"]))
    assert torch.equal(m["mmd"], m["mmd"][:1].expand(6))  # the batch's MMD, given to every example


def test_objectives_that_need_one_latent_vector_refuse_other_models():
    class Opaque(vaezoo.Model):
        config = {"architecture": "opaque"}

    for name in ("beta_tc", "mmd"):
        with pytest.raises(ConfigError, match=rf"objective '{name}' needs a model with one latent vector.*'opaque' has no encode"):
            vaezoo.build_objective(name, Opaque())


# -- the config -----------------------------------------------------------------------------
def test_old_keys_are_translated_with_one_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(None, ["train.kl_warmup_epochs=3", "train.beta=0.5"])
    assert [str(w.message).count("\n") for w in caught] == [0, 0]
    assert cfg.objective.name == "elbo" and cfg.objective.kl_warmup_epochs == 3 and cfg.objective.beta == 0.5
    assert "kl_warmup_epochs" not in cfg.train
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = load_config(None, base={"model": {"objective": "iwae"}, "train": {"num_samples": 3, "free_bits": 0.0}})
    assert len(caught) == 1 and "objective.name" in str(caught[0].message)
    assert dict(old.objective) == {"name": "iwae", "beta": 1.0, "kl_warmup_epochs": 10.0, "num_samples": 3}


def test_a_saved_model_with_the_old_objective_key_loads(tmp_path):
    model = small()
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    for value, notices in (("elbo", 0), ("iwae", 1)):
        config["model"]["objective"] = value
        (tmp_path / "m" / "config.json").write_text(json.dumps(config))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            again = vaezoo.from_pretrained(tmp_path / "m")
        assert len(caught) == notices
        assert "objective" not in again.config


def test_training_logs_whatever_metrics_the_objective_returns(tmp_path):
    from vaezoo.training import train

    cfg = load_config(None, [
        "data.limit=64", "train.epochs=1", "train.batch_size=32", "model.latent_dim=2", "model.encoder.hidden=[16]",
        "model.decoder.hidden=[16]", "objective.name=beta_tc", "eval.num_samples=2", "log.images=false",
        "log.loggers=[jsonl]", "log.progress=false", f"log.dir={tmp_path / 'run'}",
    ])
    train(cfg, echo=lambda _m: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epoch = next(r for r in records if r["kind"] == "epoch")
    for key in ("train/loss", "train/elbo", "train/kl", "train/mi", "train/tc", "train/dwkl", "val/elbo"):
        assert math.isfinite(epoch[key]), key
    assert epoch["train/kl"] == pytest.approx(epoch["train/mi"] + epoch["train/tc"] + epoch["train/dwkl"], rel=1e-5)  # float32 sums


def test_dreg_trains_under_bf16_autocast():
    model = small().float()
    x = binary(4).float()
    objective = vaezoo.build_objective({"name": "iwae", "num_samples": 3, "dreg": True}, model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = objective(model, x)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.encoder.parameters() if p.grad is not None)
