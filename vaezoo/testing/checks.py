"""Many checks at once: ``check_component`` (by kind) and ``check_plugin`` (every component of a plugin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..registry import KINDS, get_registry
from ._common import _one_line
from .likelihoods import check_likelihood
from .nets import check_decoder, check_encoder
from .priors import check_prior

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
