"""``log.loggers`` -> ``Logger`` instances, every problem a one-line ``ConfigError``."""

from __future__ import annotations

from typing import Any

from .base import Logger, missing_library
from .jsonl import JsonlLogger

ALWAYS = "jsonl"  #: the logger every run has, listed or not (resume reads metrics.jsonl)


def build_loggers(section: Any, where: str = "log.loggers") -> list[Logger]:
    """The loggers of ``log.loggers`` (a list; each item a name, ``{name: ..., <params>}`` or,
    from Python, a ``Logger``), ``jsonl`` first whether listed or not.

    Raises ``ConfigError`` naming ``<where>[i]`` for an unknown name, a bad parameter, a
    logger listed twice, or one whose tracking library is not installed (with the pip command).
    """
    from ..errors import ConfigError
    from ..model import Components
    from ..registry import get_registry, plain_value

    if not isinstance(section, (list, tuple)):
        section = plain_value(section)
    if not isinstance(section, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of names or {{name: ..., <params>}}, got {section!r}")
    components = Components(get_registry())
    built: list[tuple[str, Logger]] = []
    for i, item in enumerate(section):
        at = f"{where}[{i}]"
        if isinstance(item, Logger):
            logger, name = item, type(item).__name__
            spec_name = ALWAYS if isinstance(item, JsonlLogger) else f"instance {id(item)}"
        else:
            logger = components("logger", plain_value(item), where=at)
            name = item if isinstance(item, str) else item["name"]
            spec_name = components.sources[at]["name"]
        # the same logger twice, by name or as an instance of its class: both would write the same files
        if any(spec_name == other or type(logger) is type(kept) for other, kept in built):
            raise ConfigError(f"{at}: logger {name!r} is listed twice; list each logger once")
        missing = missing_library(logger)
        if missing:
            hint = f"; {type(logger).install}" if type(logger).install else ""
            raise ConfigError(
                f"{at}: logger {name!r} needs the {missing} package, which is not installed{hint} "
                f"(or remove it from {where})"
            )
        built.append((spec_name, logger))
    if not any(n == ALWAYS for n, _ in built):
        built.insert(0, (ALWAYS, components("logger", ALWAYS, where=where)))
    built.sort(key=lambda pair: pair[0] != ALWAYS)  # metrics.jsonl is written before any tracker is called
    return [logger for _, logger in built]
