"""Training throughput of the ``hierarchical`` architecture against a hand-written top-down VAE
of the same shape: seconds per epoch, eager.

Workload: Fashion-MNIST (binarized once), two levels z_2 (16-d, N(0, I)) -> z_1 (32-d) -> x,
MLP blocks of width 256, residual posteriors, Bernoulli likelihood, batch 128, Adam lr 1e-3,
constant learning rate, no KL warm-up.

Contenders, in this one process on the same data, threads and initial weights:

* ``hand``: the same network written out by hand (the same ``nn.Linear`` modules, copied;
  the Gaussian reparameterisation, both KLs and the Bernoulli log-likelihood as plain tensor
  formulas, no torch.distributions), with fused Adam and no host sync per step
  (``common.StrongLoop``);
* ``vaezoo``: ``vaezoo.training.Trainer`` from a run config with
  ``model.architecture=hierarchical`` (its epochs include the checkpoint it writes).

Epochs are interleaved and the first is a warm-up, as in ``bench_train.py``.

    python benchmarks/bench_hierarchical.py --rounds 4
    python benchmarks/bench_hierarchical.py --quick
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

import common

MODEL = {
    "architecture": "hierarchical",
    "latent_dims": [32, 16],
    "hidden": [256],
    "residual": True,
    "prior": {"name": "normal"},
    "likelihood": {"name": "bernoulli"},
}
_SOFTPLUS_ONE = math.log(math.e - 1.0)


class HandTopDown(nn.Module):
    """The two-level top-down VAE by hand, on copies of a vaezoo model's linear layers; ``forward(x)``
    is the batch-mean negative ELBO (one sample)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        m = copy.deepcopy(model)
        self.up1, self.up2 = m.up[0], m.up[1]
        self.top = m.top_head.linear
        self.td2, self.td1 = m.td[1], m.td[0]
        self.prior1, self.post1 = m.prior_heads[0], m.post_heads[0]
        self.out = m.out
        self.min_scale = m.min_scale

    def _loc_scale(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        loc, r = raw.chunk(2, dim=-1)
        return loc, nn.functional.softplus(r) + self.min_scale

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.up1(x.flatten(1))
        b2 = self.up2(b1)
        loc2, s2 = self._loc_scale(self.top(b2))
        z2 = loc2 + s2 * torch.randn((1, *loc2.shape))
        kl2 = 0.5 * (s2.pow(2) + loc2.pow(2) - 1 - s2.pow(2).log()).sum(-1)
        t2 = self.td2(z2)
        loc_p, s_p = self._loc_scale(self.prior1(t2))
        dloc, r = self.post1(torch.cat([b1.expand(*t2.shape[:-1], b1.shape[-1]), t2], dim=-1)).chunk(2, dim=-1)
        loc_q = loc_p + dloc
        s_q = s_p * nn.functional.softplus(r + _SOFTPLUS_ONE) + self.min_scale
        z1 = loc_q + s_q * torch.randn(loc_q.shape)
        kl1 = (torch.log(s_p / s_q) + (s_q.pow(2) + (loc_q - loc_p).pow(2)) / (2 * s_p.pow(2)) - 0.5).sum(-1)
        logits = self.out(self.td1(torch.cat([z1, t2], dim=-1))).reshape(1, *x.shape)
        log_px = -nn.functional.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").flatten(2).sum(-1)
        return -(log_px - kl1 - kl2).mean(0).mean()


def main(argv: list[str] | None = None) -> None:
    import vaezoo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=common.DEFAULT_ROOT, help="folder with the Fashion-MNIST IDX files")
    ap.add_argument("--rounds", type=int, default=3, help="timed epochs per contender (after one warm-up epoch)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2,048 images, 1 timed round")
    args = ap.parse_args(argv)
    if args.quick:
        args.limit, args.rounds = args.limit or 2048, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    init = vaezoo.build_model({"data_shape": [1, 28, 28], **MODEL})
    splits = common.load_fashion(args.root, init.likelihood, limit=args.limit)
    x = splits.train.x
    hand = HandTopDown(init)
    xb = x[: args.batch_size]
    with torch.no_grad():
        torch.manual_seed(123)
        ref = float(init.elbo(xb)["loss"].mean())
        torch.manual_seed(123)
        diff = float(hand(xb)) - ref
    epochs = args.rounds + 1
    with tempfile.TemporaryDirectory() as tmp:
        contenders = {
            "hand": common.StrongLoop(hand, x, args.batch_size, args.lr),
            "vaezoo": common.VaezooLoop(common.run_overrides(MODEL, args), splits, init, Path(tmp) / "run", epochs),
        }
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for r in range(epochs):
            for name, c in contenders.items():
                seconds, cpu_seconds, loss = common.time_call_cpu(c.epoch)
                times[name].append(seconds)
                print(f"  round {r} {name:<8} {seconds:8.2f} s  (CPU {cpu_seconds:8.2f} s)  loss {loss:.3f}", flush=True)
    med = {k: common.median(v[1:]) for k, v in times.items()}
    ratio = med["vaezoo"] / med["hand"]
    lines = [
        "## Hierarchical architecture", "", *common.machine_lines(args.threads, {}), "",
        f"Two levels [32, 16], MLP blocks 256, Bernoulli, {len(x):,} images, batch {args.batch_size}, "
        f"{args.rounds} timed epochs after 1 warm-up.", "",
        "| contender | s/epoch (median) | min | vs hand | target |", "|---|---|---|---|---|",
        f"| hand | {med['hand']:.2f} | {min(times['hand'][1:]):.2f} | 1.00× | |",
        f"| vaezoo | {med['vaezoo']:.2f} | {min(times['vaezoo'][1:]):.2f} | {ratio:.2f}× | ≤ 1.0× hand: {common.verdict(ratio, 1.0)} |",
        "", f"Same weights and noise, one batch: vaezoo loss {ref:.4f}; difference hand {diff:+.2e}.",
        f"- load average at the end: {common.load_average()}",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
