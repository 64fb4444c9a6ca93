"""The run config: one schema with sections ``model``, ``data``, ``train``, ``eval`` and ``log``.

A config is the schema's defaults, then a YAML recipe merged on top, then ``key.path=value``
overrides. ``data``, ``train``, ``eval`` and ``log`` are typed (omegaconf structured
configs); ``model`` is free-form because component parameters depend on the component,
and is checked by ``vaezoo.model.model_config`` and the registry instead.

Every mistake raises a one-line ``ConfigError`` naming the full key path and what is
allowed. ``docs/configs.md`` documents every key.

Merging rule for components: when a recipe or override changes ``model.<kind>.name`` (or
``objective.name``), the parameters given for the previous component are dropped (they
belong to it), so ``model.encoder.name=conv`` gives a conv encoder with its own defaults;
likewise a new ``model.architecture`` drops every model key of the previous one.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .data.config import DataConfig
from .errors import ConfigError, MissingFileError, VaezooError, did_you_mean, one_of
from .kinds import NET_KINDS
from .validation import SEED_MAX

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear")
PRECISIONS = ("32", "bf16", "16-mixed")
DEVICES = ("auto", "cpu", "cuda")
SPLITS = ("test", "val")


def default_model() -> dict[str, Any]:
    """The default recipe's model: MLP encoder/decoder, 16-d normal prior, Bernoulli likelihood."""
    return {
        "architecture": "vae",
        "latent_dim": 16,
        "encoder": {"name": "mlp", "hidden": [256, 128]},
        "decoder": {"name": "mlp", "hidden": [128, 256]},
        "prior": {"name": "normal"},
        "likelihood": {"name": "bernoulli"},
        "kl": "auto",
    }


def default_objective() -> dict[str, Any]:
    """The default recipe's objective: the ELBO, its KL weight warmed up over 10 epochs."""
    return {"name": "elbo", "beta": 1.0, "kl_warmup_epochs": 10.0, "free_bits": 0.0, "num_samples": 1}


def default_data() -> DataConfig:
    """The default recipe's data: sklearn's 8x8 digits, prepared as the likelihood wants (Bernoulli: dynamically binarized)."""
    return DataConfig(name="digits")


@dataclass
class TrainConfig:
    """How to optimise (see docs/configs.md for every key)."""

    epochs: int = 100
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr: float = 1e-5
    grad_clip: float = 0.0
    skip_threshold: float = 0.0
    ema: float = 0.0
    patience: int = 0
    restore_best: bool = True
    seed: int = 0
    device: str = "auto"
    precision: str = "32"
    compile: bool = False
    deterministic: bool = False
    num_threads: int = 1


@dataclass
class EvalConfig:
    """What is measured at the end of training (and by ``vaezoo eval`` unless overridden)."""

    split: str = "test"
    num_samples: int = 500
    batch_size: int = 256
    at_end: bool = True


@dataclass
class LogConfig:
    """Where a run goes and what it writes."""

    dir: Optional[str] = None
    root: str = "runs"
    name: Optional[str] = None
    progress: bool = True
    interval: int = 50
    images: bool = True
    num_images: int = 64
    sample_mean: bool = True
    loggers: List[Any] = field(default_factory=lambda: ["jsonl"])  # names or {name: ..., <params>}


@dataclass
class Config:
    """A whole run: ``model`` and ``objective`` (free-form, checked against the registry), ``data``,
    ``train``, ``eval``, ``log``."""

    model: Dict[str, Any] = field(default_factory=default_model)
    objective: Dict[str, Any] = field(default_factory=default_objective)
    data: DataConfig = field(default_factory=default_data)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)


SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig, "log": LogConfig}


