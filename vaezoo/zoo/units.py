"""What a zoo entry's NLL is a number of; ``unit_of`` decides, nothing stores it.

Three kinds, never shown in one column:

* ``binary``: a discrete likelihood (``likelihood.discrete``) on binarized data, without a
  grid of its own (Bernoulli): -log P(x) of the pixels in {0, 1}; ``num_bins`` 2.
* ``bins``: a discrete likelihood on its own grid of ``2**likelihood.bits`` values
  (discretized logistic and its mixture): -log P of the quantisation bins; ``num_bins``
  ``2**bits``. A discrete likelihood with neither a grid nor binarized data is a mass over
  the data's values (``num_bins`` None).
* ``density``: a continuous likelihood (``discrete=False``: gaussian, laplace,
  continuous_bernoulli, ...): -log p(x) is a density value, not a mass (it depends on the
  scale of x and can be negative). When the test set was uniformly dequantized into
  ``2**data.bits`` bins, its bits/dim ``(nll + D ln num_bins) / (D ln 2)`` is an upper bound
  (in expectation over the dequantization noise) on the bits of those bins; ``num_bins`` is
  that bin count, None when the data were not dequantized (no bound).

A conditional model (``model.condition``) measures -log p(x|y), the data given their labels:
the same kinds, each a group of its own (``conditional``), never ranked with -log p(x).

The decision reads ``discrete`` and ``bits`` from the likelihood built from the entry's
config and ``binarize``/``dequantize``/``bits`` from its ``DataConfig`` -- the same inputs
from which ``vaezoo.data.load_data`` sets ``Splits.num_bins``/``dequantized_bins``, which
``vaezoo.measurement.num_bins_of`` turns into the measured bits/dim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import VaezooError
from .errors import ZooError

KINDS = ("binary", "bins", "density")

#: Sources whose grey levels are known without a download: scikit-learn ships its digits.
BUNDLED_SOURCES = ("digits",)


@dataclass(frozen=True)
class Unit:
    """The kind of an NLL and its bins (see the module docstring)."""

    kind: str
    num_bins: int | None = None
    conditional: bool = False  #: -log p(x|y) of a conditional model

    @property
    def bits(self) -> int | None:
        """``log2(num_bins)`` when that is a whole number."""
        n = self.num_bins
        return n.bit_length() - 1 if n and n & (n - 1) == 0 else None

    @property
    def key(self) -> str:
        """Short name: ``binary``, ``8-bit`` (``<n>-bin``; ``mass`` without a grid) or ``density``."""
        if self.kind == "bins":
            key = (f"{self.bits}-bit" if self.bits else f"{self.num_bins}-bin") if self.num_bins else "mass"
        else:
            key = self.kind
        return key + ("|y" if self.conditional else "")

    @property
    def is_mass(self) -> bool:
        return self.kind != "density"

    @property
    def what(self) -> str:
        """What the number is, e.g. "mass on binarized pixels"."""
        given = " given the label" if self.conditional else ""
        if self.kind == "binary":
            return "mass on binarized pixels" + given
        if self.kind == "bins":
            return (f"mass on {self.grid} bins" if self.num_bins else "mass on the data's values") + given
        return "density" + given

    @property
    def title(self) -> str:
        """A heading for a group of entries of this unit."""
        if self.conditional:
            return Unit(self.kind, self.num_bins).title + " given the label: conditional models, -log p(x|y)"
        if self.kind == "binary":
            return "Probability mass on binarized pixels"
        if self.kind == "bins":
            return f"Probability mass on {self.grid} bins" if self.num_bins else "Probability mass on the data's values"
        if self.num_bins:
            return f"Densities on {self.grid} dequantized data"
        return "Densities on data that were not dequantized"

    @property
    def nll_header(self) -> str:
        """Column header of the NLL, with its unit."""
        return f"NLL (nats, {self.what})" if self.is_mass else f"−log density (nats{', given the label' if self.conditional else ''})"

    @property
    def bits_header(self) -> str | None:
        """Column header of bits/dim; None when there is no meaningful value (a density not dequantized)."""
        if self.is_mass:
            return "bits/dim"
        if not self.num_bins:
            return None
        return f"{self.grid} bits/dim ≤ (upper bound, uniform dequantization: + D ln {self.num_bins})"

    def sort_key(self) -> tuple[int, int, int]:
        return KINDS.index(self.kind), self.num_bins or 0, int(self.conditional)

    @property
    def grid(self) -> str:
        """The bins in words: "8-bit", or their number."""
        return f"{self.bits}-bit" if self.bits else f"{self.num_bins}"


def unit_of(config: Mapping[str, Any], data: Mapping[str, Any]) -> Unit:
    """The unit of the NLL of a model with model config ``config`` measured on ``data`` (a DataConfig mapping).

    Raises ``ZooError`` (one line) when the likelihood cannot be built or the data config is invalid.
    """
    likelihood = _likelihood(config)
    cfg = resolved_data(data, likelihood)
    model = config.get("model", config) if isinstance(config.get("model"), Mapping) else config
    given = model.get("condition") is not None
    if bool(getattr(likelihood, "discrete", False)):
        bits = getattr(likelihood, "bits", None)
        if bits is not None:
            return Unit("bins", 2 ** int(bits), given)
        if cfg.binarize in ("static", "dynamic"):
            return Unit("binary", 2, given)
        return Unit("bins", None, given)
    return Unit("density", 2 ** int(cfg.bits) if cfg.dequantize is True else None, given)


def resolved_data(data: Mapping[str, Any], likelihood: Any, where: str | None = "meta.dataset.data") -> Any:
    """``data`` as a validated ``DataConfig`` whose ``binarize``/``dequantize``, when left unset
    (None: follow the likelihood), are chosen as ``vaezoo.data.load_data`` chooses them (which
    reads the source). An invalid config or unreadable source: ``ZooError`` "<where>: ..." (one
    line), or the data layer's own error when ``where`` is None."""
    from ..data import as_config

    try:
        cfg = as_config(dict(data))
        if cfg.binarize is None or cfg.dequantize is None:
            from ..data.load import for_likelihood, read_source

            cfg = for_likelihood(cfg, likelihood, read_source(cfg))
    except (VaezooError, TypeError, ValueError) as exc:
        if where is None:
            raise
        raise ZooError(f"{where}: {' '.join(str(exc).split())}") from None
    return cfg


