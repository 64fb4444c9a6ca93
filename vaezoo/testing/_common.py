"""Shared machinery of the conformance checks: one-line failures, seeding, resolving a
component by name or instance, perturbing parameters, the safetensors round trip, quadrature."""

from __future__ import annotations

import copy
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import PluginError
from ..registry import get_registry

EXTREME = 30.0  #: magnitude of the extreme likelihood parameters (logits, locations)
LOG_SCALE_RANGE = (-7.0, 5.0)  #: range of the extreme log-scale-like parameters
PRIOR_EXTREME = 10.0  #: |z| at which a prior's log_prob and gradients must stay finite
NORM_TOL = 2e-2  #: tolerance of the quadrature check that a density integrates to 1
MASS_TOL = 1e-4  #: tolerance (in log space) of the check that probabilities sum to 1
PRIOR_SAMPLES = 4000  #: draws of sample() compared with a prior's density (latent_dim <= 2)
SAMPLE_FALSE_ALARM = 1e-9  #: bound on the chance that a correct prior's samples fail that comparison


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
    from ..kinds import KIND

    base = KIND[kind].base_class()
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

    from ..serialization import unshared_tensors

    state = {k: v.detach().cpu().contiguous() for k, v in original.state_dict().items()}
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        c.fail(f"state_dict holds non-tensor entries {bad}; safetensors stores tensors only")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "component.safetensors")
        c.call("saving the state_dict with safetensors", save_file, unshared_tensors(state), path)
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
