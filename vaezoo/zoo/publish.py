"""Turn a trained model into a zoo entry, measured on the weights that ship.

    python -m vaezoo.zoo.publish RUN_OR_MODEL_DIR --name mlp-bernoulli.fashion_mnist \\
        --recipe configs/zoo/mlp-bernoulli.fashion_mnist.yaml [--dtype float16] [--num-samples 5000] \\
        --description "..." --citation "..." [--license MIT] \\
        [--reference-nll 228.70 --reference-model "..." --reference-source "..."]

Steps: load the saved model (``RUN_DIR/model/`` or a model folder); cast its floating-point
weights (``--dtype``) and serialise them, in memory, exactly as the weights file; load those
bytes into a freshly built model, strictly; measure on the full test
split -ELBO, the importance-sampled NLL with K = ``--num-samples`` and its standard error
over the test examples, and bits/dim; measure the NLL again with K =
``--convergence-num-samples`` (default 1000) and seed ``--seed`` + 1 (the convergence check);
measure the cheap ``check`` (first ``--check-first`` test examples, ``--check-num-samples``
samples, ``--seed``); only then write ``<weights-dir>/<name>.safetensors`` (atomically: an
interrupted publish leaves no file, however long it measured) and update the catalogue (full
sha256, num_params, file_size, metrics, the model card) and, for the built-in catalogue,
``docs/zoo.md``.

The model card: ``--description``, ``--citation``, ``--license`` (default: vaezoo's own,
from its package metadata), ``--reference-*`` (a published NLL to compare with: all three or
none); the vaezoo version, the run's ``train.num_threads`` and this machine's CPU
(``vaezoo.zoo.card.describe_hardware``; publish on the machine that trained, or pass ``--hardware``) are
recorded without flags.

The data are the run's ``data:`` section (``config.yaml`` beside ``model/``, or the weights'
metadata); ``--data``, ``--data-root``, ``--binarize`` override it. Binarized data are always
measured on a test set binarized once with a fixed seed (``binarize=static``), also when
the run trained with dynamic binarization; ``meta.dataset.preprocessing`` says so.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import VaezooError
from ..fileio import atomic_write_bytes, remove_stale_temp
from ..validation import SEED_MAX
from .card import check_card, describe_hardware, evaluation_data, project_license, run_config, training_record, vaezoo_version
from .entry import NAME_PATTERN, PretrainedEntry, parse_weights
from .errors import ZooError

DTYPES = ("float32", "float16", "bfloat16")
PACKAGE_WEIGHTS = "weights"  # inside vaezoo.zoo
BUDGET_BYTES = 30 * 1024 * 1024  # all packaged weights together


def default_weights_dir() -> Path:
    """``vaezoo/zoo/weights`` of this checkout (shipped as package data)."""
    return Path(str(importlib.resources.files("vaezoo.zoo"))) / PACKAGE_WEIGHTS


def publish(
    path: str | os.PathLike[str],
    *,
    name: str,
    recipe: str | None,
    dtype: str | None = None,
    num_samples: int = 5000,
    batch_size: int = 256,
    seed: int = 0,
    check_first: int = 500,
    check_num_samples: int = 100,
    data_overrides: dict[str, Any] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    weights_url: str | None = None,
    package: str | None = None,
    catalogue: str | os.PathLike[str] | None = None,
    training: dict[str, Any] | None = None,
    description: str | None = None,
    license: str | None = None,
    citation: str | None = None,
    reference: dict[str, Any] | None = None,
    convergence_num_samples: int = 1000,
    echo: Callable[[str], None] = print,
) -> PretrainedEntry:
    """Publish the model at ``path`` as zoo entry ``name``; returns the entry written to the catalogue.

    ``catalogue`` None: the built-in ``vaezoo/zoo/catalogue.json`` (and docs/zoo.md is
    regenerated). ``weights_url``: record this URL instead of the local file (upload the
    file there yourself). ``package``: record ``package://<package>/...`` for a weights dir
    inside that package (found automatically for folders inside any package).
    ``training``: ``epochs``, ``wall_time_s``, ``threads``, ``hardware`` overriding what the
    run records. ``license`` None: the project's (``project_license()``). ``reference``:
    ``{nll, model, source}`` or None. Card values are checked before any work.
    """
    import torch

    from ..model import build_model
    from ..serialization import load_weights, weights_bytes
    from .metrics import measure, num_bins_of, reproduce_check, split_labels, split_tensor

    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ZooError(f"--name {name!r}: expected 'architecture.tag', e.g. 'mlp-bernoulli.fashion_mnist'")
    if recipe is not None and not Path(recipe).is_file():
        raise ZooError(f"--recipe {recipe}: no such file; point it at the recipe that trained this model (configs/zoo/...)")
    if dtype is not None and dtype not in DTYPES:
        raise ZooError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    for flag, value in (("--num-samples", num_samples), ("--check-num-samples", check_num_samples),
                        ("--check-first", check_first), ("--batch-size", batch_size),
                        ("--convergence-num-samples", convergence_num_samples)):
        if int(value) < 1:
            raise ZooError(f"{flag}: must be >= 1, got {value}")
    if not 0 <= int(seed) < SEED_MAX:  # the convergence check uses seed + 1
        raise ZooError(f"--seed: expected a seed in 0..2**63-2, got {seed}")
    license = project_license() if license is None else license
    if reference is not None and all(v is None for v in reference.values()):
        reference = None
    card = {"description": description, "license": license, "citation": citation}
    overrides = {k: v for k, v in (training or {}).items() if v is not None}
    check_card(card, overrides, reference)

    if weights_url is not None:
        parse_weights(weights_url, name)  # fail before any work
    if weights_url is not None and weights_dir is None:
        raise ZooError("--weights-url: also give --weights-dir, where to write the file you will upload; "
                       "vaezoo/zoo/weights holds packaged weights only")
    model_dir, run_dir = _locate(Path(path))
    from ..loading import from_pretrained

    model = from_pretrained(model_dir).eval()
    run_data = _run_data(model_dir, run_dir, data_overrides or {})
    measured_data, recorded_data, note = evaluation_data(run_data, model.likelihood)

    from ..data import load_data

    splits = load_data(measured_data, likelihood=model.likelihood)
    if tuple(splits.data_shape) != tuple(model.data_shape):
        raise ZooError(f"the data have shape {tuple(splits.data_shape)}, but the model takes {tuple(model.data_shape)}; check --data")
    test = splits.test
    if len(test) == 0:
        raise ZooError("the test split is empty")

    weights_dir = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    final = weights_dir / f"{name}.safetensors"
    _check_writable(weights_dir, "--weights-dir")  # before measuring, which can take an hour
    from .catalogue import catalogue_path

    target = Path(catalogue) if catalogue is not None else catalogue_path()
    _check_writable(target.parent, "--catalogue")
    if target.exists() and not os.access(target, os.W_OK):
        raise ZooError(f"--catalogue {target}: not writable; nothing was measured")
    data = weights_bytes(model, dtype=getattr(torch, dtype) if dtype else None, extra_metadata={"zoo_name": name})
    shipped = build_model(model.config)
    load_weights(shipped, data, what=name)  # measured below exactly as users will load it
    shipped.eval()
    num_bins = num_bins_of(splits)
    echo(f"measuring {name} on {len(test)} test examples (K={num_samples}) ...")
    x_test, y_test = split_tensor(test), split_labels(shipped, test)
    metrics = measure(shipped, x_test, num_samples=num_samples, seed=seed, batch_size=batch_size, num_bins=num_bins, y=y_test)
    echo(f"convergence check: K={convergence_num_samples}, seed {seed + 1} ...")
    again = measure(shipped, x_test, num_samples=convergence_num_samples, seed=seed + 1, batch_size=batch_size,
                    num_bins=num_bins, y=y_test)
    check_spec = {"split": "test", "first": min(int(check_first), len(test)), "num_samples": int(check_num_samples),
                  "seed": int(seed), "batch_size": int(batch_size)}
    started = time.perf_counter()  # the check exactly as tests/test_zoo.py runs it: data loading included
    check = reproduce_check(shipped, check_spec, measured_data)
    check_seconds = time.perf_counter() - started
    digest, size = hashlib.sha256(data).hexdigest(), len(data)
    try:  # written only now: a long measurement holds no file open, and a killed one leaves none
        remove_stale_temp([weights_dir])
        atomic_write_bytes(final, data)
    except OSError as exc:
        raise ZooError(f"{final}: cannot write the weights ({exc.strerror or exc}); nothing was published") from None

    location = weights_url or _location(final, package)
    meta: dict[str, Any] = {
        "num_params": sum(p.numel() for p in shipped.parameters()),
        "file_size": size,
        "dtype": dtype or "float32",
        "dataset": {
            "name": recorded_data["name"],
            "split": "test",
            "num_examples": len(test),
            "preprocessing": note,
            "data": recorded_data,
        },
        "metrics": {"neg_elbo": metrics["neg_elbo"], "nll": metrics["nll"], "num_samples": int(num_samples),
                    "bits_per_dim": metrics["bits_per_dim"], "num_examples": metrics["num_examples"],
                    "seed": int(seed),
                    "convergence": {"num_samples": int(convergence_num_samples), "seed": int(seed) + 1,
                                    "nll": again["nll"]}},
        "check": {**check_spec, "neg_elbo": check["neg_elbo"], "nll": check["nll"], "seconds": round(check_seconds, 1)},
        "vaezoo_version": vaezoo_version(),
        **{k: v for k, v in card.items() if v is not None},
    }
    if metrics["nll_se"] is not None:
        meta["metrics"]["nll_se"] = metrics["nll_se"]
    if recipe is not None:
        meta["recipe"] = Path(recipe).as_posix()
    meta["training"] = {**training_record(model_dir, run_dir), "hardware": describe_hardware(), **overrides}
    if reference is not None:
        meta["reference"] = dict(reference)
    entry = PretrainedEntry(name=name, config=model.config, weights=location, sha256=digest, meta=meta)

    from .catalogue import read_catalogue, write_catalogue

    entries = read_catalogue(catalogue)
    entries[name] = entry.to_dict()
    written = write_catalogue(entries, catalogue)
    echo(f"wrote {final} ({size:,} bytes, sha256 {digest})")
    from .entry import missing_card_fields
    from .units import entry_unit

    unit = entry_unit(entry)
    se = f" ± {metrics['nll_se']:.3f}" if metrics["nll_se"] is not None else ""
    echo(f"catalogue {written}: {name}  -ELBO {metrics['neg_elbo']:.3f}  NLL {metrics['nll']:.3f}{se} nats, "
         f"{unit.what} (K={num_samples}; K={convergence_num_samples}: {again['nll']:.3f})  "
         f"{metrics['bits_per_dim']:.4f} bits/dim{'' if unit.is_mass else ' (upper bound)'}  [{note}]")
    missing = missing_card_fields(meta)
    if missing:
        echo(f"note: the model card lacks {', '.join(missing)} (built-in entries need them; see --help)")
    if catalogue is None:
        _update_docs(echo)
        total = sum(p.stat().st_size for p in weights_dir.glob("*.safetensors"))
        if total > BUDGET_BYTES:
            echo(f"warning: packaged weights now total {total / 2**20:.1f} MB, over the {BUDGET_BYTES / 2**20:.0f} MB budget "
                 f"(tests/test_zoo.py fails); publish with --dtype float16 or host the file (--weights-url)")
    return entry


# -- pieces -------------------------------------------------------------------------------
def _locate(path: Path) -> tuple[Path, Path | None]:
    """``(model_dir, run_dir or None)`` for a run folder or a model folder (``vaezoo.loading.locate``)."""
    from ..errors import CheckpointError
    from ..loading import locate

    try:
        return locate(path)
    except CheckpointError as exc:
        raise ZooError(str(exc)) from None


def _run_data(model_dir: Path, run_dir: Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The run's ``data:`` section (config.yaml, else the weights' metadata), with overrides on top."""
    section = run_config(run_dir).get("data")
    data: dict[str, Any] = dict(section) if isinstance(section, dict) else {}
    if not data:
        from ..serialization import WEIGHTS_NAME, read_metadata

        from ..evaluation import parse_run_metadata

        raw = read_metadata(model_dir / WEIGHTS_NAME).get("vaezoo_run")
        if raw:
            found = parse_run_metadata(raw, model_dir / WEIGHTS_NAME).get("data")
            data = dict(found) if isinstance(found, dict) else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    if not data.get("name"):
        raise ZooError(f"{model_dir}: cannot tell which data this model was trained on (no run config.yaml); "
                       f"pass --data NAME (and --binarize/--data-root as trained)")
    return data


