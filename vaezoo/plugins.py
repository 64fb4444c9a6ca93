"""Plugin discovery: the built-in plugin modules, then every ``vaezoo`` entry point.

Each plugin is loaded and called in isolation. One that fails to import, fails pluggy's
validation, or whose hook raises is dropped whole (nothing it registered is kept) and
reported in one warning naming the plugin, its distribution and the error; the rest keep
working. "Raises" means any exception, ``SystemExit`` included; only ``KeyboardInterrupt``
gets through. Environment:

* ``VAEZOO_PLUGINS=a,b`` loads only the named entry points (set but empty: none).
  The built-in components are always loaded.
* ``VAEZOO_STRICT_PLUGINS=1`` turns every plugin problem into a ``PluginError``.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.metadata
import os
import types
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, did_you_mean
from .kinds import KIND, KINDS
from .registry import Registry, Source

ENTRY_POINT_GROUP = "vaezoo"
PROJECT_NAME = "vaezoo"
BUILTIN_PLUGIN = "vaezoo"

#: Modules that register vaezoo's own components, through the same hooks as any plugin.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "vaezoo.likelihoods",
    "vaezoo.nets",
    "vaezoo.priors",
    "vaezoo.zoo.catalogue",
)
#: How models are assembled, trained and tracked: loaded even with ``builtins=False`` (a plugin's own
#: model is still built by an architecture and trained by an objective).
CORE_PLUGINS: tuple[str, ...] = (
    "vaezoo.architectures",
    "vaezoo.objectives",
    "vaezoo.loggers",
)

HOOK_NAMES = tuple(n for n in dir(hookspecs) if n.startswith("vaezoo_"))


class PluginWarning(UserWarning):
    """A plugin could not be loaded or used; vaezoo carries on without it."""


@dataclass
class PluginInfo:
    """What discovery learned about one plugin (shown by ``vaezoo plugins``)."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    builtin: bool = False
    error: str | None = None
    registered: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)

    @property
    def source(self) -> Source:
        return Source(self.name, self.distribution, self.version)


STRICT_ENV = "VAEZOO_STRICT_PLUGINS"
SELECT_ENV = "VAEZOO_PLUGINS"


_strict_override: contextvars.ContextVar[bool | None] = contextvars.ContextVar("vaezoo_strict", default=None)


def strict_mode() -> bool:
    """True when plugin problems are errors: ``discover(strict=True)``, or ``VAEZOO_STRICT_PLUGINS``."""
    override = _strict_override.get()
    if override is not None:
        return override
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def discover(
    *,
    entry_points: bool = True,
    plugins: Sequence[tuple[str, Any]] = (),
    builtins: bool = True,
    strict: bool | None = None,
) -> Registry:
    """Build a fresh ``Registry``.

    ``builtins``: include vaezoo's own components and zoo entries (its architectures and
    objectives are always included). ``entry_points``: load the installed
    ``vaezoo`` entry points (filtered by ``VAEZOO_PLUGINS``). ``plugins``: extra
    ``(name, module_or_object)`` pairs, registered last (used by ``vaezoo.testing``).
    ``strict``: True/False overrides ``VAEZOO_STRICT_PLUGINS`` for this discovery.
    """
    token = _strict_override.set(strict)
    try:
        return _discover(entry_points, plugins, builtins)
    finally:
        _strict_override.reset(token)


def _discover(entry_points: bool, plugins: Sequence[tuple[str, Any]], builtins: bool) -> Registry:
    pm = new_plugin_manager()
    registry = Registry()
    candidates: list[tuple[PluginInfo, Any]] = []
    for module_name in CORE_PLUGINS + (DEFAULT_PLUGINS if builtins else ()):
        info = PluginInfo(BUILTIN_PLUGIN, PROJECT_NAME, _own_version(), module_name, builtin=True)
        candidates.append((info, lambda m=module_name: importlib.import_module(m)))
    if entry_points:
        candidates.extend(_entry_point_candidates())
    for name, obj in plugins:
        module_name = getattr(obj, "__name__", type(obj).__name__)
        candidates.append((PluginInfo(name, None, None, module_name), lambda o=obj: o))

    for info, load in candidates:
        load_plugin(pm, registry, info, load)
    report_conflicts(registry)
    return registry


