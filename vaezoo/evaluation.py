"""Evaluating a trained model: find it, load it and its data, measure it, draw it.

Shared by the trainer (end of training) and the CLI (``vaezoo eval``/``sample``). A *run
folder* is what ``vaezoo train`` writes (``config.yaml``, ``checkpoint.safetensors``,
``model/``); a *model folder* is what ``VAE.save_pretrained`` writes (``config.json`` and
``model.safetensors``). Every function taking a path accepts either.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import CheckpointError, ConfigError, DataError, MissingFileError
from .loading import RUN_CONFIG
from .serialization import WEIGHTS_NAME, read_metadata

RUN_METADATA_KEY = "vaezoo_run"  # safetensors metadata: JSON with the data config of the run
MAX_GRID_IMAGES = 10_000
"""``sample_grid`` draws at most this many images ..."""
MAX_GRID_VALUES = 2**28
"""... and at most this many decoder outputs (samples x values per sample; 1 GiB as float32)."""


def find_model_dir(path: str | Path) -> Path:
    """The model folder for ``path`` (``vaezoo.loading.locate``): ``path`` itself, ``path/model``
    for a run folder, or an ``hf-hub:`` model's verified folder in the cache."""
    if str(path).startswith("hf-hub:"):
        from .loading import resolve

        return Path(resolve(str(path)))
    if not Path(path).exists():
        from .hub import scheme_hint  # hf:org/name -> did you mean hf-hub:org/name?

        raise MissingFileError(
            f"{str(path)!r} does not exist; expected a run folder (from vaezoo train) or a model folder"
            + (f" (or an hf-hub:ORG/NAME Hub model).{scheme_hint(str(path))}" if scheme_hint(str(path)) else "")
        )
    from .loading import locate

    return locate(path)[0]


def zoo_name(path: str | Path) -> str | None:
    """``path`` as a zoo model's name when it is not a path on disk (``vaezoo.loading.resolve``), else None."""
    text = str(path)
    if Path(text).is_file() and text.endswith(".safetensors"):  # the path `vaezoo zoo download` prints
        from .loading import weights_file_entry

        return weights_file_entry(text)
    if Path(text).exists() or "/" in text or text.startswith("file:"):
        return None
    from .loading import resolve

    where = resolve(text)  # UnknownModelError, with suggestions, for a name that is not registered
    return where if isinstance(where, str) else None


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> Any:
    """``vaezoo.from_pretrained`` for a run folder, a model folder or a zoo name, in eval mode."""
    from .loading import from_pretrained

    name = zoo_name(path)
    model = from_pretrained(name if name else find_model_dir(path), map_location=device)
    return model.eval()


class RecordedData(dict):
    """A data section read from a file: ``source`` names the file (and where in it), and
    ``overridden`` the keys the command line changed since, so that an invalid value is blamed
    on where it came from."""

    def __init__(self, data: dict[str, Any], source: str | None = None, overridden: frozenset[str] = frozenset()):
        super().__init__(data)
        self.source, self.overridden = source, overridden


def with_overrides(data: dict[str, Any] | None, *, name: str | None = None, root: str | None = None,
                   binarize: str | None = None) -> RecordedData:
    """The data section to measure on: the recorded ``data`` (None: nothing recorded) with the
    command line's changes; another dataset ``name`` drops the recorded ``root``, which belongs
    to the recorded data."""
    out = dict(data or {})
    changed = set(getattr(data, "overridden", ()))
    if name is not None and name != out.get("name"):
        out = {**out, "name": name, "root": None}
        changed |= {"name", "root"}
    if root is not None:
        out["root"] = root
        changed.add("root")
    if binarize is not None:
        out["binarize"] = binarize
        changed.add("binarize")
    return RecordedData(out, getattr(data, "source", None), frozenset(changed))


def _blamed(exc: DataError, data: dict[str, Any]) -> DataError:
    """``exc`` prefixed with the file ``data`` came from when it is about a value recorded
    there (``data.KEY: ...``, KEY set, not null) and names no key the command line changed."""
    source, text = getattr(data, "source", None), str(exc)
    key = text.partition(":")[0].removeprefix("data.")
    if source is None or not text.startswith("data.") or data.get(key) is None:
        return exc
    if any(f"data.{k}" in text for k in data.overridden) or key in data.overridden:
        return exc
    return DataError(f"{source}: {text}")


