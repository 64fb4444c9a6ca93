"""``vaezoo zoo list|info|download``: the zoo on the command line.

The main CLI calls ``add_zoo_parser(subparsers)`` and dispatches to ``run_zoo(args)``
(also set as ``args.func``). User errors raise ``VaezooError`` subclasses; the main CLI
prints them as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

ZOO_EPILOG = """\
examples:
  vaezoo zoo list                          every pretrained model with its test NLL and bits/dim
  vaezoo zoo list 'mlp-*'                  those matching a pattern
  vaezoo zoo info mlp-bernoulli.digits     config, weights, sha256, metrics, check, training
  vaezoo zoo download mlp-bernoulli.digits fetch (or find) the verified weights, print the path

load one in Python with vaezoo.from_pretrained("mlp-bernoulli.digits"); see docs/zoo.md.
"""


def add_zoo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``zoo`` (with ``list``, ``info``, ``download``) to the main CLI's subparsers."""
    p = subparsers.add_parser(
        "zoo", help="pretrained models: list, info, download",
        description="Pretrained vaezoo models: safetensors weights verified by their full sha256, with reproducible metrics.",
        epilog=ZOO_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    q = sub.add_parser("list", help="list pretrained models", description="List the registered pretrained models.")
    q.add_argument("pattern", nargs="?", default="*", metavar="PATTERN", help="shell-style pattern (default: *)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q = sub.add_parser("info", help="everything recorded about one model", description="Show an entry: weights, sha256 and all meta.")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--json", action="store_true", help="print the entry as JSON")
    q = sub.add_parser("download", help="fetch a model's weights into the cache and print the path",
                       description="Fetch (or find) a model's weights, verify the full sha256, print the local path.")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_zoo, zoo_parser=p)
    return p


def run_zoo(args: argparse.Namespace) -> int:
    """Run ``vaezoo zoo ACTION``; returns the exit status."""
    action = getattr(args, "zoo_command", None)
    if action == "list":
        return _list(args.pattern, args.json)
    if action == "info":
        return _info(args.name, args.json)
    if action == "download":
        return _download(args.name, not args.no_progress)
    parser = getattr(args, "zoo_parser", None)
    if parser is not None:
        parser.print_help()
    return 0


def _sources() -> dict[str, str]:
    from ..registry import get_registry

    return {name: " and ".join(str(src) for _, src in regs) for name, regs in get_registry().pretrained.items()}


def _list(pattern: str, as_json: bool) -> int:
    from .api import get_entry, list_pretrained

    sources = _sources()
    rows = []
    for name in list_pretrained(pattern):
        try:
            entry = get_entry(name)
        except Exception as exc:  # a broken or clashing entry is shown, not fatal for the listing
            rows.append({"name": name, "error": " ".join(str(exc).split()), "source": sources.get(name)})
            continue
        m, ds = entry.metrics, entry.meta["dataset"]
        rows.append({"name": name, "dataset": ds["name"], "neg_elbo": m["neg_elbo"], "nll": m["nll"],
                     "num_samples": m["num_samples"], "bits_per_dim": m["bits_per_dim"],
                     "num_params": entry.meta["num_params"], "file_size": entry.meta["file_size"],
                     "weights": entry.scheme, "source": sources.get(name)})
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no pretrained models" + (f" match {pattern!r}" if pattern != "*" else ""))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'NAME':<{width}}  {'DATASET':<14} {'-ELBO':>9} {'NLL':>9} {'K':>5} {'BITS/DIM':>9} {'PARAMS':>10} {'SIZE':>9}  WEIGHTS")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<{width}}  ERROR: {r['error']}")
            continue
        print(f"{r['name']:<{width}}  {r['dataset']:<14} {r['neg_elbo']:>9.2f} {r['nll']:>9.2f} {r['num_samples']:>5} "
              f"{r['bits_per_dim']:>9.4f} {r['num_params']:>10,} {_size(r['file_size']):>9}  {r['weights']}")
    return 0


def _info(name: str, as_json: bool) -> int:
    from .api import get_entry
    from .download import cache_path

    entry = get_entry(name)
    data = entry.to_dict()
    data["source"] = _sources().get(name)
    if entry.scheme != "package":
        cached = cache_path(entry)
        data["cached"] = str(cached) if cached.is_file() else None
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(f"{entry.name}   ({data['source']})")
    print(f"  weights:  {entry.weights}")
    print(f"  sha256:   {entry.sha256}")
    if "cached" in data:
        print(f"  cached:   {data['cached'] or '(not downloaded yet)'}")
    cfg = entry.config
    parts = ", ".join(
        f"{k} {v['name']}" if isinstance(v, dict) and "name" in v else f"{k} {v}"
        for k, v in cfg.items() if k not in ("architecture", "data_shape", "objective")
    )
    print(f"  model:    architecture {cfg.get('architecture', 'vae')}: {parts}, data_shape {cfg.get('data_shape')}")
    order = ["metrics", "check", "dataset", "training", "recipe", "num_params", "file_size", "dtype"]
    meta = {k: entry.meta[k] for k in [*order, *sorted(entry.meta)] if k in entry.meta}
    for key, value in _flatten(meta):
        print(f"  {key + ':':<30} {value}")
    print(f"  load with: vaezoo.from_pretrained({entry.name!r})")
    return 0


def _download(name: str, progress: bool) -> int:
    from .api import download

    print(download(name, progress=progress))
    return 0


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out = []
        for key in value:
            out += _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, float):
        value = f"{value:.6g}"
    return [(prefix, value)]


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} kB"


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - `python -m vaezoo.zoo.cli`, before wiring
    parser = argparse.ArgumentParser(prog="vaezoo")
    add_zoo_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    if getattr(args, "command", None) != "zoo":
        parser.print_help()
        return 0
    from ..errors import VaezooError

    try:
        return run_zoo(args)
    except VaezooError as exc:
        print(f"vaezoo: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
