"""Built-in priors: densities against explicit references, KL, sampling, the VampPrior's binding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp
from torch.distributions import Independent, Normal, kl_divergence

import vaezoo
from vaezoo.components import Prior
from vaezoo.nets.mlp import MLPEncoder
from vaezoo.priors.mixture import GaussianMixture
from vaezoo.priors.normal import StandardNormal
from vaezoo.priors.vamp import VampPrior

D = 3
DATA_SHAPE = (1, 4, 5)


def bound_vamp(components=7, dtype=torch.float32, **kw):
    torch.manual_seed(0)
    enc = MLPEncoder(DATA_SHAPE, D, hidden=[16]).to(dtype)
    prior = VampPrior(D, components=components, **kw)
    prior.bind(enc, DATA_SHAPE)
    return prior, enc


def all_priors(dtype=torch.float32):
    torch.manual_seed(0)
    return {
        "normal": StandardNormal(D).to(dtype),
        "mixture": GaussianMixture(D, components=4).to(dtype),
        "vamp": bound_vamp(dtype=dtype)[0],
    }


def test_registered_names_build_priors():
    for name, params in [("normal", {}), ("mixture", {"components": 3}), ("vamp", {"components": 5})]:
        prior = vaezoo.create("prior", name, latent_dim=D, **params)
        assert isinstance(prior, Prior) and prior.latent_dim == D


def test_standard_normal_log_prob_matches_scipy():
    z = torch.randn(6, 2, D, dtype=torch.float64) * 2
    lp = StandardNormal(D).double().log_prob(z)
    assert lp.shape == (6, 2) and lp.dtype == torch.float64
    ref = stats.multivariate_normal(np.zeros(D), np.eye(D)).logpdf(z.numpy().reshape(-1, D)).reshape(6, 2)
    np.testing.assert_allclose(lp.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_standard_normal_state_dict_empty_and_follows_dtype():
    prior = StandardNormal(D)
    assert dict(prior.state_dict()) == {}
    assert prior.sample(4).dtype == torch.float32
    prior.double()
    assert prior.sample(4).dtype == torch.float64
    assert prior.distribution().mean.dtype == torch.float64


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(1)
    B, n = 4, 200_000
    loc = torch.randn(B, D, dtype=torch.float64)
    scale = torch.rand(B, D, dtype=torch.float64) * 1.5 + 0.2
    q = Independent(Normal(loc, scale), 1)
    p = StandardNormal(D).double().distribution()
    kl = kl_divergence(q, p)
    assert kl.shape == (B,)
    # closed form: 0.5 * sum(scale^2 + loc^2 - 1 - 2 log scale)
    torch.testing.assert_close(kl, 0.5 * (scale**2 + loc**2 - 1 - 2 * scale.log()).sum(-1))
    z = q.sample((n,))
    diff = q.log_prob(z) - p.log_prob(z)
    mc, se = diff.mean(0), diff.std(0) / math.sqrt(n)
    assert ((mc - kl).abs() < 5 * se).all(), (mc, kl, se)
    # the check would notice a wrong KL (e.g. one dimension missing)
    assert ((mc - (kl - 0.5)).abs() > 5 * se).all()


def test_mixture_log_prob_matches_explicit_logsumexp():
    torch.manual_seed(2)
    K = 5
    prior = GaussianMixture(D, components=K, init_spread=2.0).double()
    with torch.no_grad():
        prior.log_scale.uniform_(-1.0, 0.5)
        prior.logits.normal_()
    z = torch.randn(7, 2, D, dtype=torch.float64) * 2
    lp = prior.log_prob(z)
    assert lp.shape == (7, 2)
    mu, s, logw = prior.means.detach().numpy(), prior.scales.detach().numpy(), prior.logits.detach().log_softmax(-1).numpy()
    zz = z.numpy()[..., None, :]  # (7, 2, 1, D)
    per_comp = logw + stats.norm.logpdf(zz, mu, s).sum(-1)  # (7, 2, K)
    np.testing.assert_allclose(lp.detach().numpy(), logsumexp(per_comp, axis=-1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(prior.weights.sum().item(), 1.0)


def test_mixture_with_one_component_is_a_gaussian():
    prior = GaussianMixture(D, components=1).double()
    loc = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    log_scale = torch.tensor([[0.1, -0.3, 0.7]], dtype=torch.float64)
    with torch.no_grad():
        prior.loc.copy_(loc)
        prior.log_scale.copy_(log_scale)
        prior.logits.fill_(3.0)  # a single weight is 1 whatever its logit
    z = torch.randn(10, D, dtype=torch.float64)
    ref = Independent(Normal(loc[0], log_scale[0].exp()), 1).log_prob(z)
    torch.testing.assert_close(prior.log_prob(z), ref)


def test_mixture_parameters_learn():
    prior = GaussianMixture(D, components=3)
    prior.log_prob(torch.randn(8, D)).sum().backward()
    for name in ("loc", "log_scale", "logits"):
        g = getattr(prior, name).grad
        assert g is not None and g.abs().sum() > 0, name


@pytest.mark.parametrize("bad", [{"components": 0}, {"init_scale": 0.0}, {"init_spread": -1.0}])
def test_mixture_bad_params(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        GaussianMixture(D, **bad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["normal", "mixture", "vamp"])
def test_sample_and_log_prob_shapes_and_dtypes(name, dtype):
    prior = all_priors(dtype)[name]
    s = prior.sample(11)
    assert s.shape == (11, D) and s.dtype == dtype
    lp = prior.log_prob(torch.randn(2, 4, D, dtype=dtype))
    assert lp.shape == (2, 4) and lp.dtype == dtype and torch.isfinite(lp).all()


def test_vamp_before_bind_raises():
    prior = VampPrior(D, components=4)
    for call in (prior.distribution, lambda: prior.log_prob(torch.zeros(2, D)), lambda: prior.sample(3)):
        with pytest.raises(RuntimeError, match=r"inside a vaezoo VAE.*bind\("):
            call()
    assert dict(prior.state_dict()) == {}


def test_vamp_log_prob_is_uniform_mixture_of_encoder_posteriors():
    prior, enc = bound_vamp(components=6, dtype=torch.float64)
    z = torch.randn(5, D, dtype=torch.float64)
    q = enc(prior.pseudo_inputs)  # batch (6,)
    per_comp = q.log_prob(z[:, None, :])  # (5, 6)
    ref = torch.logsumexp(per_comp, -1) - math.log(6)
    torch.testing.assert_close(prior.log_prob(z), ref)


def test_vamp_pseudo_inputs_learn_and_state_dict_has_no_encoder():
    prior, enc = bound_vamp(components=6)
    assert prior.raw_pseudo_inputs.shape == (6, *DATA_SHAPE)
    assert list(prior.state_dict()) == ["raw_pseudo_inputs"]
    assert [n for n, _ in prior.named_parameters()] == ["raw_pseudo_inputs"]
    assert list(prior.children()) == []
    u = prior.pseudo_inputs
    assert (u >= 0).all() and (u <= 1).all()
    prior.log_prob(torch.randn(8, D)).sum().backward()
    g = prior.raw_pseudo_inputs.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    # the encoder is used (and trained) through the prior too, but owned elsewhere
    assert all(p.grad is not None for p in enc.parameters())


def test_vamp_init_is_deterministic_from_torch_rng():
    a, _ = bound_vamp(components=4)
    b, _ = bound_vamp(components=4)
    torch.testing.assert_close(a.raw_pseudo_inputs, b.raw_pseudo_inputs)
    # rebinding with the same data shape keeps learned pseudo-inputs
    before = a.raw_pseudo_inputs.detach().clone()
    a.bind(MLPEncoder(DATA_SHAPE, D, hidden=[4]), DATA_SHAPE)
    torch.testing.assert_close(a.raw_pseudo_inputs.detach(), before)


@pytest.mark.parametrize("squash", ["hardtanh", "sigmoid", "none"])
def test_vamp_init_from_data(squash):
    prior, _ = bound_vamp(components=3, squash=squash)
    x = torch.rand(3, *DATA_SHAPE) * 0.9 + 0.05
    prior.init_from_data(x)
    torch.testing.assert_close(prior.pseudo_inputs, x, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        prior.init_from_data(torch.rand(2, *DATA_SHAPE))


def test_vamp_bad_params():
    with pytest.raises(ValueError, match="Did you mean 'sigmoid'"):
        VampPrior(D, squash="sigmod")
    with pytest.raises(ValueError, match="hardtanh"):
        VampPrior(D, init="normal")
    with pytest.raises(ValueError, match="components"):
        VampPrior(D, components=0)


# -- DiagonalNormalMixture: the matmul log-density of the mixture and vamp priors ------------
def _mixture_reference(logits, loc, scale, z):
    """float64 log-density by the direct (N, K, D) broadcast, the definition."""
    comp = Normal(loc.double(), scale.double()).log_prob(z.double()[..., None, :]).sum(-1)
    return torch.logsumexp(comp + logits.double().log_softmax(-1), -1)


@pytest.mark.parametrize("spread, scale", [(1.0, 1.0), (30.0, 0.01), (0.0, 1e-3)])
def test_diagonal_mixture_float32_matches_float64_definition(spread, scale):
    """Far-away components and tiny scales (large, cancelling quadratic terms) in float32."""
    from vaezoo.priors._diagonal_mixture import DiagonalNormalMixture

    g = torch.Generator().manual_seed(3)
    K, d = 64, 40
    logits = torch.randn(K, generator=g)
    loc = torch.randn(K, d, generator=g) * spread
    sc = scale * (0.5 + torch.rand(K, d, generator=g))
    z = loc[torch.randint(K, (9, 3), generator=g)] + torch.randn(9, 3, d, generator=g) * sc.mean()
    lp = DiagonalNormalMixture(logits, loc, sc).log_prob(z)
    assert lp.shape == (9, 3) and lp.dtype == torch.float32
    ref = _mixture_reference(logits, loc, sc, z)
    torch.testing.assert_close(lp.double(), ref, rtol=1e-6, atol=1e-4 * max(1.0, ref.abs().max().item() * 1e-3))


def test_diagonal_mixture_with_weights_per_row_matches_the_definition():
    """logits (B, K): B mixtures of the same components; -inf leaves a component out."""
    from vaezoo.priors._diagonal_mixture import DiagonalNormalMixture

    g = torch.Generator().manual_seed(5)
    K, d, B = 6, 3, 4
    loc = torch.randn(K, d, generator=g, dtype=torch.float64)
    sc = 0.5 + torch.rand(K, d, generator=g, dtype=torch.float64)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64)
    logits[0, 1:] = -math.inf  # row 0: component 0 alone
    mix = DiagonalNormalMixture(logits, loc, sc)
    assert mix.batch_shape == (B,) and mix.event_shape == (d,)
    z = torch.randn(7, B, d, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mix.log_prob(z), _mixture_reference(logits, loc, sc, z), rtol=0, atol=1e-10)
    torch.testing.assert_close(mix.log_prob(z)[:, 0], Normal(loc[0], sc[0]).log_prob(z[:, 0]).sum(-1), rtol=0, atol=1e-10)
    assert mix.sample((5,)).shape == (5, B, d)


def test_diagonal_mixture_gradients_match_the_definition():
    from vaezoo.priors._diagonal_mixture import DiagonalNormalMixture

    g = torch.Generator().manual_seed(4)
    K, d = 7, 5
    params = [torch.randn(K, generator=g, dtype=torch.float64), torch.randn(K, d, generator=g, dtype=torch.float64),
              (0.3 + torch.rand(K, d, generator=g, dtype=torch.float64))]
    z = torch.randn(11, d, generator=g, dtype=torch.float64) * 2
    grads = []
    for fn in (lambda lg, mu, s, z: DiagonalNormalMixture(lg, mu, s).log_prob(z), _mixture_reference):
        leaves = [p.clone().requires_grad_() for p in [*params, z]]
        fn(*leaves).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_mixture_and_vamp_priors_use_the_matmul_mixture():
    from vaezoo.priors._diagonal_mixture import DiagonalNormalMixture

    prior, _ = bound_vamp(components=4)
    assert isinstance(prior.distribution(), DiagonalNormalMixture)
    assert isinstance(GaussianMixture(D, components=3).distribution(), DiagonalNormalMixture)
    with pytest.raises(ValueError, match=r"expected logits \(K,\) or \(B, K\), loc and scale \(K, D\)"):
        DiagonalNormalMixture(torch.zeros(3), torch.zeros(4, 2), torch.ones(4, 2))