def run_data_config(path: str | Path, *, required: bool = True) -> RecordedData | None:
    """The ``data`` section the model at ``path`` was trained with, with its ``source``.

    Read from the run's ``config.yaml`` when there is one, else from the weights' metadata
    (``vaezoo train`` stores it there too, so a copied model folder still knows its data).
    When neither records it: ``ConfigError`` if ``required``, else None.
    """
    name = zoo_name(path)
    if name is not None:
        from .zoo.api import get_entry

        return RecordedData(dict(get_entry(name).data_config), f"zoo entry {name}")
    path = Path(path)
    model_dir = find_model_dir(path)
    for candidate in (path / RUN_CONFIG, model_dir.parent / RUN_CONFIG):
        if candidate.is_file():
            from .config import read_yaml

            data = read_yaml(candidate).get("data")
            if isinstance(data, dict):
                return RecordedData(data, str(candidate))
    from .hub import recorded_data
    from .serialization import CONFIG_NAME

    data = recorded_data(model_dir)  # a model pushed to the Hub records its data in config.json
    if data is not None:
        return RecordedData(data, str(model_dir / CONFIG_NAME))
    weights = model_dir / WEIGHTS_NAME
    meta = read_metadata(weights)
    if RUN_METADATA_KEY in meta:
        data = parse_run_metadata(meta[RUN_METADATA_KEY], weights).get("data")
        if isinstance(data, dict):
            return RecordedData(data, f"{weights}: metadata {RUN_METADATA_KEY!r}")
        if data is not None:
            raise CheckpointError(
                f"{weights}: metadata {RUN_METADATA_KEY!r} has 'data' = {_short(data)}, expected a JSON object "
                "(the run's data section, as vaezoo train writes it)"
            )
    if not required:
        return None
    raise ConfigError(
        f"{path}: cannot tell which data this model was trained on (no {RUN_CONFIG}, nothing in its weights' "
        "metadata); pass --data NAME (and --data-root DIR)"
    )


def parse_run_metadata(text: str, weights: str | Path) -> dict[str, Any]:
    """The ``vaezoo_run`` metadata of ``weights`` parsed: a JSON object, else ``CheckpointError`` naming the file."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise CheckpointError(
            f"{weights}: metadata {RUN_METADATA_KEY!r} is not valid JSON ({exc}); expected a JSON object "
            "with the run's data section, as vaezoo train writes it"
        ) from None
    if not isinstance(value, dict):
        raise CheckpointError(
            f"{weights}: metadata {RUN_METADATA_KEY!r} holds {_short(value)}, expected a JSON object "
            "with the run's data section, as vaezoo train writes it"
        )
    return value


def _short(value: Any, limit: int = 40) -> str:
    """``value`` as JSON for an error message, cut to ``limit`` characters."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_split(data_cfg: dict[str, Any], model: Any, split: str, *, where: str | Path | None = None
               ) -> tuple[Any, Any]:
    """``(splits, dataset)`` for ``split`` (``test`` or ``val``), prepared for ``model.likelihood``;
    ``where`` (the model's path) opens the messages about this model's data. A bad recorded
    value is blamed on its file (``RecordedData``)."""
    from .data import load_data

    whose = f"{where}: " if where is not None else ""
    try:
        splits = load_data(data_cfg, likelihood=model.likelihood)
    except DataError as exc:
        blamed = _blamed(exc, data_cfg)
        if blamed is exc:
            raise
        raise blamed from None
    if tuple(splits.data_shape) != tuple(model.data_shape):
        raise ConfigError(
            f"{whose}the data have shape {tuple(splits.data_shape)}, but the model takes {tuple(model.data_shape)}"
        )
    dataset = getattr(splits, split)
    if len(dataset) == 0:
        hint = " (data.val_fraction=0?); use --split test" if split == "val" else ""
        raise ConfigError(f"{whose}the {split} split is empty{hint}")
    return splits, dataset


