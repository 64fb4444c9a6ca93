"""The component registry: what the plugins registered, and how to create it by name.

The registry is filled lazily: the first call that needs it runs plugin discovery
(``vaezoo.plugins.discover``). Built-in components arrive through the same hooks as
third-party ones, so there is one path and it is always exercised.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    ComponentParamError,
    PluginError,
    UnknownComponentError,
    did_you_mean,
    one_of,
)

from .kinds import KIND, KINDS  # noqa: F401  (KINDS re-exported)
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


@dataclass(frozen=True)
class Source:
    """Where a registration came from: the plugin (entry-point name) and its distribution."""

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution:
            return f"plugin {self.plugin!r} (distribution {self.distribution} {self.version or ''})".rstrip()
        return f"plugin {self.plugin!r}"

    def to_dict(self) -> dict[str, str | None]:
        return {"plugin": self.plugin, "distribution": self.distribution, "version": self.version}


@dataclass(frozen=True)
class ComponentSpec:
    """One registered component: kind, name, factory (or ``"module:attr"``) and source."""

    kind: str
    name: str
    factory: Callable[..., Any] | str
    source: Source

    @property
    def qualified_name(self) -> str:
        return f"{self.source.plugin}/{self.name}"

    def load(self) -> Callable[..., Any]:
        """Return the factory, importing it first if it was registered as a string."""
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # an installed-but-broken plugin (sys.exit() included) is not a bug here
            raise PluginError(
                f"{self.kind} {self.qualified_name!r} from {self.source}: cannot import its "
                f"factory {self.factory!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(obj):
            raise PluginError(
                f"{self.kind} {self.qualified_name!r} from {self.source}: factory "
                f"{self.factory!r} is a {type(obj).__name__}, not a class or callable"
            )
        return obj


def _same_factory(a: Callable[..., Any] | str, b: Callable[..., Any] | str) -> bool:
    def key(f: Callable[..., Any] | str) -> str:
        if isinstance(f, str):
            return f
        return f"{getattr(f, '__module__', '?')}:{getattr(f, '__qualname__', repr(f))}"

    return key(a) == key(b)


@dataclass
class Registry:
    """Components by kind and name, pretrained entries by name, and the plugins seen."""

    components: dict[str, dict[str, list[ComponentSpec]]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    pretrained: dict[str, list[tuple[Any, Source]]] = field(default_factory=dict)
    plugins: list[Any] = field(default_factory=list)  # vaezoo.plugins.PluginInfo

    # -- filling -------------------------------------------------------------------
    def add(self, kind: str, name: str, factory: Callable[..., Any] | str, source: Source) -> ComponentSpec:
        """Add one component; raises PluginError for a bad name/factory or a same-plugin duplicate."""
        _check_kind(kind)
        _check_name(kind, name, source)
        if isinstance(factory, str):
            if not re.match(r"^[\w.]+:[\w.]+$", factory):
                raise PluginError(
                    f"{source} registered {kind} {name!r} with factory {factory!r}; a string "
                    f"factory must look like 'package.module:attribute'"
                )
        elif not callable(factory):
            raise PluginError(
                f"{source} registered {kind} {name!r} with a {type(factory).__name__}; the factory "
                f"must be a class, a callable or a 'module:attr' string"
            )
        specs = self.components[kind].setdefault(name, [])
        for existing in specs:
            if existing.source.plugin == source.plugin:
                if _same_factory(existing.factory, factory):
                    return existing
                raise PluginError(f"{source} registered {kind} {name!r} twice with different factories")
        spec = ComponentSpec(kind, name, factory, source)
        specs.append(spec)
        return spec

    def add_pretrained(self, name: str, entry: Any, source: Source) -> None:
        """Add one zoo entry, validated now so a bad entry drops its plugin at discovery."""
        from .zoo.entry import as_entry
        from .zoo.errors import InvalidEntryError

        try:
            entry = as_entry(name, entry, f"from {source}")
        except InvalidEntryError as exc:
            raise PluginError(str(exc)) from exc
        self.pretrained.setdefault(name, []).append((entry, source))

    def conflicts(self) -> list[tuple[str, str, list[ComponentSpec]]]:
        """Every (kind, name) registered by more than one plugin."""
        return [
            (kind, name, specs)
            for kind in KINDS
            for name, specs in sorted(self.components[kind].items())
            if len(specs) > 1
        ]

    # -- lookup --------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        _check_kind(kind)
        return sorted(self.components[kind])

    def qualified_names(self, kind: str) -> list[str]:
        return sorted(s.qualified_name for specs in self.components[kind].values() for s in specs)

    def get(self, kind: str, name: str) -> ComponentSpec:
        """The spec for ``name`` (plain or ``plugin/name``); teaching errors when missing or ambiguous."""
        _check_kind(kind)
        if not isinstance(name, str):
            raise UnknownComponentError(f"{kind} name must be a string, got {type(name).__name__} {name!r}")
        table = self.components[kind]
        if "/" in name:
            plugin, _, short = name.partition("/")
            for spec in table.get(short, []):
                if spec.source.plugin == plugin:
                    return spec
            raise UnknownComponentError(
                f"unknown {kind} {name!r}.{did_you_mean(name, self.qualified_names(kind))} "
                f"Available: {one_of(self.qualified_names(kind))}"
            )
        specs = table.get(name)
        if not specs:
            raise UnknownComponentError(
                f"unknown {kind} {name!r}.{did_you_mean(name, table)} Available {kind}s: {one_of(table)}"
            )
        if len(specs) > 1:
            raise PluginError(
                f"{kind} {name!r} is registered by more than one plugin: "
                + " and ".join(str(s.source) for s in specs)
                + "; choose one with its qualified name: "
                + one_of(s.qualified_name for s in specs)
            )
        return specs[0]

    def list(self, kind: str | None = None, pattern: str = "*") -> list[str] | dict[str, list[str]]:
        if kind is None:
            return {k: self.list(k, pattern) for k in KINDS}  # type: ignore[misc]
        _check_kind(kind)
        out = set()
        for name, specs in self.components[kind].items():
            for spec in specs:
                if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(spec.qualified_name, pattern):
                    out.add(name)
        return sorted(out)

    def create(self, kind: str, name: str, **params: Any) -> Any:
        return self.build(kind, name, {}, params)

    def build(self, kind: str, name: str, fixed: dict[str, Any], params: dict[str, Any]) -> Any:
        """Like ``create``; ``fixed`` are arguments the caller supplies itself (data_shape,
        latent_dim, ...), left out of the "Accepted:" list shown to users."""
        spec = self.get(kind, name)
        factory = spec.load()
        params = {k: plain_value(v) for k, v in params.items()}
        check_params(factory, {**fixed, **params}, f"{kind} {spec.name!r}", hidden=set(fixed))
        component = factory(**fixed, **params)
        _check_returned(kind, spec, component)
        return component


# -- the process-wide registry ---------------------------------------------------------
_lock = threading.RLock()
_current: Registry | None = None


def get_registry() -> Registry:
    """The registry of this process, discovering plugins on first use."""
    global _current
    with _lock:
        if _current is None:
            from .plugins import discover

            _current = discover()
        return _current


def reset_registry() -> None:
    """Forget the discovered plugins; the next use discovers them again."""
    global _current
    with _lock:
        _current = None


@contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the process registry inside the ``with`` block (tests, isolation)."""
    global _current
    with _lock:
        previous, _current = _current, registry
    try:
        yield registry
    finally:
        with _lock:
            _current = previous


