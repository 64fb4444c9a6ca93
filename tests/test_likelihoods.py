"""The built-in likelihoods against independent references (scipy, torch.distributions, mpmath)."""

from __future__ import annotations

import itertools
import math

import mpmath as mp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import torch

from vaezoo.errors import ComponentParamError, DataError
from vaezoo.likelihoods.bernoulli import Bernoulli, ContinuousBernoulli, cb_log_normalizer
from vaezoo.likelihoods.discretized_logistic import DiscretizedLogistic, DiscretizedLogisticMixture
from vaezoo.likelihoods.location_scale import Gaussian, Laplace
from vaezoo.registry import create

D64 = torch.float64
LOG_SCALES = [-7.0, -4.0, -1.5, 0.0, 2.0, 5.0]
LOCS = [-50.0, -3.0, -0.2, 0.0, 0.3, 0.5, 1.0, 1.7, 50.0]

ALL = {
    "bernoulli": lambda: Bernoulli(),
    "continuous_bernoulli": lambda: ContinuousBernoulli(),
    "gaussian": lambda: Gaussian(),
    "gaussian_fixed": lambda: Gaussian(scale=0.3),
    "laplace": lambda: Laplace(),
    "laplace_fixed": lambda: Laplace(scale=2.0),
    "discretized_logistic": lambda: DiscretizedLogistic(bits=8),
    "discretized_logistic_mixture": lambda: DiscretizedLogisticMixture(components=3, bits=8),
}
EXPECTED_P = {
    "bernoulli": 1,
    "continuous_bernoulli": 1,
    "gaussian": 2,
    "gaussian_fixed": 1,
    "laplace": 2,
    "laplace_fixed": 1,
    "discretized_logistic": 2,
    "discretized_logistic_mixture": 9,
}


def t64(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def valid_data(name: str, shape, generator: torch.Generator, dtype=D64) -> torch.Tensor:
    """A tensor in the support of likelihood ``name``."""
    if name == "bernoulli":
        return torch.randint(0, 2, shape, generator=generator).to(dtype)
    if name == "continuous_bernoulli":
        return torch.rand(shape, generator=generator, dtype=dtype)
    if name.startswith("discretized"):
        return torch.randint(0, 256, shape, generator=generator).to(dtype) / 255
    return torch.randn(shape, generator=generator, dtype=dtype) * 3


# -- mpmath references (60 significant digits) ------------------------------------------------


def mp_sigmoid(t):
    return 1 / (1 + mp.exp(-t))


def mp_bin_log_prob(k: int, n: int, loc: float, log_scale: float) -> float:
    """log P(bin k) of a logistic discretised onto k/n, exact to double precision."""
    with mp.workdps(60):
        s = mp.exp(mp.mpf(log_scale))
        a = ((mp.mpf(k) + mp.mpf(0.5)) / n - mp.mpf(loc)) / s
        b = ((mp.mpf(k) - mp.mpf(0.5)) / n - mp.mpf(loc)) / s
        if k == 0:
            p = mp_sigmoid(a)
        elif k == n:
            p = mp_sigmoid(-b)
        elif b >= 0:  # right tail: difference of survival functions avoids cancellation
            p = mp_sigmoid(-b) - mp_sigmoid(-a)
        else:
            p = mp_sigmoid(a) - mp_sigmoid(b)
        return float(mp.log(p))


def mp_cb_log_prob(x: float, logit: float) -> float:
    with mp.workdps(60):
        lam, x = mp.mpf(logit), mp.mpf(x)
        if lam == 0:
            return 0.0
        return float(lam * x - mp.log(mp.expm1(lam) / lam))


def mp_cb_mean(logit: float) -> float:
    with mp.workdps(60):
        lam = mp.mpf(logit)
        if lam == 0:
            return 0.5
        return float(1 / (1 - mp.exp(-lam)) - 1 / lam)


# -- Bernoulli ---------------------------------------------------------------------------------


def test_bernoulli_matches_torch_for_moderate_logits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 5, 5, generator=g, dtype=D64) * 4
    x = torch.randint(0, 2, (4, 3, 5, 5), generator=g).to(D64)
    ref = torch.distributions.Independent(torch.distributions.Bernoulli(logits=logits), 3).log_prob(x)
    torch.testing.assert_close(Bernoulli().log_prob(x, logits), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("logit", [-200.0, -50.0, -5.0, -1e-6, 0.0, 1e-6, 5.0, 50.0, 200.0])
@pytest.mark.parametrize("x", [0.0, 1.0])
def test_bernoulli_exact_in_the_tails(logit, x):
    with mp.workdps(60):
        lam = mp.mpf(logit)
        ref = float(-mp.log1p(mp.exp(-lam)) if x == 1 else -mp.log1p(mp.exp(lam)))
    got = Bernoulli().log_prob(t64([[x]]), t64([[logit]])).item()
    assert math.isfinite(got)
    assert got == pytest.approx(ref, rel=1e-12, abs=1e-300)


def test_bernoulli_gradient_is_x_minus_sigmoid_everywhere():
    # including l = 0 exactly, where max(l, 0) and |l| have kinks that autograd would mishandle
    logits = t64([0.0, 0.0, 1e-300, -1e-9, 3.0, -3.0, 40.0, -40.0, 700.0, -700.0]).requires_grad_()
    x = t64([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]).view(1, -1)
    Bernoulli().log_prob(x, logits.view(1, -1)).sum().backward()
    torch.testing.assert_close(logits.grad, x.view(-1) - torch.sigmoid(logits.detach()), rtol=1e-14, atol=0)


def test_bernoulli_log_prob_is_twice_differentiable():
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(3, 1, 2, 2, generator=g, dtype=D64) * 3).requires_grad_()
    x = torch.rand(3, 1, 2, 2, generator=g, dtype=D64).requires_grad_()  # soft targets: the cross-entropy
    assert torch.autograd.gradcheck(lambda l, v: Bernoulli().log_prob(v, l), (logits, x))
    assert torch.autograd.gradgradcheck(lambda l, v: Bernoulli().log_prob(v, l), (logits, x))