def dataset_tensors(dataset: Any) -> tuple[Tensor, Tensor | None]:
    """All of a split as ``(x, y)`` tensors (``y`` None when unlabelled)."""
    x = getattr(dataset, "x", None)
    if isinstance(x, Tensor):
        return x, getattr(dataset, "y", None)
    items = [dataset[i] for i in range(len(dataset))]
    if items and isinstance(items[0], (tuple, list)):
        return torch.stack([it[0] for it in items]), torch.stack([torch.as_tensor(it[1]) for it in items])
    return torch.stack(items), None


def num_bins_for(splits: Any) -> int:
    """Quantisation bins to turn a density into bits/dim (``vaezoo.measurement.num_bins_of``)."""
    from .measurement import num_bins_of

    return num_bins_of(splits)


def evaluate(
    model: Any, x: Tensor, *, num_samples: int = 1000, batch_size: int = 256, num_bins: int = 256, seed: int = 0,
    progress: bool | None = False, desc: str = "evaluating", y: Tensor | None = None,
) -> dict[str, float]:
    """ELBO, importance-sampled NLL (``num_samples`` samples) and bits/dim, per example in nats:
    ``vaezoo.measurement.measure``, the ELBO given as itself rather than negated.

    ``progress``: a progress bar of the examples done on stderr (``training.metrics.progress_bar``:
    True always, None on a terminal, False never). ``y``: the labels, for a conditional model.
    """
    scores = measure_with_progress(model, x, progress=progress, desc=desc, num_samples=num_samples, seed=seed,
                                   batch_size=batch_size, num_bins=num_bins, y=y)
    return {
        "elbo": -float(scores["neg_elbo"]),
        "nll": float(scores["nll"]),
        "bits_per_dim": float(scores["bits_per_dim"]),
        "num_examples": int(scores["num_examples"]),
        "num_samples": int(scores["num_samples"]),
    }


def measure_with_progress(model: Any, x: Tensor, *, progress: bool | None, desc: str, **kwargs: Any) -> dict[str, Any]:
    """``vaezoo.measurement.measure(model, x, **kwargs)`` with a progress bar of the examples done
    on stderr (``training.metrics.progress_bar``: True always, None on a terminal, False never)."""
    from .measurement import measure
    from .training.metrics import progress_bar

    bar = progress_bar(len(x), desc, progress, unit="ex", mininterval=0)  # one redraw per batch
    try:
        return measure(_Counted(model, bar), x, **kwargs)
    finally:
        bar.close()


