"""The VampPrior (``prior: vamp``), Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018.

p(z) = (1/K) sum_k q(z | u_k): a uniform mixture of the encoder's own posteriors at K learned
pseudo-inputs ``u_k`` (same shape as one example). The prior therefore needs the model's
encoder: the ``VAE`` calls ``bind(encoder, data_shape)`` once after building the encoder,
which creates the pseudo-inputs. Using the prior before that raises ``RuntimeError``.
The encoder is only referenced, not registered as a submodule, so its weights are stored
once (under the VAE's encoder), never in the prior's ``state_dict``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal

from ..components import Prior
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
    """

    def __init__(
        self,
        latent_dim: int,
        components: int = 500,
        squash: str = "hardtanh",
        init: str = "uniform",
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
        self.register_parameter("raw_pseudo_inputs", None)
        self.data_shape: tuple[int, ...] | None = None
        # object.__setattr__ keeps the encoder out of this module's submodules and state_dict.
        object.__setattr__(self, "_encoder", None)

    evaluates_encoder = True  # q(z|u_k) at its pseudo-inputs: not for a conditional model's encoder
    latents = ("real", "categorical")  # a mixture of the encoder's own posteriors: of whatever family it gives

    # -- binding ---------------------------------------------------------------------
    def bind(self, encoder: nn.Module, data_shape: tuple[int, ...]) -> None:
        """Use ``encoder`` for q(z|u_k) and create pseudo-inputs of shape ``(K, *data_shape)``.

        Calling it again with the same ``data_shape`` keeps the existing pseudo-inputs.
        """
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"VampPrior.bind: encoder must be a torch.nn.Module, got {type(encoder).__name__}")
        data_shape = tuple(int(s) for s in data_shape)
        object.__setattr__(self, "_encoder", encoder)
        if self.raw_pseudo_inputs is not None and self.data_shape == data_shape:
            return
        self.data_shape = data_shape
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

    @torch.no_grad()
    def init_from_data(self, x: Tensor) -> None:
        """Set the pseudo-inputs to the K examples ``x (K, *data_shape)`` (after bind)."""
        self.encoder  # raises if unbound
        raw = self.raw_pseudo_inputs
        if tuple(x.shape) != tuple(raw.shape):
            raise ValueError(f"VampPrior.init_from_data: expected x of shape {tuple(raw.shape)}, got {tuple(x.shape)}")
        x = x.to(device=raw.device, dtype=raw.dtype)
        if self.squash == "hardtanh":
            x = x.clamp(0.0, 1.0)
        elif self.squash == "sigmoid":
            x = torch.logit(x.clamp(1e-3, 1 - 1e-3))
        raw.copy_(x)

    # -- the prior -------------------------------------------------------------------
    def distribution(self) -> Distribution:
        q = self.encoder(self.pseudo_inputs)
        if tuple(q.batch_shape) != (self.components,) or tuple(q.event_shape) != (self.latent_dim,):
            raise RuntimeError(
                f"VampPrior: the encoder returned batch {tuple(q.batch_shape)} and event "
                f"{tuple(q.event_shape)} for {self.components} pseudo-inputs; expected "
                f"({self.components},) and ({self.latent_dim},)"
            )
        ref = self.raw_pseudo_inputs
        logits = torch.zeros(self.components, device=ref.device, dtype=ref.dtype)
        if isinstance(q, Independent) and isinstance(q.base_dist, Normal) and q.reinterpreted_batch_ndims == 1:
            return DiagonalNormalMixture.of(logits, q)
        return MixtureSameFamily(Categorical(logits=logits), q)

    def extra_repr(self) -> str:
        bound = self.__dict__.get("_encoder") is not None
        return (
            f"latent_dim={self.latent_dim}, components={self.components}, squash={self.squash!r}, "
            f"init={self.init!r}, bound={bound}"
        )