def _check_writable(folder: Path, flag: str) -> None:
    """Create ``folder`` if needed; ``ZooError`` in one line if files cannot be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(f"{flag} {folder}: cannot create it ({exc.strerror or exc}); nothing was measured") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ZooError(f"{flag} {folder}: not writable; choose a folder you can write to (nothing was measured)")


def _location(file: Path, package: str | None) -> str:
    """``package://pkg/rel/path`` when ``file`` is inside a package (or ``package``), else a file:// URL."""
    file = file.resolve()
    if package is not None:
        try:
            root = Path(str(importlib.resources.files(package))).resolve()
        except ModuleNotFoundError:
            raise ZooError(f"--package {package!r}: cannot be imported; install it (pip install -e .) first") from None
        try:
            rel = file.relative_to(root)
        except ValueError:
            raise ZooError(f"--package {package}: the weights file {file} is not inside that package ({root}); "
                           f"set --weights-dir to a folder inside it") from None
        return f"package://{package}/{rel.as_posix()}"
    folder = file.parent
    while not (folder / "__init__.py").is_file():
        if folder.parent == folder:
            return file.as_uri()
        folder = folder.parent
    parts, top = [folder.name], folder
    while (top.parent / "__init__.py").is_file():
        top = top.parent
        parts.insert(0, top.name)
    return f"package://{'.'.join(parts)}/{file.relative_to(folder).as_posix()}"


