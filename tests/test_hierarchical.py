"""The ``hierarchical`` architecture: exact on a linear-Gaussian hierarchy, its KL bookkeeping,
every built-in prior x likelihood x objective trains, save/load, and training with resume."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

import vaezoo
import vaezoo.testing
from vaezoo.architectures.hierarchical import HierarchicalVAE
from vaezoo.config import check_model, load_config
from vaezoo.errors import ConfigError
from vaezoo.training import train

PRIORS = {"normal": {}, "mixture": {"components": 3}, "vamp": {"components": 4}}
LIKELIHOODS = {
    "bernoulli": {}, "continuous_bernoulli": {}, "gaussian": {}, "laplace": {},
    "discretized_logistic": {}, "discretized_logistic_mixture": {"components": 2},
}


def config(prior="normal", likelihood="bernoulli", data_shape=(1, 8, 8), latent_dims=(4, 3, 2), hidden=(16,), **extra):
    return {
        "architecture": "hierarchical", "data_shape": list(data_shape), "latent_dims": list(latent_dims),
        "hidden": list(hidden), "prior": {"name": prior, **PRIORS.get(prior, {})},
        "likelihood": {"name": likelihood, **LIKELIHOODS.get(likelihood, {})}, **extra,
    }


def data_for(likelihood, shape, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand((n, *shape), generator=g)
    binary = vaezoo.create("likelihood", likelihood, **LIKELIHOODS.get(likelihood, {})).wants == "binary"
    return torch.bernoulli(u, generator=g) if binary else torch.round(u * 254 + 0.5) / 255


# -- 1. a linear-Gaussian hierarchy, where p(x) is known in closed form ------------------------
def _inv_softplus(y):
    return torch.log(torch.expm1(y))


def linear_hierarchy(min_scale=1e-4):
    """z2 ~ N(0, 1), z1|z2 ~ N(A z2 + a, diag s1^2), x|z1 ~ N(B z1 + b, s2^2 I); B has orthogonal
    columns, so the exact posterior q(z2|x) q(z1|x, z2) is in the model's diagonal family."""
    f64 = torch.float64
    g = torch.Generator().manual_seed(0)
    A = torch.tensor([[1.2], [-0.6]], dtype=f64)
    a = torch.tensor([0.3, -0.5], dtype=f64)
    s1 = torch.tensor([0.6, 0.9], dtype=f64)
    q, _ = torch.linalg.qr(torch.randn(4, 2, generator=g, dtype=f64))
    B = q * torch.tensor([1.5, 0.8], dtype=f64)
    b = torch.randn(4, generator=g, dtype=f64)
    s2 = torch.full((4,), 0.4, dtype=f64)
    torch.manual_seed(0)
    model = vaezoo.build_model(config("normal", "gaussian", data_shape=(4,), latent_dims=(2, 1), hidden=(), min_scale=min_scale)).double()
    with torch.no_grad():
        ph, out = model.prior_heads[0], model.out
        ph.weight.zero_(), out.weight.zero_()
        ph.weight[:2, 0] = A[:, 0]
        ph.bias[:2] = a
        ph.bias[2:] = _inv_softplus(s1 - min_scale)
        out.weight[:4, :2] = B  # t_1 = [z1, z2]: the likelihood's loc from z1 only
        out.bias[:4] = b
        out.bias[4:] = s2.log()
    cov = B @ (A @ A.T + torch.diag(s1**2)) @ B.T + torch.diag(s2**2)
    marginal = torch.distributions.MultivariateNormal(B @ a + b, cov)
    return model, marginal


