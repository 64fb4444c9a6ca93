"""Where a training step's time goes: ``torch.profiler`` self CPU time per step, by operator,
for the bare loop and vaezoo's trainer (eager and compiled) on the MLP workload.

Each contender runs one warm-up epoch on the first ``--limit`` images, then one profiled
epoch; the table gives milliseconds per step (self time, so nothing is counted twice) of
the matrix products, the optimizer and the largest other operators. Profiling adds its own
overhead: read the shares, and take the times per epoch from ``bench_train.py``.

    python benchmarks/profile_step.py
    python benchmarks/profile_step.py --threads 2 --top 15
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import bench_train
import common

MATMUL = {"aten::mm", "aten::addmm"}
OPTIMIZER = {"aten::_fused_adam_", "Optimizer.step#Adam.step"}


def profile_epoch(epoch, steps: int) -> dict[str, float]:
    """Self CPU milliseconds per step of every operator during one call of ``epoch``; the
    operators run inside the optimizer's step are counted under the step."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        epoch()
    out: dict[str, float] = {}
    for event in prof.events():
        key, parent = event.name, event.cpu_parent
        while parent is not None and key not in OPTIMIZER:
            key = parent.name if parent.name in OPTIMIZER else key
            parent = parent.cpu_parent
        out[key] = out.get(key, 0.0) + event.self_cpu_time_total / steps / 1000
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=common.DEFAULT_ROOT, help="folder with the Fashion-MNIST IDX files")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=128 * 60, help="images per epoch (default: 60 steps)")
    ap.add_argument("--top", type=int, default=10, help="other operators listed per contender")
    args = ap.parse_args(argv)
    args.batch_size, args.lr = 128, 1e-3
    torch.set_num_threads(args.threads)

    import vaezoo

    torch.manual_seed(0)
    init = vaezoo.build_model({"data_shape": [1, 28, 28], **bench_train.model_config("mlp")})
    splits = common.load_fashion(args.root, init.likelihood, limit=args.limit)
    steps = -(-len(splits.train.x) // args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        contenders = {
            "bare": common.BareLoop(bench_train.bare_model("mlp", init), splits.train.x, args.batch_size, args.lr),
            "vaezoo": common.VaezooLoop(bench_train.overrides("mlp", args, False), splits, init, Path(tmp) / "e", 2),
            "vaezoo compile": common.VaezooLoop(bench_train.overrides("mlp", args, True), splits, init, Path(tmp) / "c", 2),
        }
        for c in contenders.values():
            c.epoch()  # warm-up (and compilation)
        per_op = {name: profile_epoch(c.epoch, steps) for name, c in contenders.items()}

    print(f"## Self CPU time per step (ms), MLP workload, {steps} steps, {args.threads} thread(s)\n")
    print(*common.machine_lines(args.threads), sep="\n")
    print()
    rows = []
    for name, ops in per_op.items():
        total = sum(ops.values())
        matmul = sum(v for k, v in ops.items() if k in MATMUL)
        optim = sum(v for k, v in ops.items() if k in OPTIMIZER)
        rows.append([name, f"{total:.2f}", f"{matmul:.2f}", f"{optim:.2f}", f"{total - matmul - optim:.2f}"])
    print(common.markdown_table(["contender", "total", "matrix products", "Adam (kernel or step)", "everything else"], rows))
    for name, ops in per_op.items():
        others = sorted(((v, k) for k, v in ops.items() if k not in MATMUL | OPTIMIZER), reverse=True)[: args.top]
        print(f"\n{name}, largest other operators:\n")
        print(common.markdown_table(["operator", "ms/step"], [[k[:70], f"{v:.3f}"] for v, k in others]))


if __name__ == "__main__":
    main()
