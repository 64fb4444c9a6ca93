"""``PretrainedEntry``: one zoo model -- its config, where its weights are, their sha256, its metrics.

An entry is everything needed to rebuild and verify a model: ``config`` is the full model
config (``vaezoo.build_model`` needs nothing else), ``weights`` says where the safetensors
file is, ``sha256`` is its full digest (checked before every load), and ``meta`` records
what the model is and how well it does, including a cheap ``check`` that the test suite
reproduces. Validation happens at construction; every error is one line naming the entry
and the field.

``meta`` layout (keys marked optional may be absent; any extra keys are allowed)::

    num_params: int            parameters of the built model
    file_size: int             bytes of the weights file
    dataset:  {name, split, preprocessing, data}   data = the DataConfig mapping used to measure;
                               preprocessing = scaling, quantization, binarization and its seed,
                               dequantization, in words
    metrics:  {neg_elbo, nll, num_samples, bits_per_dim, num_examples}   nats per example
              optional: seed, nll_se (standard error of the mean NLL over the test examples,
              sample std / sqrt(N)), convergence: {num_samples, seed, nll} (the same NLL
              measured again with another K, by default 1000, and another seed)
    check:    {split, first, num_samples, seed, batch_size, neg_elbo, nll}
    optional model card:
    description: str           one or two sentences, one line, at most 300 characters
    license:  str              SPDX license id or expression of the weights, e.g. "MIT"
    citation: str              the paper(s) of the architecture and recipe, one line
    vaezoo_version: str        the vaezoo that measured the entry
    recipe:   "configs/zoo/<name>.yaml"
    training: {epochs, wall_time_s, threads, hardware}   threads = torch threads of the run
              (train.num_threads); hardware = a short CPU description, never a path
    reference: {nll, model, source}   a published NLL to compare against, same unit and data

What the NLL is a number of (a mass on binarized pixels, on quantisation bins, or a density)
is not stored: ``vaezoo.zoo.units.unit_of`` derives it from ``config`` and ``dataset.data``.
``CARD_FIELDS`` lists the model-card fields every built-in entry has (tests/test_zoo.py).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlparse

from ..errors import did_you_mean, one_of
from ..kinds import NET_KINDS
from ..registry import plain_value
from .errors import InvalidEntryError

#: ``architecture.tag``: two lower-case parts of letters, digits, ``_`` and ``-``, joined by one dot.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]*\.[a-z0-9][a-z0-9_\-]*$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
PACKAGE_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
SCHEMES = ("package", "file", "https", "http")
MODEL_KEYS = ("data_shape", "latent_dim", *NET_KINDS)  # the config of the default architecture, vae

# meta sections: key -> kind of value (see _problem: "int" >= 0, "pos" int >= 1, "num" finite number,
# "nonneg" finite number >= 0, "str", "line" one-line string, "sentence", "spdx", "version", "hardware", "map")
META_REQUIRED = {"num_params": "int", "file_size": "pos", "dataset": "map", "metrics": "map", "check": "map"}
META_OPTIONAL = {"recipe": "str", "training": "map", "description": "sentence", "license": "spdx", "citation": "line",
                 "vaezoo_version": "version", "reference": "map"}
DATASET_REQUIRED = {"name": "str", "split": "str", "preprocessing": "str", "data": "map"}
METRICS_REQUIRED = {"neg_elbo": "num", "nll": "num", "num_samples": "pos", "bits_per_dim": "num", "num_examples": "pos"}
METRICS_OPTIONAL = {"seed": "int", "nll_se": "nonneg", "convergence": "map"}
CONVERGENCE_REQUIRED = {"num_samples": "pos", "seed": "int", "nll": "num"}
CHECK_REQUIRED = {"split": "str", "first": "pos", "num_samples": "pos", "seed": "int", "batch_size": "pos",
                  "neg_elbo": "num", "nll": "num"}
TRAINING_OPTIONAL = {"epochs": "int", "wall_time_s": "num", "threads": "pos", "hardware": "hardware"}
REFERENCE_REQUIRED = {"nll": "num", "model": "line", "source": "line"}

#: section -> (required, optional)
SCHEMA: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "meta": (META_REQUIRED, META_OPTIONAL),
    "meta.dataset": (DATASET_REQUIRED, {}),
    "meta.metrics": (METRICS_REQUIRED, METRICS_OPTIONAL),
    "meta.metrics.convergence": (CONVERGENCE_REQUIRED, {}),
    "meta.check": (CHECK_REQUIRED, {}),
    "meta.training": ({}, TRAINING_OPTIONAL),
    "meta.reference": (REFERENCE_REQUIRED, {}),
}

#: The model card: optional for third-party entries, present in every built-in one (paths inside ``meta``).
CARD_FIELDS = ("description", "license", "citation", "vaezoo_version", "recipe", "dataset.preprocessing",
               "training.epochs", "training.wall_time_s", "training.threads", "training.hardware")
DESCRIPTION_MAX = 300


@dataclass(frozen=True)
class PretrainedEntry:
    """One zoo model. Construct with keywords or ``PretrainedEntry.from_mapping(d)``.

    ``config``/``meta`` are deep-copied plain JSON at construction (tuples become lists), so
    an entry never shares state with the caller; ``sha256`` is stored in lower case.
    Raises ``InvalidEntryError`` ("pretrained 'a.b': meta.check.first: ...") on any bad field.
    """

    name: str
    config: dict[str, Any]
    weights: str
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise InvalidEntryError(
                f"pretrained {name!r}: name: expected 'architecture.tag' (lower-case letters, digits, "
                f"'_' and '-', one dot), e.g. 'mlp-bernoulli.fashion_mnist'"
            )
        object.__setattr__(self, "config", _plain_copy(self.config, name, "config"))
        object.__setattr__(self, "meta", _plain_copy(self.meta, name, "meta"))
        digest = self.sha256.lower() if isinstance(self.sha256, str) else self.sha256
        if not isinstance(digest, str) or not SHA256_PATTERN.match(digest):
            raise InvalidEntryError(
                f"pretrained {name!r}: sha256: expected the full 64-hex-digit digest of the weights file "
                f"(sha256sum FILE), got {self.sha256!r}"
            )
        object.__setattr__(self, "sha256", digest)
        parse_weights(self.weights, name)
        _check_config(self.config, name)
        _check_meta(self.meta, name)

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, name: str | None = None) -> PretrainedEntry:
        """An entry from a mapping with the same fields; ``name`` fills (or must equal) ``data["name"]``."""
        label = name if name is not None else (data.get("name") if isinstance(data, Mapping) else None)
        if not isinstance(data, Mapping):
            raise InvalidEntryError(f"pretrained {label!r}: expected a PretrainedEntry or a mapping, got {type(data).__name__}")
        allowed = [f.name for f in fields(cls)]
        for key in data:
            if key not in allowed:
                raise InvalidEntryError(
                    f"pretrained {label!r}: {key}: unknown field.{did_you_mean(str(key), allowed)} Fields: {one_of(allowed)}"
                )
        values = dict(data)
        if name is not None:
            if values.setdefault("name", name) != name:
                raise InvalidEntryError(f"pretrained {name!r}: name: registered as {name!r} but the entry says {values['name']!r}")
        missing = [k for k in ("name", "config", "weights", "sha256") if k not in values]
        if missing:
            raise InvalidEntryError(f"pretrained {label!r}: {missing[0]}: missing; an entry needs {', '.join(allowed)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of all fields (round-trips through ``from_mapping``)."""
        return {"name": self.name, "config": copy.deepcopy(self.config), "weights": self.weights,
                "sha256": self.sha256, "meta": copy.deepcopy(self.meta)}

    # -- conveniences ----------------------------------------------------------------
    @property
    def scheme(self) -> str:
        """``package``, ``file``, ``https`` or ``http``."""
        return parse_weights(self.weights, self.name)[0]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta["metrics"]

    @property
    def check(self) -> dict[str, Any]:
        return self.meta["check"]

    @property
    def data_config(self) -> dict[str, Any]:
        """The ``DataConfig`` mapping the metrics were measured with."""
        return copy.deepcopy(self.meta["dataset"]["data"])

    def __hash__(self) -> int:  # frozen, but holds dicts: hash by identity fields
        return hash((self.name, self.weights, self.sha256))


