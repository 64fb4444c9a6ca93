"""What a plugin author uses to test a plugin: isolated registries and conformance checks.

Registries::

    with isolated_registry(my_plugin):          # built-ins + my_plugin, no installed entry points
        check_likelihood("cauchy", data_shape=(1, 8, 8))

    with registered_plugin(my_plugin, name="mine"):   # the current registry + my_plugin
        model = vaezoo.build_model({...})

Conformance checks (``check_likelihood``, ``check_prior``, ``check_encoder``,
``check_decoder``) take a registered name plus the factory's parameters, or an already built
instance. They check the contracts of ``vaezoo.Likelihood``, ``vaezoo.Prior``,
``vaezoo.Encoder`` and ``vaezoo.Decoder``: shapes (with leading sample dimensions),
normalisation, finite values and gradients at extreme inputs, float64 support and a
``state_dict`` round trip through safetensors. Each violated contract raises an
``AssertionError`` with a one-line message saying which contract and how, for example::

    likelihood 'cauchy': log_prob returned shape (4, 9), expected (4,) -- sum over the event dims

The checks run on copies of the component, with the torch RNG seeded (``seed``) and restored
afterwards, so they are deterministic and leave the caller's state alone. Parameters of the
component are first perturbed with N(0, ``perturb``^2) noise, so that code which is only
right at its initial values (an identity flow, zero weights) is exercised too. The
``state_dict`` round trip loads into a freshly built instance when the component is given
by name (as ``vaezoo.from_pretrained`` does), into a deep copy when it is given as an
instance; check by name to also catch state that a fresh instance would lack.
"""

from __future__ import annotations

import copy
import math
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, constraints

from .components import Encoder, Likelihood, Prior
from .errors import DataError, PluginError
from .plugins import PluginInfo, PluginWarning, _load_one, discover, new_plugin_manager
from .registry import KINDS, Registry, get_registry, use_registry

__all__ = [
    "isolated_registry",
    "registered_plugin",
    "check_likelihood",
    "check_prior",
    "check_encoder",
    "check_decoder",
    "check_component",
    "check_plugin",
]

EXTREME = 30.0  #: magnitude of the extreme likelihood parameters (logits, locations)
LOG_SCALE_RANGE = (-7.0, 5.0)  #: range of the extreme log-scale-like parameters
PRIOR_EXTREME = 10.0  #: |z| at which a prior's log_prob and gradients must stay finite
NORM_TOL = 2e-2  #: tolerance of the quadrature check that a density integrates to 1
MASS_TOL = 1e-4  #: tolerance (in log space) of the check that probabilities sum to 1


# -- registries --------------------------------------------------------------------------------


def _plugin_name(plugin: Any) -> str:
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    return str(name).split(".")[0]


def _normalise_plugins(plugins: Sequence[Any]) -> list[tuple[str, Any]]:
    out = []
    for p in plugins:
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
            out.append(p)
        else:
            out.append((_plugin_name(p), p))
    return out