# -- building ------------------------------------------------------------------------------
def default_config() -> Any:
    """The schema's defaults as an omegaconf ``DictConfig`` (the embedded default recipe)."""
    from omegaconf import OmegaConf

    return OmegaConf.structured(Config)


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    base: Mapping[str, Any] | None = None,
) -> Any:
    """Defaults (or ``base``), then the YAML file at ``path``, then ``overrides``; validated.

    ``overrides`` are ``key.path=value`` strings (values parsed as YAML). Raises
    ``ConfigError`` (one line, with the key path) for unknown keys, wrong types, values out
    of range and unknown component names; ``FileNotFoundError`` for a missing file.
    """

    cfg = default_config()
    if base is not None:
        cfg = _merge(cfg, _plain(base), "saved config")
    if path is not None:
        cfg = _merge(cfg, read_yaml(path), str(path))
    for item in overrides:
        cfg = _merge(cfg, _parse_override(item), f"override {item!r}")
    validate(cfg)
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file (empty file: ``{}``); one-line errors for bad YAML."""
    import yaml

    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise ConfigError(f"{path}: is a folder, expected a YAML config file")
        raise MissingFileError(f"config file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8); expected a YAML config") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections (model:, data:, train:, ...), got a {type(data).__name__}"
        )
    return data


def _parse_override(item: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"override {item!r}: expected key.path=value, e.g. train.epochs=5")
    key = item.split("=", 1)[0].strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}: {key!r} is not a key path like train.epochs")
    if key.lstrip("+~") != key:
        raise ConfigError(f"override {item!r}: write key.path=value without '+' or '~'; model keys can always be added")
    try:
        return _plain(OmegaConf.from_dotlist([item]))
    except Exception as exc:
        raise ConfigError(f"override {item!r}: cannot parse the value: {_first_line(exc)}") from None


def _plain(cfg: Any) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]
    return dict(cfg)


def _merge(cfg: Any, update: dict[str, Any], origin: str) -> Any:
    """Merge ``update`` into ``cfg``; component sections whose name changes are replaced."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from .config_migration import translate_old_keys, translate_tensorboard

    update = translate_old_keys(update, origin)
    update = translate_tensorboard(update, origin, cfg.log.get("loggers"))
    model = update.get("model")
    if model is not None and not isinstance(model, Mapping):
        raise ConfigError(f"model: expected a mapping (latent_dim:, encoder:, ...), got {model!r} (in {origin})")
    for key, value in update.items():  # `data=digits`: a whole section given one value
        section = cfg.get(key) if key not in ("model", "objective") else None
        if OmegaConf.is_dict(section) and not isinstance(value, Mapping):
            keys = [str(k) for k in section]
            hint = f"; did you mean {key}.name={value}?" if "name" in keys else ""
            raise ConfigError(f"{key}: is a section ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}), not one "
                              f"value, got {value!r}; set its keys, e.g. {key}.{keys[0]}=...{hint} (in {origin})")
    cfg = copy.deepcopy(cfg)
    if isinstance(model, Mapping) and "architecture" in model and model["architecture"] != cfg.model.get("architecture", "vae"):
        # another architecture: the old one's keys belong to it (data_shape belongs to the data)
        kept = {k: cfg.model[k] for k in ("data_shape",) if cfg.model.get(k) is not None}
        cfg.model = {"architecture": model["architecture"], **kept}
    if isinstance(model, Mapping):
        for kind in NET_KINDS:
            new = model.get(kind)
            if isinstance(new, str):
                new = {"name": new}
                update = {**update, "model": {**model, kind: new}}
                model = update["model"]
            if _switches(cfg.model.get(kind), new):
                cfg.model[kind] = {"name": new["name"]}
    objective = update.get("objective")
    if isinstance(objective, str):
        objective = {"name": objective}
        update = {**update, "objective": objective}
    if objective is not None and not isinstance(objective, Mapping):
        raise ConfigError(f"objective: expected {{name: ..., <params>}} or a name, got {objective!r} (in {origin})")
    if _switches(cfg.get("objective"), objective):
        cfg.objective = {"name": objective["name"]}
    try:
        return OmegaConf.merge(cfg, update)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{_rewrite(exc)} (in {origin})") from None


def _switches(old: Any, new: Any) -> bool:
    """True when ``new`` names another component than ``old`` (the old one's parameters are dropped)."""
    return (
        isinstance(new, Mapping)
        and "name" in new
        and (old is None or not hasattr(old, "get") or old.get("name") != new["name"])
    )


