"""Nearest-neighbour vector quantisation with a codebook of K vectors (van den Oord et al. 2017,
"Neural discrete representation learning", arXiv:1711.00937).

Every encoder output z_e (one D-vector per latent position) is replaced by its nearest code
e_c, c = argmin_k ||z_e - e_k||^2. The decoder sees z_q = e_c; gradients pass straight through
to z_e (the value is exactly e_c, the gradient with respect to z_e that of the decoder at z_q).

The codebook is learned either by the loss term ||sg[z_e] - e||^2 (``update="loss"``, model key
``codebook: loss``; a parameter) or by exponential moving averages (``update="ema"``; a buffer; the
paper's appendix A.1): with decay g, per step and code k over the batch's n_k vectors assigned to k and their
sum s_k,

    N_k <- g N_k + (1 - g) n_k        m_k <- g m_k + (1 - g) s_k
    e_k  = m_k / N~_k,   N~_k = (N_k + eps) / (n + K eps) * n,   n = sum_k N_k   (Laplace smoothing)

N (the buffer ``usage``, EMA vectors per batch assigned to each code) is kept in both modes. A
code whose usage falls below ``dead_threshold`` is dead; dead codes are restarted, in index
order, at the encoder outputs ``flat[torch.randperm(len(flat))[:n_dead]]`` of the current batch
(``torch.randint`` with replacement when the batch has fewer vectors than dead codes), with
usage 1 and, for ``ema``, m_k = e_k. The statistics start at zero, so the codes the first batch
does not use are restarted at its encoder outputs (a data-dependent initialisation).

Statistics are updated and codes restarted only in a training-mode forward with gradients
enabled (a training step); evaluation, ``torch.no_grad()`` and a frozen autoencoder leave them
alone. Everything lives in buffers and draws from torch's global RNG, so a seeded run repeats
and a resumed one continues bit for bit. With several processes the counts and sums are averaged
over them and the restarts take rank 0's encoder outputs, so every process keeps the same codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

UPDATES = ("ema", "loss")


@dataclass
class Quantized:
    """One batch quantised: ``z_q (B, L, D)`` (straight-through), ``codes (B, L)``, and per example
    ``(B,)`` the squared distances summed over positions, once with the gradient to z_e only
    (``commitment``: ||z_e - sg[e]||^2) and once to the codebook only (``codebook``: ||sg[z_e] - e||^2);
    for the batch ``perplexity`` (exp of the entropy of its code usage) and ``dead`` (codes below
    the threshold at this step, before any restart), 0-d."""

    z_q: Tensor
    codes: Tensor
    commitment: Tensor
    codebook: Tensor
    perplexity: Tensor
    dead: Tensor


class VectorQuantizer(nn.Module):
    """K codes of dimension D; ``forward(z_e (B, L, D)) -> Quantized``. See the module doc."""

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        update: str = "ema",
        decay: float = 0.99,
        epsilon: float = 1e-5,
        dead_threshold: float = 0.01,
    ) -> None:
        super().__init__()
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
        self.num_codes, self.dim = int(num_codes), int(dim)
        self.update, self.decay, self.epsilon = update, float(decay), float(epsilon)
        self.dead_threshold = float(dead_threshold)
        init = torch.empty(self.num_codes, self.dim).uniform_(-1.0 / self.num_codes, 1.0 / self.num_codes)
        if update == "loss":
            self.codebook = nn.Parameter(init)
        else:
            self.register_buffer("codebook", init)
            self.register_buffer("embed_sum", torch.zeros(self.num_codes, self.dim))
        self.register_buffer("usage", torch.zeros(self.num_codes))

    def nearest(self, flat: Tensor) -> Tensor:
        """The index of the nearest code of every row of ``flat (N, D)``, ``(N,)`` (no gradient)."""
        with torch.no_grad(), torch.autocast(flat.device.type, enabled=False):  # full precision under train.precision
            e = self.codebook.detach()
            f = flat.detach().to(e.dtype)
            d = (f**2).sum(1, keepdim=True) - 2.0 * f @ e.t() + (e**2).sum(1)
            return d.argmin(1)

    def lookup(self, codes: Tensor) -> Tensor:
        """The code vectors of ``codes (..., L)``: ``(..., L, D)``."""
        return self.codebook[codes]

    def forward(self, z_e: Tensor) -> Quantized:
        step = self.training and torch.is_grad_enabled()
        b, length, dim = z_e.shape
        flat = z_e.reshape(-1, dim)
        codes = self.nearest(flat)
        e = self.codebook[codes].view(b, length, dim)  # gradient to the codebook only in ``loss`` mode
        z_q = e.detach() + (z_e - z_e.detach())  # value exactly e, gradient straight through to z_e
        commitment = ((z_e - e.detach()) ** 2).sum((1, 2))
        codebook = ((z_e.detach() - e) ** 2).sum((1, 2))
        with torch.no_grad():
            counts = torch.bincount(codes, minlength=self.num_codes).to(self.usage.dtype)
            perplexity = torch.exp(torch.special.entr(counts / counts.sum()).sum())
            if step:
                dead = self._step(flat.detach().to(self.codebook.dtype), codes, counts)
            else:
                dead = (self.usage < self.dead_threshold).sum().to(self.usage.dtype)
        return Quantized(z_q, codes.view(b, length), commitment, codebook, perplexity, dead)

    @torch.no_grad()
    def _step(self, flat: Tensor, codes: Tensor, counts: Tensor) -> Tensor:
        """Update the usage (and the EMA codebook), then restart dead codes; returns how many were dead.

        The buffers are replaced by new tensors, never changed in place: the step's graph may
        still hold the old codebook for its backward pass (as it does under ``train.compile``).
        """
        ema = self.update == "ema"
        sums = torch.zeros_like(self.codebook).index_add_(0, codes, flat) if ema else None
        counts, sums = _averaged_over_processes(counts, sums)
        g = self.decay
        usage = self.usage * g + counts * (1.0 - g)
        if ema:
            embed_sum = self.embed_sum * g + sums * (1.0 - g)
            n = usage.sum()
            smoothed = (usage + self.epsilon) / (n + self.num_codes * self.epsilon) * n
            codebook = embed_sum / smoothed.unsqueeze(1)
        dead = usage < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            idx = dead.nonzero().squeeze(1)
            new = self._restarts(flat, len(idx))
            usage[idx] = 1.0
            if ema:
                codebook[idx] = new
                embed_sum[idx] = new
            else:  # a parameter, updated in place as the optimiser does; no graph keeps its values
                self.codebook.data[idx] = new
        self.usage = usage
        if ema:
            self.codebook, self.embed_sum = codebook, embed_sum
        return torch.tensor(float(n_dead), dtype=flat.dtype, device=flat.device)

    @staticmethod
    def _restarts(flat: Tensor, n_dead: int) -> Tensor:
        """``n_dead`` encoder outputs of the batch chosen at random: distinct ones when there are enough."""
        n = len(flat)
        if n >= n_dead:
            pick = torch.randperm(n, device=flat.device)[:n_dead]
        else:
            pick = torch.randint(n, (n_dead,), device=flat.device)
        new = flat[pick]
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(new, src=0)  # every process restarts its codes at rank 0's choice
        return new

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, dim={self.dim}, update={self.update!r}, decay={self.decay}, "
                f"epsilon={self.epsilon}, dead_threshold={self.dead_threshold}")


def _averaged_over_processes(counts: Tensor, sums: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """The counts (and sums) averaged over the processes of a distributed run: per-process units, as with one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return counts, sums
    world = dist.get_world_size()
    dist.all_reduce(counts)
    counts = counts / world
    if sums is not None:
        dist.all_reduce(sums)
        sums = sums / world
    return counts, sums