def as_entry(name: str, obj: Any, where: str = "") -> PretrainedEntry:
    """``obj`` (entry or mapping) registered as ``name`` -> a validated ``PretrainedEntry``.

    ``where`` (e.g. "from plugin 'x'") is added to error messages.
    """
    try:
        if isinstance(obj, PretrainedEntry):
            if obj.name != name:
                raise InvalidEntryError(f"pretrained {name!r}: name: registered as {name!r} but the entry says {obj.name!r}")
            return obj
        return PretrainedEntry.from_mapping(obj, name=name)
    except InvalidEntryError as exc:
        if where:
            raise InvalidEntryError(f"{exc} ({where})") from None
        raise


def parse_weights(location: Any, name: str = "?") -> tuple[str, str, str]:
    """Split a weights location into ``(scheme, a, b)``.

    ``package://pkg.mod/rel/path`` -> ``("package", "pkg.mod", "rel/path")``;
    ``file:///abs/path`` -> ``("file", "", "/abs/path")``; ``https://host/p`` -> ``("https", host, url)``.
    """
    def bad(why: str) -> InvalidEntryError:
        return InvalidEntryError(
            f"pretrained {name!r}: weights: {why}; expected package://<import.package>/<path>, "
            f"file:///<absolute path> or an https:// URL, got {location!r}"
        )

    if not isinstance(location, str) or "://" not in location:
        raise bad("not a URL")
    scheme, _, rest = location.partition("://")
    if scheme not in SCHEMES:
        raise bad(f"unsupported scheme {scheme!r}{did_you_mean(scheme, SCHEMES)}")
    if scheme == "package":
        package, _, path = rest.partition("/")
        if not PACKAGE_PATTERN.match(package):
            raise bad(f"{package!r} is not an importable package name")
        parts = path.split("/")
        if not path or any(p in ("", ".", "..") for p in parts) or "\\" in path:
            raise bad("the path inside the package must be relative, without '.', '..' or empty parts")
        return scheme, package, path
    parsed = urlparse(location)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise bad("a file URL needs an absolute path (file:///...)")
        return scheme, "", parsed.path
    if not parsed.netloc:
        raise bad("no host")
    return scheme, parsed.netloc, location