def _update_docs(echo: Callable[[str], None]) -> None:
    from .docs import default_docs_path, update

    path = default_docs_path()
    if path.parent.is_dir():
        update(path)
        echo(f"updated {path}")


# -- command line -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vaezoo.zoo.publish",
        description="Publish a trained model as a zoo entry: write its weights, measure them, update the catalogue.",
    )
    p.add_argument("path", metavar="RUN_OR_MODEL_DIR", help="a run folder from 'vaezoo train' (uses RUN/model/) or a model folder")
    p.add_argument("--name", required=True, help="entry name, architecture.tag (e.g. mlp-bernoulli.fashion_mnist)")
    p.add_argument("--recipe", help="the recipe that trained it, e.g. configs/zoo/mlp-bernoulli.fashion_mnist.yaml (must exist)")
    p.add_argument("--dtype", choices=DTYPES, help="store floating-point weights in this precision (default: as trained)")
    p.add_argument("--num-samples", type=int, default=5000, metavar="K", help="importance samples for the test NLL (default: 5000)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="examples per batch (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of all sampling (default: 0)")
    p.add_argument("--check-first", type=int, default=500, metavar="N", help="the check uses the first N test examples (default: 500)")
    p.add_argument("--check-num-samples", type=int, default=100, metavar="K", help="importance samples of the check (default: 100)")
    p.add_argument("--data", dest="data_name", metavar="NAME", help="dataset name, when the folder does not record it")
    p.add_argument("--data-root", metavar="DIR", help="where the dataset lives")
    p.add_argument("--binarize", choices=("dynamic", "static", "none"), help="as the model was trained")
    p.add_argument("--convergence-num-samples", type=int, default=1000, metavar="K",
                   help="importance samples of the convergence check, measured with seed --seed + 1 (default: 1000)")
    p.add_argument("--description", help="model card: one or two sentences saying what the model is")
    p.add_argument("--license", metavar="SPDX", help="model card: SPDX license id of the weights (default: vaezoo's own)")
    p.add_argument("--citation", help="model card: the paper(s) of the architecture and recipe")
    p.add_argument("--reference-nll", type=float, metavar="NATS", help="a published NLL to compare with (same data and unit)")
    p.add_argument("--reference-model", metavar="TEXT", help="the published model, e.g. 'VAE, N(0, I) prior'")
    p.add_argument("--reference-source", metavar="TEXT", help="where it is published (authors, year, title, table)")
    p.add_argument("--epochs", type=int, help="training epochs (default: from the run)")
    p.add_argument("--wall-time", type=float, metavar="SECONDS", help="training wall time (default: from the run's metrics.jsonl)")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads of the training (default: the run's train.num_threads)")
    p.add_argument("--hardware", metavar="TEXT", help="the training machine, e.g. 'AMD EPYC, 2 CPUs' (default: this machine)")
    p.add_argument("--weights-dir", metavar="DIR", help="where to write <name>.safetensors (default: vaezoo/zoo/weights)")
    p.add_argument("--package", metavar="PKG", help="record weights as package://PKG/... (default: detected from --weights-dir)")
    p.add_argument("--weights-url", metavar="URL", help="record this https:// URL instead (upload the written file there)")
    p.add_argument("--catalogue", metavar="FILE", help="catalogue JSON to update (default: vaezoo/zoo/catalogue.json)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 published, 2 user error (one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        publish(
            args.path, name=args.name, recipe=args.recipe, dtype=args.dtype, num_samples=args.num_samples,
            batch_size=args.batch_size, seed=args.seed, check_first=args.check_first,
            check_num_samples=args.check_num_samples,
            data_overrides={"name": args.data_name, "root": args.data_root, "binarize": args.binarize},
            weights_dir=args.weights_dir, weights_url=args.weights_url, package=args.package,
            catalogue=args.catalogue,
            training={"epochs": args.epochs, "wall_time_s": args.wall_time, "threads": args.threads, "hardware": args.hardware},
            description=args.description, license=args.license, citation=args.citation,
            reference={"nll": args.reference_nll, "model": args.reference_model, "source": args.reference_source},
            convergence_num_samples=args.convergence_num_samples,
        )
    except (VaezooError, FileNotFoundError) as exc:
        print(f"publish: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