@contextmanager
def _plugin_problems(strict: bool) -> Iterator[None]:
    """Collect PluginWarnings; with ``strict`` turn them into one PluginError, else re-emit."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        yield
    problems = [str(w.message) for w in record if issubclass(w.category, PluginWarning)]
    if strict and problems:
        raise PluginError("; ".join(problems))
    for w in record:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@contextmanager
def isolated_registry(*plugins: Any, builtins: bool = True, strict: bool = True) -> Iterator[Registry]:
    """A fresh registry holding the built-ins (``builtins=True``) and ``plugins`` only.

    Installed entry points are never loaded, so what the user has installed cannot leak
    into a test. Each plugin is a module or object with ``@vaezoo.hookimpl`` functions, or a
    ``(name, plugin)`` pair; the name (default: the top-level package name) is what
    qualified names use (``name/component``). Inside the ``with`` block the registry is the
    process registry (``vaezoo.create``, ``vaezoo.build_model`` use it); the previous one is
    restored after. ``strict``: any plugin problem (failed hook, name clash, ...) raises
    ``PluginError`` instead of a ``PluginWarning``.
    """
    with _plugin_problems(strict):
        registry = discover(entry_points=False, plugins=_normalise_plugins(plugins), builtins=builtins)
    with use_registry(registry):
        yield registry


def _copy_registry(base: Registry) -> Registry:
    return Registry(
        components={kind: {n: list(specs) for n, specs in base.components[kind].items()} for kind in KINDS},
        pretrained={n: list(entries) for n, entries in base.pretrained.items()},
        plugins=list(base.plugins),
    )


@contextmanager
def registered_plugin(plugin: Any, name: str | None = None, *, strict: bool = True) -> Iterator[Registry]:
    """The current registry plus ``plugin``, for the duration of the ``with`` block.

    ``plugin`` is a module or object with ``@vaezoo.hookimpl`` functions, loaded exactly as
    an entry point would be; ``name`` plays the role of the entry-point name (default: the
    top-level package name). The previous registry is restored afterwards, untouched.
    ``strict``: a plugin problem or a name clash raises ``PluginError``.
    """
    name = name or _plugin_name(plugin)
    base = get_registry()
    if any(getattr(p, "name", None) == name for p in base.plugins):
        raise PluginError(f"registered_plugin: a plugin named {name!r} is already loaded; pass another name=")
    registry = _copy_registry(base)
    with _plugin_problems(strict):
        info = PluginInfo(name, None, None, getattr(plugin, "__name__", type(plugin).__name__))
        _load_one(new_plugin_manager(), registry, info, lambda: plugin)
        for kind, cname, specs in registry.conflicts():
            if any(s.source.plugin == name for s in specs):
                warnings.warn(
                    f"{kind} {cname!r} is registered by " + " and ".join(str(s.source) for s in specs)
                    + "; use a qualified name: " + ", ".join(s.qualified_name for s in specs),
                    PluginWarning,
                    stacklevel=3,
                )
    with use_registry(registry):
        yield registry


# -- shared machinery of the checks ---------------------------------------------------------


def _one_line(text: Any, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in t)


class _Check:
    """Builds the one-line failure messages: ``<kind> '<label>': <what went wrong>``."""

    def __init__(self, kind: str, label: str) -> None:
        self.prefix = f"{kind} {label!r}: "

    def fail(self, message: str, cause: BaseException | None = None) -> None:
        raise AssertionError(self.prefix + _one_line(message, 500)) from cause

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run component code; an exception becomes a failed check naming the call."""
        try:
            return fn(*args, **kwargs)
        except AssertionError:
            raise
        except Exception as exc:
            detail = f": {exc}" if str(exc) else ""
            self.fail(f"{what} raised {type(exc).__name__}{detail}", exc)

    def shape(self, what: str, t: Any, expected: tuple[int, ...], hint: str = "") -> None:
        if not isinstance(t, Tensor):
            self.fail(f"{what} returned a {type(t).__name__}, expected a tensor of shape {expected}")
        if _shape(t.shape) != expected:
            self.fail(f"{what} returned shape {_shape(t.shape)}, expected {expected}{hint}")

    def dtype(self, what: str, t: Tensor, dtype: torch.dtype) -> None:
        if t.dtype != dtype:
            self.fail(f"{what} returned {t.dtype} for {dtype} inputs; follow the dtype of the inputs and parameters")

    def finite(self, what: str, t: Tensor, where: str = "") -> None:
        bad = ~torch.isfinite(t)
        if bad.any():
            example = t[bad].flatten()[0].item()
            self.fail(f"{what} is not finite{where} (got {example} in {int(bad.sum())} of {t.numel()} entries)")

    def close(self, what: str, got: Tensor, want: Tensor, *, rtol: float, atol: float) -> None:
        if not torch.allclose(got, want, rtol=rtol, atol=atol):
            diff = (got - want).abs().max().item()
            self.fail(f"{what} (max difference {diff:.3g})")

    def grads(self, what: str, tensors: list[tuple[str, Tensor]], where: str = "") -> None:
        for label, t in tensors:
            if t.grad is not None:
                self.finite(f"gradient of {what} w.r.t. {label}", t.grad, where)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _resolve(kind: str, component: Any, fixed: dict[str, Any], params: dict[str, Any], func: str) -> tuple[Any, str, Callable[[], Any]]:
    """(instance, label, make) where ``make()`` builds another instance like it."""
    from .components import BASE_CLASS_FOR_KIND

    base = BASE_CLASS_FOR_KIND[kind]
    if isinstance(component, str):
        registry = get_registry()
        registry.get(kind, component)  # an unknown name: UnknownComponentError with suggestions
        label = component

        def make() -> Any:
            try:
                return registry.create(kind, component, **fixed, **params)
            except PluginError as exc:
                raise AssertionError(f"{kind} {label!r}: cannot be created: {_one_line(exc, 500)}") from exc

        return make(), label, make
    if params:
        raise TypeError(
            f"{func}: parameters {sorted(params)} only apply when the component is given by its "
            f"registered name; got an instance of {type(component).__name__}"
        )
    label = type(component).__name__
    if not isinstance(component, base):
        raise AssertionError(
            f"{kind} {label!r}: is a {type(component).__name__}, expected a "
            f"{base.__module__.split('.')[0]}.{base.__name__}"
        )
    return component, label, lambda: copy.deepcopy(component)