def test_linear_gaussian_hierarchy_gives_the_exact_marginal():
    model, marginal = linear_hierarchy()
    x = marginal.sample((5,))
    exact = marginal.log_prob(x)
    generative = [model.prior_heads, model.out]
    for module in generative:
        module.requires_grad_(False)
    posterior = [p for p in model.parameters() if p.requires_grad]
    assert len(posterior) == 4  # the top head and the conditional posterior head, weights and biases
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("prior_heads", "out"))}
    with torch.no_grad():
        before = torch.stack([model.elbo(x, num_samples=500)["elbo"] for _ in range(4)]).mean(0)
    opt = torch.optim.Adam(posterior, lr=0.05)
    for step in range(500):
        if step == 350:
            opt.param_groups[0]["lr"] = 0.005
        opt.zero_grad()
        model.elbo(x, num_samples=16)["loss"].mean().backward()
        opt.step()
    for k, v in model.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    torch.manual_seed(2)
    est = model.log_likelihood(x, 5000)
    assert (est - exact).abs().max() < 0.05, (est, exact)
    assert (exact - before).mean() > 0.5  # the untrained posterior is far from exact: the training did it
    with torch.no_grad():
        draws = torch.stack([model.elbo(x, num_samples=500)["elbo"] for _ in range(20)])
    se = draws.std(0) / math.sqrt(len(draws))
    assert torch.all(draws.mean(0) <= exact + 4 * se + 1e-9), (draws.mean(0), exact)
    assert torch.all(draws.mean(0) > exact - 0.2)  # and close to it: the posterior is nearly exact
    with torch.no_grad():  # the IWAE bound agrees too
        assert (model.iwae_bound(x, 2000) - exact).abs().max() < 0.05


def exact_posterior_hierarchy():
    """``linear_hierarchy`` with q set to the true posterior p(z_2|x) p(z_1|x, z_2)."""
    model, marginal = linear_hierarchy()
    A, a = model.prior_heads[0].weight[:2, :1].detach(), model.prior_heads[0].bias[:2].detach()
    s1 = torch.nn.functional.softplus(model.prior_heads[0].bias[2:].detach()) + model.min_scale
    B, b, s2 = model.out.weight[:4, :2].detach(), model.out.bias[:4].detach(), model.out.bias[4:].detach().exp()
    # p(z2|x): z2 ~ N(0,1), x|z2 ~ N(B(A z2 + a) + b, B S1 B^T + S2)
    c = B @ torch.diag(s1**2) @ B.T + torch.diag(s2**2)
    m = B @ A  # (4, 1)
    prec = 1.0 + (m.T @ torch.linalg.solve(c, m))
    var2 = 1.0 / prec
    gain2 = var2 * torch.linalg.solve(c, m).T  # (1, 4): mean2 = gain2 (x - B a - b)
    # p(z1|x, z2): precision S1^-1 + B^T S2^-1 B (diagonal), mean from both
    prec1 = 1.0 / s1**2 + (B**2 / s2[:, None] ** 2).sum(0)
    var1 = 1.0 / prec1
    with torch.no_grad():
        th = model.top_head.linear
        th.weight.zero_(), th.bias.zero_()
        th.weight[:1] = gain2
        th.bias[:1] = -(gain2 @ (B @ a + b))
        th.bias[1:] = _inv_softplus(var2.sqrt().reshape(1) - model.min_scale)
        # residual posterior: loc = (A z2 + a) + dloc, dloc from [x, z2]; want var1 * (S1^-1 (A z2 + a) + B^T S2^-2 (x - b))
        ph = model.post_heads[0]
        ph.weight.zero_(), ph.bias.zero_()
        wx = var1[:, None] * (B.T / s2[None, :] ** 2)  # (2, 4)
        ph.weight[:2, :4] = wx
        ph.weight[:2, 4] = (var1 / s1**2 - 1.0) * A[:, 0]
        ph.bias[:2] = (var1 / s1**2 - 1.0) * a - wx @ b
        ph.bias[2:] = _inv_softplus((var1.sqrt() - model.min_scale) / s1) - math.log(math.e - 1.0)
    return model, marginal


def test_the_exact_posterior_makes_every_estimate_exact():
    """With q set to the true posterior, log w is constant: IS, IWAE and the MC ELBO equal log p(x)."""
    model, marginal = exact_posterior_hierarchy()
    x = marginal.sample((3,))
    f64 = torch.float64
    exact = marginal.log_prob(x)
    torch.testing.assert_close(model.log_likelihood(x, 20, max_elements=7), exact, rtol=1e-9, atol=1e-9)
    model.kl_mode = "mc"
    torch.testing.assert_close(model.elbo(x, num_samples=3)["elbo"], exact, rtol=1e-9, atol=1e-9)
    assert x.dtype == f64