def _own_version() -> str:
    from . import __version__

    return __version__


def _entry_point_candidates() -> list[tuple[PluginInfo, Any]]:
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    wanted_env = os.environ.get(SELECT_ENV)
    if wanted_env is not None:
        wanted = [w.strip() for w in wanted_env.split(",") if w.strip()]
        names = {ep.name for ep in eps}
        for w in wanted:
            if w not in names:
                _problem(
                    f"VAEZOO_PLUGINS names {w!r}, but no such plugin is installed."
                    f"{did_you_mean(w, names)} Installed: {', '.join(sorted(names)) or '(none)'}"
                )
        eps = [ep for ep in eps if ep.name in wanted]
    seen: dict[str, str | None] = {}
    out = []
    for ep in eps:
        dist = getattr(ep, "dist", None)
        dist_name = getattr(dist, "name", None) if dist else None
        if ep.name in seen:
            if seen[ep.name] != dist_name:  # two distributions claim one plugin name
                _problem(
                    f"vaezoo plugin name {ep.name!r} is used by distributions {seen[ep.name]} and "
                    f"{dist_name}; only the first is loaded -- uninstall one of them"
                )
            continue  # else: the same distribution visible twice on sys.path
        seen[ep.name] = dist_name
        info = PluginInfo(
            ep.name,
            getattr(dist, "name", None) if dist else None,
            getattr(dist, "version", None) if dist else None,
            ep.value,
        )
        out.append((info, ep.load))
    return out


def load_plugin(pm: pluggy.PluginManager, registry: Registry, info: PluginInfo, load: Any) -> None:
    """Load one plugin into ``registry`` in isolation: ``load()`` returns the module/object.

    Every exception the plugin raises -- at import, at pluggy's registration or in any of its
    hooks, ``SystemExit`` and any other ``BaseException`` included -- drops the plugin whole:
    ``info.error`` says why, and one ``PluginWarning`` (a ``PluginError`` in strict mode)
    names it and its distribution. Only ``KeyboardInterrupt`` propagates.
    """
    registry.plugins.append(info)
    plugin_id = f"{info.name}:{info.module}"
    notes: list[str] = []
    try:
        failure = _load_staged(pm, registry, info, load, plugin_id, notes)
    except KeyboardInterrupt:
        _forget(pm, plugin_id)
        raise
    except BaseException as exc:  # the plugin broke a step between those guarded below (an odd attribute, ...)
        failure = f"broke while loading: {_describe(exc)}"
    for note in notes:
        _problem(note)
    if failure is not None:
        _forget(pm, plugin_id)
        _fail(info, failure)


def _load_staged(
    pm: pluggy.PluginManager, registry: Registry, info: PluginInfo, load: Any, plugin_id: str, notes: list[str]
) -> str | None:
    """The steps of ``load_plugin``: why the plugin failed, or None once it is merged into ``registry``.

    Problems that do not drop the plugin are appended to ``notes`` (reported by the caller).
    """
    try:
        obj = load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return f"failed to import: {_describe(exc)}"
    try:
        pm.register(obj, name=plugin_id)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if isinstance(exc, Exception):  # pluggy.PluginValidationError: unknown hook argument, ...
            return f"is invalid: {_explain_invalid(obj) or ' '.join(str(exc).split())}"
        return f"raised while pluggy registered it: {_describe(exc)}"
    try:
        pm.check_pending()
    except Exception as exc:  # a hookimpl whose name matches no hook
        bad = [n for n in _marked_names(obj) if n not in HOOK_NAMES]
        hint = "".join(did_you_mean(n, HOOK_NAMES) for n in bad[:1])
        return f"implements a hook that does not exist: {', '.join(bad) or exc}.{hint} Hooks: {', '.join(HOOK_NAMES)}"
    unmarked = [n for n in _unmarked_hook_like(obj)]
    if unmarked:
        notes.append(
            f"vaezoo plugin {info.name!r} defines {', '.join(unmarked)} without @vaezoo.hookimpl; "
            f"it will not be called"
        )

    staged = Registry()
    try:
        for kind in KINDS:
            for impl in _impls(pm, KIND[kind].hook, plugin_id):
                _call(impl, _register_callback(staged, kind, info.source))
        for impl in _impls(pm, "vaezoo_register_pretrained", plugin_id):
            _call(impl, lambda name, entry: staged.add_pretrained(name, entry, info.source))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit, GeneratorExit, ... from a hook: the plugin's, not ours
        return f"raised in a hook: {_describe(exc)}"

    for kind in KINDS:
        for name, specs in staged.components[kind].items():
            for spec in specs:
                registry.components[kind].setdefault(name, []).append(spec)
                info.registered.append((kind, name))
    for name, entries in staged.pretrained.items():
        registry.pretrained.setdefault(name, []).extend(entries)
        info.registered.append(("pretrained", name))
    return None