def _mp_reference(fn, values: torch.Tensor) -> torch.Tensor:
    with mp.workdps(40):
        return torch.tensor([float(fn(mp.mpf(v))) for v in values.double().tolist()], dtype=D64)


def _ulps(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    assert torch.equal(got == 0, ref == 0) and torch.equal(torch.isinf(got), torch.isinf(ref))
    finite = torch.isfinite(ref) & (ref != 0)
    return (got - ref)[finite].abs() / (ref[finite].abs() * torch.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_log1p_within_two_ulps(dtype):
    from vaezoo.likelihoods._fast import log1p

    mags = torch.logspace(-40 if dtype == D64 else -30, 30, 3001, dtype=D64)
    u = torch.cat([mags, -mags[mags < 1], t64([0.0, -0.5, 1.0, -1 + 2**-20, np.finfo(np.float32).tiny])]).to(dtype)
    assert _ulps(log1p(u).double(), _mp_reference(mp.log1p, u), dtype).max().item() <= 2.0


def test_bernoulli_sums_to_one_over_all_binary_images():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 1, 2, 2, generator=g, dtype=D64) * 3
    xs = t64(list(itertools.product([0.0, 1.0], repeat=4))).reshape(16, 1, 2, 2)
    lp = Bernoulli().log_prob(xs, logits.expand(16, 1, 2, 2))
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-12)
    assert len(set(lp.tolist())) > 1


# -- continuous Bernoulli -------------------------------------------------------------------------


def test_continuous_bernoulli_matches_torch_for_moderate_logits():
    g = torch.Generator().manual_seed(2)
    logits = torch.cat([torch.randn(60, generator=g, dtype=D64) * 4, t64([0.0, 1e-4, -1e-3, 0.2, -0.3])])
    x = torch.rand(logits.shape, generator=g, dtype=D64)
    ref = torch.distributions.ContinuousBernoulli(logits=logits).log_prob(x)
    got = ContinuousBernoulli().log_prob(x[:, None], logits[:, None])
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        ContinuousBernoulli().mean(logits[:, None])[:, 0],
        torch.distributions.ContinuousBernoulli(logits=logits).mean,
        rtol=1e-10,
        atol=1e-12,
    )


CB_LOGITS = [-500.0, -50.0, -3.0, -0.2500001, -0.25, -0.2499999, -0.1, -1e-3, -1e-9, 0.0, 1e-9, 1e-3, 0.1, 0.2499999, 0.25, 0.2500001, 3.0, 50.0, 500.0]