def test_dreg_gradient_of_the_exact_posterior_is_zero_draw_by_draw():
    """At q = p(z|x), log w is constant in z, so DReG's gradient of q's own parameters is exactly
    zero on every draw (Tucker et al. 2019, sec. 4), while the plain IWAE gradient's is only zero
    on average. It needs the whole path derivative, log q(z_1|x, z_2)'s dependence on z_2 included."""
    model, marginal = exact_posterior_hierarchy()
    x = marginal.sample((3,))
    inference = [model.top_head.linear.weight, model.top_head.linear.bias, model.post_heads[0].weight, model.post_heads[0].bias]
    for dreg in (False, True):
        objective = vaezoo.build_objective({"name": "iwae", "num_samples": 5, "dreg": dreg}, model)
        for seed in range(3):
            model.zero_grad()
            torch.manual_seed(seed)
            objective(model, x)[0].backward()
            largest = max(p.grad.abs().max().item() for p in inference)
            assert (largest < 1e-9) if dreg else (largest > 1e-3), (dreg, seed, largest)


# -- 2. the KL bookkeeping -----------------------------------------------------------------
@pytest.mark.parametrize("prior", ["normal", "mixture"])
@pytest.mark.parametrize("kl", ["auto", "mc"])
def test_level_kls_add_up_and_loss_follows_beta_and_free_bits(prior, kl):
    torch.manual_seed(0)
    model = vaezoo.build_model(config(prior, "bernoulli", kl=kl))
    x = data_for("bernoulli", (1, 8, 8), n=6)
    torch.manual_seed(1)
    plain = model.elbo(x, num_samples=2)
    assert set(plain) == {"elbo", "log_px_z", "kl", "loss", "kl_1", "kl_2", "kl_3"}
    assert torch.equal(plain["kl_1"] + plain["kl_2"] + plain["kl_3"], plain["kl"])
    assert torch.equal(plain["elbo"], plain["log_px_z"] - plain["kl"])
    assert torch.equal(plain["loss"], -plain["elbo"])
    torch.manual_seed(1)
    weighted = model.elbo(x, num_samples=2, beta=0.25)
    torch.testing.assert_close(weighted["loss"], -(plain["log_px_z"] - 0.25 * plain["kl"]))
    torch.manual_seed(1)
    held = model.elbo(x, num_samples=2, beta=2.0, free_bits=100.0)  # every dimension, every level below the floor
    assert torch.equal(held["elbo"], plain["elbo"])
    expected = -plain["log_px_z"].mean() + 2.0 * 100.0 * (4 + 3 + 2)
    torch.testing.assert_close(held["loss"].mean(), expected, rtol=1e-5, atol=1e-3)
    held["loss"].mean().backward()  # the floor holds: no KL gradient is left, only the reconstruction's
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_analytic_level_kls_agree_with_monte_carlo():
    torch.manual_seed(0)
    analytic = vaezoo.build_model(config("normal", "gaussian", data_shape=(12,), latent_dims=(3, 2))).double()
    mc = vaezoo.build_model(config("normal", "gaussian", data_shape=(12,), latent_dims=(3, 2), kl="mc")).double()
    mc.load_state_dict(analytic.state_dict())
    x = torch.rand(3, 12, dtype=torch.float64)
    with torch.no_grad():
        a = torch.stack([analytic.elbo(x, num_samples=500)["kl_1"] for _ in range(20)])
        m = torch.stack([mc.elbo(x, num_samples=500)["kl_1"] for _ in range(20)])
        top = analytic.elbo(x)["kl_2"]
        top_mc = torch.stack([mc.elbo(x, num_samples=500)["kl_2"] for _ in range(20)])
    se = (a.var(0) / 20 + m.var(0) / 20).sqrt()
    assert torch.all((a.mean(0) - m.mean(0)).abs() < 4 * se + 1e-9)
    assert torch.all((top_mc.mean(0) - top).abs() < 4 * top_mc.std(0) / math.sqrt(20) + 1e-9)
    assert (a.std(0) > 0).all()  # level 1's KL depends on the sampled z_2