@torch.no_grad()
def _perturb(module: nn.Module, scale: float) -> None:
    if scale:
        for p in module.parameters():
            if p.is_floating_point():
                p.add_(torch.randn_like(p) * scale)


def _float_params(module: nn.Module) -> list[tuple[str, Tensor]]:
    return [(f"parameter {n!r}", p) for n, p in module.named_parameters() if p.is_floating_point()]


def _zero_grads(module: nn.Module) -> None:
    for p in module.parameters():
        p.grad = None


def _roundtrip(c: _Check, original: nn.Module, fresh: nn.Module, outputs: Callable[[nn.Module], list[Tensor]]) -> None:
    """Save ``original.state_dict()`` with safetensors, load it into ``fresh``: same outputs."""
    from safetensors.torch import load_file, save_file

    from .serialization import _dedupe

    state = {k: v.detach().cpu().contiguous() for k, v in original.state_dict().items()}
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        c.fail(f"state_dict holds non-tensor entries {bad}; safetensors stores tensors only")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "component.safetensors")
        c.call("saving the state_dict with safetensors", save_file, _dedupe(state), path)
        loaded = load_file(path)
    own = fresh.state_dict()
    missing, unexpected = sorted(set(own) - set(loaded)), sorted(set(loaded) - set(own))
    if missing or unexpected:
        c.fail(
            f"state_dict does not round-trip: a freshly built instance has keys missing from the saved "
            f"file {missing} and the file has unexpected keys {unexpected}; create every parameter "
            f"and buffer in __init__ (or bind), with shapes that depend only on the config"
        )
    c.call("load_state_dict (strict) of the saved state", fresh.load_state_dict, loaded, strict=True)
    original.eval()
    fresh.eval()
    with torch.no_grad():
        a, b = outputs(original), outputs(fresh)
    for x, y in zip(a, b):
        if x.shape != y.shape or not torch.equal(x, y):
            diff = (x - y).abs().max().item() if x.shape == y.shape else float("nan")
            c.fail(
                f"outputs differ after saving and loading the state_dict through safetensors (max "
                f"difference {diff:.3g}); keep everything that affects the output in parameters or "
                f"persistent buffers"
            )


def _integrate_1d(logpdf: Callable[[Tensor], Tensor], samples: Tensor, lower: float | None, upper: float | None) -> tuple[Tensor, Tensor, tuple[float, float]]:
    """Midpoint-rule integrals of p and x p over a grid adapted to ``samples`` (float64).

    Knots at the samples' quantiles (dense where the density is), extended by the sample
    range on both sides and clipped to the support bounds; returns (∫p, ∫x p, (lo, hi)).
    """
    samples = samples.flatten().to(torch.float64)
    knots = torch.quantile(samples, torch.linspace(0, 1, 401, dtype=torch.float64))
    lo_s, hi_s = knots[0].item(), knots[-1].item()
    spread = max(hi_s - lo_s, 1e-6)
    lo, hi = lo_s - spread, hi_s + spread
    if lower is not None and math.isfinite(lower):
        lo = max(lo, lower)
    if upper is not None and math.isfinite(upper):
        hi = min(hi, upper)
    knots = torch.unique(torch.cat([torch.tensor([lo, hi], dtype=torch.float64), knots.clamp(lo, hi)]))
    widths = knots[1:] - knots[:-1]
    m = 32
    offsets = (torch.arange(m, dtype=torch.float64) + 0.5) / m
    points = (knots[:-1, None] + widths[:, None] * offsets).flatten()
    weights = (widths[:, None] / m).expand(-1, m).flatten()
    p = torch.exp(logpdf(points))
    return (p * weights).sum(), (p * points * weights).sum(), (lo, hi)


# -- likelihoods ------------------------------------------------------------------------------


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


# -- priors -----------------------------------------------------------------------------------


