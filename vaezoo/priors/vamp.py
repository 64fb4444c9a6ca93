"""The VampPrior (``prior: vamp``), Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018.

p(z) = (1/K) sum_k q(z | u_k): a uniform mixture of the encoder's own posteriors at K learned
pseudo-inputs ``u_k`` (same shape as one example). The prior therefore needs the model's
encoder: the ``VAE`` calls ``bind(encoder, data_shape)`` once after building the encoder,
which creates the pseudo-inputs. Using the prior before that raises ``RuntimeError``.
The encoder is only referenced, not registered as a submodule, so its weights are stored
once (under the VAE's encoder), never in the prior's ``state_dict``.

In a conditional model (``model.condition``) the encoder is q(z|x, y), so each pseudo-input
u_k comes with a pseudo-condition v_k:

* ``condition.prior: false`` -- p(z) = (1/K) sum_k q(z | u_k, v_k). For labels, v_k is the
  one-hot of class ``k mod classes`` (the classes take turns); for covariates, v_k is
  learned (``raw_pseudo_conditions``, initialised N(0, 1) or by ``init_from_data(x, y)``).
* ``condition.prior: true`` (labels only) -- the class-wise VampPrior
  p(z|y=c) = mean of q(z | u_k, onehot(c)) over the components k of class c
  (``k mod classes == c``); a soft label row y gives sum_c y_c p(z|c).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal

from ..components import Prior
from ..errors import ConfigError, DataError
from ..nets.layers import check_weights
from ..validation import check_choice, check_positive_int
from ._diagonal_mixture import DiagonalNormalMixture

SQUASHES = ("hardtanh", "sigmoid", "none")
INITS = ("uniform", "normal")


class VampPrior(Prior):
    """Uniform mixture of q(z|u_k) over ``components`` learned pseudo-inputs u_k.

    Parameters:

    * ``components`` -- number of pseudo-inputs K (the paper uses 500 on MNIST; fewer is
      cheaper: every prior evaluation runs the encoder on all K pseudo-inputs).
    * ``squash`` -- how the stored parameter ``raw_pseudo_inputs`` becomes the pseudo-inputs:
      ``hardtanh`` clips to [0, 1] (for data in [0, 1]), ``sigmoid`` maps smoothly into
      (0, 1), ``none`` leaves them unbounded (for standardised data).
    * ``init`` -- initial pseudo-inputs, drawn from the current torch RNG at ``bind`` time:
      ``uniform`` U(0, 1) per element; ``normal`` N(0, 1) (before ``squash``; not allowed with
      ``hardtanh``, which would clip half of them to a zero gradient).
      ``init_from_data(x)`` replaces them with given examples, e.g. a random training batch.

    ``condition_dim`` is set by vaezoo for a conditional prior p(z|y) (``model.condition.prior:
    true``, see the module doc); ``bind`` then learns which kind of condition it is.
    """

    def __init__(
        self,
        latent_dim: int,
        components: int = 500,
        squash: str = "hardtanh",
        init: str = "uniform",
        condition_dim: int = 0,
    ) -> None:
        super().__init__(check_positive_int(latent_dim, "latent_dim", "VampPrior"))
        self.components = check_positive_int(components, "components", "VampPrior")
        self.squash = check_choice(squash, "squash", "VampPrior", SQUASHES)
        self.init = check_choice(init, "init", "VampPrior", INITS)
        if self.init == "normal" and self.squash == "hardtanh":
            raise ValueError(
                "VampPrior: init='normal' with squash='hardtanh' would clip about half of each "
                "pseudo-input to 0 or 1 where it gets no gradient; use squash='sigmoid' or 'none'"
            )
        self.condition_dim = check_positive_int(condition_dim, "condition_dim", "VampPrior", allow_zero=True)
        self.register_parameter("raw_pseudo_inputs", None)
        self.register_parameter("raw_pseudo_conditions", None)  # learned v_k: covariate conditions only
        self.data_shape: tuple[int, ...] | None = None
        self.condition = None  # the model's Condition (set by bind), or None
        # object.__setattr__ keeps the encoder out of this module's submodules and state_dict.
        object.__setattr__(self, "_encoder", None)

    evaluates_encoder = True  # q(z|u_k) at its pseudo-inputs (q(z|u_k, v_k) in a conditional model)
    latents = ("real", "categorical")  # a mixture of the encoder's own posteriors: of whatever family it gives

    # -- binding ---------------------------------------------------------------------
    def bind(self, encoder: nn.Module, data_shape: tuple[int, ...], condition=None) -> None:
        """Use ``encoder`` for q(z|u_k) and create pseudo-inputs of shape ``(K, *data_shape)``.

        ``condition``: the model's ``vaezoo.conditioning.Condition`` when the encoder takes
        ``(x, y)``; it decides the pseudo-conditions (module doc). Calling ``bind`` again with
        the same ``data_shape`` and condition keeps the existing pseudo-inputs.
        """
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"VampPrior.bind: encoder must be a torch.nn.Module, got {type(encoder).__name__}")
        self._check_condition(condition)
        data_shape = tuple(int(s) for s in data_shape)
        object.__setattr__(self, "_encoder", encoder)
        if self.raw_pseudo_inputs is not None and self.data_shape == data_shape and self.condition == condition:
            return
        try:  # before anything is allocated
            size = self.components * math.prod(data_shape)
            check_weights([("pseudo-inputs", size), ("pseudo-conditions", self.components * (condition.dim if condition else 0))],
                          "VampPrior", "components")
        except ValueError as exc:
            raise ConfigError(f"model.prior.components: {exc}") from None
        self.data_shape, self.condition = data_shape, condition
        ref = next(iter(encoder.parameters()), None)
        if ref is None:
            ref = torch.zeros(())
        shape = (self.components, *data_shape)
        if self.init == "uniform":
            u = torch.rand(shape)
            raw = torch.logit(u.clamp(1e-3, 1 - 1e-3)) if self.squash == "sigmoid" else u
        else:
            raw = torch.randn(shape)
        self.raw_pseudo_inputs = nn.Parameter(raw.to(device=ref.device, dtype=ref.dtype))
        if condition is not None and not condition.classes:
            v = torch.randn(self.components, condition.dim)
            self.raw_pseudo_conditions = nn.Parameter(v.to(device=ref.device, dtype=ref.dtype))
        else:
            self.raw_pseudo_conditions = None

    def _check_condition(self, condition) -> None:
        """One-line ``ConfigError`` for a condition this prior cannot serve (``ValueError`` if not built for it)."""
        conditional_prior = bool(condition is not None and condition.prior)
        if conditional_prior != bool(self.condition_dim) or (conditional_prior and condition.size != self.condition_dim):
            raise ValueError(
                f"VampPrior: built with condition_dim={self.condition_dim} but bound with condition {condition!r}; "
                "vaezoo sets condition_dim only for model.condition.prior: true"
            )
        if not conditional_prior:
            return
        if not condition.classes:
            raise ConfigError(
                "model.prior: vamp gives p(z|y) only for labels (model.condition.classes); for covariates use "
                "model.condition.prior: false (p(z) is then a mixture of q(z|u_k, v_k) with learned pseudo-covariates v_k)"
            )
        if self.components < condition.classes:
            raise ConfigError(
                f"model.prior.components: the class-wise VampPrior needs at least one pseudo-input per class, "
                f"got {self.components} for {condition.classes} classes; use components >= {condition.classes}"
            )

    @property
    def encoder(self) -> nn.Module:
        enc = self.__dict__.get("_encoder")
        if enc is None or self.raw_pseudo_inputs is None:
            raise RuntimeError(
                "VampPrior is not bound to an encoder: it evaluates q(z|u) at learned pseudo-inputs, "
                "so use it inside a vaezoo VAE (which binds it), or call prior.bind(encoder, data_shape) first"
            )
        return enc

    # -- pseudo-inputs ---------------------------------------------------------------
    @property
    def pseudo_inputs(self) -> Tensor:
        """The K pseudo-inputs ``(K, *data_shape)`` after ``squash``."""
        self.encoder  # raises if unbound
        raw = self.raw_pseudo_inputs
        if self.squash == "hardtanh":
            return nn.functional.hardtanh(raw, 0.0, 1.0)
        if self.squash == "sigmoid":
            return torch.sigmoid(raw)
        return raw

    @property
    def pseudo_conditions(self) -> Tensor | None:
        """The K pseudo-conditions v_k ``(K, condition size)`` of a conditional model's encoder, or None."""
        self.encoder  # raises if unbound
        if self.condition is None:
            return None
        if self.raw_pseudo_conditions is not None:
            return self.raw_pseudo_conditions
        ref = self.raw_pseudo_inputs
        classes = torch.arange(self.components, device=ref.device) % self.condition.classes
        return nn.functional.one_hot(classes, self.condition.classes).to(ref.dtype)

    @torch.no_grad()
    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Set the pseudo-inputs to the K examples ``x (K, *data_shape)`` (after bind); in a
        covariate-conditional model, ``y (K, dim)`` also sets the learned pseudo-covariates."""
        self.encoder  # raises if unbound
        if y is not None:
            if self.raw_pseudo_conditions is None:
                raise ValueError("VampPrior.init_from_data: y sets learned pseudo-covariates, which only a "
                                 "covariate-conditional model (model.condition.dim, prior: false) has")
            if tuple(y.shape) != tuple(self.raw_pseudo_conditions.shape):
                raise ValueError(f"VampPrior.init_from_data: expected y of shape "
                                 f"{tuple(self.raw_pseudo_conditions.shape)}, got {tuple(y.shape)}")
        raw = self.raw_pseudo_inputs
        if tuple(x.shape) != tuple(raw.shape):
            raise ValueError(f"VampPrior.init_from_data: expected x of shape {tuple(raw.shape)}, got {tuple(x.shape)}")
        x = x.to(device=raw.device, dtype=raw.dtype)
        if self.squash == "hardtanh":
            x = x.clamp(0.0, 1.0)
        elif self.squash == "sigmoid":
            x = torch.logit(x.clamp(1e-3, 1 - 1e-3))
        raw.copy_(x)
        if y is not None:
            self.raw_pseudo_conditions.copy_(y.to(raw))

    # -- the prior -------------------------------------------------------------------
    def distribution(self, y: Tensor | None = None) -> Distribution:
        """p(z), or for a class-wise VampPrior p(z|y) with batch shape ``(B,)`` for label rows ``y (B, classes)``."""
        v = self.pseudo_conditions
        q = self.encoder(self.pseudo_inputs) if v is None else self.encoder(self.pseudo_inputs, v)
        if tuple(q.batch_shape) != (self.components,) or tuple(q.event_shape) != (self.latent_dim,):
            raise RuntimeError(
                f"VampPrior: the encoder returned batch {tuple(q.batch_shape)} and event "
                f"{tuple(q.event_shape)} for {self.components} pseudo-inputs; expected "
                f"({self.components},) and ({self.latent_dim},)"
            )
        logits = self._logits(y)
        if isinstance(q, Independent) and isinstance(q.base_dist, Normal) and q.reinterpreted_batch_ndims == 1:
            return DiagonalNormalMixture.of(logits, q)
        if logits.dim() == 2:
            q = q.expand((len(logits), self.components))
        return MixtureSameFamily(Categorical(logits=logits), q)

    def _logits(self, y: Tensor | None) -> Tensor:
        """Mixture logits: uniform ``(K,)``; class-wise ``(B, K)``, log(y_c / n_c) for each component of class c."""
        ref = self.raw_pseudo_inputs
        if not self.condition_dim:
            if y is not None:
                raise DataError("VampPrior: got y, but this prior was built without condition_dim (p(z), not p(z|y))")
            return torch.zeros(self.components, device=ref.device, dtype=ref.dtype)
        if y is None or y.dim() != 2 or y.shape[-1] != self.condition_dim:
            got = "nothing" if y is None else f"shape {tuple(y.shape)}"
            raise DataError(f"VampPrior: p(z|y) needs label rows y of shape (B, {self.condition_dim}), got {got}")
        if not torch.all(y >= 0):
            raise DataError("VampPrior: p(z|y) takes label rows of class weights >= 0 (one-hot or soft), got a negative entry")
        v = self.pseudo_conditions  # (K, classes) one-hot
        return torch.log(y.to(ref.dtype) @ (v / v.sum(0)).T)  # (B, K); -inf for the other classes' components

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.distribution(y).log_prob(z)

    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        if not self.condition_dim:
            return self.distribution().sample((int(n),))
        d = self.distribution(y)
        if d.batch_shape != (int(n),):
            raise DataError(f"VampPrior: sample({n}, y) needs y of shape ({n}, {self.condition_dim}), got {tuple(y.shape)}")
        return d.sample()

    def extra_repr(self) -> str:
        bound = self.__dict__.get("_encoder") is not None
        return (
            f"latent_dim={self.latent_dim}, components={self.components}, squash={self.squash!r}, "
            f"init={self.init!r}, bound={bound}" + (f", condition_dim={self.condition_dim}" if self.condition_dim else "")
        )