def test_analytic_kl_is_refused_for_a_mixture_top_prior():
    model = vaezoo.build_model(config("mixture", "bernoulli", kl="analytic"))
    with pytest.raises(ConfigError, match="no KL formula for Independent\\(Normal\\) against DiagonalNormalMixture"):
        model.elbo(data_for("bernoulli", (1, 8, 8)))


# -- 3. every built-in prior x likelihood x objective takes a step --------------------------
OBJECTIVES = [{"name": "elbo"}, {"name": "iwae", "num_samples": 3}, {"name": "iwae", "num_samples": 3, "dreg": True}]


@pytest.mark.parametrize("likelihood", list(LIKELIHOODS))
@pytest.mark.parametrize("prior", list(PRIORS))
def test_every_prior_likelihood_and_objective_steps(prior, likelihood):
    for shape in ((1, 8, 8), (1, 28, 28)):
        x = data_for(likelihood, shape)
        for section in OBJECTIVES:
            torch.manual_seed(0)
            model = vaezoo.build_model(config(prior, likelihood, data_shape=shape, latent_dims=(4, 2)))
            model.likelihood.check_data(x)
            objective = vaezoo.build_objective(section, model)
            before = [p.detach().clone() for p in model.parameters()]
            opt = torch.optim.Adam(model.parameters(), lr=1e-2)
            loss, metrics = objective(model, x)
            assert torch.isfinite(loss), (shape, section)
            assert all(v.shape == (len(x),) and torch.isfinite(v).all() for v in metrics.values())
            loss.backward()
            assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
            opt.step()
            changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
            assert sum(changed) >= len(changed) - 1, (shape, section)  # every net moves (the vamp's pseudo-inputs may be clipped)



def _all_grads(model, objective, x, seed):
    model.zero_grad()
    torch.manual_seed(seed)
    loss, _ = objective(model, x)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("blocks, beta", [("mlp", 0.5), ("conv", 1.0)])
def test_dreg_is_unbiased_for_every_parameter_of_a_hierarchy(blocks, beta):
    """In a top-down hierarchy q(z_1|x, z_2) depends on z_2 and shares the top-down network
    with p, so DReG (Tucker et al. 2019) needs the whole path derivative d log w / dz: every
    parameter's expected gradient is the IWAE bound's (beta < 1 too: the warm-up's bound),
    inference heads with a lower variance."""
    if blocks == "mlp":
        cfg = config("vamp", "gaussian", data_shape=(6,), latent_dims=(3, 2), hidden=(8,))
        x = torch.rand(3, 6, generator=torch.Generator().manual_seed(1)).double()
    else:
        cfg = config("normal", "gaussian", data_shape=(1, 4, 4), latent_dims=(1, 1), blocks="conv", channels=[2, 2])
        x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1)).double()
    torch.manual_seed(0)
    model = vaezoo.build_model(cfg).double()
    plain = vaezoo.build_objective({"name": "iwae", "num_samples": 10, "beta": beta}, model)
    dreg = vaezoo.build_objective({"name": "iwae", "num_samples": 10, "beta": beta, "dreg": True}, model)
    a = torch.stack([_all_grads(model, plain, x, seed) for seed in range(300)])
    b = torch.stack([_all_grads(model, dreg, x, seed) for seed in range(300)])
    se = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
    z = (a.mean(0) - b.mean(0)).abs() / se.clamp_min(1e-12)
    assert z.mean() < 1.5 and (z > 4.5).float().mean() < 0.01, f"DReG's mean differs from the IWAE gradient's (max z {z.max():.1f})"
    heads = torch.cat([torch.full((p.numel(),), n.startswith("post_heads."), dtype=torch.bool) for n, p in model.named_parameters()])
    assert b.var(0)[heads].sum() < 0.7 * a.var(0)[heads].sum(), "DReG should lower the inference heads' variance"

