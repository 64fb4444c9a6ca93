"""``objective: vq`` -- a VQ-VAE trained in two stages, from one config.

Stage 1, the first ``autoencoder_epochs`` epochs: the autoencoder (encoder, codebook, decoder)
minimises -log p(x|z_q) + its quantiser terms, and the prior learns the detached codes alongside
(the model's ELBO loss, as ``objective: elbo`` trains it). Stage 2, afterwards: the autoencoder
is frozen -- it runs under ``torch.no_grad()``, so its parameters get no gradient (the optimiser
leaves them alone) and the codebook's statistics stay put -- and only the prior trains, on the
codes of the training set, minimising -log p(c*(x)). The reported ELBO uses the prior as it is.

``schedule(step)`` gives ``stage`` (1 or 2), logged with every record. Under ``train.compile``
it arrives as a 0-d tensor; reading it is a graph break, and each stage compiles once.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from vaezoo.components import Objective
from vaezoo.errors import ConfigError

WHO = "objective 'vq'"


class VQObjective(Objective):
    """The two-stage VQ-VAE objective. Metrics: those of the model's ``elbo`` (``loss``, ``elbo``,
    ``log_px_z``, ``kl``, ``quantization_error``, ``perplexity``, ``dead_codes``); ``loss`` is what
    is minimised, so in stage 2 the prior's NLL of the codes.

    Parameters:

    * ``autoencoder_epochs`` -- epochs of stage 1 (the autoencoder trains, the prior alongside);
      afterwards only the prior trains, on the frozen autoencoder's codes. ``null``: stage 1
      throughout. Needs a learned prior (``model.prior: {name: transformer}``).
    """

    def __init__(self, autoencoder_epochs: float | None = None) -> None:
        super().__init__()
        if autoencoder_epochs is not None and (isinstance(autoencoder_epochs, bool) or not isinstance(autoencoder_epochs, (int, float))
                                               or not 0 <= autoencoder_epochs < float("inf")):
            raise ValueError(f"{WHO}: autoencoder_epochs must be a number >= 0 or null (no second stage), got {autoencoder_epochs!r}")
        self.autoencoder_epochs = None if autoencoder_epochs is None else float(autoencoder_epochs)
        self.autoencoder_steps: int | None = None

    def setup(self, *, steps_per_epoch: int, dataset_size: int) -> None:
        if self.autoencoder_epochs is None:
            return
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            raise ConfigError(f"{WHO}: the second stage (autoencoder_epochs) changes which parameters get gradients, "
                              "which DistributedDataParallel's static graph does not allow; train it in one process, "
                              "or set objective.autoencoder_epochs: null")
        self.autoencoder_steps = round(self.autoencoder_epochs * steps_per_epoch)

    def schedule(self, step: int) -> dict[str, float]:
        second = self.autoencoder_steps is not None and step >= self.autoencoder_steps
        return {"stage": 2.0 if second else 1.0}

    def check(self, model: nn.Module) -> None:
        from .model import VQVAE

        if not isinstance(model, VQVAE):
            arch = (getattr(model, "config", None) or {}).get("architecture", type(model).__name__)
            raise ConfigError(f"{WHO} trains architecture 'vqvae' only (a codebook and a code prior); architecture "
                              f"{arch!r} has neither: use objective 'elbo' or 'iwae' for it")
        if self.autoencoder_epochs is not None and not model.prior.learned:
            raise ConfigError(f"{WHO}: autoencoder_epochs={self.autoencoder_epochs:g} leaves only the prior to train, but "
                              "model.prior is 'uniform' (nothing to learn); set model.prior: {name: transformer} or "
                              "objective.autoencoder_epochs: null")

    def forward(self, model: nn.Module, x: Tensor, stage: Any = 1.0, y: Any = None) -> tuple[Tensor, dict[str, Tensor]]:
        given = {} if y is None else {"y": y}  # a conditional batch: the model says whether it takes y
        out = model.elbo(x, train_autoencoder=not bool(stage > 1.5), **given)
        return out["loss"].mean(), out

    def extra_repr(self) -> str:
        return f"autoencoder_epochs={self.autoencoder_epochs}"
