"""Building a model from its config: ``model.architecture`` names the architecture (default
``vae``), whose factory assembles the components it names from the registry.

Nothing here knows a built-in component or architecture: every one comes from the registry,
so a plugin's architecture is built exactly as the built-in ``vae`` is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .errors import ComponentParamError, ConfigError, PluginError, UnknownComponentError
from .kinds import CONDITION_DIM

DEFAULT_ARCHITECTURE = "vae"
MAX_SIZE = 2**31
"""The most values ``model.data_shape`` (one example) or ``model.latent_dim`` may ask for: 2**31, 8 GiB as
float32 for a single example; anything larger is refused before anything is allocated."""
DEPRECATED_MODEL_KEYS = {"objective": "the objective is its own config section now (objective: {name: ...})"}


def model_config(cfg: Any) -> dict[str, Any]:
    """The plain-dict model config from a dict or omegaconf object (``model:`` key accepted).

    Fills ``architecture`` (default ``vae``), checks ``data_shape`` (every model has one) and
    drops deprecated keys with a one-line warning; the architecture checks the rest.
    """
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(cfg).__name__}")
    cfg = dict(cfg)
    if "model" in cfg:
        cfg = cfg["model"]
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"model: must be a mapping, got {type(cfg).__name__}")
        cfg = dict(cfg)
    for key, why in DEPRECATED_MODEL_KEYS.items():
        if key in cfg:
            value = cfg.pop(key)
            if key == "objective" and value not in (None, "elbo"):
                _deprecated(f"model.objective={value!r} is deprecated and ignored when building a model: {why}")
    name = cfg.setdefault("architecture", DEFAULT_ARCHITECTURE)
    if not isinstance(name, str):
        raise ConfigError(f"model.architecture: expected the name of an architecture, got {name!r}")
    if "data_shape" not in cfg or cfg["data_shape"] is None:
        raise ConfigError("model.data_shape: missing; the shape of one example, e.g. [1, 28, 28] (vaezoo train takes it from the data)")
    shape = cfg["data_shape"]
    if isinstance(shape, int):
        shape = [shape]
    if not isinstance(shape, (list, tuple)) or not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ConfigError(f"model.data_shape: expected a list of positive integers like [1, 28, 28] or [784], got {cfg['data_shape']!r}")
    cfg["data_shape"] = [int(s) for s in shape]
    if math.prod(cfg["data_shape"]) > MAX_SIZE:
        raise ConfigError(
            f"model.data_shape: {cfg['data_shape']} is {math.prod(cfg['data_shape']):,} values per example; "
            f"at most {MAX_SIZE:,} (2**31, 8 GiB as float32) are allowed"
        )
    return cfg


def _deprecated(message: str) -> None:
    import warnings

    warnings.warn(message, UserWarning, stacklevel=3)


class Components:
    """What an architecture's factory receives: ``components(kind, section, **fixed)`` builds one
    component from its config section; ``check(kind, section, **fixed)`` only validates it.

    Errors name ``model.<kind>`` (or ``where``); ``sources`` records where each built
    component came from (saved with the model).
    """

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.sources: dict[str, Any] = {}

    def __call__(self, kind: str, section: Any, *, where: str | None = None, **fixed: Any) -> Any:
        where = where or f"model.{kind}"
        name, params = self._section(kind, section, where, fixed)
        try:
            component = self.registry.build(kind, name, fixed, params)
        except UnknownComponentError as exc:
            raise ConfigError(f"{where}.name: {exc}") from exc
        except (ComponentParamError, PluginError) as exc:
            raise type(exc)(f"{where}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        except RuntimeError as exc:
            raise self.allocation_error(exc, kind, section, where) or self.plugin_failure(exc, kind, name, where) or exc
        except Exception as exc:
            raise self.plugin_failure(exc, kind, name, where) or exc
        spec = self.registry.get(kind, name)
        self.sources[where.removeprefix("model.")] = {
            "name": spec.name, "qualified_name": spec.qualified_name, **spec.source.to_dict()
        }
        return component

    def check(self, kind: str, section: Any, *, where: str | None = None, **fixed: Any) -> None:
        """Validate the name and parameters of a component section without building it."""
        from .registry import check_params

        where = where or f"model.{kind}"
        name, params = self._section(kind, section, where, fixed)
        try:
            spec = self.registry.get(kind, name)
            check_params(spec.load(), {**fixed, **params}, f"{kind} {spec.name!r}")
        except UnknownComponentError as exc:
            raise ConfigError(f"{where}.name: {exc}") from None
        except (ComponentParamError, PluginError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @staticmethod
    def _section(kind: str, section: Any, where: str, fixed: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if isinstance(section, str):
            section = {"name": section}
        if not isinstance(section, Mapping) or not isinstance(section.get("name"), str):
            raise ConfigError(f"{where}: expected {{name: ..., <params>}} or a name, got {section!r}")
        params = {k: v for k, v in section.items() if k != "name"}
        if CONDITION_DIM in params:
            raise ConfigError(f"{where}.{CONDITION_DIM}: set by vaezoo from model.condition; remove it here")
        clash = sorted(set(params) & set(fixed))
        if clash:
            raise ConfigError(f"{where}.{clash[0]}: set by the model itself; remove it here")
        return section["name"], params

    def plugin_failure(self, exc: Exception, kind: str, name: str, where: str) -> PluginError | None:
        """A ``PluginError`` naming the plugin when a third-party component's factory raised
        (its cause keeps the traceback); None for vaezoo's own components, whose failure is a bug."""
        from .plugins import BUILTIN_PLUGIN

        try:
            source = self.registry.get(kind, name).source
        except Exception:
            return None
        if source.plugin == BUILTIN_PLUGIN:
            return None
        error = PluginError(f"{where}: {kind} {name!r} from {source} failed to build: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error

    @staticmethod
    def allocation_error(exc: RuntimeError, kind: str, section: Any, where: str | None = None) -> ConfigError | None:
        """A ``ConfigError`` for torch's "can't allocate memory" while building a component; None otherwise.

        The net for sizes no up-front check covers (a prior's ``components``, a plugin's
        parameters): the built-in networks refuse oversized layers before allocating.
        """
        import re

        text = str(exc)
        if not isinstance(exc, torch.OutOfMemoryError) and not re.search(r"can't allocate memory|not enough memory", text):
            return None
        asked = re.search(r"tried to allocate (\d+) bytes", text)
        size = f" ({int(asked.group(1)) / 2**30:,.1f} GiB)" if asked else ""
        name = section.get("name") if isinstance(section, Mapping) else section
        return ConfigError(f"{where or f'model.{kind}'}: {name!r} asked for more memory{size} than this machine can allocate; lower its sizes")


def _architecture(cfg: dict[str, Any]) -> tuple[Any, Any, dict[str, Any], Components]:
    """``(spec, factory, params, components)`` for a model config: the architecture it names,
    its factory, the config's other keys (checked against the factory) and a component builder."""
    from .registry import get_registry

    registry = get_registry()
    try:
        spec = registry.get("architecture", cfg["architecture"])
    except UnknownComponentError as exc:
        raise ConfigError(f"model.architecture: {exc}") from exc
    factory = spec.load()
    params = {k: v for k, v in cfg.items() if k != "architecture"}
    _check_keys(spec, factory, params)
    return spec, factory, params, Components(registry)


def _check_keys(spec: Any, factory: Any, params: dict[str, Any]) -> None:
    """Unknown and missing keys of ``model:`` for this architecture, as ``model.<key>`` errors (types are the factory's to check)."""
    from .errors import did_you_mean, one_of
    from .registry import accepted_params

    accepted = {n: p for n, p in accepted_params(factory).items() if n != "components"}
    if not accepted:
        return
    allowed = ["architecture", *accepted]
    for key in params:
        if key not in accepted:
            raise ConfigError(
                f"model.{key}: unknown key for architecture {spec.name!r}.{did_you_mean(key, allowed)} Allowed: {one_of(allowed)}"
            )
    missing = [n for n, p in accepted.items() if p.default is p.empty and n not in params]
    if missing:
        raise ConfigError(f"model.{missing[0]}: missing; architecture {spec.name!r} needs {', '.join(n for n, p in accepted.items() if p.default is p.empty)}")


def build_model(cfg: Any, *, initialize: bool = True) -> Any:
    """Assemble a model from its config: ``{architecture: vae, data_shape, ...}``.

    For the default ``vae``: ``{data_shape, latent_dim, encoder, decoder, prior, likelihood,
    kl}``, each component section ``{name: <registered name>, **params}``. Errors name the
    config path.

    ``init_from: NAME_OR_FOLDER`` (any key ``vaezoo.from_pretrained`` takes: a zoo name, a
    model or run folder) starts from those weights, strictly: every parameter and buffer must
    match by name and shape, else a ``ConfigError`` lists the differences. It is not part of
    the built model's ``config``. ``initialize=False`` skips it (a resumed run loads its
    checkpoint instead).
    """
    cfg = model_config(cfg)
    init_from = _pop_init_from(cfg)
    spec, factory, params, components = _architecture(cfg)
    model = factory(components, **params)
    from .registry import _check_returned

    _check_returned("architecture", spec, model)
    model.config = cfg
    model.sources = {"architecture": {"name": spec.name, "qualified_name": spec.qualified_name, **spec.source.to_dict()},
                     **components.sources}
    if init_from is not None and initialize:
        init_weights(model, init_from)
    return model


INIT_FROM = "init_from"


def _pop_init_from(cfg: dict[str, Any]) -> str | None:
    value = cfg.pop(INIT_FROM, None)
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise ConfigError(f"model.{INIT_FROM}: expected a zoo name or a model/run folder, got {value!r}")
    return value


def init_weights(model: Any, source: str, *, where: str = f"model.{INIT_FROM}") -> None:
    """Copy the weights of ``source`` (anything ``vaezoo.from_pretrained`` loads) into ``model``,
    strictly: a ``ConfigError`` lists missing, unexpected and differently shaped tensors."""
    from .errors import CheckpointError
    from .loading import from_pretrained

    try:
        donor = from_pretrained(source).state_dict()
    except (KeyError, CheckpointError) as exc:  # an unknown name (the zoo's UnknownModelError) or a bad folder
        raise ConfigError(f"{where}: {exc}") from None
    own = model.state_dict()
    missing = [k for k in own if k not in donor]
    unexpected = [k for k in donor if k not in own]
    shapes = [f"{k} {tuple(donor[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in donor and donor[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"{label} {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''} ({len(keys)})"
                 for label, keys in (("missing:", missing), ("unexpected:", unexpected),
                                     ("shape (source vs model):", shapes)) if keys]
        raise ConfigError(f"{where}: the weights of {source!r} do not fit this model; " + "; ".join(parts)
                          + f". Give the model the source's config ('vaezoo zoo info {source}' or its config.json shows it)")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(donor[k].to(dtype=v.dtype, device=v.device))


def check_model_config(cfg: Any) -> dict[str, Any]:
    """Validate a model config without data and without building (names, parameters)."""
    section = dict(cfg)
    if section.get("data_shape") is None:
        section["data_shape"] = [1]  # placeholder: filled from the data later
    mc = model_config(section)
    _pop_init_from(mc)
    _, factory, params, components = _architecture(mc)
    check = getattr(factory, "check_config", None)
    if check is not None:
        check(components, **params)
    return mc


DEFAULT_OBJECTIVE = "elbo"


def build_objective(section: Any = None, model: Any = None) -> Any:
    """An ``Objective`` from its config section (``{name: elbo, **params}`` or a name; default ``elbo``).

    With ``model``, the objective's ``check(model)`` runs too: an objective that cannot train
    this model is a one-line ``ConfigError`` here, before any training.
    """
    from .conditioning import takes_y
    from .registry import get_registry, plain_value

    section = plain_value(section)
    if section is None:
        section = {"name": DEFAULT_OBJECTIVE}
    objective = Components(get_registry())("objective", section, where="objective")
    if model is not None:
        objective.check(model)
        condition = getattr(model, "condition", None)
        if condition is not None and not takes_y(objective):
            raise ConfigError(f"objective: {section.get('name') if isinstance(section, Mapping) else section!r} cannot train a "
                              f"conditional model ({condition.describe()}): its forward takes no y (see docs/plugins.md)")
    return objective