def list_components(kind: str | None = None, pattern: str = "*") -> list[str] | dict[str, list[str]]:
    """Names of registered components matching a shell-style ``pattern``.

    With ``kind`` (``encoder|decoder|prior|likelihood``) returns a sorted list of names; without
    it, a dict from each kind to its list. The pattern also matches qualified names
    (``plugin/name``), so ``list_components("prior", "my_plugin/*")`` lists one plugin's priors.
    """
    return get_registry().list(kind, pattern)


def create(kind: str, name: str, **params: Any) -> Any:
    """Build the component ``name`` of ``kind`` with ``params``.

    ``name`` may be qualified (``plugin/name``) to pick one of two clashing registrations.
    Unknown kinds and names raise ``UnknownComponentError`` with suggestions; unknown or
    wrongly typed parameters raise ``ComponentParamError`` naming the accepted ones.
    """
    return get_registry().create(kind, name, **params)


# -- parameter checking ------------------------------------------------------------------
def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UnknownComponentError(f"unknown component kind {kind!r}.{did_you_mean(kind, KINDS)} Kinds: {one_of(KINDS)}")


def _check_name(kind: str, name: Any, source: Source) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginError(
            f"{source} registered {kind} with invalid name {name!r}; names are lower-case letters, "
            f"digits, '_', '-' and '.', starting with a letter or digit"
        )


