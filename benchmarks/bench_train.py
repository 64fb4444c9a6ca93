"""Training throughput: seconds per epoch, vaezoo's trainer vs a bare PyTorch loop vs pythae.

Workloads (Fashion-MNIST, 60,000 training images, batch 128, Adam lr 1e-3, one epoch):

* ``mlp``  -- MLP encoder 784-512-256, mirrored decoder, latent 32, Bernoulli likelihood
  (the images binarized once, the same tensor for every contender);
* ``conv`` -- the conv encoder/decoder (channels 32, 64; dense 256), Bernoulli likelihood;
* ``dlm``  -- the MLP with a discretized logistic mixture likelihood (5 components) on the
  8-bit images (pythae has no such likelihood: vaezoo and the bare loop only).

Contenders, all in this one process on the same data, threads and initial weights:

* ``bare``: the hand-written loop (``common.BareLoop``: randperm indexing of the in-memory
  tensor, default Adam, ``loss.item()`` per batch);
* ``strong``: the same loop with the fused Adam kernel and no host sync per step
  (``common.StrongLoop``), the bar for vaezoo's eager trainer;
* ``vaezoo``: ``vaezoo.training.Trainer`` built from a run config (fused Adam), eager;
* ``vaezoo compile``: the same config with ``train.compile=true``;
* ``pythae``: pythae's ``BaseTrainer`` on the same networks, when pythae is installed.

Epochs are interleaved (one epoch of each contender per round) so that a change in the
machine's load hits all of them alike; the first round is a warm-up (it includes
``torch.compile``'s compilation) and the table reports the median of the other rounds.

    python benchmarks/bench_train.py                      # all workloads
    python benchmarks/bench_train.py --workload mlp --rounds 5
    python benchmarks/bench_train.py --quick              # smoke run on 2,048 images
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch

import common

WORKLOADS = ("mlp", "conv", "dlm")


def model_config(workload: str) -> dict:
    if workload == "conv":
        encoder = {"name": "conv", "channels": [32, 64], "hidden": 256}
        decoder = {"name": "conv", "channels": [64, 32], "hidden": 256}
    else:
        encoder = {"name": "mlp", "hidden": [512, 256]}
        decoder = {"name": "mlp", "hidden": [256, 512]}
    likelihood = {"name": "discretized_logistic_mixture", "components": 5} if workload == "dlm" else {"name": "bernoulli"}
    return {"latent_dim": 32, "encoder": encoder, "decoder": decoder, "prior": {"name": "normal"}, "likelihood": likelihood}


def overrides(workload: str, args: argparse.Namespace, compile_: bool) -> list[str]:
    binarize = "none" if workload == "dlm" else "static"
    return common.run_overrides(model_config(workload), args, binarize=binarize, compile_=compile_)


def bare_model(workload: str, vz_model: torch.nn.Module) -> common.BareVAE:
    conv = workload == "conv"
    channels = 15 if workload == "dlm" else 1
    encoder = common.conv_encoder() if conv else common.mlp_encoder()
    decoder = common.conv_decoder(channels) if conv else common.mlp_decoder(channels)
    common.copy_weights(vz_model.encoder, encoder)
    common.copy_weights(vz_model.decoder, decoder)
    return common.BareVAE(encoder, decoder, "dlm" if workload == "dlm" else "bernoulli", components=5)


@torch.no_grad()
def check_same_loss(vz_model, bare, pythae_model, x) -> dict[str, float]:
    """Loss of one batch with the same weights and noise: contenders compute the same thing."""
    out = {}
    torch.manual_seed(123)
    ref = float(vz_model.elbo(x)["loss"].mean())
    torch.manual_seed(123)
    out["bare"] = float(bare(x)) - ref
    if pythae_model is not None:
        torch.manual_seed(123)
        out["pythae"] = float(pythae_model({"data": x}).loss) - ref
    return {"vaezoo": ref, **out}


def run_workload(workload: str, args: argparse.Namespace, pythae_ok: bool, tmp: Path) -> dict:
    import vaezoo

    torch.manual_seed(0)
    cfg = {"data_shape": [1, 28, 28], **model_config(workload)}
    init = vaezoo.build_model(cfg)
    splits = common.load_fashion(args.root, init.likelihood, limit=args.limit)
    x = splits.train.x
    bare = bare_model(workload, init)
    use_pythae = pythae_ok and workload != "dlm"
    pythae_model = None
    if use_pythae:
        enc = common.conv_encoder() if workload == "conv" else common.mlp_encoder()
        dec = common.conv_decoder() if workload == "conv" else common.mlp_decoder()
        common.copy_weights(init.encoder, enc)
        common.copy_weights(init.decoder, dec)
        pythae_model = common.pythae_vae(enc, dec)
    check = check_same_loss(init, bare, pythae_model, x[: args.batch_size])

    epochs = args.rounds + 1
    contenders: dict[str, object] = {"bare": common.BareLoop(bare, x, args.batch_size, args.lr)}
    strong = copy.deepcopy(bare)
    contenders["strong"] = common.StrongLoop(strong, x, args.batch_size, args.lr)
    contenders["vaezoo"] = common.VaezooLoop(overrides(workload, args, False), splits, init, tmp / f"{workload}-eager", epochs)
    if not args.no_compile:
        contenders["vaezoo compile"] = common.VaezooLoop(
            overrides(workload, args, True), splits, init, tmp / f"{workload}-compile", epochs
        )
    if use_pythae:
        contenders["pythae"] = common.PythaeLoop(pythae_model, x, args.batch_size, args.lr, str(tmp / f"{workload}-pythae"))

    times: dict[str, list[float]] = {k: [] for k in contenders}
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    losses: dict[str, float] = {}
    for r in range(epochs):
        for name, c in contenders.items():
            seconds, cpu_seconds, loss = common.time_call_cpu(c.epoch)  # type: ignore[attr-defined]
            times[name].append(seconds)
            cpu[name].append(cpu_seconds)
            losses[name] = loss
            print(
                f"  [{workload}] round {r} {name:<15} {seconds:8.2f} s  (CPU {cpu_seconds:8.2f} s)  loss {loss:.3f}",
                flush=True,
            )
    loops = {k: c.loop_seconds for k, c in contenders.items() if hasattr(c, "loop_seconds")}
    return {"times": times, "cpu": cpu, "loops": loops, "losses": losses, "check": check, "n": len(x), "pythae": use_pythae}


def report(workload: str, res: dict, args: argparse.Namespace, pythae_note: str) -> str:
    times = res["times"]
    med = {k: common.median(v[1:]) for k, v in times.items()}
    cpu = {k: common.median(v[1:]) for k, v in res["cpu"].items()}
    bare = med["bare"]
    rows = []
    for name in times:
        target = ""
        if name.startswith("vaezoo") and workload == "mlp":
            target = f"≤ 0.8× bare: {common.verdict(med[name] / bare, 0.8)}"
            if name == "vaezoo" and "strong" in med:
                target += f"; ≤ 1.0× strong: {common.verdict(med[name] / med['strong'], 1.0)}"
            if "pythae" in med:
                target += f"; ≥ 1.5× faster than pythae: {common.verdict(med['pythae'] / med[name], 1.5, False)}"
        rows.append(
            [
                name,
                f"{med[name]:.2f}",
                f"{min(times[name][1:]):.2f}",
                f"{times[name][0]:.2f}",
                f"{med[name] / bare:.2f}×",
                f"{cpu[name] / cpu['bare']:.2f}×",
                f"{med['pythae'] / med[name]:.2f}×" if "pythae" in med else "n/a",
                f"{res['losses'][name]:.2f}",
                target,
            ]
        )
    if "pythae" not in med:
        rows.append(["pythae", "n/a", "", "", "", "", "", "", pythae_note])
    title = {"mlp": "MLP 784-512-256 / Bernoulli", "conv": "conv (32, 64; 256) / Bernoulli", "dlm": "MLP / discretized logistic mixture (5)"}[workload]
    head = ["contender", "s/epoch (median)", "min", "1st epoch (warm-up)", "time vs bare", "CPU time vs bare",
            "pythae time / this", "last epoch loss", "target"]
    check = ", ".join(f"{k} {v:+.2e}" for k, v in res["check"].items() if k != "vaezoo")
    extra = "; ".join(
        f"{k}: {common.median([w - l for w, l in zip(times[k][1:], loop[1:])]):.2f} s"
        for k, loop in res.get("loops", {}).items()
    )
    return (
        f"### Workload {workload}: {title}, {res['n']:,} images, batch {args.batch_size}, "
        f"{args.rounds} timed epochs after 1 warm-up\n\n"
        + common.markdown_table(head, rows)
        + f"\n\nSame weights and noise, one batch: vaezoo loss {res['check']['vaezoo']:.4f}; difference {check}.\n"
        + f"vaezoo's epochs include writing its checkpoint (atomic, fsync'd) after every epoch: median {extra} of the time.\n"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    ap.add_argument("--root", default=common.DEFAULT_ROOT, help="folder with the Fashion-MNIST IDX files")
    ap.add_argument("--rounds", type=int, default=3, help="timed epochs per contender (after one warm-up epoch)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for every contender")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    ap.add_argument("--no-compile", action="store_true", help="leave out the train.compile=true contender")
    ap.add_argument("--no-pythae", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2,048 images, 1 timed round")
    args = ap.parse_args(argv)
    if args.quick:
        args.limit, args.rounds = args.limit or 2048, 1
    torch.set_num_threads(args.threads)
    pythae, why = (None, "--no-pythae") if args.no_pythae else common.import_pythae()
    pythae_note = f"pythae {common.pythae_version()}" if pythae else f"skipped: pythae not available ({why})"
    lines = ["## Training throughput", "", *common.machine_lines(args.threads, {"pythae": pythae_note}), ""]
    workloads = WORKLOADS if args.workload == "all" else (args.workload,)
    with tempfile.TemporaryDirectory() as tmp:
        for w in workloads:
            res = run_workload(w, args, pythae is not None, Path(tmp))
            lines.append(report(w, res, args, "no discretized logistic mixture in pythae" if w == "dlm" else pythae_note))
            print("\n" + lines[-1], flush=True)
    lines.append(f"- load average at the end: {common.load_average()}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