class _TinyEncoder(Encoder):
    """A linear diagonal-Gaussian encoder, for binding priors that need one (VampPrior)."""

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int) -> None:
        super().__init__(data_shape, latent_dim)
        self.net = nn.Linear(math.prod(self.data_shape), 2 * self.latent_dim)

    def forward(self, x: Tensor) -> Distribution:
        lead = x.shape[: x.dim() - len(self.data_shape)]
        loc, raw = self.net(x.reshape(*lead, -1)).chunk(2, dim=-1)
        return Independent(Normal(loc, nn.functional.softplus(raw) + 0.3), 1)


def check_prior(
    prior: str | Prior,
    latent_dim: int = 2,
    *,
    data_shape: Sequence[int] = (1, 4, 4),
    perturb: float = 0.2,
    seed: int = 0,
    **params: Any,
) -> Prior:
    """Check a prior against the ``vaezoo.Prior`` contract; returns the instance.

    ``prior``: a registered name (built with ``latent_dim`` and ``**params``) or an instance.
    The prior is first bound (``bind``) to a small encoder for ``data_shape``, as a ``VAE``
    does. Checked: ``distribution()`` has batch shape ``()`` and event shape
    ``(latent_dim,)``; ``sample(n)`` is ``(n, latent_dim)`` and finite; ``log_prob`` keeps
    leading dims, agrees with ``distribution().log_prob`` and has finite values and
    gradients, also at ``|z| = 10``; float64; for ``latent_dim <= 2`` exp(log_prob)
    integrates to 1 (quadrature) and the mean of ``sample`` matches the density's mean;
    a ``state_dict`` round trip.
    """
    data_shape = tuple(int(s) for s in data_shape)
    fixed = {"latent_dim": int(latent_dim)}
    prior, label, make = _resolve("prior", prior, fixed, params, "check_prior")
    c = _Check("prior", label)
    d_lat = int(getattr(prior, "latent_dim", latent_dim))
    with _seeded(seed):
        encoder = _TinyEncoder(data_shape, d_lat)
        work = make()
        c.call(f"bind(encoder, {data_shape})", work.bind, encoder, data_shape)
        _perturb(work, perturb)
        _prior_shapes(c, work, d_lat)
        _prior_extremes(c, work, d_lat)

        def fresh_bound() -> tuple[Prior, nn.Module]:
            enc = copy.deepcopy(encoder)
            fresh = make()
            c.call(f"bind(encoder, {data_shape})", fresh.bind, enc, data_shape)
            _perturb(fresh, perturb)
            return fresh, enc

        z = torch.randn(5, d_lat)
        p2, _ = fresh_bound()
        _roundtrip(c, work, p2, lambda m: [m.log_prob(z)])
        p64, enc64 = fresh_bound()
        c.call("load_state_dict", p64.load_state_dict, work.state_dict())
        enc64.double()
        p64.double()
        _prior_float64(c, p64, work, d_lat)
        if d_lat <= 2:
            _prior_normalisation(c, p64, d_lat)
    return prior


def _prior_shapes(c: _Check, prior: Prior, d: int) -> None:
    dist = c.call("distribution()", prior.distribution)
    if not isinstance(dist, Distribution):
        c.fail(f"distribution() returned a {type(dist).__name__}, expected a torch.distributions.Distribution")
    if _shape(dist.batch_shape) != () or _shape(dist.event_shape) != (d,):
        c.fail(
            f"distribution() has batch shape {_shape(dist.batch_shape)} and event shape "
            f"{_shape(dist.event_shape)}, expected () and {(d,)}"
        )
    s = c.call("sample(5)", prior.sample, 5)
    c.shape("sample(5)", s, (5, d))
    c.dtype("sample(5)", s, torch.float32)
    c.finite("sample(5)", s)
    z = s.detach().clone().requires_grad_(True)
    lp = c.call("log_prob(z) for z (5, latent_dim)", prior.log_prob, z)
    c.shape("log_prob(z) for z (5, latent_dim)", lp, (5,), " -- sum over the latent dim")
    c.dtype("log_prob", lp, torch.float32)
    c.finite("log_prob", lp, " at its own samples")
    c.call("backward through log_prob", lp.sum().backward)
    c.grads("log_prob", [("z", z), *_float_params(prior)])
    _zero_grads(prior)
    with torch.no_grad():
        zk = torch.randn(3, 4, d)
        lpk = c.call("log_prob(z) for z (3, 4, latent_dim)", prior.log_prob, zk)
        c.shape("log_prob(z) for z (3, 4, latent_dim)", lpk, (3, 4), " -- keep leading dims")
        dlp = c.call("distribution().log_prob(z)", prior.distribution().log_prob, zk)
        c.close("distribution().log_prob(z) differs from log_prob(z)", dlp, lpk, rtol=1e-4, atol=1e-4)


