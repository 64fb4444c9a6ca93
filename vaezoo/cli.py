"""The ``vaezoo`` command line (also ``python -m vaezoo``).

Commands: ``train``, ``eval``, ``compare``, ``sample``, ``list``, ``describe``, ``plugins`` and ``zoo`` (``vaezoo.zoo.cli``). Imports are lazy so that
``vaezoo --help`` does not load torch. User errors (bad config, missing files, unknown
names) print one line ``vaezoo: error: ...`` on stderr and exit with status 2; a diverged
training run exits with status 1; an I/O failure (disk full, read-only, permission) prints
one line naming the path and exits with status 3; everything else is a bug and shows its
traceback.
vaezoo's own warnings (plugin problems, data notes) print as one line ``vaezoo: warning: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .registry import KINDS  # light: no torch

PROG = "vaezoo"

# Exit status (docs/cli.md).
EXIT_OK = 0
EXIT_DIVERGED = 1  # training stopped: the loss or the weights became NaN/infinite
EXIT_USER_ERROR = 2  # a mistake in the command, the config or the files named
EXIT_IO_ERROR = 3  # the system refused: disk full, read-only file system, permission, vanished folder
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE, as a shell reports it)

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


class _Parser(argparse.ArgumentParser):
    """argparse with vaezoo's one-line errors: ``vaezoo: error: <what> (see 'vaezoo train --help')``."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        print(f"{PROG}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no heavy imports)."""
    parser = _Parser(
        prog=PROG,
        description="Variational autoencoders in which every part is a plugin.",
        epilog="Run 'vaezoo COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    p.add_argument(
        "--data",
        metavar="NAME",
        default=None,
        help="evaluate on this dataset (digits, mnist, ...) instead of the one the model was trained on; "
        "needed for a model folder that does not record its data",
    )
    p.add_argument(
        "--data-root", metavar="DIR", default=None, help="where to read the data from (sets data.root)"
    )
    p.add_argument(
        "--binarize",
        choices=("dynamic", "static", "none"),
        default=None,
        help="binarize the data (default: as in training; as the likelihood wants when the model does not record "
        "its data)",
    )
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
    p.add_argument("--data-root", metavar="DIR", default=None, help="where to read the data from (sets data.root for every model)")
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

    from .zoo.cli import add_zoo_parser  # light: argparse only until a zoo action runs

    add_zoo_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (``EXIT_*``: 0 ok, 1 diverged, 2 user error, 3 I/O error)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # `train CONFIG --out DIR key=value`: overrides may follow options
        stray = [e for e in extra if e.startswith("-") or "=" not in e or getattr(args, "command", None) != "train"]
        if stray:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
        args.overrides = [*args.overrides, *extra]
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        with _one_line_warnings():
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `vaezoo zoo list | head -3`: the reader has gone, say nothing more
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        code = _user_error_code(exc)
        if code is None:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return code


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Show vaezoo's own warnings (plugin problems, data notes) as ``vaezoo: warning: ...`` lines."""
    import warnings

    package = str(Path(__file__).resolve().parent)
    with warnings.catch_warnings():  # restores warnings.showwarning afterwards
        original = warnings.showwarning

        def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
            from .plugins import PluginWarning

            if issubclass(category, PluginWarning) or (
                issubclass(category, UserWarning) and str(Path(filename).resolve()).startswith(package)
            ):
                print(f"{PROG}: warning: {_one_line(message)}", file=file or sys.stderr)
            else:
                original(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _user_error_code(exc: BaseException) -> int | None:
    from .errors import VaezooError

    if type(exc).__name__ == "NonFiniteLossError":
        return EXIT_DIVERGED
    if isinstance(exc, VaezooError):
        return EXIT_USER_ERROR
    if isinstance(exc, OSError):  # the system refused: disk full, read-only, permission, a vanished folder
        return EXIT_IO_ERROR
    module = type(exc).__module__ or ""
    if module.startswith("omegaconf"):
        return EXIT_USER_ERROR
    return None


# What the system said, and what to do about it.
_IO_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EROFS: "write to a folder on a writable file system",
    errno.EACCES: "check the permissions, or write elsewhere",
    errno.EPERM: "check the permissions, or write elsewhere",
    errno.ENOENT: "the file or folder is gone (moved or deleted while vaezoo ran?)",
}


def _one_line(exc: BaseException) -> str:
    from .errors import VaezooError

    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, VaezooError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        hint = _IO_HINTS.get(exc.errno or 0)
        text = f"{where}{exc.strerror}" + (f" ({hint})" if hint else "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(exc).__name__


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _version() -> str:
    from . import __version__

    return __version__


# -- train --------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config, read_yaml
    from .errors import MissingFileError

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not config.endswith((".yaml", ".yml")):
        overrides.insert(0, config)  # `vaezoo train train.epochs=5`: no CONFIG, only overrides
        config = None
    if config is not None and not config.endswith((".yaml", ".yml")) and not Path(config).exists():
        raise MissingFileError(f"config file {config!r} not found (an override is written key.path=value)")
    if args.out:
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
        if args.out:
            raise _usage_error("train: --out cannot move a resumed run; it continues in RUN_DIR")
        cfg = load_config(None, overrides, base=read_yaml(run_dir / "config.yaml"))
    else:
        cfg = load_config(config, overrides)
        if config is not None and not cfg.log.name:
            cfg.log.name = _stem(config)
    from .training import train

    train(cfg, resume=args.resume)
    return 0


def _stem(path: str) -> str:
    return Path(path).stem


def _usage_error(message: str) -> Exception:
    from .errors import ConfigError

    return ConfigError(message)


# -- eval / sample ----------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .evaluation import (
        dataset_tensors,
        evaluate,
        latent_figures,
        load_model,
        load_split,
        num_bins_for,
        run_data_config,
    )

    for name in ("num_samples", "batch_size", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1, got {value}")
    device = _device(args.device)
    model = load_model(args.run_dir, device=device)
    k = args.num_samples or _run_eval_samples(args.run_dir) or 1000
    data = run_data_config(args.run_dir, required=args.data is None) or {}
    if args.data is not None and args.data != data.get("name"):
        data = {**data, "name": args.data, "root": None}  # the recorded root belongs to the recorded data
    if args.data_root is not None:
        data["root"] = args.data_root
    if args.binarize is not None:
        data["binarize"] = args.binarize
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

            warnings.warn(f"the latent figures were not written: {_one_line(exc)}; pass --figures DIR", stacklevel=1)
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


def _add_output_options(p: argparse.ArgumentParser, bar: str) -> None:
    """``--json`` and ``--progress``/``--no-progress``."""
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"{bar} on stderr (default: only when stderr is a terminal and CI is not set)")


