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
  vaezoo zoo list                          every pretrained model with its test NLL and bits/dim, grouped by unit
  vaezoo zoo list 'mlp-*'                  those matching a pattern
  vaezoo zoo info mlp-bernoulli.digits     model card, metrics with their unit, weights, sha256, every field
  vaezoo zoo download mlp-bernoulli.digits fetch (or find) the verified weights, print the path
  vaezoo zoo push mlp-bernoulli.digits ORG/NAME   upload it to the Hugging Face Hub (docs/hub.md)

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
    from ..hub import add_push_parser  # light: argparse only until the push runs

    add_push_parser(sub)
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
    if action == "push":
        from ..hub import run_push

        return run_push(args)
    parser = getattr(args, "zoo_parser", None)
    if parser is not None:
        parser.print_help()
    return 0


def _sources() -> dict[str, str]:
    from ..registry import get_registry

    return {name: " and ".join(str(src) for _, src in regs) for name, regs in get_registry().pretrained.items()}


def _list(pattern: str, as_json: bool) -> int:
    from .api import get_entry, list_pretrained
    from .units import entry_unit

    sources = _sources()
    rows, units = [], {}
    for name in list_pretrained(pattern):
        try:
            entry = get_entry(name)
            unit = entry_unit(entry)
        except Exception as exc:  # a broken or clashing entry is shown, not fatal for the listing
            rows.append({"name": name, "error": " ".join(str(exc).split()), "source": sources.get(name)})
            continue
        m, ds = entry.metrics, entry.meta["dataset"]
        units[name] = unit
        rows.append({"name": name, "dataset": ds["name"], "unit": unit.key, "kind": unit.kind, "num_bins": unit.num_bins,
                     "neg_elbo": m["neg_elbo"], "nll": m["nll"], "nll_se": m.get("nll_se"),
                     "num_samples": m["num_samples"], "bits_per_dim": m["bits_per_dim"],
                     "bits_per_dim_is_upper_bound": not unit.is_mass,
                     "num_params": entry.meta["num_params"], "file_size": entry.meta["file_size"],
                     "weights": entry.scheme, "source": sources.get(name)})
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no pretrained models" + (f" match {pattern!r}" if pattern != "*" else ""))
        return 0
    width = max(len(r["name"]) for r in rows)
    good = [r for r in rows if "error" not in r]
    groups = sorted({units[r["name"]] for r in good}, key=lambda u: u.sort_key())
    blocks = []
    for unit in groups:
        members = [r for r in good if units[r["name"]] == unit]
        nll, bits = ("NLL", "BITS/DIM") if unit.is_mass else ("-LOG DENS", "BPD <=" if unit.num_bins else "")
        lines = [_group_title(unit),
                 f"{'NAME':<{width}}  {'DATASET':<14} {'-ELBO':>9} {nll:>9} {'± SE':>6} {'K':>5} {bits:>9} "
                 f"{'PARAMS':>10} {'SIZE':>9}  WEIGHTS"]
        for r in members:
            se = f"{r['nll_se']:>6.2f}" if r["nll_se"] is not None else f"{'-':>6}"
            bpd = f"{r['bits_per_dim']:>9.4f}" if (unit.is_mass or unit.num_bins) else f"{'':>9}"
            lines.append(f"{r['name']:<{width}}  {r['dataset']:<14} {r['neg_elbo']:>9.2f} {r['nll']:>9.2f} {se} "
                         f"{r['num_samples']:>5} {bpd} {r['num_params']:>10,} {_size(r['file_size']):>9}  {r['weights']}")
        blocks.append("\n".join(lines))
    broken = [r for r in rows if "error" in r]
    if broken:
        blocks.append("\n".join(["entries that cannot be used:"]
                                 + [f"{r['name']:<{width}}  ERROR: {r['error']}" for r in broken]))
    print("\n\n".join(blocks))
    return 0