# -- errors ---------------------------------------------------------------------------------
def _rewrite(exc: Exception) -> str:
    """One line from an omegaconf error: full key path, what was wrong, what is allowed."""
    from omegaconf.errors import (
        ConfigKeyError,
        InterpolationResolutionError,
        ValidationError,
    )

    full_key = str(getattr(exc, "full_key", "") or "")
    key = getattr(exc, "key", None)
    owner = getattr(exc, "object_type", None)
    if isinstance(exc, ConfigKeyError) and dataclasses.is_dataclass(owner):
        allowed = [f.name for f in dataclasses.fields(owner)]
        return f"{full_key}: unknown key.{did_you_mean(str(key), allowed)} Allowed: {one_of(allowed)}"
    if isinstance(exc, ValidationError):
        expected = _expected_type(full_key)
        value = _offending_value(exc)
        if expected:
            return f"{full_key}: expected {expected}, got {value}"
    if isinstance(exc, InterpolationResolutionError):
        return f"{full_key}: cannot resolve interpolation: {_first_line(exc)}"
    return f"{full_key or 'config'}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    msg = getattr(exc, "msg", None) or str(exc)
    return str(msg).strip().splitlines()[0] if str(msg).strip() else type(exc).__name__


def _offending_value(exc: Exception) -> str:
    msg = _first_line(exc)
    if msg.startswith("Value '"):
        rest = msg[len("Value '") :]
        value, _, tail = rest.partition("' of type '")
        kind = tail.partition("'")[0]
        return f"{value!r} ({kind})" if kind else repr(value)
    if msg.startswith("Invalid value assigned: AnyNode is not a ListConfig"):
        return "a single value"
    if msg.startswith("Incompatible value '"):
        value = msg[len("Incompatible value '") :].partition("'")[0]
        return "nothing (write key=value)" if value == "None" else repr(value)
    return msg


def _expected_type(full_key: str) -> str:
    """Human name of the schema type at ``full_key`` (``train.epochs`` -> ``an integer``)."""
    if full_key == "log.loggers":
        return "a list like [jsonl, tensorboard] (each item a logger name or {name: ..., <params>})"
    parts = full_key.replace("[", ".[").split(".")
    if len(parts) < 2 or parts[0] not in SECTIONS:
        return ""
    hints = typing.get_type_hints(SECTIONS[parts[0]])
    hint = hints.get(parts[1])
    if hint is None:
        return ""
    if len(parts) > 2 and typing.get_origin(hint) in (list, List):
        hint = typing.get_args(hint)[0]
    return _type_words(hint)


