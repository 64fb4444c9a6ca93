"""The ``architecture`` contract: the model an architecture assembles from components.

Every architecture's factory returns a ``Model``; objectives, the trainer, evaluation, the
zoo and the command line use only what is declared here, so they work for any architecture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class LogWeights:
    """Importance weights of K samples per example, each term ``(K, B)`` in nats.

    ``log_px_z + log_pz - log_qz`` is log p(x, z_k) / q(z_k|x). ``z``: the samples, one tensor
    per stochastic level (reparameterised, so gradients reach q's parameters through them).
    """

    log_px_z: Tensor
    log_pz: Tensor
    log_qz: Tensor
    z: list[Tensor]

    @property
    def log_w(self) -> Tensor:
        return self.log_px_z + self.log_pz - self.log_qz


class Model(nn.Module):
    """A latent-variable model of ``data_shape`` examples with a closed-form ``likelihood``.

    Subclasses implement:

    * ``elbo(x, num_samples=1, beta=1.0, *, free_bits=0.0)`` -- per-example ``(B,)`` terms in
      nats: ``log_px_z`` (E_q log p(x|z), closed form, averaged over samples), ``kl`` (the
      total KL, analytic where known), ``elbo`` and ``loss`` (``-(log_px_z - beta * kl)`` with
      free bits); a model may add more (the KL of each level);
    * ``log_weights(x, num_samples, *, detach_q=False) -> LogWeights``; ``detach_q`` (for the
      doubly reparameterised estimator): log q reaches no parameter directly but keeps its
      dependence on z, and each tensor in ``z`` is one that only the log terms depend on, so
      a gradient hook on it sees the path derivative d log w / dz exactly once (a hierarchy
      that samples z_l from z_>l returns copies of its samples);
    * ``log_likelihood(x, num_samples)`` -- importance-sampled log p(x), ``(B,)``;
    * ``sample(n, mean=False)`` and ``reconstruct(x, mean=True)``.

    and set ``data_shape``, ``likelihood``, ``config`` (the model config that rebuilds it,
    ``architecture`` included) and ``sources`` (where each component came from).

    A conditional model sets ``condition`` (a ``vaezoo.conditioning.Condition``) and takes the
    keyword ``y`` (labels or covariates of the batch) in each of these methods; the trainer,
    the objectives and evaluation pass the dataset's labels as ``y``. An unconditional model
    leaves ``condition`` None and refuses a ``y`` that is not None.
    """

    data_shape: tuple[int, ...]
    likelihood: nn.Module
    config: dict[str, Any] | None
    sources: dict[str, Any]
    condition: Any = None

    def elbo(self, x: Tensor, num_samples: int = 1, beta: float = 1.0, *, free_bits: float = 0.0) -> dict[str, Tensor]:
        raise NotImplementedError

    def log_weights(self, x: Tensor, num_samples: int, *, detach_q: bool = False) -> LogWeights:
        raise NotImplementedError

    def log_likelihood(self, x: Tensor, num_samples: int = 1000, **kwargs: Any) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, mean: bool = False) -> Tensor:
        raise NotImplementedError

    def reconstruct(self, x: Tensor, mean: bool = True) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def iwae_bound(self, x: Tensor, num_samples: int, **kwargs: Any) -> Tensor:
        """The importance weighted bound log (1/K) sum_k p(x, z_k)/q(z_k|x) (Burda et al. 2016), ``(B,)``.

        ``kwargs`` go to ``log_weights`` (``y`` for a conditional model)."""
        return torch.logsumexp(self.log_weights(x, num_samples, **kwargs).log_w, dim=0) - math.log(int(num_samples))

    def bits_per_dim(self, x: Tensor, num_samples: int = 1000, *, num_bins: int = 256, **kwargs: Any) -> Tensor:
        """-log p(x) / (D ln 2) per example, from ``log_likelihood``.

        For a continuous likelihood on data scaled to [0, 1] the density is turned into a
        probability of the ``num_bins`` quantisation bins first (adds D log num_bins nats),
        the usual convention for image models; discrete likelihoods need no correction.
        """
        from ..measurement import bits_per_dim

        nll = -self.log_likelihood(x, num_samples, **kwargs)
        return bits_per_dim(nll, tuple(self.data_shape), discrete=bool(getattr(self.likelihood, "discrete", False)), num_bins=num_bins)

    def forward(self, x: Tensor) -> Tensor:
        """The per-example loss of the ELBO, ``elbo(x)["loss"]``."""
        return self.elbo(x)["loss"]

    def save_pretrained(self, directory: str, **kwargs: Any) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (see vaezoo.serialization)."""
        from ..serialization import save_pretrained

        save_pretrained(self, directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload this model to the Hugging Face Hub repository ``repo_id`` (``ORG/NAME``) in one commit.

        Writes ``config.json`` (with the weights' sha256), ``model.safetensors`` and a
        ``README.md`` model card; keywords (``revision``, ``private``, ``token``,
        ``commit_message``, ``license``, ``folder``) as in ``vaezoo.hub.push_to_hub``.
        Returns the name that loads it: ``vaezoo.from_pretrained("hf-hub:ORG/NAME")``.
        Needs ``pip install 'vaezoo[hub]'``.
        """
        from ..hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)
