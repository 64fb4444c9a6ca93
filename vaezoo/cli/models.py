"""The commands that train, measure and sample models: ``train``, ``eval``, ``compare``, ``sample``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .exits import one_line

TRAIN_EPILOG = """\
examples:
  vaezoo train                                   the default recipe (digits, ~1 minute on a CPU)
  vaezoo train configs/digits_vamp.yaml train.epochs=20
  vaezoo train model.prior.name=vamp model.latent_dim=2 --out runs/vamp2d
  vaezoo train --resume runs/digits-20250101-120000 train.epochs=200
  torchrun --nproc_per_node=2 -m vaezoo train train.device=cpu

overrides are key.path=value (values parsed as YAML); see docs/configs.md for every key.
"""
DEVICE_HELP = "auto, cpu, cuda or cuda:N (default: cpu; auto: CUDA when available)"



def add_parsers(sub: Any) -> None:
    """The four commands' parsers (no heavy imports)."""
    p = sub.add_parser(
        "train",
        help="train a model from a recipe (default: digits)",
        description="Train a VAE. "
        "With no CONFIG the embedded default recipe (identical to configs/digits.yaml) is used.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", metavar="CONFIG", help="a YAML recipe (e.g. configs/digits.yaml); optional")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.epochs=5 model.prior.name=vamp"
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument(
        "--out", metavar="DIR", help="run folder (default: log.root/<name>-<timestamp>); same as log.dir=DIR"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "eval",
        help="ELBO, importance-sampled NLL and bits/dim of a trained model",
        description="Evaluate a run folder (or model folder) on its data's test or validation split.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder from 'vaezoo train', or a model folder")
    _add_measurement_options(p, None, "eval.num_samples of the run")
    _add_data_options(p, "")
    _add_output_options(p, "a progress bar")
    p.add_argument(
        "--figures",
        metavar="DIR",
        default=None,
        help="for a 2-d latent space, where to write latent_scatter.png and latent_manifold.png "
        "(default: RUN_DIR when it is a run folder)",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "compare",
        help="paired NLL comparison of models on the same examples",
        description="Measure several models on the same examples with the same seed: each one's NLL, and each "
        "one's mean per-example difference to the first with the standard error of those differences "
        "(much smaller than either model's own, which is mostly the spread between examples).",
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help="run folders, model folders or zoo names; the first is the reference")
    _add_measurement_options(p, 1000, "1000")
    _add_data_options(p, " for every model")
    _add_output_options(p, "a progress bar per model")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "sample",
        help="decode z ~ p(z) from a trained model into a PNG grid",
        description="Draw z ~ p(z) and write the decoder's means (like a run's samples.png), or with --draw "
        "samples x ~ p(x|z), as a PNG grid.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder from 'vaezoo train', or a model folder")
    p.add_argument("--n", type=int, default=64, help="number of samples (default: 64)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="where to write the grid")
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--mean", dest="draw", action="store_false", default=False, help="the decoder's means E[x|z] (the default)"
    )
    what.add_argument("--draw", dest="draw", action="store_true", help="a sample x ~ p(x|z) per z instead of its mean")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    p.add_argument("--label", type=int, default=None, metavar="N",
                   help="a class-conditional model (model.condition): generate class N (default: every class in turn, one per column)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.set_defaults(func=cmd_sample)



# -- train --------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from ..config import load_config, read_yaml
    from ..errors import MissingFileError

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not config.endswith((".yaml", ".yml")):
        overrides.insert(0, config)  # `vaezoo train train.epochs=5`: no CONFIG, only overrides
        config = None
    if config is not None and not config.endswith((".yaml", ".yml")) and not Path(config).exists():
        raise MissingFileError(f"config file {config!r} not found (an override is written key.path=value)")
    if args.out is not None:
        if not args.out.strip():
            raise _usage_error("--out: expected a folder for the run, got an empty name")
        overrides.append(f"log.dir={args.out}")
    if args.resume:
        if config is not None:
            raise _usage_error(
                "train: give either CONFIG or --resume RUN_DIR, not both (the run's own config.yaml is used)"
            )
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            raise MissingFileError(f"--resume {run_dir}: no such folder; expected a run folder written by vaezoo train")
        if not (run_dir / "config.yaml").is_file():
            raise MissingFileError(
                f"--resume {run_dir}: no config.yaml there; expected a run folder written by vaezoo train"
            )
        if args.out is not None:
            raise _usage_error("train: --out cannot move a resumed run; it continues in RUN_DIR")
        cfg = load_config(None, overrides, base=read_yaml(run_dir / "config.yaml"))
    else:
        cfg = load_config(config, overrides)
        if config is not None and not cfg.log.name:
            cfg.log.name = _stem(config)
    from ..training import train

    train(cfg, resume=args.resume)
    return 0


def _stem(path: str) -> str:
    return Path(path).stem


def _usage_error(message: str) -> Exception:
    from ..errors import ConfigError

    return ConfigError(message)


# -- eval / sample ----------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation import (
        dataset_tensors,
        evaluate,
        latent_figures,
        load_model,
        load_split,
        num_bins_for,
        run_data_config,
        with_overrides,
    )

    _check_measurement_args(args)
    device = _device(args.device)
    model = load_model(args.run_dir, device=device)
    k = args.num_samples or _run_eval_samples(args.run_dir) or 1000
    data = with_overrides(run_data_config(args.run_dir, required=args.data is None), name=args.data,
                          root=args.data_root, binarize=args.binarize)
    splits, dataset = load_split(data, model, args.split)
    x, y = dataset_tensors(dataset)
    if args.limit:
        x, y = x[: args.limit], (y[: args.limit] if y is not None else None)
    scores = evaluate(
        model, x, num_samples=k, batch_size=args.batch_size, num_bins=num_bins_for(splits), seed=args.seed,
        progress=args.progress, desc=f"{args.split} (K={k})", y=y if getattr(model, "condition", None) is not None else None,
    )
    scores["split"] = args.split
    figures = args.figures or (args.run_dir if (Path(args.run_dir) / "config.yaml").is_file() else None)
    if figures and getattr(model, "latent_dim", None) == 2:
        try:
            paths = latent_figures(model, x, y, figures, classes=getattr(splits, "classes", None))
        except OSError as exc:
            if args.figures:  # asked for: the failure is the command's
                raise
            import warnings

            warnings.warn(f"the latent figures were not written: {one_line(exc)}; pass --figures DIR", stacklevel=1)
            paths = []
        scores["figures"] = [str(p) for p in paths]
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{args.split}: {scores['num_examples']} examples")
        rows = [
            ("ELBO", f"{scores['elbo']:.4f} nats"),
            (f"NLL (K={k})", f"{scores['nll']:.4f} nats"),
            ("bits/dim", f"{scores['bits_per_dim']:.4f}"),
            *(("figure", path) for path in scores.get("figures", [])),
        ]
        for label, value in rows:
            print(f"  {label:<14}{value}")
    return 0