@pytest.mark.parametrize("logit", CB_LOGITS)
def test_continuous_bernoulli_exact_everywhere(logit):
    xs = [0.0, 0.013, 0.5, 0.987, 1.0]
    got = ContinuousBernoulli().log_prob(t64(xs)[:, None], t64([logit] * len(xs))[:, None])
    ref = t64([mp_cb_log_prob(x, logit) for x in xs])
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
    # the normaliser alone, relative: catches a loss of digits that the sum above could hide
    with mp.workdps(60):
        lam = mp.mpf(logit)
        norm_ref = 0.0 if lam == 0 else float(mp.log(mp.expm1(lam) / lam))
    assert cb_log_normalizer(t64([logit])).item() == pytest.approx(norm_ref, rel=1e-13, abs=1e-300)
    mean = ContinuousBernoulli().mean(t64([[logit]])).item()
    assert mean == pytest.approx(mp_cb_mean(logit), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("logit", [-30.0, -2.0, -1e-3, 0.0, 0.1, 3.0, 30.0])
def test_continuous_bernoulli_integrates_to_one(logit):
    lik = ContinuousBernoulli()
    params = t64([[logit]])

    def density(x: float) -> float:
        return math.exp(lik.log_prob(t64([[x]]), params).item())

    total, err = scipy.integrate.quad(density, 0.0, 1.0, epsabs=1e-13, epsrel=1e-11, limit=200)
    assert total == pytest.approx(1.0, abs=1e-9)


def test_continuous_bernoulli_samples_follow_the_cdf():
    torch.manual_seed(3)
    for logit in (-4.0, 0.0, 1e-3, 6.0):
        lam = logit
        x = ContinuousBernoulli().sample(t64([[logit]]).expand(20000, 1))[:, 0].numpy()
        assert ((x >= 0) & (x <= 1)).all()

        def cdf(v, lam=lam):
            return v if lam == 0 else np.expm1(lam * v) / np.expm1(lam)

        assert scipy.stats.kstest(x, cdf).pvalue > 1e-4


def test_continuous_bernoulli_gradient_is_finite_at_zero():
    logits = t64([[0.0, 1e-12, -0.25, 0.25, 60.0, -60.0]]).requires_grad_()
    x = t64([[0.3, 0.7, 0.0, 1.0, 0.5, 0.5]])
    ContinuousBernoulli().log_prob(x, logits).sum().backward()
    assert torch.isfinite(logits.grad).all()
    # d/dl log p = x - E[x]
    torch.testing.assert_close(logits.grad, x - ContinuousBernoulli().mean(logits.detach()), rtol=1e-10, atol=1e-12)


# -- Gaussian and Laplace -------------------------------------------------------------------------


def _location_scale_grid():
    locs, log_scales, xs = [], [], []
    for loc, ls, x in itertools.product([-50.0, -1.0, 0.0, 0.7, 50.0], LOG_SCALES, [-49.0, -1.0, 0.0, 0.5, 0.71, 51.0]):
        locs.append(loc)
        log_scales.append(ls)
        xs.append(x)
    return np.array(locs), np.array(log_scales), np.array(xs)


@pytest.mark.parametrize(
    ("cls", "ref"), [(Gaussian, scipy.stats.norm.logpdf), (Laplace, scipy.stats.laplace.logpdf)]
)
def test_location_scale_matches_scipy(cls, ref):
    locs, log_scales, xs = _location_scale_grid()
    n = len(xs)
    params = torch.cat([t64(locs).reshape(n, 1), t64(log_scales).reshape(n, 1)], dim=1)  # (B, 2C), C=1
    got = cls().log_prob(t64(xs).reshape(n, 1), params)
    expected = t64(ref(xs, loc=locs, scale=np.exp(log_scales)))
    assert torch.isfinite(got).all()
    finite = torch.isfinite(expected)
    assert finite.sum() > n // 2
    torch.testing.assert_close(got[finite], expected[finite], rtol=1e-12, atol=1e-12)
    # where scipy's density underflows to log(0), an arbitrary-precision reference
    with mp.workdps(60):
        for i in torch.nonzero(~finite).flatten().tolist():
            loc, s, x = mp.mpf(locs[i]), mp.exp(mp.mpf(log_scales[i])), mp.mpf(xs[i])
            if cls is Gaussian:
                dens = mp.npdf(x, loc, s)
            else:
                dens = mp.exp(-abs(x - loc) / s) / (2 * s)
            assert got[i].item() == pytest.approx(float(mp.log(dens)), rel=1e-12)


@pytest.mark.parametrize(
    ("cls", "ref"), [(Gaussian, scipy.stats.norm.logpdf), (Laplace, scipy.stats.laplace.logpdf)]
)
@pytest.mark.parametrize("scale", [1e-3, 0.3, 1, 40.0])
def test_location_scale_fixed_scale_matches_scipy(cls, ref, scale):
    lik = cls(scale=scale)
    assert lik.num_params == 1
    g = torch.Generator().manual_seed(4)
    loc = torch.randn(3, 2, 4, generator=g, dtype=D64)
    x = loc + torch.randn(3, 2, 4, generator=g, dtype=D64) * scale
    expected = ref(x.numpy(), loc=loc.numpy(), scale=scale).sum(axis=(1, 2))
    torch.testing.assert_close(lik.log_prob(x, loc), t64(expected), rtol=1e-12, atol=1e-12)


def test_location_scale_channel_order_is_loc_then_log_scale():
    g = torch.Generator().manual_seed(5)
    loc = torch.randn(2, 3, 4, 4, generator=g, dtype=D64)
    log_scale = torch.randn(2, 3, 4, 4, generator=g, dtype=D64)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=D64)
    params = torch.cat([loc, log_scale], dim=1)
    expected = scipy.stats.norm.logpdf(x.numpy(), loc=loc.numpy(), scale=np.exp(log_scale.numpy())).sum(axis=(1, 2, 3))
    torch.testing.assert_close(Gaussian().log_prob(x, params), t64(expected), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(Gaussian().mean(params), loc)


@pytest.mark.parametrize("cls", [Gaussian, Laplace])
@pytest.mark.parametrize(("loc", "log_scale"), [(0.0, 0.0), (3.0, -4.0), (-50.0, 2.0), (0.5, -7.0)])
def test_location_scale_integrates_to_one(cls, loc, log_scale):
    lik = cls()
    s = math.exp(log_scale)
    params = t64([[loc, log_scale]])

    def density(x: float) -> float:
        return math.exp(lik.log_prob(t64([[x]]), params).item())

    total, _ = scipy.integrate.quad(density, loc - 60 * s, loc + 60 * s, points=[loc], epsabs=1e-13, limit=200)
    assert total == pytest.approx(1.0, abs=1e-8)


def test_min_log_scale_clamps_a_learned_scale():
    x, params = t64([[0.1]]), t64([[0.0, -20.0]])
    clamped = Gaussian(min_log_scale=-3.0).log_prob(x, params).item()
    assert clamped == pytest.approx(scipy.stats.norm.logpdf(0.1, scale=math.exp(-3.0)), rel=1e-12)
    assert Gaussian().log_prob(x, params).item() == pytest.approx(scipy.stats.norm.logpdf(0.1, scale=math.exp(-20.0)), rel=1e-12)


# -- discretized logistic ---------------------------------------------------------------------------


def _dl_params(locs, log_scales):
    locs, log_scales = t64(locs).reshape(-1, 1), t64(log_scales).reshape(-1, 1)
    return torch.cat([locs, log_scales], dim=1)


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_discretized_logistic_matches_scipy_for_moderate_params(bits):
    n = 2**bits - 1
    rows = list(itertools.product([-1.0, -0.1, 0.0, 0.4, 1.0, 2.0], [-3.0, -1.0, 0.0, 2.0], sorted({0, 1, n // 2, n - 1, n})))
    locs, log_scales, ks = (np.array(c, dtype=np.float64) for c in zip(*rows))
    s = np.exp(log_scales)
    upper, lower = (ks + 0.5) / n, (ks - 0.5) / n
    cdf, sf = scipy.stats.logistic.cdf, scipy.stats.logistic.sf
    with np.errstate(divide="ignore"):  # the edge rows are taken from the other branches
        interior = np.where(  # difference of whichever tail function is small, to avoid cancellation
            lower >= locs, np.log(sf(lower, locs, s) - sf(upper, locs, s)), np.log(cdf(upper, locs, s) - cdf(lower, locs, s))
        )
    expected = np.where(
        ks == 0,
        scipy.stats.logistic.logcdf(upper, locs, s),
        np.where(ks == n, scipy.stats.logistic.logsf(lower, locs, s), interior),
    )
    got = DiscretizedLogistic(bits=bits).log_prob(t64(ks / n).reshape(-1, 1), _dl_params(locs, log_scales))
    torch.testing.assert_close(got, t64(expected), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bits", [4, 8])
def test_discretized_logistic_exact_in_the_tails(bits):
    n = 2**bits - 1
    rows = list(itertools.product(LOCS, LOG_SCALES, sorted({0, 1, 2, n // 2, n // 2 + 1, n - 1, n})))
    locs, log_scales, ks = zip(*rows)
    got = DiscretizedLogistic(bits=bits).log_prob(t64(np.array(ks) / n).reshape(-1, 1), _dl_params(locs, log_scales))
    expected = t64([mp_bin_log_prob(k, n, loc, ls) for loc, ls, k in rows])
    assert torch.isfinite(got).all()
    assert expected.min() < -1e4  # the grid really reaches the far tails
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bits", [1, 4, 8])
@pytest.mark.parametrize(("loc", "log_scale"), [(0.5, 0.0), (0.02, -7.0), (0.37, -4.0), (-50.0, -7.0), (50.0, 5.0), (1.3, 2.0)])
def test_discretized_logistic_sums_to_one_over_all_bins(bits, loc, log_scale):
    n = 2**bits - 1
    x = torch.arange(n + 1, dtype=D64).reshape(-1, 1) / n
    lp = DiscretizedLogistic(bits=bits).log_prob(x, t64([[loc, log_scale]]).expand(n + 1, 2))
    assert torch.isfinite(lp).all()
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-12)


def test_discretized_logistic_joint_event_sums_to_one():
    x = t64(list(itertools.product(range(16), repeat=2))) / 15  # every (x1, x2) on the 4-bit grid
    params = t64([[0.2, 0.9, -1.0, -2.5]]).expand(256, 4)  # locs (0.2, 0.9), log_scales (-1, -2.5)
    lp = DiscretizedLogistic(bits=4).log_prob(x, params)
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-12)


def _mixture_reference(x, logits, locs, log_scales, n):
    """sum over elements of log sum_j softmax(logits)_j (F_j(upper) - F_j(lower)), in float64 with scipy."""
    w = scipy.special.softmax(logits, axis=0)
    s = np.exp(log_scales)
    upper = np.where(x >= 1, np.inf, x + 0.5 / n)
    lower = np.where(x <= 0, -np.inf, x - 0.5 / n)
    probs = (w * (scipy.stats.logistic.cdf(upper, locs, s) - scipy.stats.logistic.cdf(lower, locs, s))).sum(0)
    return np.log(probs).reshape(probs.shape[0], -1).sum(1)


def test_discretized_logistic_mixture_matches_reference():
    K, B, C, H, W = 4, 3, 2, 3, 3
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(K, B, C, H, W, generator=g, dtype=D64) * 2
    locs = torch.rand(K, B, C, H, W, generator=g, dtype=D64) * 1.4 - 0.2
    log_scales = torch.rand(K, B, C, H, W, generator=g, dtype=D64) * 4 - 4.5
    x = torch.randint(0, 256, (B, C, H, W), generator=g).to(D64) / 255
    x[0, 0, 0, 0], x[1, 1, 2, 2] = 0.0, 1.0  # both edge bins
    params = torch.cat([*logits, *locs, *log_scales], dim=1)  # K logit blocks, K loc blocks, K log-scale blocks
    lik = DiscretizedLogisticMixture(components=K, bits=8)
    assert params.shape[1:] == lik.param_shape((C, H, W))
    expected = _mixture_reference(x.numpy(), logits.numpy(), locs.numpy(), log_scales.numpy(), 255)
    torch.testing.assert_close(lik.log_prob(x, params), t64(expected), rtol=1e-10, atol=1e-10)


def test_mixture_with_one_component_is_the_single_logistic():
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, 256, (5, 3, 4, 4), generator=g).to(D64) / 255
    locs = t64(LOCS[:5]).reshape(5, 1, 1, 1).expand(5, 3, 4, 4)
    log_scales = t64(LOG_SCALES[:5]).reshape(5, 1, 1, 1).expand(5, 3, 4, 4)
    single = DiscretizedLogistic(bits=8).log_prob(x, torch.cat([locs, log_scales], 1))
    logits = torch.randn(5, 3, 4, 4, generator=g, dtype=D64) * 10  # any logits: softmax of one is 1
    mixture = DiscretizedLogisticMixture(components=1, bits=8).log_prob(x, torch.cat([logits, locs, log_scales], 1))
    torch.testing.assert_close(mixture, single, rtol=1e-14, atol=1e-12)


def test_mixture_in_the_tails_and_normalised():
    # component 0 far in the left tail, component 1 a steep peak: the mixture stays exact
    n = 255
    logits, locs, log_scales = [0.3, -1.2], [-50.0, 0.6], [-7.0, -6.0]
    lik = DiscretizedLogisticMixture(components=2, bits=8)
    x = torch.arange(n + 1, dtype=D64).reshape(-1, 1) / n
    params = t64(logits + locs + log_scales).reshape(1, 6).expand(n + 1, 6)
    lp = lik.log_prob(x, params)
    assert torch.isfinite(lp).all()
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-12)
    with mp.workdps(60):
        w = [mp.exp(v) / sum(mp.exp(u) for u in logits) for v in logits]
        for k in (0, 1, 100, 153, 200, 255):
            comps = [mp.exp(mp.mpf(mp_bin_log_prob(k, n, m, s))) for m, s in zip(locs, log_scales)]
            ref = float(mp.log(w[0] * comps[0] + w[1] * comps[1]))
            assert lp[k].item() == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("lik", [DiscretizedLogistic(bits=3), DiscretizedLogisticMixture(components=2, bits=3)])
def test_discretized_mean_is_the_probability_weighted_grid(lik):
    n = 7
    g = torch.Generator().manual_seed(8)
    params = torch.randn(4, lik.num_params, generator=g, dtype=D64)
    grid = torch.arange(n + 1, dtype=D64) / n
    probs = torch.stack([lik.log_prob(torch.full((4, 1), v.item(), dtype=D64), params).exp() for v in grid], -1)
    torch.testing.assert_close(lik.mean(params)[:, 0], (probs * grid).sum(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bits", [1, 6, 7, 8, 16])
def test_discretized_mean_matches_brute_force_in_every_regime(bits):
    # widths s*n from far below one bin to far above the grid, around the 1-bin switch-over
    n = 2**bits - 1
    locs = [-50.0, -0.01, 0.0, 0.3, 0.5, 0.999, 1.02, 50.0]
    widths = [1e-3, 0.5, 0.999, 1.0, 1.001, 2.0, 10.0, 1e6]
    loc, width = (np.array(c) for c in zip(*itertools.product(locs, widths)))
    s = width / n
    grid = np.arange(n + 1) / n
    upper = np.where(grid >= 1, np.inf, grid + 0.5 / n)[:, None]
    lower = np.where(grid <= 0, -np.inf, grid - 0.5 / n)[:, None]
    pmf = scipy.stats.logistic.cdf(upper, loc, s) - scipy.stats.logistic.cdf(lower, loc, s)
    expected = (grid[:, None] * pmf).sum(0)
    got = DiscretizedLogistic(bits=bits).mean(torch.stack([t64(loc), t64(np.log(s))], 1))[:, 0]
    torch.testing.assert_close(got, t64(expected), rtol=0, atol=1e-9)
    got32 = DiscretizedLogistic(bits=bits).mean(torch.stack([t64(loc), t64(np.log(s))], 1).float())[:, 0]
    torch.testing.assert_close(got32.double(), t64(expected), rtol=0, atol=1e-6)


@pytest.mark.parametrize("lik", [DiscretizedLogistic(bits=2), DiscretizedLogisticMixture(components=2, bits=2)])
def test_discretized_samples_follow_the_pmf(lik):
    torch.manual_seed(9)
    params = t64([[0.8, 0.1, 0.2, -3.0, -1.0, -0.5][: lik.num_params]])
    draws = 40000
    x = lik.sample(params.expand(draws, lik.num_params))
    lik.check_data(x)
    freq = torch.stack([(x == k / 3).double().mean() for k in range(4)])
    pmf = torch.stack([lik.log_prob(t64([[k / 3]]), params).exp()[0] for k in range(4)])
    assert freq.sum().item() == pytest.approx(1.0)
    assert ((freq - pmf).abs() <= 5 * (pmf * (1 - pmf) / draws).sqrt() + 1e-3).all(), (freq, pmf)


def test_discretized_gradients_are_finite_at_the_extremes():
    locs, log_scales = zip(*itertools.product(LOCS, LOG_SCALES))
    params = _dl_params(locs, log_scales).requires_grad_()
    x = (torch.arange(params.shape[0], dtype=D64) % 256 / 255).reshape(-1, 1)
    DiscretizedLogistic(bits=8).log_prob(x, params).sum().backward()
    assert torch.isfinite(params.grad).all()


# -- layout, distributions, sampling, support --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("data_shape", [(1, 8, 8), (3, 32, 32), (784,)])
def test_param_shape(name, data_shape):
    lik = ALL[name]()
    P = EXPECTED_P[name]
    assert lik.num_params == P
    assert lik.param_shape(data_shape) == (P * data_shape[0], *data_shape[1:])


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("data_shape", [(1, 3, 3), (5,)])
def test_leading_sample_dims_broadcast(name, data_shape):
    lik = ALL[name]()
    g = torch.Generator().manual_seed(10)
    K, B = 3, 2
    x = valid_data(name, (B, *data_shape), g)
    params = torch.randn(K, B, *lik.param_shape(data_shape), generator=g, dtype=D64)
    lp = lik.log_prob(x, params)
    assert lp.shape == (K, B)
    for k in range(K):
        torch.testing.assert_close(lp[k], lik.log_prob(x, params[k]), rtol=1e-13, atol=1e-13)
        for b in range(B):
            torch.testing.assert_close(lp[k, b : b + 1], lik.log_prob(x[b : b + 1], params[k, b : b + 1]), rtol=1e-13, atol=1e-13)
    # the distribution agrees, with and without sample dims
    ed = len(data_shape)
    torch.testing.assert_close(lik.distribution(params, event_dims=ed).log_prob(x), lp, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lik.distribution(params[0]).log_prob(x), lp[0], rtol=1e-12, atol=1e-12)
    assert lik.distribution(params, event_dims=ed).event_shape == data_shape
    assert lik.distribution(params[0]).batch_shape == (B,)
    assert lik.mean(params, event_dims=ed).shape == (K, B, *data_shape)
    torch.testing.assert_close(lik.mean(params, event_dims=ed)[1], lik.mean(params[1]))
    draws = lik.sample(params, event_dims=ed)
    assert draws.shape == (K, B, *data_shape)
    lik.check_data(draws.reshape(K * B, *data_shape))


@pytest.mark.parametrize("name", sorted(ALL))
def test_samples_and_means_lie_in_the_support(name):
    torch.manual_seed(11)
    lik = ALL[name]()
    data_shape = (3, 4, 4)
    params = torch.randn(6, *lik.param_shape(data_shape), dtype=D64) * 3
    params[0] = 60.0  # extreme parameters too
    params[1] = -60.0
    x = lik.sample(params)
    assert x.shape == (6, *data_shape) and x.dtype == D64
    lik.check_data(x)
    dist = lik.distribution(params)
    assert dist.support.check(x).all()
    assert torch.isfinite(lik.log_prob(x, params)).all()
    mean = lik.mean(params)
    assert mean.shape == (6, *data_shape) and torch.isfinite(mean).all()
    if name != "gaussian" and not name.startswith("laplace") and name != "gaussian_fixed":
        assert ((mean >= 0) & (mean <= 1)).all()
    torch.testing.assert_close(dist.mean, mean)


@pytest.mark.parametrize("name", sorted(ALL))
def test_float32_is_finite_and_close_at_the_extremes(name):
    lik = ALL[name]()
    g = torch.Generator().manual_seed(12)
    B, C = 8, 4
    x64 = valid_data(name, (B, C), g)
    P = lik.num_params
    params64 = torch.randn(B, P * C, generator=g, dtype=D64)
    if name in ("gaussian", "laplace", "discretized_logistic"):
        params64[:, :C] = t64([-50.0, 50.0, 0.5, 1.0]).repeat(B, 1)
        params64[:, C:] = t64(np.linspace(-7.0, 5.0, B)).reshape(B, 1)
    elif name == "discretized_logistic_mixture":
        params64[:, 3 * C : 6 * C] = t64([-50.0, 50.0, 0.5, 1.0]).repeat(B, 3)
        params64[:, 6 * C :] = t64(np.linspace(-7.0, 5.0, B)).reshape(B, 1)
    else:
        params64 = params64 * 30  # logits up to about ±100
        params64[0] = t64([0.0, 1e-6, -1e-4, 0.2])
    lp64 = lik.log_prob(x64, params64)
    lp32 = lik.log_prob(x64.float(), params64.float())
    assert lp32.dtype == torch.float32
    assert torch.isfinite(lp32).all()
    torch.testing.assert_close(lp32.double(), lp64, rtol=1e-5, atol=1e-3)


def test_bernoulli_check_data():
    lik = Bernoulli()
    lik.check_data(t64([[0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(DataError, match=r"binary data in \{0, 1\}.*\[0, 0\.93\].*binarize.*continuous_bernoulli"):
        lik.check_data(t64([[0.0, 0.93], [0.5, 0.2]]))
    with pytest.raises(DataError, match="NaN"):
        lik.check_data(t64([[0.0, float("nan")]]))


def test_continuous_bernoulli_check_data():
    lik = ContinuousBernoulli()
    lik.check_data(t64([[0.0, 0.31, 1.0]]))
    for bad in (-0.01, 1.5):
        with pytest.raises(DataError, match=r"\[0, 1\]"):
            lik.check_data(t64([[0.5, bad]]))


@pytest.mark.parametrize("lik", [DiscretizedLogistic(bits=8), DiscretizedLogisticMixture(components=2, bits=8)])
def test_discretized_check_data(lik):
    grid32 = torch.arange(256, dtype=torch.float32) / 255  # how 8-bit images arrive from ToTensor
    lik.check_data(grid32.reshape(4, 64))
    lik.check_data(grid32.double().reshape(4, 64))
    for bad in (0.3 / 255 + 0.5, 1.5, -1 / 255, 0.9999):
        x = grid32.clone()
        x[7] = bad
        with pytest.raises(DataError, match=r"grid k/255"):
            lik.check_data(x.reshape(4, 64))


def test_discretized_check_data_other_bit_depths():
    DiscretizedLogistic(bits=16).check_data((torch.arange(65536, dtype=torch.float32) / 65535).reshape(16, -1))
    DiscretizedLogistic(bits=1).check_data(t64([[0.0, 1.0]]))
    with pytest.raises(DataError, match=r"grid k/1 "):
        DiscretizedLogistic(bits=1).check_data(t64([[0.0, 0.5]]))
    with pytest.raises(DataError, match=r"grid k/15"):  # 8-bit data given to a 4-bit likelihood
        DiscretizedLogistic(bits=4).check_data(torch.arange(256, dtype=D64).reshape(1, -1) / 255)


def test_location_scale_check_data_only_needs_finite():
    Gaussian().check_data(t64([[-1e6, 3.0]]))
    with pytest.raises(DataError):
        Laplace().check_data(t64([[float("inf"), 3.0]]))


def test_log_prob_rejects_mismatched_shapes():
    x = torch.zeros(2, 3, 4, 4, dtype=D64)
    with pytest.raises(DataError, match=r"\(6, 4, 4\)"):
        Gaussian().log_prob(x, torch.zeros(2, 3, 4, 4, dtype=D64))
    with pytest.raises(DataError):
        Bernoulli().log_prob(torch.zeros(5, dtype=D64), torch.zeros(5, dtype=D64))


def test_constructor_validation():
    for bits in (0, 17, -3):
        with pytest.raises(ValueError, match="bits"):
            DiscretizedLogistic(bits=bits)
    with pytest.raises(TypeError, match="bits"):
        DiscretizedLogistic(bits=8.0)
    with pytest.raises(ValueError, match="components"):
        DiscretizedLogisticMixture(components=0)
    with pytest.raises(ValueError, match="bits"):
        DiscretizedLogisticMixture(components=2, bits=20)
    for scale in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale"):
            Gaussian(scale=scale)
    with pytest.raises(ValueError, match="min_log_scale"):
        Laplace(scale=1.0, min_log_scale=-5.0)


def test_registry_builds_them_and_checks_types():
    assert isinstance(create("likelihood", "gaussian", scale=1), Gaussian)  # an int is a valid float
    assert create("likelihood", "discretized_logistic_mixture", components=2, bits=5).num_params == 6
    with pytest.raises(ComponentParamError, match="bits"):
        create("likelihood", "discretized_logistic", bits="8")
    with pytest.raises(ComponentParamError, match="scale"):
        create("likelihood", "laplace", scale="wide")
