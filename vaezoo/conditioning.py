"""Conditional models (``model.condition``): the encoder, the decoder and optionally the prior see y.

``model.condition`` is ``{classes: N}`` (labels 0..N-1, given to the nets as one-hot vectors)
or ``{dim: C}`` (a covariate vector of C floats per example, as the dataset gives it), plus
``prior: true`` to learn p(z|y) instead of p(z) (Sohn, Lee & Yan 2015, "Learning Structured
Output Representation using Deep Conditional Generative Models", NeurIPS).

The mechanism, for any net: a component that can be conditioned accepts the constructor
argument ``condition_dim`` (supplied by vaezoo, never set in its config section) and then
takes y as a second argument -- ``encoder(x, y)``, ``decoder(z, y)``, and for a prior
``distribution(y)``, ``log_prob(z, y)``, ``sample(n, y)`` -- where y is a float tensor
``(..., condition_dim)`` with the same leading dimensions as x or z. A component without
that argument cannot be part of a conditional model (a one-line ``ConfigError`` says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError, DataError, did_you_mean, one_of
from .kinds import CONDITION_DIM

KEYS = ("classes", "dim", "prior")


@dataclass(frozen=True)
class Condition:
    """What a conditional model is conditioned on: ``classes`` labels or a ``dim``-vector."""

    classes: int = 0  #: labels 0..classes-1, one-hot to the nets (0: not a label condition)
    dim: int = 0  #: length of a covariate vector (0: not a covariate condition)
    prior: bool = False  #: learn p(z|y)

    @property
    def size(self) -> int:
        """``condition_dim``: the length of the vector the nets receive."""
        return self.classes or self.dim

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"classes": self.classes} if self.classes else {"dim": self.dim}
        if self.prior:
            out["prior"] = True
        return out

    def vector(self, y: Any, n: int | None = None, *, like: Tensor | None = None) -> Tensor:
        """y as the ``(B, size)`` float tensor the nets take.

        ``y``: labels ``(B,)`` (or one int, repeated ``n`` times) for ``classes``; a ``(B, dim)``
        tensor (or one ``(dim,)`` vector, repeated ``n`` times) for ``dim``. ``like`` gives dtype
        and device. Labels outside 0..classes-1 or a wrong shape are a ``DataError``.
        """
        dtype = like.dtype if like is not None and like.is_floating_point() else torch.get_default_dtype()
        device = like.device if like is not None else None
        if y is None:
            raise DataError(f"this model is conditional ({self.describe()}): give y ({self.expects()})")
        if self.classes:
            labels = torch.as_tensor(y, device=device)
            if labels.dim() == 2 and labels.is_floating_point() and labels.shape[1] == self.classes:
                if n is not None and len(labels) != n:
                    raise DataError(f"y: expected {n} one-hot rows for {self.describe()}, got {len(labels)}")
                return labels.to(dtype)  # already one-hot (or soft) vectors
            if labels.is_floating_point():
                if not torch.equal(labels, labels.round()):
                    raise DataError(f"y: expected integer class labels 0..{self.classes - 1}, got non-integer values")
                labels = labels.long()
            if labels.dim() == 0 and n is not None:
                labels = labels.expand(int(n))
            if labels.dim() != 1 or (n is not None and len(labels) != n):
                want = f"({n},) labels or one label" if n is not None else "(batch,) labels"
                raise DataError(f"y: expected {want} for {self.describe()}, got shape {tuple(labels.shape)}")
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.classes):
                bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
                raise DataError(f"y: label {bad} is outside 0..{self.classes - 1} ({self.describe()})")
            return torch.nn.functional.one_hot(labels.long(), self.classes).to(dtype)
        vec = torch.as_tensor(y, device=device, dtype=dtype)
        if vec.dim() == 1 and n is not None and vec.shape[0] == self.dim:
            vec = vec.expand(int(n), self.dim)
        if vec.dim() != 2 or vec.shape[1] != self.dim or (n is not None and vec.shape[0] != n):
            raise DataError(f"y: expected covariates of shape (batch, {self.dim}) for {self.describe()}, got {tuple(vec.shape)}")
        if not torch.isfinite(vec).all():
            raise DataError("y: the covariates contain NaN or inf")
        return vec

    def describe(self) -> str:
        return f"model.condition classes={self.classes}" if self.classes else f"model.condition dim={self.dim}"

    def expects(self) -> str:
        if self.classes:
            return f"a label 0..{self.classes - 1} or a (n,) tensor of them"
        return f"a (n, {self.dim}) tensor of covariates"


def parse_condition(value: Any) -> Condition | None:
    """``model.condition`` as a ``Condition`` (None: an unconditional model); one-line errors."""
    if value is None:
        return None
    if isinstance(value, Condition):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"classes": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"model.condition: expected {{classes: N}} or {{dim: C}} (and optionally prior: true), got {value!r}")
    for key in value:
        if key not in KEYS:
            raise ConfigError(f"model.condition.{key}: unknown key.{did_you_mean(str(key), KEYS)} Allowed: {one_of(KEYS)}")
    classes, dim, prior = value.get("classes"), value.get("dim"), value.get("prior", False)
    if (classes is None) == (dim is None):
        raise ConfigError("model.condition: give exactly one of classes (labels 0..N-1, one-hot) or dim (a covariate vector)")
    for key, v in (("classes", classes), ("dim", dim)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1 or v > 1_000_000):
            raise ConfigError(f"model.condition.{key}: expected a positive integer (at most 1,000,000), got {v!r}")
    if classes == 1:
        raise ConfigError("model.condition.classes: 1 class conditions on nothing; use 2 or more, or remove model.condition")
    if not isinstance(prior, bool):
        raise ConfigError(f"model.condition.prior: expected true or false, got {prior!r}")
    return Condition(classes=int(classes or 0), dim=int(dim or 0), prior=prior)


def check_conditionable(components: Any, kind: str, section: Any) -> None:
    """``ConfigError`` unless the component named by ``section`` accepts ``condition_dim``."""
    from .registry import accepted_params

    name = section if isinstance(section, str) else (section or {}).get("name") if isinstance(section, Mapping) else None
    if not isinstance(name, str):
        return  # the component builder reports a malformed section
    registry = components.registry
    try:
        spec = registry.get(kind, name)
    except Exception:  # noqa: BLE001 -- an unknown name is reported when the component is built
        return
    if CONDITION_DIM in accepted_params(spec.load()):
        return
    able = [n for n in registry.names(kind) if _takes_condition(registry, kind, n)]
    what = "the prior (model.condition.prior: true)" if kind == "prior" else f"a conditional model's {kind}"
    raise ConfigError(
        f"model.{kind}: {kind} {name!r} cannot be {what}: its factory takes no {CONDITION_DIM} "
        f"(the conditioning mechanism, see docs/plugins.md). {kind.capitalize()}s that can: {one_of(able) if able else 'none'}"
    )


def check_labels(condition: Condition | None, dataset: Any, split: str) -> None:
    """``DataError`` (one line) if a conditional model's ``split`` has no labels, or labels it cannot take."""
    if condition is None or dataset is None or not len(dataset):
        return
    y = getattr(getattr(dataset, "dataset", dataset), "y", None)
    if y is None:
        item = dataset[0] if hasattr(dataset, "__getitem__") else None
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"{condition.describe()}: the {split} data have no labels or covariates to condition on")
        label = torch.as_tensor(item[1])  # the first item's; each batch is checked again as it is used
        if condition.classes and (label.dim() != 0 or label.is_floating_point()):
            raise DataError(f"{condition.describe()}: the {split} labels must be integer class indices, "
                            f"got {label.dtype} of shape {tuple(label.shape)} per example")
        if condition.dim and tuple(label.shape) != (condition.dim,):
            raise DataError(f"{condition.describe()}: the {split} covariates have shape {tuple(label.shape)} per example, "
                            f"expected ({condition.dim},)")
        return
    y = torch.as_tensor(y)
    if condition.classes:
        if y.is_floating_point() or y.dim() != 1:
            raise DataError(f"{condition.describe()}: the {split} labels must be integer class indices (N,), got {y.dtype} {tuple(y.shape)}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= condition.classes:
            raise DataError(f"{condition.describe()}: the {split} labels run {lo}..{hi}; set model.condition.classes to at least {hi + 1}")
    elif y.dim() != 2 or y.shape[1] != condition.dim:
        raise DataError(f"{condition.describe()}: the {split} covariates have shape {tuple(y.shape)}, expected (N, {condition.dim})")


def given(y: Any) -> dict[str, Any]:
    """``{"y": y}``, or nothing for an unconditional batch: how objectives pass y on to a model."""
    return {} if y is None else {"y": y}


def takes_y(objective: Any) -> bool:
    """Whether an objective's ``forward`` has a ``y`` parameter (what conditional models need)."""
    import inspect

    try:
        return "y" in inspect.signature(objective.forward).parameters
    except (TypeError, ValueError):
        return False


def _takes_condition(registry: Any, kind: str, name: str) -> bool:
    from .registry import accepted_params

    try:
        return CONDITION_DIM in accepted_params(registry.get(kind, name).load())
    except Exception:  # noqa: BLE001 -- a plugin that fails to load is reported where it is used
        return False


def expand_to(y: Tensor, lead: tuple[int, ...]) -> Tensor:
    """``y (B, C)`` broadcast to ``(*lead, C)`` where ``lead`` ends with B (sample dims first)."""
    return y.expand(*lead, y.shape[-1])
