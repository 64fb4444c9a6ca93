"""The ``mlflow`` logger: an MLflow run per vaezoo run (continued on resume)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ._common import flatten, read_state, scalars, write_state
from .base import Logger

STATE = "mlflow.json"  #: in the run folder: the tracking URI and the MLflow run's id


class MlflowLogger(Logger):
    """An MLflow run: the config flattened into params (``train.lr``, ...), every number as a
    metric at its step, the figures (``images/``) and the final model (``model/``) as artifacts.

    Parameters:

    * ``tracking_uri`` -- where to track; default the ``MLFLOW_TRACKING_URI`` environment variable, else an
      SQLite store ``mlflow.db`` in the run folder (its artifacts in ``mlartifacts/``).
    * ``experiment`` -- the MLflow experiment (created when missing).
    * ``run_name`` -- the MLflow run's name; default the run folder's name.
    * ``log_model`` -- upload the final model folder as the ``model`` artifact.
    """

    library = "mlflow"
    install = "pip install 'vaezoo[mlflow]'"

    def __init__(
        self, tracking_uri: str | None = None, experiment: str = "vaezoo", run_name: str | None = None,
        log_model: bool = True,
    ) -> None:
        self.tracking_uri, self.experiment, self.run_name, self.upload_model = tracking_uri, experiment, run_name, log_model
        self.client: Any = None
        self.run_id: str | None = None

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        import logging

        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        for chatty in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database tables..."
            logging.getLogger(chatty).setLevel(logging.WARNING)
        run_dir = Path(run_dir)
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{run_dir.resolve() / 'mlflow.db'}"
        local = uri.startswith("sqlite:///") and uri.endswith(str(run_dir.resolve() / "mlflow.db"))
        self.client = MlflowClient(tracking_uri=uri)
        state = read_state(run_dir / STATE)
        if state.get("tracking_uri") == uri and state.get("run_id"):  # a resumed run continues its MLflow run
            self.run_id = state["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:  # the run folder's own store keeps its artifacts in the run folder too
            where = (run_dir.resolve() / "mlartifacts").as_uri() if local else None
            experiment_id = self.client.create_experiment(self.experiment, artifact_location=where)
        run = self.client.create_run(experiment_id, run_name=self.run_name or run_dir.name)
        self.run_id = run.info.run_id
        write_state(run_dir / STATE, {"tracking_uri": uri, "run_id": self.run_id})
        params = [Param(k, str(v)[:6000]) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_metrics(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(record.get("step", 0))
        metrics = [Metric(k, float(v), now, step) for k, v in scalars(record).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_images(self, name: str, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path="images")

    def log_model(self, folder: Path) -> None:
        if self.upload_model:
            self.client.log_artifacts(self.run_id, str(folder), artifact_path="model")

    def close(self) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, status="FINISHED")
        self.client = None