def _group_title(unit: Any) -> str:
    """The heading of one ``zoo list`` group: what its numbers are, so that no column mixes kinds."""
    if unit.is_mass:
        return f"== {unit.title}: NLL in nats per example, lower is better; comparable within this group only"
    if unit.num_bins:
        return (f"== {unit.title}: -log density in nats per example (a density, not a mass); "
                f"BPD <= is an upper bound on the {unit.grid} bits/dim (uniform dequantization: + D ln {unit.num_bins})")
    return f"== {unit.title}: -log density in nats per example (a density, not a mass); no bits/dim bound"


def _info(name: str, as_json: bool) -> int:
    from .api import get_entry
    from .download import cache_path
    from .units import entry_unit

    entry = get_entry(name)
    data = entry.to_dict()
    data["source"] = _sources().get(name)
    if entry.scheme != "package":
        cached = cache_path(entry)
        data["cached"] = str(cached) if cached.is_file() else None
    unit = entry_unit(entry)
    if as_json:
        data["unit"] = {"key": unit.key, "kind": unit.kind, "num_bins": unit.num_bins, "what": unit.what}
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(f"{entry.name}   ({data['source']})")
    for line in card_lines(entry, unit):
        print(f"  {line}")
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
    print("  every recorded field:")
    order = ["metrics", "check", "dataset", "training", "reference", "recipe", "num_params", "file_size", "dtype"]
    meta = {k: entry.meta[k] for k in [*order, *sorted(entry.meta)] if k in entry.meta}
    for key, value in _flatten(meta):
        print(f"    {key + ':':<30} {value}")
    print(f"  load with: vaezoo.from_pretrained({entry.name!r})")
    return 0


def card_lines(entry: Any, unit: Any) -> list[str]:
    """The model card of ``entry`` as readable lines: what it is, its numbers with their unit, how it was made."""
    from .docs import training_summary
    from .units import coarser_levels, levels_note

    meta, m = entry.meta, entry.metrics
    missing = "not recorded"
    se = f" ± {m['nll_se']:.2f} (standard error over the test examples)" if m.get("nll_se") is not None else ""
    what = f"NLL, a probability {unit.what}" if unit.is_mass else "-log density (a density value, not a probability mass)"
    lines = [
        f"description: {meta.get('description', missing)}",
        f"license:     {meta.get('license', missing)}",
        f"citation:    {meta.get('citation', missing)}",
        f"result:      {m['nll']:.2f}{se} nats per example: {what}; K={m['num_samples']}, "
        f"{m['num_examples']} {meta['dataset']['split']} examples",
    ]
    conv = m.get("convergence")
    lines.append(f"convergence: K={conv['num_samples']} (seed {conv['seed']}): {conv['nll']:.2f}, "
                 f"{conv['nll'] - m['nll']:+.2f} against K={m['num_samples']}" if conv else f"convergence: {missing}")
    if unit.is_mass:
        lines.append(f"bits/dim:    {m['bits_per_dim']:.4f}")
    elif unit.num_bins:
        lines.append(f"bits/dim:    <= {m['bits_per_dim']:.4f}, an upper bound on the {unit.grid} bins "
                     f"(uniform dequantization: + D ln {unit.num_bins})")
        levels = coarser_levels(unit, meta["dataset"]["data"])
        if levels is not None:
            lines.append(f"             <= {m['bits_per_dim']:.4f} on the data's {levels} grey levels too: "
                         f"{levels_note(unit, levels)}")
    else:
        lines.append("bits/dim:    no bound (the test data were not dequantized)")
    ref = meta.get("reference")
    if ref:
        lines.append(f"reference:   {ref['nll']:.2f} nats, {ref['model']} ({ref['source']}); "
                     f"ours {m['nll'] - ref['nll']:+.2f}")
    lines += [
        f"data:        {meta['dataset']['name']}, {meta['dataset']['preprocessing']}",
        f"training:    {training_summary(meta.get('training', {}))}",
        f"recipe:      {meta.get('recipe', missing)}",
        f"vaezoo:      {meta.get('vaezoo_version', missing)}",
    ]
    return lines


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
