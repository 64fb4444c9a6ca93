"""The ``wandb`` logger: a Weights & Biases run per vaezoo run (continued on resume)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._common import read_state, scalars, write_state
from .base import Logger

STATE = "wandb.json"  #: in the run folder: the W&B run's id


class WandbLogger(Logger):
    """A Weights & Biases run: the config, every number at its step, the figures as images and
    the final model as a ``model`` artifact; its local files go to ``wandb/`` in the run folder.

    Parameters:

    * ``project`` -- the W&B project.
    * ``name`` -- the W&B run's name; default the run folder's name.
    * ``entity`` -- the W&B team or user; default your default entity.
    * ``mode`` -- online, offline (nothing leaves the machine; ``wandb sync`` uploads later) or disabled;
      default W&B's own (``WANDB_MODE``, else online).
    * ``log_model`` -- upload the final model folder as an artifact.
    """

    library = "wandb"
    install = "pip install 'vaezoo[wandb]'"

    def __init__(
        self, project: str = "vaezoo", name: str | None = None, entity: str | None = None, mode: str | None = None,
        log_model: bool = True,
    ) -> None:
        self.project, self.name, self.entity, self.mode, self.upload_model = project, name, entity, mode, log_model
        self.run: Any = None

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        import wandb

        run_dir = Path(run_dir)
        state = read_state(run_dir / STATE)
        self.run = wandb.init(
            project=self.project, name=self.name or run_dir.name, entity=self.entity, mode=self.mode,
            dir=str(run_dir), config=config, id=state.get("run_id"), resume="allow", reinit="create_new",
            settings=wandb.Settings(console="off", quiet=True),  # vaezoo's own output stays as it is
        )
        write_state(run_dir / STATE, {"run_id": self.run.id})

    def log_metrics(self, record: dict[str, Any]) -> None:
        values = scalars(record)
        if values:
            self.run.log(values, step=int(record.get("step", 0)))

    def log_images(self, name: str, path: Path, step: int) -> None:
        import wandb

        self.run.log({f"images/{name}": wandb.Image(str(path))}, step=step)

    def log_model(self, folder: Path) -> None:
        if self.upload_model:
            import wandb

            artifact = wandb.Artifact(f"model-{self.run.id}", type="model")
            artifact.add_dir(str(folder))
            self.run.log_artifact(artifact)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
