"""What the built-in architectures share: checking their input, refusing labels an
unconditional model cannot use, binding the prior, and the KL term's
closed-form-or-Monte-Carlo choice."""

from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor, nn
from torch.distributions import Distribution, Independent, kl_divergence

from ..errors import ConfigError, DataError

KL_MODES = ("auto", "analytic", "mc")
_KL_SUPPORT: dict[tuple[type, ...], bool] = {}


def refuse_y(y: Any) -> None:
    """A ``DataError`` when labels ``y`` are given to a model that is not conditional."""
    if y is not None:
        raise DataError("got y, but this model is not conditional (its config has no model.condition)")


def bind_prior(prior: nn.Module, encoder: nn.Module, data_shape: tuple[int, ...], condition: Any = None) -> None:
    """``prior.bind(encoder, data_shape)``, with ``condition=`` for a conditional model when the
    prior's ``bind`` takes it; a ``ConfigError`` when a prior that evaluates the encoder cannot."""
    if condition is None:
        prior.bind(encoder, data_shape)
    elif "condition" in inspect.signature(prior.bind).parameters:
        prior.bind(encoder, data_shape, condition=condition)
    elif getattr(prior, "evaluates_encoder", False):
        raise ConfigError(
            f"model.prior: {type(prior).__name__} evaluates the encoder itself, but its bind() takes no condition, "
            "so it cannot give a conditional model's encoder its y; use a prior whose bind takes condition=, such as vamp, "
            "or normal or mixture"
        )
    else:
        prior.bind(encoder, data_shape)


def analytic_kl_known(q: Distribution, p: Distribution, kl_mode: str, what: str = "") -> bool:
    """Whether KL(q || p) is taken in closed form under ``model.kl`` = ``kl_mode``: ``mc`` never,
    ``auto`` when ``torch.distributions.kl_divergence`` knows the pair (asked once per pair of
    types), ``analytic`` always -- a ``ConfigError`` when there is no formula (``what`` says for what)."""
    if kl_mode == "mc":
        return False
    key = (type(q), type(getattr(q, "base_dist", None)), type(p), type(getattr(p, "base_dist", None)))
    known = _KL_SUPPORT.get(key)
    if known is None:
        try:
            kl_divergence(q, p)
            known = True
        except NotImplementedError:
            known = False
        _KL_SUPPORT[key] = known
    if not known and kl_mode == "analytic":
        raise ConfigError(
            f"model.kl='analytic', but torch.distributions has no KL formula for "
            f"{_dist_name(q)} against {_dist_name(p)}{what}; use kl='auto' or 'mc'"
        )
    return known


def per_dim_kl(q: Distribution, p: Distribution) -> Tensor | None:
    """KL(q || p) per latent dimension for two ``Independent`` distributions with a closed form, else None."""
    if isinstance(q, Independent) and isinstance(p, Independent):
        try:
            return kl_divergence(q.base_dist, p.base_dist).expand(*q.batch_shape, q.event_shape[-1])
        except NotImplementedError:
            return None
    return None


def _dist_name(d: Distribution) -> str:
    base = getattr(d, "base_dist", None)
    return f"{type(d).__name__}({type(base).__name__})" if base is not None else type(d).__name__


def as_input(x: Tensor, model: nn.Module, data_shape: tuple[int, ...]) -> Tensor:
    """``x`` checked for shape and moved to the model's floating dtype and device."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[1:]) != data_shape:
        raise ValueError(
            f"x has shape {tuple(x.shape)}, but this model takes (batch, {', '.join(map(str, data_shape))})"
        )
    ref = next((t for t in model.parameters() if t.is_floating_point()), None)
    if ref is not None and (x.dtype != ref.dtype or x.device != ref.device):
        x = x.to(device=ref.device, dtype=ref.dtype)
    return x


def detached(q: Distribution) -> Distribution:
    """``q`` rebuilt from detached parameters (same family): log q without gradients to q's parameters."""
    base = q.base_dist if isinstance(q, Independent) else q
    params = {name: getattr(base, name).detach() for name in base.arg_constraints if name in base.__dict__}
    if not params:
        params = {name: getattr(base, name).detach() for name in base.arg_constraints}
    rebuilt = type(base)(**params, validate_args=False)
    return Independent(rebuilt, q.reinterpreted_batch_ndims) if isinstance(q, Independent) else rebuilt
