"""Registries for tests: ``isolated_registry`` (built-ins + given plugins only) and
``registered_plugin`` (the current registry + one plugin)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import PluginError
from ..plugins import (
    BUILTIN_PLUGIN,
    PluginInfo,
    PluginWarning,
    discover,
    load_plugin,
    new_plugin_manager,
    report_conflicts,
)
from ..registry import KINDS, Registry, get_registry, use_registry


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
def isolated_registry(
    *plugins: Any, builtins: bool = True, builtin_zoo: bool = True, strict: bool = True
) -> Iterator[Registry]:
    """A fresh registry holding the built-ins (``builtins=True``) and ``plugins`` only.

    With ``builtins=False`` vaezoo's own components and zoo entries are left out; its
    architectures and objectives, which assemble and train any model, are always there.
    ``builtin_zoo=False`` keeps the built-in components but drops vaezoo's own zoo entries,
    so ``vaezoo.list_pretrained()`` lists the plugins' entries only while those entries can
    still use the built-in nets and likelihoods (a plugin entry that clashes with a built-in
    name is still reported, as it would be on a user's machine).

    Installed entry points are never loaded, so what the user has installed cannot leak
    into a test. Each plugin is a module or object with ``@vaezoo.hookimpl`` functions, or a
    ``(name, plugin)`` pair; the name (default: the top-level package name, ``vaezoo_hello``
    for ``vaezoo_hello.plugin``) is what qualified names and ``check_plugin`` use. Inside the
    ``with`` block the registry is the process registry (``vaezoo.create``,
    ``vaezoo.build_model`` use it); the previous one is restored after. ``strict``: any
    plugin problem (failed hook, name clash, ...) raises ``PluginError`` instead of a
    ``PluginWarning``.
    """
    with _plugin_problems(strict):
        registry = discover(entry_points=False, plugins=_normalise_plugins(plugins), builtins=builtins)
    if not builtin_zoo:
        _drop_builtin_zoo(registry)
    with use_registry(registry):
        yield registry


def _drop_builtin_zoo(registry: Registry) -> None:
    """Remove the zoo entries that vaezoo itself registered (and the record of registering them)."""
    for name in list(registry.pretrained):
        kept = [(entry, source) for entry, source in registry.pretrained[name] if source.plugin != BUILTIN_PLUGIN]
        if kept:
            registry.pretrained[name] = kept
        else:
            del registry.pretrained[name]
    for info in registry.plugins:
        if info.builtin:
            info.registered = [(kind, name) for kind, name in info.registered if kind != "pretrained"]


def _copy_registry(base: Registry) -> Registry:
    return Registry(
        components={kind: {n: list(specs) for n, specs in base.components[kind].items()} for kind in KINDS},
        pretrained={n: list(entries) for n, entries in base.pretrained.items()},
        plugins=list(base.plugins),
    )


def _involving(registry: Registry, name: str) -> Registry:
    """The clashing names of ``registry`` that plugin ``name`` takes part in (clashes among the
    other plugins were reported when their registry was built)."""
    return Registry(
        components={
            kind: {n: specs for n, specs in registry.components[kind].items()
                   if len(specs) > 1 and any(s.source.plugin == name for s in specs)}
            for kind in KINDS
        },
        pretrained={n: entries for n, entries in registry.pretrained.items()
                    if len(entries) > 1 and any(source.plugin == name for _, source in entries)},
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
        load_plugin(new_plugin_manager(), registry, info, lambda: plugin)
        report_conflicts(_involving(registry, name))  # the same message as at discovery
    with use_registry(registry):
        yield registry