@pytest.mark.parametrize("name", ["beta_tc", "mmd"])
def test_flat_latent_objectives_are_refused(name):
    model = vaezoo.build_model(config())
    assert not hasattr(model, "encode") and not hasattr(model, "decode")
    with pytest.raises(ConfigError, match=rf"objective '{name}' needs a model with one latent vector.*'hierarchical' has no encode, decode") as info:
        vaezoo.build_objective({"name": name}, model)
    assert "\n" not in str(info.value)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"model\.latent_dims: expected a non-empty list"):
        vaezoo.build_model(config(latent_dims=()))
    with pytest.raises(ConfigError, match=r"model\.latent_dim: unknown key .* Did you mean 'latent_dims'\?"):
        vaezoo.build_model({**config(), "latent_dim": 3})
    with pytest.raises(ConfigError, match=r"model\.prior\.name: unknown prior 'vampp'\. Did you mean 'vamp'\?"):
        vaezoo.build_model(config(prior="vampp"))
    with pytest.raises(ConfigError, match=r"model\.residual: expected true or false"):
        vaezoo.build_model(config(residual="yes"))
    with pytest.raises(ConfigError, match=r"model\.hidden:"):
        check_model({"architecture": "hierarchical", "latent_dims": [2], "hidden": [0],
                                   "prior": "normal", "likelihood": "bernoulli"})
    with pytest.raises(ConfigError, match=r"model\.prior: .*no parameter 'compnents'"):
        check_model({"architecture": "hierarchical", "latent_dims": [2], "prior": {"name": "mixture", "compnents": 2},
                                   "likelihood": "bernoulli"})
    with pytest.raises(ConfigError, match=r"more than the .* a vaezoo network may hold"):
        vaezoo.build_model(config(hidden=(2**16, 2**16)))


def test_sampling_reconstruction_and_temperature():
    torch.manual_seed(0)
    model = vaezoo.build_model(config("normal", "gaussian", data_shape=(6,), latent_dims=(3, 2, 2)))
    x = torch.rand(5, 6)
    assert model.sample(7).shape == (7, 6) and model.reconstruct(x).shape == (5, 6)
    torch.manual_seed(3)
    cold = model.sample(4, mean=True, temperature=0.0)
    torch.manual_seed(3)
    z = model.prior.sample(4)  # temperature 0: every level below the top is its conditional prior's mean
    t = model.td[2](z)
    for i in (1, 0):
        t = model.td[i](torch.cat([model._conditional_prior(i, t).mean, t], -1))
    torch.testing.assert_close(cold, model.likelihood.mean(model._params(t)))
    torch.manual_seed(3)
    assert not torch.allclose(model.sample(4, mean=True), cold)
    # reconstruct: posterior means at every level, so it is deterministic
    assert torch.equal(model.reconstruct(x), model.reconstruct(x))


# -- 4. save and load ------------------------------------------------------------------------
@pytest.mark.parametrize("prior", list(PRIORS))
def test_round_trip_and_check_architecture(tmp_path, prior):
    torch.manual_seed(0)
    cfg = config(prior, "discretized_logistic")
    model = vaezoo.build_model(cfg)
    x = data_for("discretized_logistic", (1, 8, 8))
    model.save_pretrained(tmp_path)
    loaded = vaezoo.from_pretrained(tmp_path)
    assert isinstance(loaded, HierarchicalVAE)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    torch.manual_seed(1)
    ea = model.elbo(x, num_samples=2)
    torch.manual_seed(1)
    eb = loaded.elbo(x, num_samples=2)
    for k in ea:
        assert torch.equal(ea[k], eb[k]), k
    vaezoo.testing.check_architecture(cfg)
    vaezoo.testing.check_architecture(config(prior, "bernoulli", latent_dims=(3,), hidden=()))  # L = 1, linear


# -- 5. training from a config, and resuming it --------------------------------------------
TINY = [
    "data.limit=96", "train.batch_size=32", "eval.num_samples=4", "log.progress=false",
    "log.num_images=8", "log.loggers=[jsonl]",
    "model.architecture=hierarchical", "model.latent_dims=[4,2]", "model.hidden=[16]",
    "model.prior.name=mixture", "model.prior.components=3", "model.likelihood.name=bernoulli",
]