class _Counted:
    """``model`` as ``measure`` sees it, advancing ``bar`` by the examples of each ``log_likelihood`` batch."""

    def __init__(self, model: Any, bar: Any) -> None:
        self._model, self._bar = model, bar

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def log_likelihood(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        out = self._model.log_likelihood(x, *args, **kwargs)
        self._bar.update(len(x))
        return out


@torch.no_grad()
def latent_figures(
    model: Any, x: Tensor, y: Tensor | None, out_dir: str | Path, *, classes: Any = None, batch_size: int = 512
) -> list[Path]:
    """For a 2-D latent space: ``latent_scatter.png`` (posterior means coloured by label) and
    ``latent_manifold.png`` (decoded grid), written both or neither. Returns the files written:
    none unless the model has one latent vector (``encode``) of size 2; the figures of a
    hierarchy are not drawn.

    A conditional model encodes with its labels and the manifold shows its style space: one
    panel per class (at most 10; for covariates, the data's first covariate vectors)."""
    if getattr(model, "latent_dim", None) != 2 or not hasattr(model, "encode"):
        return []
    from .figures import manifold_figure, save_figures, scatter_figure
    from .measurement import condition_of

    condition = getattr(model, "condition", None)
    cond_y = condition_of(model, y, len(x))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    z = torch.cat(
        [model.encode(x[i : i + batch_size].to(device), **({} if cond_y is None else {"y": cond_y[i : i + batch_size].to(device)}))
         .mean.float().cpu() for i in range(0, len(x), batch_size)]
    )
    out_dir = Path(out_dir)
    labels, names = None, None
    if condition is not None:
        if condition.classes:
            labels = list(range(min(condition.classes, 10)))
            names = [str(classes[i]) for i in labels] if classes is not None and len(classes) >= len(labels) else None
        else:
            labels = [v for v in cond_y[:4].float()]
    try:
        figures = [
            (scatter_figure(z, y if condition is None or condition.classes else None, classes), out_dir / "latent_scatter.png"),
            (manifold_figure(model, z, 16 if labels is None else 8, labels=labels, names=names), out_dir / "latent_manifold.png"),
        ]
    finally:
        model.train(was_training)
    return save_figures(figures)  # both or neither


def max_grid_samples(model: Any) -> int:
    """The most samples one ``sample_grid`` of ``model`` may hold (``MAX_GRID_IMAGES``, ``MAX_GRID_VALUES``)."""
    return max(1, min(MAX_GRID_IMAGES, MAX_GRID_VALUES // _values_per_sample(model)))


def check_grid_size(model: Any, n: int, what: str = "n") -> None:
    """``ConfigError`` naming ``what`` if ``n`` samples are more than ``max_grid_samples(model)``; cheap, allocates nothing."""
    limit = max_grid_samples(model)
    if n > limit:
        per = _values_per_sample(model)
        raise ConfigError(
            f"{what}: {n:,} samples would take {n * per * 4 / 2**30:,.1f} GiB ({per:,} decoder outputs each); "
            f"a grid holds at most {limit:,} samples of this model (at most {MAX_GRID_IMAGES:,} images and "
            f"{MAX_GRID_VALUES:,} decoder outputs, 1 GiB as float32)"
        )


def _values_per_sample(model: Any) -> int:
    shape = tuple(model.data_shape)
    return max(1, math.prod(shape), math.prod(model.likelihood.param_shape(shape)))


@torch.no_grad()
def sample_grid(model: Any, n: int, path: str | Path, *, mean: bool = True, seed: int | None = None,
                y: Any = None) -> Path:
    """Decode ``n`` draws of z ~ p(z) to their means (``mean=False``: a sample of p(x|z) each) as one PNG grid.

    ``y``: a conditional model's label (or ``(n,)`` labels, or covariates) to generate; None for a
    class-conditional model gives a row of each class in turn. ``ConfigError`` before drawing
    anything if ``n`` exceeds ``max_grid_samples(model)``.
    """
    from .figures import save_grid

    check_grid_size(model, int(n))
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        given = sample_condition(model, int(n), y)
        x = model.sample(int(n), mean=mean, **given)
    model.train(was_training)
    return save_grid(x, path, model.data_shape, nrow=_class_columns(model, given))


def _class_columns(model: Any, given: dict[str, Any]) -> int | None:
    """One column per class when the samples cycle through the classes (``sample_condition``'s default)."""
    condition = getattr(model, "condition", None)
    y = given.get("y")
    if condition is None or not condition.classes or not isinstance(y, Tensor) or y.dim() != 1:
        return None
    return condition.classes if len(y) >= condition.classes else None


def sample_condition(model: Any, n: int, y: Any = None) -> dict[str, Any]:
    """The ``y`` keyword for ``model.sample(n)``: none for an unconditional model; for a
    class-conditional one ``y`` as given, or every class in turn (0, 1, ..., 0, 1, ...)."""
    condition = getattr(model, "condition", None)
    if condition is None:
        if y is not None:
            raise ConfigError("--label: this model is not conditional (its config has no model.condition)")
        return {}
    if y is None:
        if not condition.classes:
            raise ConfigError(f"this model is conditional on covariates ({condition.describe()}): generate from Python, "
                              f"model.sample({n}, y=covariates) with covariates of shape ({n}, {condition.dim})")
        y = torch.arange(n) % condition.classes
    elif isinstance(y, int) and not condition.classes:
        raise ConfigError(f"--label: this model is conditional on covariates ({condition.describe()}), not on classes")
    elif isinstance(y, int) and not 0 <= y < condition.classes:
        raise ConfigError(f"--label: {y} is not a class of this model; labels are 0..{condition.classes - 1}")
    return {"y": y}
