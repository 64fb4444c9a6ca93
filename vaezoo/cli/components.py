"""The commands that show what is installed: ``list``, ``describe``, ``plugins``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..registry import KINDS  # light: no torch
from .exits import one_line, print_warnings


def add_parsers(sub: Any) -> None:
    """The three commands' parsers."""
    p = sub.add_parser(
        "list", help="list registered components", description="List the registered components, by kind."
    )
    p.add_argument(
        "kind",
        nargs="?",
        choices=KINDS,
        metavar="KIND",
        help=f"{', '.join(KINDS)} (default: all); pretrained models: vaezoo zoo list",
    )
    p.add_argument("--params", action="store_true", help="with each component's parameters, defaults and meanings")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "describe",
        help="a component's parameters, their defaults and meanings",
        description="Show the parameters a component takes in its config section, with defaults and meanings.",
    )
    p.add_argument("kind", metavar="KIND", help=", ".join(KINDS))
    p.add_argument("name", nargs="?", metavar="NAME", help="a registered name, or plugin/name (default: every one of KIND)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser(
        "plugins",
        help="installed plugins, what they registered, and load errors",
        description="Show every plugin: distribution, version, registrations and load errors.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)



def _registry() -> tuple[Any, list[str]]:
    """The registry, with plugin warnings captured (a broken plugin must not break the CLI)."""
    import warnings

    from ..registry import get_registry

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = get_registry()
    return registry, [str(w.message) for w in caught]


def cmd_list(args: argparse.Namespace) -> int:
    registry, problems = _registry()
    kinds = [args.kind] if args.kind else list(KINDS)
    if args.params:
        _print_descriptions(registry, {k: _by_name(registry, k) for k in kinds}, args.json)
        print_warnings(problems)
        return 0
    table = {
        k: {name: [s.qualified_name for s in specs] for name, specs in sorted(registry.components[k].items())}
        for k in kinds
    }
    if args.json:
        print(json.dumps({k: sorted(v) for k, v in table.items()}))
    else:
        for kind, names in table.items():
            print(f"{kind}s:")
            if not names:
                print("  (none)")
            for name, qualified in names.items():
                clash = f"   [clash: {', '.join(qualified)}]" if len(qualified) > 1 else ""
                print(f"  {name}{clash}")
    print_warnings(problems)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from ..kinds import TABLE

    kind = {k.plural: k.name for k in TABLE}.get(args.kind, args.kind)  # `describe priors` too
    registry, problems = _registry()
    names = _by_name(registry, kind)  # an unknown kind: one line with a suggestion
    if args.name:
        registry.get(kind, args.name)  # an unknown name too, before any output
    _print_descriptions(registry, {kind: [args.name] if args.name else names}, args.json)
    print_warnings(problems)
    return 0


def _by_name(registry: Any, kind: str) -> list[str]:
    """The qualified names of ``kind``, sorted by plain name."""
    registry.names(kind)  # checks the kind
    return sorted(registry.qualified_names(kind), key=lambda q: (q.partition("/")[2], q))


def _print_descriptions(registry: Any, names: dict[str, list[str]], as_json: bool) -> None:
    """``vaezoo describe`` / ``list --params``: each component's parameters (a broken plugin says why)."""
    from ..describe import describe, render_text
    from ..errors import VaezooError

    out: dict[str, list[dict[str, Any]]] = {}
    blocks: list[str] = []
    for kind, qualified in names.items():
        out[kind] = []
        if not qualified:
            blocks.append(f"{kind}s: (none)")
        for name in qualified:
            try:
                d = describe(kind, name, registry)
            except VaezooError as exc:  # a plugin whose factory cannot be imported
                out[kind].append({"kind": kind, "name": name, "error": one_line(exc)})
                blocks.append(f"{kind} {name}  (cannot describe it: {one_line(exc)})")
                continue
            out[kind].append(d.to_dict())
            blocks.append(render_text(d))
    print(json.dumps(out) if as_json else "\n\n".join(blocks))


def _discover_all() -> tuple[Any, list[str]]:
    """A fresh discovery with strict mode off: every plugin's problem is collected, none is raised."""
    import warnings

    from ..plugins import discover

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = discover(strict=False)
    return registry, [str(w.message) for w in caught]


def cmd_plugins(args: argparse.Namespace) -> int:
    from ..plugins import strict_mode

    strict = strict_mode()
    registry, problems = _discover_all()  # even under VAEZOO_STRICT_PLUGINS=1: show every error
    plugins: dict[str, dict[str, Any]] = {}
    for info in registry.plugins:  # the built-in plugin comes as several modules: one entry
        entry = plugins.setdefault(
            info.name,
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "builtin": info.builtin,
                "modules": [],
                "registered": [],
                "errors": [],
            },
        )
        if info.module:
            entry["modules"].append(info.module)
        entry["registered"] += [f"{kind}:{name}" for kind, name in info.registered]
        if info.error:
            entry["errors"].append(f"{info.module}: {info.error}" if info.module else info.error)
    conflicts = [
        f"{kind} {name!r}: " + ", ".join(s.qualified_name for s in specs) for kind, name, specs in registry.conflicts()
    ]
    if args.json:
        print(
            json.dumps(
                {"plugins": list(plugins.values()), "conflicts": conflicts, "warnings": problems, "strict": strict}
            )
        )
        return 0
    for entry in plugins.values():
        dist = f"{entry['distribution'] or '(no distribution)'} {entry['version'] or ''}".strip()
        status = "ERROR" if entry["errors"] else "ok"
        print(f"{entry['name']}  [{dist}]{'  (built-in)' if entry['builtin'] else ''}  {status}")
        by_kind: dict[str, list[str]] = {}
        for item in entry["registered"]:
            kind, _, name = item.partition(":")
            by_kind.setdefault(kind, []).append(name)
        for kind, names in by_kind.items():
            print(f"    {kind + 's:':<13} {', '.join(sorted(names))}")
        for error in entry["errors"]:
            print(f"    error: {error}")
    if conflicts:
        print("name clashes (use plugin/name to choose):")
        for line in conflicts:
            print(f"    {line}")
    if problems and strict:
        from ..plugins import STRICT_ENV

        print(f"{STRICT_ENV} is set: each problem above stops the other commands")
    return 0

