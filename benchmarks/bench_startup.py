"""Start-up cost: ``import vaezoo`` and plugin discovery on top of ``import torch``; ``vaezoo --help``.

Every measurement runs in a fresh interpreter (``sys.executable``), repeated ``--repeats``
times; the table gives medians. Inside the fresh interpreter the snippet times
``import torch``, then ``import vaezoo``, then the first registry use
(``vaezoo.list_components()``: entry-point scan, built-in and third-party plugins) and
``vaezoo.build_model`` of the MLP VAE. ``vaezoo --help`` and ``python -c pass`` are timed
from the outside (whole process, wall clock). With pythae installed, ``import pythae``
(after torch) is timed the same way for comparison.

    python benchmarks/bench_startup.py
    python benchmarks/bench_startup.py --quick     # 3 repeats
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import common

SNIPPET = r"""
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import vaezoo
t2 = time.perf_counter()
vaezoo.list_components()
t3 = time.perf_counter()
vaezoo.build_model({"data_shape": [1, 28, 28], "latent_dim": 32, "encoder": {"name": "mlp", "hidden": [512, 256]},
                    "decoder": {"name": "mlp", "hidden": [256, 512]}, "prior": "normal", "likelihood": "bernoulli"})
t4 = time.perf_counter()
print(json.dumps({"torch": t1 - t0, "import": t2 - t1, "discovery": t3 - t2, "build": t4 - t3}))
"""

PYTHAE = r"""
import json, time
import torch
t1 = time.perf_counter()
import pythae.models, pythae.trainers
t2 = time.perf_counter()
print(json.dumps({"pythae": t2 - t1}))
"""


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def inside(code: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--no-pythae", action="store_true")
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 3
    cli = shutil.which("vaezoo", path=str(Path(sys.executable).parent)) or "vaezoo"
    has_pythae = False
    if not args.no_pythae:
        has_pythae = subprocess.run([sys.executable, "-c", "import pythae"], capture_output=True).returncode == 0

    runs: dict[str, list[float]] = {}
    inside(SNIPPET)  # warm the file system cache and __pycache__ once
    for _ in range(args.repeats):
        for key, value in inside(SNIPPET).items():
            runs.setdefault(key, []).append(value)
        runs.setdefault("overhead", []).append(runs["import"][-1] + runs["discovery"][-1])
        runs.setdefault("python", []).append(wall([sys.executable, "-c", "pass"]))
        runs.setdefault("python_torch", []).append(wall([sys.executable, "-c", "import torch"]))
        runs.setdefault("help", []).append(wall([cli, "--help"]))
        if has_pythae:
            runs.setdefault("pythae", []).append(inside(PYTHAE)["pythae"])
    med = {k: common.median(v) * 1000 for k, v in runs.items()}
    rows = [
        ["`import torch` (inside a fresh interpreter)", f"{med['torch']:.0f}", ""],
        ["`import vaezoo` after torch", f"{med['import']:.1f}", ""],
        ["plugin discovery (first `vaezoo.list_components()`)", f"{med['discovery']:.1f}", ""],
        ["**import + discovery on top of torch**", f"**{med['overhead']:.1f}**",
         f"< 60 ms: {common.verdict(med['overhead'], 60.0)}"],
        ["`vaezoo.build_model` (MLP VAE, first call)", f"{med['build']:.1f}", ""],
        ["`python -c pass` (whole process)", f"{med['python']:.0f}", ""],
        ["`python -c 'import torch'` (whole process)", f"{med['python_torch']:.0f}", ""],
        ["`vaezoo --help` (whole process)", f"{med['help']:.0f}", ""],
    ]
    if has_pythae:
        rows.append(["`import pythae.models, pythae.trainers` after torch (for comparison)", f"{med['pythae']:.0f}", ""])
    lines = [
        "## Start-up",
        "",
        *common.machine_lines(1),
        "",
        f"Medians of {args.repeats} fresh processes.",
        "",
        common.markdown_table(["what", "ms", "target"], rows),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