def _type_words(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        return _type_words(args[0]) + " or null"
    if typing.get_origin(hint) in (list, List):
        return f"a list of {_type_words(typing.get_args(hint)[0]).split(' ', 1)[-1]}s"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


# -- validation -----------------------------------------------------------------------------
def validate(cfg: Any) -> None:
    """Check interpolations, values the types cannot express, the data section and the model section.

    Every ``${...}`` interpolation is resolved first (``check_interpolations``), so a broken
    one stops the run, naming its key, before anything is written.

    The model check needs no data: a missing ``model.data_shape`` is allowed (it is filled
    from the data later); component names and parameter names are checked against the
    registry, so a typo stops the run before any data is loaded.
    """
    check_interpolations(cfg)
    t, e, log = cfg.train, cfg.eval, cfg.log
    _choice("train.optimizer", t.optimizer, OPTIMIZERS)
    _choice("train.schedule", t.schedule, SCHEDULES)
    _choice("train.precision", t.precision, PRECISIONS)
    _choice("train.device", t.device, DEVICES)
    _choice("eval.split", e.split, SPLITS)
    for key, value in (
        ("train.epochs", t.epochs),
        ("train.batch_size", t.batch_size),
        ("eval.num_samples", e.num_samples),
        ("eval.batch_size", e.batch_size),
        ("log.interval", log.interval),
    ):
        if value < 1:
            raise ConfigError(f"{key}: must be >= 1, got {value}")
    for key, value in (("train.lr", t.lr), ("train.eps", t.eps)):
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{key}: must be a positive number, got {value}")
    for key, value in (
        ("train.weight_decay", t.weight_decay),
        ("train.warmup_epochs", t.warmup_epochs),
        ("train.min_lr", t.min_lr),
        ("train.grad_clip", t.grad_clip),
        ("train.skip_threshold", t.skip_threshold),
        ("train.patience", t.patience),
        ("train.seed", t.seed),
        ("train.num_threads", t.num_threads),
        ("log.num_images", log.num_images),
    ):
        if not value >= 0:
            raise ConfigError(f"{key}: must be >= 0, got {value}")
    if t.seed > SEED_MAX:
        raise ConfigError(f"train.seed: must be at most 2**63-1 ({SEED_MAX}), got {t.seed}")
    if not 0.0 <= t.ema < 1.0:
        raise ConfigError(f"train.ema: the EMA decay must lie in [0, 1) (0 = off, e.g. 0.999), got {t.ema}")
    if len(t.betas) != 2 or not all(0.0 <= b < 1.0 for b in t.betas):
        raise ConfigError(f"train.betas: expected two numbers in [0, 1) like [0.9, 0.999], got {list(t.betas)}")
    from .data.config import as_config

    try:
        as_config(cfg.data)
    except VaezooError as exc:
        raise ConfigError(str(exc)) from None
    check_model(cfg.model)
    check_objective(cfg.objective)
    from .loggers.config import build_loggers

    build_loggers(log.loggers)


def check_interpolations(cfg: Any) -> None:
    """Resolve every ``${...}`` interpolation (and find every ``???``) in ``cfg``.

    Raises a one-line ``ConfigError`` naming the key path of the first one that fails, e.g.
    ``log.name: interpolation ${oops} refers to a key that does not exist``.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import InterpolationKeyError, OmegaConfBaseException

    def walk(node: Any, path: str) -> None:
        is_dict = isinstance(node, DictConfig)
        for key in list(node.keys()) if is_dict else range(len(node)):
            where = (f"{path}.{key}" if path else str(key)) if is_dict else f"{path}[{key}]"
            if OmegaConf.is_interpolation(node, key):
                raw = node._get_node(key)._value()
                try:
                    node[key]
                except InterpolationKeyError as exc:
                    missing = str(getattr(exc, "msg", "") or exc).partition("'")[2].rpartition("'")[0]
                    hint = did_you_mean(missing, schema_keys()) if missing else ""
                    raise ConfigError(
                        f"{where}: interpolation {raw} refers to a key that does not exist.{hint} "
                        "An interpolation names a full key path, e.g. ${data.name}"
                    ) from None
                except OmegaConfBaseException as exc:
                    raise ConfigError(f"{where}: cannot resolve interpolation {raw}: {_first_line(exc)}") from None
                continue  # a resolved container is checked where it is defined
            if OmegaConf.is_missing(node, key):
                raise ConfigError(f"{where}: no value given (???); set it, e.g. {where}=...")
            child = node[key]
            if isinstance(child, (DictConfig, ListConfig)):
                walk(child, where)

    walk(cfg, "")


def _choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{key}: {value!r} is not allowed.{did_you_mean(str(value), allowed)} Allowed: {one_of(allowed)}"
        )


def check_model(model: Any) -> dict[str, Any]:
    """Validate the model section without data: architecture, component names and parameter names."""
    from .model import check_model_config

    return check_model_config(_plain(model) if not isinstance(model, dict) else dict(model))


def check_objective(objective: Any) -> None:
    """Validate the objective section: its name and parameters (building it is cheap)."""
    from .errors import ComponentParamError, PluginError
    from .model import build_objective

    section = _plain(objective) if not isinstance(objective, dict) else dict(objective)
    try:
        build_objective(section)
    except (ComponentParamError, PluginError) as exc:
        raise ConfigError(str(exc)) from None


# -- output ---------------------------------------------------------------------------------
def to_container(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain dicts and lists."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML text (what ``config.yaml`` in a run folder holds)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _list(dumper: yaml.SafeDumper, data: list) -> Any:  # short lists inline: hidden: [256, 128]
        flow = all(not isinstance(v, (dict, list)) for v in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    _Dumper.add_representer(list, _list)
    return yaml.dump(to_container(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def schema_keys() -> list[str]:
    """Every typed key path in the schema, e.g. ``train.epochs`` (for docs and tests)."""
    keys = [f"model.{k}" for k in ("architecture", "data_shape", "latent_dim", *NET_KINDS, "kl")] + ["objective.name"]
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys
