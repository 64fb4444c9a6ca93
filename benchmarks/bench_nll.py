"""Importance-sampled NLL: vaezoo's ``VAE.log_likelihood`` vs a hand-written loop vs pythae's ``get_nll``.

The MLP VAE of the training benchmark (784-512-256, latent 32, Bernoulli), briefly trained
so that q(z|x) is not the prior, copied into the bare and pythae models (the same weights);
500 Fashion-MNIST test images, K = 500 and K = 5000 importance samples from q(z|x).

Measured per contender: wall time, the peak increase of the process's resident memory
during the call (``common.PeakRSS``), and the mean NLL (the three estimate the same number,
up to Monte Carlo error). pythae's ``get_nll`` runs under ``torch.no_grad()`` (it does not
disable gradients itself; without it it is slower still), with its default ``batch_size=100``
(``--pythae-batch-size``).

    python benchmarks/bench_nll.py
    python benchmarks/bench_nll.py --k 500 --repeats 3
    python benchmarks/bench_nll.py --quick        # 20 images, K = 50 and 200
"""

from __future__ import annotations

import argparse

import torch

import common


def trained_model(root: str, steps: int, threads: int):
    import vaezoo

    torch.manual_seed(0)
    model = vaezoo.build_model(
        {
            "data_shape": [1, 28, 28],
            "latent_dim": 32,
            "encoder": {"name": "mlp", "hidden": [512, 256]},
            "decoder": {"name": "mlp", "hidden": [256, 512]},
            "prior": {"name": "normal"},
            "likelihood": {"name": "bernoulli"},
        }
    )
    splits = common.load_fashion(root, model.likelihood)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = splits.train.x
    for step in range(steps):
        idx = torch.randint(len(x), (128,))
        loss = model.elbo(x[idx])["loss"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), splits


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=common.DEFAULT_ROOT)
    ap.add_argument("--n", type=int, default=500, help="test images")
    ap.add_argument("--k", type=int, nargs="+", default=[500, 5000], help="importance samples")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per contender and K (median)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-steps", type=int, default=300, help="Adam steps before measuring")
    ap.add_argument("--pythae-batch-size", type=int, default=100, help="get_nll's batch_size")
    ap.add_argument("--no-pythae", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 images, K = 50 and 200")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.k, args.train_steps = 20, [50, 200], 20
    torch.set_num_threads(args.threads)
    pythae, why = (None, "--no-pythae") if args.no_pythae else common.import_pythae()
    pythae_note = f"pythae {common.pythae_version()}" if pythae else f"skipped: pythae not available ({why})"

    model, splits = trained_model(args.root, args.train_steps, args.threads)
    x = splits.test.x[: args.n]
    bare = common.BareVAE(common.mlp_encoder(), common.mlp_decoder())
    common.copy_weights(model.encoder, bare.encoder)
    common.copy_weights(model.decoder, bare.decoder)
    contenders = {
        "vaezoo": lambda k: model.log_likelihood(x, k),
        "bare": lambda k: common.bare_log_likelihood(bare, x, k),
    }
    if pythae is not None:
        enc, dec = common.mlp_encoder(), common.mlp_decoder()
        common.copy_weights(model.encoder, enc)
        common.copy_weights(model.decoder, dec)
        pm = common.pythae_vae(enc, dec).eval()

        def pythae_nll(k: int) -> torch.Tensor:
            with torch.no_grad():
                return torch.tensor(pm.get_nll(x, n_samples=k, batch_size=args.pythae_batch_size))

        contenders["pythae"] = pythae_nll

    results: dict[tuple[str, int], dict] = {}
    for k in args.k:
        for r in range(args.repeats):
            for name, fn in contenders.items():
                torch.manual_seed(r)
                with common.PeakRSS() as mem:
                    seconds, ll = common.time_call(lambda: fn(k))
                res = results.setdefault((name, k), {"times": [], "mem": [], "nll": None})
                res["times"].append(seconds)
                res["mem"].append(mem.increase)
                res["nll"] = -float(ll.double().mean())
                print(f"  K={k} {name:<7} {seconds:8.2f} s  peak +{mem.increase / 2**20:7.1f} MiB  NLL {res['nll']:.3f}", flush=True)

    head = ["K", "contender", "seconds", "time vs vaezoo", "pythae time / this", "peak memory (MiB)", "mean NLL (nats)", "target"]
    rows = []
    for k in args.k:
        t = {name: common.median(results[(name, k)]["times"]) for name in contenders}
        for name in contenders:
            res = results[(name, k)]
            target = ""
            if name == "vaezoo" and "pythae" in t:
                target = f"≥ 1.5× faster than pythae: {common.verdict(t['pythae'] / t[name], 1.5, False)}"
            rows.append(
                [
                    str(k),
                    name,
                    f"{t[name]:.2f}",
                    f"{t[name] / t['vaezoo']:.2f}×",
                    f"{t['pythae'] / t[name]:.2f}×" if "pythae" in t else "n/a",
                    f"{max(res['mem']) / 2**20:.1f}",
                    f"{res['nll']:.2f}",
                    target,
                ]
            )
        if "pythae" not in t:
            rows.append([str(k), "pythae", "n/a", "", "", "", "", pythae_note])
    lines = [
        "## Importance-sampled NLL",
        "",
        *common.machine_lines(args.threads, {"pythae": pythae_note}),
        "",
        f"{args.n} test images, MLP VAE (784-512-256, latent 32, Bernoulli) after {args.train_steps} Adam steps; "
        f"median of {args.repeats} run(s); peak memory = largest increase of resident memory during the call.",
        "",
        common.markdown_table(head, rows),
        "",
        f"- load average at the end: {common.load_average()}",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