def run(tmp_path, *overrides, name="run", **kwargs):
    cfg = load_config(None, [*TINY, *overrides, f"log.dir={tmp_path / name}"])
    return train(cfg, echo=lambda _msg: None, **kwargs)


def test_training_completes_and_resume_is_bit_exact(tmp_path):
    from vaezoo.config import read_yaml
    from vaezoo.training import checkpoint as ckpt

    extra = ["train.epochs=2", "train.ema=0.9", "objective.free_bits=0.05", "objective.kl_warmup_epochs=1"]
    straight = run(tmp_path, *extra, name="straight")
    assert straight.stop_reason == "completed" and straight.epochs == 2
    assert all(math.isfinite(straight.metrics[k]) for k in ("test/elbo", "test/nll", "train/kl_1", "train/kl_2"))
    assert (straight.run_dir / "samples.png").is_file() and (straight.run_dir / "reconstructions.png").is_file()
    model = vaezoo.from_pretrained(straight.run_dir / "model")
    assert isinstance(model, HierarchicalVAE) and model.latent_dims == (4, 2)
    paused = run(tmp_path, *extra, name="resumed", until_epoch=1)
    assert paused.stop_reason == "paused"
    cfg = load_config(None, base=read_yaml(paused.run_dir / "config.yaml"))
    resumed = train(cfg, resume=paused.run_dir, echo=lambda _msg: None)
    assert resumed.stop_reason == "completed"
    a = load_file(straight.run_dir / "model" / "model.safetensors")
    b = load_file(resumed.run_dir / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ca, cb = ckpt.load(straight.run_dir), ckpt.load(resumed.run_dir)
    for key, value in ca.group("optimizer").items():
        assert torch.equal(value, cb.group("optimizer")[key]), key


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_one_level_is_the_flat_vae_with_the_same_weights(likelihood):
    """A one-level hierarchy with one hidden width is the ``vae`` with ``mlp`` nets: same numbers, bit for bit."""
    torch.manual_seed(0)
    flat = vaezoo.build_model({
        "data_shape": [1, 8, 8], "latent_dim": 3, "encoder": {"name": "mlp", "hidden": [16]},
        "decoder": {"name": "mlp", "hidden": [16]}, "prior": "normal", "likelihood": likelihood,
    })
    deep = vaezoo.build_model({
        "architecture": "hierarchical", "data_shape": [1, 8, 8], "latent_dims": [3], "hidden": [16],
        "prior": "normal", "likelihood": likelihood,
    })
    rename = {"encoder.body.0": "up.0.0", "encoder.head.linear": "top_head.linear", "decoder.body.0": "td.0.0", "decoder.out": "out"}
    state = {}
    for key, value in flat.state_dict().items():
        module, _, leaf = key.rpartition(".")
        state[f"{rename.get(module, module)}.{leaf}"] = value
    deep.load_state_dict(state, strict=True)
    x = (torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 255).round() / 255
    if likelihood == "bernoulli":
        x = x.round()
    outs = []
    for model in (flat, deep):
        torch.manual_seed(11)
        terms = model.elbo(x, num_samples=2, beta=0.5)
        model.zero_grad()
        terms["loss"].mean().backward()
        outs.append(terms)
    for key in ("elbo", "log_px_z", "kl", "loss"):
        assert torch.equal(outs[0][key], outs[1][key]), key
    assert torch.equal(outs[1]["kl_1"], outs[1]["kl"])
    assert torch.equal(flat.decoder.out.weight.grad, deep.out.weight.grad)
    torch.manual_seed(5)
    a = flat.log_likelihood(x, 50)
    torch.manual_seed(5)
    b = deep.log_likelihood(x, 50)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)


