"""Many checks at once: ``check_component`` (by kind) and ``check_plugin`` (every component of a plugin)."""

from __future__ import annotations

from typing import Any

from ..kinds import KIND, KINDS
from ..registry import get_registry
from ._common import _one_line


def check_component(kind: str, component: Any, **kwargs: Any) -> Any:
    """The conformance check of ``kind`` (the table in ``vaezoo.kinds``) on ``component``."""
    check = KIND[kind].check_function() if kind in KIND else None
    if check is None:
        raise ValueError(f"no conformance check for component kind {kind!r}; kinds: {', '.join(KINDS)}")
    return check(component, **kwargs)


def check_plugin(plugin: str, params: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    """Run the conformance check on every component plugin ``plugin`` registered.

    ``plugin``: the plugin's name in the current registry: its entry-point name, the ``name``
    given to ``registered_plugin``, or, in ``isolated_registry``, its top-level package name
    (``"vaezoo_hello"`` for ``vaezoo_hello.plugin``) unless it was passed as a ``(name, plugin)`` pair.
    ``params``: keyword arguments per component, keyed ``"<kind>/<name>"`` or ``"<name>"``
    (shapes and the component's own parameters). Returns the ``(kind, name)`` pairs checked.
    """
    params = params or {}
    registry = get_registry()
    infos = [p for p in registry.plugins if getattr(p, "name", None) == plugin]
    if not infos:
        loaded = sorted({p.name for p in registry.plugins})
        raise AssertionError(
            f"no plugin named {plugin!r} is loaded; loaded: {', '.join(loaded) or '(none)'} (isolated_registry "
            f"names a plugin module after its top-level package; pass a (name, plugin) pair to choose)"
        )
    errors = [p.error for p in infos if p.error]
    if errors:
        raise AssertionError(f"plugin {plugin!r} failed to load: {_one_line(errors[0])}")
    checked = []
    for info in infos:
        for kind, name in info.registered:
            if kind not in KIND or kind == "architecture":  # an architecture is checked on a config
                continue
            kwargs = params.get(f"{kind}/{name}", params.get(name, {}))
            check_component(kind, f"{plugin}/{name}", **kwargs)
            checked.append((kind, name))
    return checked