def cmd_compare(args: argparse.Namespace) -> int:
    from .comparison import compare, format_table, load_models_and_data
    from .errors import ConfigError

    for name in ("num_samples", "batch_size", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1, got {value}")
    models, x, y, num_bins, unit = load_models_and_data(args.models, split=args.split, limit=args.limit,
                                                        device=_device(args.device), data_root=args.data_root)
    result = compare(models, x, num_samples=args.num_samples, seed=args.seed, batch_size=args.batch_size,
                     num_bins=num_bins, y=y, progress=args.progress)
    print(json.dumps({**result, "unit": unit}) if args.json else format_table(result, unit))
    return 0


def _device(name: str) -> str:
    """``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine."""
    import re

    from .errors import ConfigError

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


def _run_eval_samples(path: str) -> int | None:
    cfg_path = Path(path) / "config.yaml"
    if cfg_path.is_file():
        from .config import read_yaml

        value = (read_yaml(cfg_path).get("eval") or {}).get("num_samples")
        return int(value) if isinstance(value, int) else None
    return None


def cmd_sample(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .evaluation import MAX_GRID_IMAGES, check_grid_size, load_model, sample_grid

    if args.n < 1:
        raise ConfigError(f"--n: must be >= 1, got {args.n}")
    if args.n > MAX_GRID_IMAGES:  # refused before loading anything
        raise ConfigError(f"--n: {args.n:,} samples is too many for one grid; at most {MAX_GRID_IMAGES:,} are allowed")
    if not args.out.lower().endswith(".png"):
        raise ConfigError(f"--out: expected a .png file name, got {args.out!r}")
    model = load_model(args.run_dir, device=_device(args.device))
    check_grid_size(model, args.n, "--n")  # and at most 1 GiB of decoder outputs for this model
    path = sample_grid(model, args.n, args.out, mean=not args.draw, seed=args.seed, y=args.label)
    what = f" of class {args.label}" if args.label is not None else ""
    print(f"wrote {args.n} {'samples x ~ p(x|z)' if args.draw else 'decoder means'}{what} to {path}")
    return 0


# -- list / plugins ---------------------------------------------------------------------------
def _registry() -> tuple[Any, list[str]]:
    """The registry, with plugin warnings captured (a broken plugin must not break the CLI)."""
    import warnings

    from .registry import get_registry

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = get_registry()
    return registry, [str(w.message) for w in caught]


def cmd_list(args: argparse.Namespace) -> int:
    registry, problems = _registry()
    kinds = [args.kind] if args.kind else list(KINDS)
    if args.params:
        _print_descriptions(registry, {k: _by_name(registry, k) for k in kinds}, args.json)
        _print_warnings(problems)
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
    _print_warnings(problems)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from .kinds import TABLE

    kind = {k.plural: k.name for k in TABLE}.get(args.kind, args.kind)  # `describe priors` too
    registry, problems = _registry()
    names = _by_name(registry, kind)  # an unknown kind: one line with a suggestion
    if args.name:
        registry.get(kind, args.name)  # an unknown name too, before any output
    _print_descriptions(registry, {kind: [args.name] if args.name else names}, args.json)
    _print_warnings(problems)
    return 0


def _by_name(registry: Any, kind: str) -> list[str]:
    """The qualified names of ``kind``, sorted by plain name."""
    registry.names(kind)  # checks the kind
    return sorted(registry.qualified_names(kind), key=lambda q: (q.partition("/")[2], q))


def _print_descriptions(registry: Any, names: dict[str, list[str]], as_json: bool) -> None:
    """``vaezoo describe`` / ``list --params``: each component's parameters (a broken plugin says why)."""
    from .describe import describe, render_text
    from .errors import VaezooError

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
                out[kind].append({"kind": kind, "name": name, "error": _one_line(exc)})
                blocks.append(f"{kind} {name}  (cannot describe it: {_one_line(exc)})")
                continue
            out[kind].append(d.to_dict())
            blocks.append(render_text(d))
    print(json.dumps(out) if as_json else "\n\n".join(blocks))


def _print_warnings(problems: list[str]) -> None:
    for message in problems:
        print(f"{PROG}: warning: {_one_line(Exception(message))}", file=sys.stderr)


def _discover_all() -> tuple[Any, list[str]]:
    """A fresh discovery with strict mode off: every plugin's problem is collected, none is raised."""
    import warnings

    from .plugins import discover

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = discover(strict=False)
    return registry, [str(w.message) for w in caught]


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import strict_mode

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
        from .plugins import STRICT_ENV

        print(f"{STRICT_ENV} is set: each problem above stops the other commands")
    return 0