def _prior_extremes(c: _Check, prior: Prior, d: int) -> None:
    signs = torch.randint(0, 2, (4, d)).float() * 2 - 1
    for label, value in (
        (f"+{PRIOR_EXTREME:g}", torch.full((4, d), PRIOR_EXTREME)),
        (f"-{PRIOR_EXTREME:g}", torch.full((4, d), -PRIOR_EXTREME)),
        (f"±{PRIOR_EXTREME:g}", signs * PRIOR_EXTREME),
    ):
        z = value.clone().requires_grad_(True)
        lp = c.call(f"log_prob at z={label}", prior.log_prob, z)
        c.finite("log_prob", lp.detach(), f" at z={label}")
        c.call(f"backward through log_prob at z={label}", lp.sum().backward)
        c.grads("log_prob", [("z", z), *_float_params(prior)], f" at z={label}")
        _zero_grads(prior)


def _prior_float64(c: _Check, p64: Prior, p32: Prior, d: int) -> None:
    with torch.no_grad():
        s = c.call("sample(5) after .double()", p64.sample, 5)
        c.dtype("sample(5)", s, torch.float64)
        lp = c.call("log_prob after .double()", p64.log_prob, s)
        c.dtype("log_prob", lp, torch.float64)
        c.finite("log_prob in float64", lp)
        dlp = c.call("distribution().log_prob(z) in float64", p64.distribution().log_prob, s)
        c.close("distribution().log_prob(z) differs from log_prob(z) in float64", dlp, lp, rtol=1e-6, atol=1e-6)
        lp32 = c.call("log_prob", p32.log_prob, s.float())
        c.close("log_prob in float32 and in float64 disagree", lp32.double(), lp, rtol=1e-3, atol=1e-3)


def _prior_normalisation(c: _Check, prior: Prior, d: int) -> None:
    n = 4000
    with torch.no_grad():
        samples = c.call(f"sample({n})", prior.sample, n)
        c.finite(f"sample({n})", samples)

        def logpdf(points: Tensor) -> Tensor:
            return torch.cat([prior.log_prob(chunk) for chunk in points.split(8192)])

        if d == 1:
            integral, first, (lo, hi) = c.call(
                "log_prob on a quadrature grid", _integrate_1d, lambda t: logpdf(t[:, None]), samples, None, None
            )
            box = f"[{lo:.4g}, {hi:.4g}]"
            mean = first.reshape(1)
        else:
            lo, hi = samples.min(0).values, samples.max(0).values
            spread = (hi - lo).clamp(min=1e-6)
            lo, hi = lo - 0.25 * spread, hi + 0.25 * spread
            m = 241
            axes = [lo[j] + (hi[j] - lo[j]) * (torch.arange(m, dtype=torch.float64) + 0.5) / m for j in range(2)]
            grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 2)
            cell = ((hi - lo) / m).prod()
            p = c.call("log_prob on a quadrature grid", logpdf, grid).exp()
            integral = (p.sum() * cell)
            mean = (p[:, None] * grid).sum(0) * cell / integral
            box = f"[{lo[0]:.3g}, {hi[0]:.3g}] x [{lo[1]:.3g}, {hi[1]:.3g}]"
        if not abs(integral.item() - 1) <= NORM_TOL:
            c.fail(
                f"exp(log_prob) integrates to {integral.item():.4g} over {box} (expected 1): log_prob "
                f"is not a normalised density (a missing log-det-Jacobian or normalising constant?)"
            )
        if d == 1:
            mean = mean / integral
        stderr = samples.std(0) / math.sqrt(n)
        gap = (samples.mean(0) - mean).abs()
        if (gap > 6 * stderr + 1e-3).any():
            c.fail(
                f"the mean of sample({n}) is {samples.mean(0).tolist()} but the density exp(log_prob) "
                f"has mean {mean.tolist()}: sample and log_prob describe different distributions"
            )


# -- encoders and decoders --------------------------------------------------------------------