def _describe(exc: BaseException) -> str:
    """``"SystemExit: 3"``: the exception's type and message (just the type when it has none)."""
    try:
        text = str(exc)
    except KeyboardInterrupt:
        raise
    except BaseException:  # a plugin's exception whose __str__ itself fails
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _forget(pm: pluggy.PluginManager, plugin_id: str) -> None:
    """Unregister ``plugin_id`` if pluggy holds it, so nothing of a failed plugin stays in ``pm``."""
    if pm.has_plugin(plugin_id):
        pm.unregister(name=plugin_id)


def _call(impl: Any, register: Any) -> None:
    """Call a hook implementation with the arguments it declares (pluggy allows fewer)."""
    impl.function(**({"register": register} if "register" in impl.argnames else {}))


def _register_callback(staged: Registry, kind: str, source: Source):
    def register(name: str, factory: Any) -> None:
        staged.add(kind, name, factory, source)

    register.__doc__ = f"register(name, factory): add one {kind}."
    return register


def _impls(pm: pluggy.PluginManager, hook_name: str, plugin_id: str) -> Iterable[Any]:
    hook = getattr(pm.hook, hook_name)
    return [impl for impl in hook.get_hookimpls() if impl.plugin_name == plugin_id]


def _explain_invalid(obj: Any) -> str | None:
    """One line for pluggy's multi-line 'argument not in hookspec' error."""
    import inspect

    for name in _marked_names(obj):
        spec = getattr(hookspecs, name, None)
        if spec is None:
            continue
        wanted = list(inspect.signature(spec).parameters)
        have = list(inspect.signature(getattr(obj, name)).parameters)
        extra = [a for a in have if a not in wanted]
        if extra:
            return (
                f"{name}({', '.join(have)}) declares argument(s) {', '.join(map(repr, extra))} that the "
                f"hook does not provide; {name} receives only {', '.join(map(repr, wanted))}"
            )
    return None


def _marked_names(obj: Any) -> list[str]:
    return [n for n in dir(obj) if hasattr(getattr(obj, n, None), f"{PROJECT_NAME}_impl")]


def _unmarked_hook_like(obj: Any) -> list[str]:
    if not isinstance(obj, types.ModuleType):
        return []
    return [
        n
        for n in dir(obj)
        if n.startswith("vaezoo_register")
        and callable(getattr(obj, n))
        and not hasattr(getattr(obj, n), f"{PROJECT_NAME}_impl")
    ]


def _fail(info: PluginInfo, what: str) -> None:
    where = f" (distribution {info.distribution} {info.version})" if info.distribution else ""
    info.error = what
    _problem(f"vaezoo plugin {info.name!r}{where} {what}")


def report_conflicts(registry: Registry) -> None:
    for kind, name, specs in registry.conflicts():
        _problem(
            f"{kind} {name!r} is registered by " + " and ".join(str(s.source) for s in specs)
            + "; use a qualified name: " + ", ".join(s.qualified_name for s in specs)
        )
    for name, entries in sorted(registry.pretrained.items()):
        if len(entries) > 1:
            _problem(f"pretrained model {name!r} is registered by " + " and ".join(str(src) for _, src in entries))


def _problem(message: str) -> None:
    if strict_mode():
        raise PluginError(message)
    warnings.warn(message, PluginWarning, stacklevel=2)