# -- conv blocks: spatial latents at several resolutions ----------------------------------------
CONV = {"architecture": "hierarchical", "blocks": "conv", "channels": [4, 8], "latent_dims": [3, 2]}


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 7, 9)])
def test_conv_blocks_give_spatial_latents_at_each_resolution(shape, tmp_path):
    torch.manual_seed(0)
    cfg = {**CONV, "data_shape": list(shape), "prior": "normal", "likelihood": "discretized_logistic"}
    model = vaezoo.build_model(cfg)
    h1, w1, h2, w2 = -(-shape[1] // 2), -(-shape[2] // 2), -(-shape[1] // 4), -(-shape[2] // 4)
    assert model.latent_dims == (3 * h1 * w1, 2 * h2 * w2)  # z_1: 3 channels at 1/2, z_2: 2 at 1/4
    x = data_for("discretized_logistic", shape)
    terms = model.elbo(x, num_samples=2)
    torch.testing.assert_close(terms["kl_1"] + terms["kl_2"], terms["kl"], rtol=0, atol=0)
    terms["loss"].mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.sample(3).shape == (3, *shape) and model.reconstruct(x).shape == x.shape
    model.save_pretrained(tmp_path / "m")
    loaded = vaezoo.from_pretrained(tmp_path / "m")
    torch.manual_seed(4)
    a = model.elbo(x)
    torch.manual_seed(4)
    b = loaded.elbo(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_conv_blocks_pass_the_architecture_check_with_every_prior():
    for prior in ("normal", {"name": "mixture", "components": 2}, {"name": "vamp", "components": 2}):
        vaezoo.testing.check_architecture({**CONV, "data_shape": [1, 8, 8], "prior": prior, "likelihood": "bernoulli"})


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"data_shape": [64]}, "model.blocks: conv blocks need images"),
        ({"channels": [4]}, "model.channels: one width per level"),
        ({"kernel_size": 4}, "model.kernel_size: expected an odd"),
        ({"blocks": "convs"}, "Did you mean 'conv'"),
    ],
)
def test_conv_config_errors_name_the_key(change, words):
    cfg = {**CONV, "data_shape": [1, 8, 8], "prior": "normal", "likelihood": "bernoulli", **change}
    with pytest.raises(ConfigError) as info:
        vaezoo.build_model(cfg)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_conv_hierarchy_trains_and_resumes_bit_exactly(tmp_path):
    from vaezoo.config import read_yaml

    extra = ["train.epochs=2", "model.blocks=conv", "model.channels=[4,8]", "model.latent_dims=[2,2]"]
    straight = run(tmp_path, *extra, name="straight")
    paused = run(tmp_path, *extra, name="resumed", until_epoch=1)
    resumed = train(load_config(None, base=read_yaml(paused.run_dir / "config.yaml")), resume=paused.run_dir, echo=lambda _m: None)
    assert straight.stop_reason == resumed.stop_reason == "completed"
    a = load_file(straight.run_dir / "model" / "model.safetensors")
    b = load_file(resumed.run_dir / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_command_and_the_zoo_publisher_take_a_hierarchy(tmp_path, capsys):
    """train, eval, sample through the command line, then publish it as a zoo entry and load it by its entry."""
    import json

    from vaezoo.cli import main
    from vaezoo.zoo import publish
    from vaezoo.zoo.entry import PretrainedEntry
    from vaezoo.zoo.metrics import check_mismatches, reproduce_check

    out = tmp_path / "run"
    args = ["train", *TINY, "train.epochs=1", "log.images=false", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--json", "-k", "3", "--limit", "16"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert math.isfinite(scores["nll"]) and scores["num_examples"] == 16
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    entry = publish.publish(out, name="hier-mixture.digits", recipe=None, num_samples=10, check_first=20,
                            check_num_samples=5, weights_dir=tmp_path / "w", catalogue=tmp_path / "catalogue.json",
                            echo=lambda _m: None)
    assert isinstance(entry, PretrainedEntry) and entry.config["architecture"] == "hierarchical"
    model = vaezoo.build_model(entry.config)
    from vaezoo.serialization import load_weights

    load_weights(model, entry.weights.removeprefix("file://"))
    assert check_mismatches(entry.check, reproduce_check(model.eval(), entry.check, entry.data_config)) == []