def check_encoder(
    encoder: str | nn.Module,
    data_shape: Sequence[int] = (1, 8, 8),
    latent_dim: int = 3,
    *,
    perturb: float = 0.2,
    seed: int = 0,
    **params: Any,
) -> nn.Module:
    """Check an encoder against the ``vaezoo.Encoder`` contract; returns the instance.

    ``encoder``: a registered name (built with ``data_shape``, ``latent_dim``, ``**params``)
    or an instance. Checked: ``forward(x)`` for ``x (B, *data_shape)`` in [0, 1] (B = 4 and
    1) returns a ``Distribution`` with batch shape ``(B,)``, event shape ``(latent_dim,)``,
    a ``mean`` and a reparameterised ``rsample`` (gradients reach the encoder's parameters);
    ``rsample((K,))`` and ``log_prob`` keep leading dims; finite values and gradients;
    float64; a ``state_dict`` round trip.
    """
    fixed = {"data_shape": tuple(int(s) for s in data_shape), "latent_dim": int(latent_dim)}
    encoder, label, make = _resolve("encoder", encoder, fixed, params, "check_encoder")
    c = _Check("encoder", label)
    data_shape = tuple(int(s) for s in getattr(encoder, "data_shape", data_shape))
    d = int(getattr(encoder, "latent_dim", latent_dim))
    with _seeded(seed):
        work = make()
        _perturb(work, perturb)
        for b in (4, 1):
            x = torch.rand(b, *data_shape)
            what = f"forward(x) for x {(b, *data_shape)}"
            q = c.call(what, work, x)
            if not isinstance(q, Distribution):
                c.fail(f"{what} returned a {type(q).__name__}, expected a torch.distributions.Distribution")
            if _shape(q.batch_shape) != (b,) or _shape(q.event_shape) != (d,):
                c.fail(
                    f"{what} gave a distribution with batch shape {_shape(q.batch_shape)} and event "
                    f"shape {_shape(q.event_shape)}, expected {(b,)} and {(d,)}"
                )
        if not q.has_rsample:
            c.fail("forward(x) returned a distribution without rsample; q(z|x) must be reparameterised")
        x = torch.rand(4, *data_shape)
        q = work(x)
        z = c.call("rsample()", q.rsample)
        c.shape("rsample()", z, (4, d))
        c.dtype("rsample()", z, torch.float32)
        c.finite("rsample()", z)
        if not z.requires_grad:
            c.fail("rsample() carries no gradient to the encoder; q(z|x) must be reparameterised (rsample, not sample)")
        zk = c.call("rsample((3,))", q.rsample, (3,))
        c.shape("rsample((3,))", zk, (3, 4, d), " -- (K, B, latent_dim)")
        lp = c.call("log_prob(z) for z (3, 4, latent_dim)", q.log_prob, zk)
        c.shape("log_prob(z) for z (3, 4, latent_dim)", lp, (3, 4))
        c.finite("log_prob of its own samples", lp)
        mean = c.call("mean of q(z|x)", lambda: q.mean)
        c.shape("mean of q(z|x)", mean, (4, d))
        c.finite("mean of q(z|x)", mean)
        c.call("backward through rsample and log_prob", (zk.square().sum() + lp.sum()).backward)
        c.grads("rsample and log_prob", _float_params(work))
        if not any(p.grad is not None and p.grad.abs().sum() > 0 for _, p in _float_params(work)):
            c.fail("no gradient reaches the encoder's parameters through rsample(); q(z|x) must depend on them differentiably")
        _zero_grads(work)

        w64 = copy.deepcopy(work).double()
        with torch.no_grad():
            q64 = c.call("forward(x) in float64", w64, x.double())
            z64 = c.call("rsample() in float64", q64.rsample)
            c.dtype("rsample()", z64, torch.float64)
            c.close("q(z|x).mean in float32 and in float64 disagree", q64.mean, q.mean.detach().double(), rtol=1e-3, atol=1e-3)

        fresh = make()
        _perturb(fresh, perturb)
        zfix = torch.randn(4, d)
        _roundtrip(c, work, fresh, lambda m: [m(x).mean, m(x).log_prob(zfix)])
    return encoder


