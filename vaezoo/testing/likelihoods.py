"""``check_likelihood``: the ``vaezoo.Likelihood`` contract."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, constraints

from ..components import Likelihood
from ..errors import DataError
from ._common import (
    EXTREME,
    LOG_SCALE_RANGE,
    MASS_TOL,
    NORM_TOL,
    _Check,
    _float_params,
    _integrate_1d,
    _perturb,
    _resolve,
    _roundtrip,
    _seeded,
    _shape,
    _zero_grads,
)


def _support_bounds(dist: Distribution) -> tuple[float | None, float | None]:
    base = dist
    while isinstance(base, Independent):
        base = base.base_dist
    try:
        support = base.support
    except Exception:
        return None, None
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    lower, upper = getattr(support, "lower_bound", None), getattr(support, "upper_bound", None)
    as_float = lambda v: float(v) if isinstance(v, (int, float)) or (isinstance(v, Tensor) and v.numel() == 1) else None  # noqa: E731
    return as_float(lower), as_float(upper)


def _enumerate_support(c: _Check, lik: Likelihood, params1: Tensor, support: Any) -> tuple[Tensor, str]:
    """The values one data element can take, and where that list came from."""
    if support is not None:
        values = torch.as_tensor(support, dtype=torch.float64).flatten()
        return values, "support= given to check_likelihood"
    dist = c.call("distribution(params)", lik.distribution, params1)
    base = dist
    while isinstance(base, Independent):
        base = base.base_dist
    try:
        values = base.enumerate_support(expand=False).flatten().unique().to(torch.float64)
        return values, "enumerate_support() of its distribution"
    except NotImplementedError:
        pass
    except Exception as exc:
        c.fail(f"distribution(params).enumerate_support raised {type(exc).__name__}: {exc}", exc)
    bits = getattr(lik, "bits", None)
    if isinstance(bits, int) and not isinstance(bits, bool) and 1 <= bits <= 16:
        n = 2**bits - 1
        return torch.arange(n + 1, dtype=torch.float64) / n, f"its bits={bits}: the grid k/{n}"
    try:
        sup = base.support
    except Exception:  # Distribution.support raises NotImplementedError when not declared
        sup = None
    if sup is constraints.boolean:
        return torch.tensor([0.0, 1.0], dtype=torch.float64), "its boolean support"
    if isinstance(sup, constraints.integer_interval) and sup.upper_bound - sup.lower_bound <= 100_000:
        return torch.arange(sup.lower_bound, sup.upper_bound + 1, dtype=torch.float64), "its integer support"
    c.fail(
        "discrete=True, but the check cannot enumerate the values one data element can take, to "
        "verify that the probabilities sum to 1; pass support=[...] to check_likelihood, or give "
        "the elementwise distribution an enumerate_support()"
    )
    raise AssertionError  # unreachable


def check_likelihood(
    likelihood: str | Likelihood,
    data_shape: Sequence[int] = (2, 3, 3),
    *,
    support: Sequence[float] | Tensor | None = None,
    perturb: float = 0.2,
    seed: int = 0,
    **params: Any,
) -> Likelihood:
    """Check a likelihood against the ``vaezoo.Likelihood`` contract; returns the instance.

    ``likelihood``: a registered name (built with ``**params``) or an instance. Checked:
    ``param_shape`` is ``(num_params * C, *data_shape[1:])``; ``sample``/``mean`` give data of
    ``data_shape`` and ``check_data`` accepts the samples but rejects NaN (``DataError``);
    ``log_prob`` sums to ``(B,)``, accepts leading sample dims ``(K, B, ...) -> (K, B)``,
    agrees with ``distribution(params).log_prob`` and is differentiable; normalisation on a
    one-element event (``discrete=True``: probabilities over the enumerable support sum to 1
    and ``mean`` is their mean; otherwise the density integrates to 1 by quadrature);
    finite values and gradients at params ``±30`` and in ``[-7, 5]``; float64; a
    ``state_dict`` round trip. ``support``: the values one data element can take, for a
    discrete likelihood whose support the check cannot find by itself.
    """
    data_shape = tuple(int(s) for s in data_shape)
    lik, label, make = _resolve("likelihood", likelihood, {}, params, "check_likelihood")
    c = _Check("likelihood", label)
    with _seeded(seed):
        work = make()
        _perturb(work, perturb)
        _likelihood_attributes(c, work)
        ps = _likelihood_param_shape(c, work, data_shape)
        x = _likelihood_shapes(c, work, data_shape, ps)
        _likelihood_extremes(c, work, x, ps)
        _likelihood_float64(c, work, x, ps)
        _likelihood_normalisation(c, work, data_shape, support)
        fresh = make()
        _perturb(fresh, perturb)
        params64 = torch.randn(4, *ps, dtype=torch.float64)
        _roundtrip(c, work.double(), fresh.double(), lambda m: [m.log_prob(x.double(), params64)])
    return lik


def _likelihood_attributes(c: _Check, lik: Likelihood) -> None:
    p = getattr(lik, "num_params", None)
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        c.fail(f"num_params is {p!r}; it must be an int >= 1 (P, the parameter blocks per data channel)")
    if not isinstance(getattr(lik, "discrete", None), bool):
        c.fail(f"discrete is {getattr(lik, 'discrete', None)!r}; it must be True (a probability mass) or False (a density)")


def _likelihood_param_shape(c: _Check, lik: Likelihood, data_shape: tuple[int, ...]) -> tuple[int, ...]:
    got = c.call(f"param_shape({data_shape})", lik.param_shape, data_shape)
    try:
        ps = tuple(int(s) for s in got)
    except TypeError:
        c.fail(f"param_shape({data_shape}) returned {got!r}; expected a tuple of ints")
    p = lik.num_params
    expected = (p * data_shape[0], *data_shape[1:])
    if ps != expected:
        c.fail(
            f"param_shape({data_shape}) is {ps}, but num_params={p} means {p} blocks of "
            f"{data_shape[0]} channel(s): expected {expected} (P*C, then the data's other dims)"
        )
    return ps


def _likelihood_shapes(c: _Check, lik: Likelihood, data_shape: tuple[int, ...], ps: tuple[int, ...]) -> Tensor:
    """Shapes, dtypes and consistency in float32; returns data sampled from the likelihood."""
    b, k = 4, 3
    params = torch.randn(b, *ps)
    x = c.call(f"sample(params) with params of shape {(b, *ps)}", lik.sample, params)
    c.shape(f"sample(params) for params {(b, *ps)}", x, (b, *data_shape))
    if not torch.is_floating_point(x):
        c.fail(f"sample(params) returned {x.dtype}; data are floating-point tensors")
    c.dtype("sample(params)", x, params.dtype)
    c.finite("sample(params)", x)
    x = x.detach()
    c.call("check_data on the likelihood's own samples", lik.check_data, x)
    bad = x.clone()
    bad.view(-1)[0] = float("nan")
    try:
        lik.check_data(bad)
    except DataError:
        pass
    except Exception as exc:
        c.fail(f"check_data raised {type(exc).__name__} for data containing NaN; raise vaezoo.errors.DataError", exc)
    else:
        c.fail("check_data accepted data containing NaN; it must raise vaezoo.errors.DataError for data outside the support")

    p = params.clone().requires_grad_(True)
    what = f"log_prob(x, params) for x {(b, *data_shape)} and params {(b, *ps)}"
    lp = c.call(what, lik.log_prob, x, p)
    c.shape(what, lp, (b,), " -- sum over the event dims")
    c.dtype("log_prob", lp, torch.float32)
    c.finite("log_prob", lp, " at params ~ N(0, 1)")
    if lp.requires_grad:
        c.call("backward through log_prob", lp.sum().backward)
    if p.grad is None or not p.grad.abs().sum() > 0:
        c.fail("log_prob does not depend on params (no or zero gradient); it must be differentiable w.r.t. the decoder's output")
    c.grads("log_prob", [("params", p), *_float_params(lik)], " at params ~ N(0, 1)")
    _zero_grads(lik)

    lead = torch.randn(k, b, *ps)
    what = f"log_prob(x, params) with a leading sample dim: params {(k, b, *ps)}"
    with torch.no_grad():
        lpk = c.call(what, lik.log_prob, x, lead)
        c.shape(what, lpk, (k, b), " -- (K, B): keep leading dims, sum over the event dims")
        each = torch.stack([lik.log_prob(x, lead[i]) for i in range(k)])
        c.close(f"{what} differs from evaluating each params[k] alone", lpk, each, rtol=1e-4, atol=1e-4)

        d = c.call("distribution(params)", lik.distribution, params)
        if not isinstance(d, Distribution):
            c.fail(f"distribution(params) returned a {type(d).__name__}, expected a torch.distributions.Distribution")
        if _shape(d.batch_shape) != (b,) or _shape(d.event_shape) != data_shape:
            c.fail(
                f"distribution(params) has batch shape {_shape(d.batch_shape)} and event shape "
                f"{_shape(d.event_shape)}, expected {(b,)} and {data_shape} (one event per example; "
                f"wrap elementwise distributions in Independent)"
            )
        m = c.call("mean(params)", lik.mean, params)
        c.shape("mean(params)", m, (b, *data_shape))
        c.dtype("mean(params)", m, torch.float32)
        c.finite("mean(params)", m, " at params ~ N(0, 1)")
    return x


def _likelihood_float64(c: _Check, lik: Likelihood, x: Tensor, ps: tuple[int, ...]) -> None:
    lik64 = copy.deepcopy(lik).double()
    params = torch.randn(x.shape[0], *ps, dtype=torch.float64)
    x64 = x.double()
    with torch.no_grad():
        lp = c.call("log_prob in float64", lik64.log_prob, x64, params)
        c.dtype("log_prob", lp, torch.float64)
        c.finite("log_prob in float64", lp)
        lp32 = c.call("log_prob", lik.log_prob, x, params.float())
        c.finite("log_prob", lp32, " at params ~ N(0, 1)")
        c.close("log_prob in float32 and in float64 disagree", lp32.double(), lp, rtol=1e-3, atol=1e-3)
        d = c.call("distribution(params) in float64", lik64.distribution, params)
        dlp = c.call("distribution(params).log_prob(x) in float64", d.log_prob, x64)
        c.close("distribution(params).log_prob(x) differs from log_prob(x, params)", dlp, lp, rtol=1e-6, atol=1e-6)
        m = c.call("mean(params) in float64", lik64.mean, params)
        c.dtype("mean(params)", m, torch.float64)
        s = c.call("sample(params) in float64", lik64.sample, params)
        c.dtype("sample(params)", s, torch.float64)


def _likelihood_normalisation(c: _Check, lik: Likelihood, data_shape: tuple[int, ...], support: Any) -> None:
    lik = copy.deepcopy(lik).double()
    one = (1,) * len(data_shape)
    ps1 = tuple(c.call(f"param_shape({one})", lik.param_shape, one))
    n_sets = 4
    params = torch.randn(n_sets, *ps1, dtype=torch.float64)
    with torch.no_grad():
        if lik.discrete:
            values, origin = _enumerate_support(c, lik, params, support)
            v = values.numel()
            if v < 1:
                c.fail("the support enumerated for the normalisation check is empty")
            x = values.repeat_interleave(n_sets).reshape(v * n_sets, *one)
            rep = params.repeat(v, *([1] * len(ps1)))
            lp = c.call("log_prob over the enumerated support", lik.log_prob, x, rep).reshape(v, n_sets)
            total = torch.logsumexp(lp, dim=0)
            worst = int(total.abs().argmax())
            if not total.abs().max() <= MASS_TOL:
                c.fail(
                    f"discrete=True, but the probabilities of one data element over its {v} possible "
                    f"values (from {origin}) sum to {total[worst].exp().item():.6g}, not 1, at "
                    f"params {params[worst].flatten().tolist()}"
                )
            probs = lp.exp()
            expect = (probs * values[:, None]).sum(0)
            mean = c.call("mean(params)", lik.mean, params).reshape(n_sets)
            tol = 1e-4 * (values.max() - values.min()).clamp(min=1).item()
            c.close("mean(params) differs from the mean of the probabilities over the support", mean, expect, rtol=1e-4, atol=tol)
            samples = c.call("sample(params)", lik.sample, params.repeat(50, *([1] * len(ps1)))).flatten()
            off = (samples[:, None] - values[None, :]).abs().min(1).values > 1e-6 * values.abs().max().clamp(min=1)
            if off.any():
                c.fail(f"sample(params) returned {samples[off][0].item():.6g}, which is not one of the support's values (from {origin})")
            return
        d = c.call("distribution(params)", lik.distribution, params)
        lower, upper = _support_bounds(d)
        for i in range(n_sets):
            pi = params[i : i + 1]
            samples = c.call("sample(params)", lik.sample, pi.repeat(4000, *([1] * len(ps1))))

            def logpdf(points: Tensor, pi: Tensor = pi) -> Tensor:
                rep = pi.repeat(points.numel(), *([1] * len(ps1)))
                return lik.log_prob(points.reshape(-1, *one), rep)

            integral, _, (lo, hi) = c.call("log_prob on a quadrature grid", _integrate_1d, logpdf, samples, lower, upper)
            if not abs(integral.item() - 1) <= NORM_TOL:
                c.fail(
                    f"exp(log_prob) of one data element integrates to {integral.item():.4g} over "
                    f"[{lo:.4g}, {hi:.4g}] (expected 1) at params {pi.flatten().tolist()}; a "
                    f"continuous likelihood (discrete=False) must be a normalised density"
                )


def _extreme_params(ps: tuple[int, ...], num_params: int) -> list[tuple[str, Tensor]]:
    b = 4
    signs = torch.randint(0, 2, (b, *ps)).float() * 2 - 1
    lo, hi = LOG_SCALE_RANGE
    uniform = torch.rand(b, *ps) * (hi - lo) + lo
    mixed = uniform.clone()
    block = ps[0] // num_params
    mixed[:, :block] = signs[:, :block] * EXTREME
    return [
        (f"+{EXTREME:g}", torch.full((b, *ps), EXTREME)),
        (f"-{EXTREME:g}", torch.full((b, *ps), -EXTREME)),
        (f"±{EXTREME:g}", signs * EXTREME),
        (f"in [{lo:g}, {hi:g}]", uniform),
        (f"±{EXTREME:g} (first block) and in [{lo:g}, {hi:g}] (other blocks)", mixed),
    ]


def _likelihood_extremes(c: _Check, lik: Likelihood, x: Tensor, ps: tuple[int, ...]) -> None:
    for label, value in _extreme_params(ps, lik.num_params):
        p = value.clone().requires_grad_(True)
        lp = c.call(f"log_prob at params={label}", lik.log_prob, x, p)
        c.finite("log_prob", lp.detach(), f" at params={label}")
        c.call(f"backward through log_prob at params={label}", lp.sum().backward)
        c.grads("log_prob", [("params", p), *_float_params(lik)], f" at params={label}")
        _zero_grads(lik)