def _add_measurement_options(p: argparse.ArgumentParser, k_default: int | None, k_default_text: str) -> None:
    """``-k``, ``--split``, ``--batch-size``, ``--limit``, ``--seed``, ``--device``: how ``eval`` and ``compare`` measure."""
    p.add_argument("--num-samples", "-k", type=int, default=k_default, metavar="K",
                   help=f"importance samples per example (default: {k_default_text})")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which split to measure (default: test)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="examples per batch (default: 256)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N examples of the split (a quick look)")
    p.add_argument("--seed", type=int, default=0, help="seed of the importance samples (default: 0)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def _add_data_options(p: argparse.ArgumentParser, every: str) -> None:
    """``--data``, ``--data-root``, ``--binarize``: which data ``eval`` and ``compare`` measure on."""
    p.add_argument("--data", metavar="NAME", default=None,
                   help=f"measure on this dataset (digits, mnist, ...){every} instead of the one it was trained on; "
                   "needed for a model folder that does not record its data")
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help=f"where to read the data from (sets data.root{every})")
    p.add_argument("--binarize", choices=("dynamic", "static", "none"), default=None,
                   help=f"binarize the data{every} (default: as in training; as the likelihood wants when the model "
                   "does not record its data)")


def _add_output_options(p: argparse.ArgumentParser, bar: str) -> None:
    """``--json`` and ``--progress``/``--no-progress``."""
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"{bar} on stderr (default: only when stderr is a terminal and CI is not set)")


def cmd_compare(args: argparse.Namespace) -> int:
    from ..comparison import compare, format_table, load_models_and_data

    _check_measurement_args(args)
    models, x, y, num_bins, unit = load_models_and_data(args.models, split=args.split, limit=args.limit,
                                                        device=_device(args.device), data=args.data,
                                                        data_root=args.data_root, binarize=args.binarize)
    result = compare(models, x, num_samples=args.num_samples, seed=args.seed, batch_size=args.batch_size,
                     num_bins=num_bins, y=y, progress=args.progress)
    print(json.dumps({**result, "unit": unit}) if args.json else format_table(result, unit))
    return 0


def _device(name: str) -> str:
    """``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine."""
    import re

    from ..errors import ConfigError

    value = name.strip().lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise ConfigError(f"--device: {name!r} is not a device; use auto, cpu, cuda or cuda:N")
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device: {name!r} was asked for, but CUDA is not available here; use --device cpu")
        index = int(value.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device: {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
    return value


def _check_measurement_args(args: argparse.Namespace) -> None:
    """One-line ``ConfigError`` for a count below 1 or a seed out of range (before anything is loaded)."""
    from ..errors import ConfigError

    for name in ("num_samples", "batch_size", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1, got {value}")
    _check_seed(args.seed)


def _check_seed(seed: int | None) -> None:
    from ..errors import ConfigError
    from ..validation import SEED_MAX

    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"--seed: expected a seed in 0..2**63-1, got {seed}")


def _run_eval_samples(path: str) -> int | None:
    """The run's ``eval.num_samples`` (None when the folder has no run config or it sets none)."""
    cfg_path = Path(path) / "config.yaml"
    if cfg_path.is_file():
        from ..config import read_yaml
        from ..errors import ConfigError

        value = (read_yaml(cfg_path).get("eval") or {}).get("num_samples")
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{cfg_path}: eval.num_samples: expected an integer >= 1, got {value!r} (or give -k K)")
        return value
    return None


def cmd_sample(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..evaluation import MAX_GRID_IMAGES, check_grid_size, load_model, sample_grid

    if args.n < 1:
        raise ConfigError(f"--n: must be >= 1, got {args.n}")
    if args.n > MAX_GRID_IMAGES:  # refused before loading anything
        raise ConfigError(f"--n: {args.n:,} samples is too many for one grid; at most {MAX_GRID_IMAGES:,} are allowed")
    if not args.out.lower().endswith(".png"):
        raise ConfigError(f"--out: expected a .png file name, got {args.out!r}")
    _check_seed(args.seed)
    model = load_model(args.run_dir, device=_device(args.device))
    check_grid_size(model, args.n, "--n")  # and at most 1 GiB of decoder outputs for this model
    path = sample_grid(model, args.n, args.out, mean=not args.draw, seed=args.seed, y=args.label)
    what = f" of class {args.label}" if args.label is not None else ""
    print(f"wrote {args.n} {'samples x ~ p(x|z)' if args.draw else 'decoder means'}{what} to {path}")
    return 0