def check_decoder(
    decoder: str | nn.Module,
    latent_dim: int = 3,
    param_shape: Sequence[int] = (2, 8, 8),
    *,
    perturb: float = 0.2,
    seed: int = 0,
    **params: Any,
) -> nn.Module:
    """Check a decoder against the ``vaezoo.Decoder`` contract; returns the instance.

    ``decoder``: a registered name (built with ``latent_dim``, ``param_shape``, ``**params``)
    or an instance. Checked: ``forward(z)`` maps ``(B, latent_dim)`` to ``(B, *param_shape)``
    (B = 4 and 1) and ``(K, B, latent_dim)`` to ``(K, B, *param_shape)``, the same as
    decoding each ``z[k]``; finite values and gradients (w.r.t. z and the parameters);
    float64; a ``state_dict`` round trip.
    """
    fixed = {"latent_dim": int(latent_dim), "param_shape": tuple(int(s) for s in param_shape)}
    decoder, label, make = _resolve("decoder", decoder, fixed, params, "check_decoder")
    c = _Check("decoder", label)
    d = int(getattr(decoder, "latent_dim", latent_dim))
    ps = tuple(int(s) for s in getattr(decoder, "param_shape", param_shape))
    with _seeded(seed):
        work = make()
        _perturb(work, perturb)
        for b in (4, 1):
            out = c.call(f"forward(z) for z {(b, d)}", work, torch.randn(b, d))
            c.shape(f"forward(z) for z {(b, d)}", out, (b, *ps))
        z = torch.randn(3, 4, d, requires_grad=True)
        out = c.call(f"forward(z) for z {(3, 4, d)}", work, z)
        c.shape(f"forward(z) for z {(3, 4, d)}", out, (3, 4, *ps), " -- any number of leading dims")
        c.dtype("forward(z)", out, torch.float32)
        c.finite("forward(z)", out)
        c.call("backward through forward", out.square().sum().backward)
        c.grads("forward(z)", [("z", z), *_float_params(work)])
        if z.grad is None or not z.grad.abs().sum() > 0:
            c.fail("forward(z) does not depend on z (no or zero gradient)")
        _zero_grads(work)
        work.eval()
        with torch.no_grad():
            each = torch.stack([work(z[i]) for i in range(3)])
            c.close(f"forward(z) for z {(3, 4, d)} differs from decoding each z[k] alone", work(z), each, rtol=1e-4, atol=1e-5)
            w64 = copy.deepcopy(work).double()
            out64 = c.call("forward(z) in float64", w64, z.detach().double())
            c.dtype("forward(z)", out64, torch.float64)
            c.close("forward(z) in float32 and in float64 disagree", out64, work(z).double(), rtol=1e-3, atol=1e-3)
        fresh = make()
        _perturb(fresh, perturb)
        zfix = torch.randn(4, d)
        _roundtrip(c, work, fresh, lambda m: [m(zfix)])
    return decoder


# -- many at once -----------------------------------------------------------------------------

_CHECKS: dict[str, Callable[..., Any]] = {
    "likelihood": check_likelihood,
    "prior": check_prior,
    "encoder": check_encoder,
    "decoder": check_decoder,
}


def check_component(kind: str, component: Any, **kwargs: Any) -> Any:
    """``check_<kind>(component, **kwargs)`` for ``kind`` in encoder/decoder/prior/likelihood."""
    if kind not in _CHECKS:
        raise ValueError(f"unknown component kind {kind!r}; one of {', '.join(KINDS)}")
    return _CHECKS[kind](component, **kwargs)


def check_plugin(plugin: str, params: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    """Run the conformance check on every component plugin ``plugin`` registered.

    ``plugin``: the entry-point (or ``registered_plugin``) name in the current registry.
    ``params``: keyword arguments per component, keyed ``"<kind>/<name>"`` or ``"<name>"``
    (shapes and the component's own parameters). Returns the ``(kind, name)`` pairs checked.
    """
    params = params or {}
    registry = get_registry()
    infos = [p for p in registry.plugins if getattr(p, "name", None) == plugin]
    if not infos:
        loaded = sorted({p.name for p in registry.plugins})
        raise AssertionError(f"no plugin named {plugin!r} is loaded; loaded: {', '.join(loaded) or '(none)'}")
    errors = [p.error for p in infos if p.error]
    if errors:
        raise AssertionError(f"plugin {plugin!r} failed to load: {_one_line(errors[0])}")
    checked = []
    for info in infos:
        for kind, name in info.registered:
            if kind not in _CHECKS:
                continue
            kwargs = params.get(f"{kind}/{name}", params.get(name, {}))
            check_component(kind, f"{plugin}/{name}", **kwargs)
            checked.append((kind, name))
    return checked