def plain_value(value: Any) -> Any:
    """omegaconf containers as plain lists and dicts (resolved); any other value unchanged.

    Never imports omegaconf: a value can only be one of its containers if omegaconf is
    imported already, and importing it costs about 70 ms of start-up.
    """
    omegaconf = sys.modules.get("omegaconf")
    if omegaconf is not None and isinstance(value, (omegaconf.DictConfig, omegaconf.ListConfig)):
        return omegaconf.OmegaConf.to_container(value, resolve=True)
    return value


def accepted_params(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword parameters ``factory`` accepts (for a class: its ``__init__``)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}
    return {
        n: p
        for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def check_params(factory: Callable[..., Any], params: dict[str, Any], what: str, hidden: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Raise ComponentParamError for unknown, missing or wrongly typed ``params``.

    ``hidden`` names parameters the caller fills in, not shown as accepted ones.
    """
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    accepted = accepted_params(factory)
    try:
        hints = typing.get_type_hints(factory.__init__ if isinstance(factory, type) else factory)
    except Exception:
        hints = {}
    from .kinds import CONDITION_DIM

    hidden = {*hidden, CONDITION_DIM}  # supplied by vaezoo for model.condition, never a user's option
    shown = ", ".join(
        f"{n}" + (f"={p.default!r}" if p.default is not p.empty else "") for n, p in accepted.items() if n not in hidden
    ) or "(none)"
    for key, value in params.items():
        if key not in accepted:
            if takes_any:
                continue
            raise ComponentParamError(
                f"{what} has no parameter {key!r}.{did_you_mean(key, [a for a in accepted if a not in hidden])} Accepted: {shown}"
            )
        expected = hints.get(key)
        if expected is not None and not _matches(value, expected):
            raise ComponentParamError(
                f"{what} parameter {key!r} must be {_type_name(expected)}, got "
                f"{type(value).__name__} {value!r}. Accepted: {shown}"
            )
    missing = [n for n, p in accepted.items() if p.default is p.empty and n not in params]
    if missing:
        raise ComponentParamError(f"{what} is missing required parameter(s) {', '.join(map(repr, missing))}. Accepted: {shown}")


def _matches(value: Any, expected: Any) -> bool:
    if expected is Any or expected is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if origin in (list, tuple, typing.Sequence) or expected in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        return not args or all(_matches(v, args[0]) for v in value)
    if origin is dict or expected is dict:
        return isinstance(value, dict)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True  # annotations we do not understand are not enforced


def _type_name(expected: Any) -> str:
    if isinstance(expected, type):
        return expected.__name__
    return str(expected).replace("typing.", "")


def _check_returned(kind: str, spec: ComponentSpec, component: Any) -> None:
    base = KIND[kind].base_class()
    if not isinstance(component, base):
        raise PluginError(
            f"{kind} {spec.qualified_name!r} from {spec.source}: its factory returned a "
            f"{type(component).__name__}, expected a {base.__module__.split('.')[0]}.{base.__name__}"
        )