# -- validation helpers ------------------------------------------------------------------
def _plain_copy(value: Any, name: str, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidEntryError(f"pretrained {name!r}: {what}: expected a mapping, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(plain_value(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidEntryError(f"pretrained {name!r}: {what}: must be plain JSON data (no NaN, no objects): {exc}") from None


def _check_config(config: dict[str, Any], name: str) -> None:
    """The model config of an entry: complete for the default ``vae`` architecture; another
    architecture's keys are checked when the model is built."""
    cfg = config.get("model", config) if isinstance(config.get("model"), dict) else config
    architecture = cfg.get("architecture", "vae")
    if not isinstance(architecture, str):
        raise InvalidEntryError(f"pretrained {name!r}: config.architecture: expected a name, got {architecture!r}")
    keys = MODEL_KEYS if architecture == "vae" else MODEL_KEYS[:1]
    for key in keys:
        if cfg.get(key) is None:
            raise InvalidEntryError(
                f"pretrained {name!r}: config.{key}: missing; the config must be the full model config "
                f"({', '.join(keys)}), as in a saved model's config.json"
            )
    for key in keys[2:]:
        section = cfg[key]
        if not (isinstance(section, str) or (isinstance(section, dict) and isinstance(section.get("name"), str))):
            raise InvalidEntryError(f"pretrained {name!r}: config.{key}: expected {{name: ..., <params>}}, got {section!r}")


def _check_meta(meta: dict[str, Any], name: str) -> None:
    for path, (required, optional) in SCHEMA.items():
        section = _lookup(meta, path.removeprefix("meta").lstrip("."))
        if section is None:  # an optional section (a missing required one is reported by its parent)
            continue
        _check_section(section, required, optional, name, path)


def _lookup(meta: dict[str, Any], path: str) -> Any:
    value: Any = meta
    for part in path.split(".") if path else []:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def missing_card_fields(meta: Mapping[str, Any]) -> list[str]:
    """The ``CARD_FIELDS`` absent from ``meta`` (dotted paths; empty for a complete model card)."""
    return [path for path in CARD_FIELDS if _lookup(dict(meta), path) is None]


def field_problem(path: str, value: Any) -> str | None:
    """Why ``value`` cannot be the meta field ``path`` (e.g. "meta.license"), or None if it can."""
    section, _, key = path.rpartition(".")
    required, optional = SCHEMA.get(section, ({}, {}))
    kind = required.get(key) or optional.get(key)
    if kind is None:
        raise KeyError(f"{path} is not a field of the entry schema")
    return _problem(value, kind)


def _check_section(section: dict[str, Any], required: dict[str, str], optional: dict[str, str], name: str, path: str) -> None:
    for key, kind in required.items():
        if key not in section:
            raise InvalidEntryError(
                f"pretrained {name!r}: {path}.{key}: missing; {path} needs {', '.join(required)} "
                f"(see vaezoo.zoo.entry for the layout)"
            )
        _check_value(section[key], kind, name, f"{path}.{key}")
    for key, kind in optional.items():
        if key in section:
            _check_value(section[key], kind, name, f"{path}.{key}")


SPDX_PATTERN = re.compile(r"^\(?[A-Za-z0-9][A-Za-z0-9.+\-]*\)?( (AND|OR|WITH) \(?[A-Za-z0-9][A-Za-z0-9.+\-]*\)?)*$")
VERSION_PATTERN = re.compile(r"^\d+(\.\d+)*([.+\-]?[A-Za-z0-9]+)*$")
PATH_PATTERN = re.compile(r"(^|[\s(\[,;:=])(/\S|~/|\.\.?/|[A-Za-z]:[\\/])")


def _is_line(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and "\n" not in value and "\r" not in value


def _problem(value: Any, kind: str) -> str | None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok, expected = {
        "int": (is_int and value >= 0, "an integer >= 0"),
        "pos": (is_int and value >= 1, "an integer >= 1"),
        "num": (is_num, "a finite number"),
        "nonneg": (is_num and value >= 0, "a finite number >= 0"),
        "str": (isinstance(value, str) and bool(value), "a string"),
        "line": (_is_line(value), "a non-empty one-line string"),
        "sentence": (_is_line(value) and len(value) <= DESCRIPTION_MAX,
                     f"one or two sentences on one line, at most {DESCRIPTION_MAX} characters"),
        "spdx": (isinstance(value, str) and bool(SPDX_PATTERN.match(value)),
                 "an SPDX license id or expression such as 'MIT' or 'Apache-2.0'"),
        "version": (isinstance(value, str) and bool(VERSION_PATTERN.match(value)), "a version such as '0.1.0'"),
        "hardware": (_is_line(value) and not PATH_PATTERN.search(value),
                     "a short one-line CPU description such as 'AMD EPYC, 2 CPUs', never a filesystem path"),
        "map": (isinstance(value, dict), "a mapping"),
    }[kind]
    if ok:
        return None
    shown = f"{value[:60]!r}..." if isinstance(value, str) and len(value) > 60 else repr(value)
    return f"expected {expected}, got {shown}"


def _check_value(value: Any, kind: str, name: str, path: str) -> None:
    problem = _problem(value, kind)
    if problem is not None:
        raise InvalidEntryError(f"pretrained {name!r}: {path}: {problem}")