def entry_unit(entry: Any) -> Unit:
    """``unit_of`` for a ``PretrainedEntry`` or its ``to_dict()`` mapping."""
    fields = entry.to_dict() if hasattr(entry, "to_dict") else entry
    return unit_of(fields["config"], fields["meta"]["dataset"]["data"])


def grey_levels(data: Mapping[str, Any]) -> int | None:
    """Distinct grey levels of the raw data (the source's maximum value + 1), read from the source
    for ``BUNDLED_SOURCES``; None for any other source (reading it may need a download)."""
    name = data.get("name")
    if name not in BUNDLED_SOURCES:
        return None
    from ..data import read_source

    return int(read_source({"name": name}).levels) + 1


def coarser_levels(unit: Unit, data: Mapping[str, Any]) -> int | None:
    """The data's grey levels when a density's bits/dim bound was taken over more bins than the
    data have levels (digits: 17 levels, 256 bins); None otherwise. See ``levels_note``."""
    if unit.kind != "density" or not unit.num_bins:
        return None
    levels = grey_levels(data)
    return levels if levels is not None and levels < unit.num_bins else None


def levels_note(unit: Unit, levels: int) -> str:
    """Why a density's bits/dim bound on ``unit.num_bins`` bins also bounds the data's ``levels`` levels."""
    grid = unit.grid
    return (f"the test values of each level were dequantized within one {grid} bin, which lies inside that level's "
            f"cell, so the {grid} bound also bounds the bits/dim of the {levels}-level data; it is loose: a uniform "
            f"code over {levels} levels costs log2 {levels} = {math.log2(levels):.2f} bits/dim")


def _likelihood(config: Mapping[str, Any]) -> Any:
    from ..registry import get_registry

    cfg = config.get("model", config) if isinstance(config.get("model"), Mapping) else config
    section = cfg.get("likelihood")
    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, Mapping) or not isinstance(section.get("name"), str):
        raise ZooError(f"config.likelihood: expected {{name: ..., <params>}}, got {section!r}")
    params = {k: v for k, v in section.items() if k != "name"}
    try:
        return get_registry().create("likelihood", section["name"], **params)
    except (VaezooError, TypeError, ValueError) as exc:
        raise ZooError(f"config.likelihood: cannot tell what its NLL measures: {' '.join(str(exc).split())}") from None
