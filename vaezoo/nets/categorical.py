"""The categorical encoder (``encoder: categorical``): q(z|x) as N independent categoricals,
relaxed while training with the Gumbel-softmax / Concrete distribution (Jang, Gu & Poole 2017,
arXiv:1611.01144; Maddison, Mnih & Teh 2017, arXiv:1611.00712). The distributions and their KL
are in ``vaezoo.distributions.categorical``; the matching prior is ``prior: categorical``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..components import Encoder
from ..distributions.categorical import OneHotCategoricals, RelaxedOneHotCategoricals
from ..errors import ConfigError
from ..validation import check_int_list, check_nonnegative, check_positive_float, check_positive_int, check_shape
from .layers import (check_dense_activation, check_weights, dense_layers, dense_weights, linear_weights, split_batch,
                     with_condition)


class CategoricalEncoder(Encoder):
    """q(z|x): ``latent_dim / categories`` independent categoricals from a fully connected network, relaxed while training.

    The network (hidden layers as the ``mlp`` encoder's) gives logits ``(..., N, K)``; z is the
    N one-hot vectors flattened to ``(latent_dim,)``, which the decoder sees. ``forward(x)`` is

    * training, ``hard: false``: ``RelaxedOneHotCategoricals`` at the current temperature tau:
      ``rsample`` draws Concrete samples, ``log_prob`` is their Concrete density;
    * training, ``hard: true``: ``OneHotCategoricals``: ``rsample`` is straight-through (exact
      one-hot draws with the relaxed sample's gradient), ``log_prob`` the discrete log-mass;
    * eval mode: ``OneHotCategoricals``: exact one-hot draws and the discrete log-mass, so
      importance sampling (``log_likelihood``) estimates log p(x) of the discrete-latent model.

    The ``categorical`` prior, bound to this encoder, is in the same state (``relaxed_temperature``):
    every log-weight compares a density with a density, or a mass with a mass.

    tau = max(min_temperature, temperature * exp(-anneal_rate * t)) with t = anneal_every *
    floor(s / anneal_every) (Jang et al.'s schedule, updated every ``anneal_every`` steps), s the
    training steps so far, kept in the buffer ``steps`` (saved with the weights: a resumed or
    reloaded model goes on at the same tau). A step is counted when a posterior made in training
    mode is first sampled with ``rsample``: once per step in every objective (a VampPrior's
    evaluations of the encoder draw nothing, so they do not count); eval mode never counts.

    In a conditional model vaezoo builds it with ``condition_dim`` and calls ``forward(x, y)``:
    y joins the flattened input.

    Parameters:

    * ``categories`` -- K, the categories of each variable (at least 2); ``latent_dim`` must be a
      multiple of it: N = latent_dim / K variables.
    * ``hidden`` -- widths of the hidden layers, input side first (``[]``: linear logits).
    * ``activation`` -- ``relu``, ``gelu``, ``silu``, ``tanh``, ``elu``, or ``gated`` (as for the
      ``mlp`` encoder).
    * ``temperature`` -- tau_0, the temperature of the relaxation at step 0.
    * ``min_temperature`` -- the floor of the annealed temperature (at most ``temperature``).
    * ``anneal_rate`` -- r of tau = max(min_temperature, temperature * exp(-r t)) (0: tau stays
      at ``temperature``).
    * ``anneal_every`` -- tau is updated every this many training steps.
    * ``hard`` -- straight-through while training: one-hot samples with the gradient of the
      relaxed ones, and ``log_prob`` the discrete log-mass.
    """

    latent = "categorical"

    def __init__(
        self,
        data_shape: tuple[int, ...],
        latent_dim: int,
        categories: int = 10,
        hidden: list[int] = (512, 256),  # type: ignore[assignment]
        activation: str = "relu",
        temperature: float = 1.0,
        min_temperature: float = 0.5,
        anneal_rate: float = 1e-4,
        anneal_every: int = 500,
        hard: bool = False,
        condition_dim: int = 0,
    ) -> None:
        who = "CategoricalEncoder"
        data_shape = check_shape(data_shape, "data_shape", who)
        latent_dim = check_positive_int(latent_dim, "latent_dim", who)
        categories = check_positive_int(categories, "categories", who)
        if categories < 2:
            raise ValueError(f"{who}: categories must be at least 2, got {categories}")
        if latent_dim % categories:
            raise ConfigError(
                f"{who}: latent_dim {latent_dim} is not a multiple of categories {categories}; latent_dim is "
                f"N variables x {categories} categories, e.g. {max(1, latent_dim // categories) * categories}"
            )
        hidden = list(check_int_list(hidden, "hidden", who, allow_empty=True))
        check_dense_activation(activation, who)
        tau0 = check_positive_float(temperature, "temperature", who)
        floor = check_positive_float(min_temperature, "min_temperature", who)
        if floor > tau0:
            raise ValueError(f"{who}: min_temperature {floor:g} is above temperature {tau0:g}; it is the floor tau anneals to")
        rate = check_nonnegative(anneal_rate, "anneal_rate", who)
        every = check_positive_int(anneal_every, "anneal_every", who)
        if not isinstance(hard, bool):
            raise ValueError(f"{who}: hard must be true or false, got {hard!r}")
        super().__init__(data_shape, latent_dim)
        self.categories, self.groups = categories, latent_dim // categories
        self.hidden, self.activation, self.hard = tuple(hidden), activation, hard
        self.initial_temperature, self.min_temperature = tau0, floor
        self.anneal_rate, self.anneal_every = rate, every
        self.condition_dim = check_positive_int(condition_dim, "condition_dim", who, allow_zero=True)
        in_features = math.prod(self.data_shape) + self.condition_dim
        sizes = [in_features, *hidden]
        check_weights(
            [*(dense_weights(a, b, activation) for a, b in zip(sizes[:-1], sizes[1:])), linear_weights(sizes[-1], latent_dim)],
            who, "data_shape, hidden or latent_dim",
        )
        self.body = nn.Sequential(*[m for a, b in zip(sizes[:-1], sizes[1:]) for m in dense_layers(a, b, activation, who)])
        self.head = nn.Linear(sizes[-1], latent_dim)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    # -- the temperature -------------------------------------------------------------
    def temperature_at(self, step: int) -> float:
        """tau after ``step`` training steps (the schedule, in float64)."""
        t = self.anneal_every * (int(step) // self.anneal_every)
        return max(self.min_temperature, self.initial_temperature * math.exp(-self.anneal_rate * t))

    def current_temperature(self) -> Tensor:
        """tau now, from the ``steps`` buffer: a 0-d tensor in the weights' dtype and device (no host sync)."""
        t = torch.div(self.steps, self.anneal_every, rounding_mode="floor") * self.anneal_every
        tau = self.initial_temperature * torch.exp(t.to(self.head.weight.dtype) * -self.anneal_rate)
        return tau.clamp_min(self.min_temperature)

    def relaxed_temperature(self) -> Tensor | None:
        """tau when ``forward`` gives the relaxed distribution (training, ``hard: false``), else None:
        what a prior of categorical latents needs to be evaluated in the same measure."""
        return self.current_temperature() if self.training and not self.hard else None

    def _count_step(self) -> None:
        self.steps.add_(1)

    # -- q(z|x) ----------------------------------------------------------------------
    def forward(self, x: Tensor, y: Tensor | None = None) -> OneHotCategoricals | RelaxedOneHotCategoricals:
        lead, flat = split_batch(x, self.data_shape, "data_shape", type(self).__name__)
        flat = with_condition(flat.flatten(1), y, lead, self.condition_dim, type(self).__name__)
        logits = self.head(self.body(flat)).reshape(*lead, self.groups, self.categories)
        tau = self.current_temperature()
        if not self.training:
            return OneHotCategoricals(logits, tau, validate_args=False)
        q = (OneHotCategoricals if self.hard else RelaxedOneHotCategoricals)(logits, tau, validate_args=False)
        q._on_rsample = self._count_step  # type: ignore[attr-defined]  # counts this step at its first rsample
        return q

    def extra_repr(self) -> str:
        return (
            f"groups={self.groups}, categories={self.categories}, temperature={self.initial_temperature:g}, "
            f"min_temperature={self.min_temperature:g}, anneal_rate={self.anneal_rate:g}, "
            f"anneal_every={self.anneal_every}, hard={self.hard}"
        )
