"""MLflow tracking of training runs (Ray-free): params, metrics per epoch, artifacts, tags.

The embedded default is a SQLite store under the data dir with file artifacts beside it
(``Settings.mlflow_tracking_uri``); a tracking server is a setting (``train.mlflow_uri``).
``MlflowClient`` is used directly (no global ``mlflow.start_run`` state), so the job and its
training workers can log to the same run by id from different processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EXPERIMENT = "sentinel-training"


def _client(uri: str) -> Any:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient  # heavy; only here

    return MlflowClient(tracking_uri=uri)


class Tracker:
    """Logs one training run to MLflow.

    Args:
        uri: The tracking URI (``sqlite:///...`` embedded, or ``http(s)://`` a server).
        artifacts: Where a new experiment keeps its artifacts (embedded store); None: the
            server's default.
        experiment: The experiment's name.
    """

    def __init__(self, uri: str, artifacts: Path | None = None, experiment: str = EXPERIMENT):
        self.uri = uri
        self.artifacts = artifacts
        self.experiment = experiment
        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self._mlflow = _client(uri)

    def experiment_id(self) -> str:
        found = self._mlflow.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.artifacts is not None:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            location = self.artifacts.resolve().as_uri()
        try:
            return str(self._mlflow.create_experiment(self.experiment, artifact_location=location))
        except Exception:  # created meanwhile by another process
            found = self._mlflow.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return str(found.experiment_id)

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """A new run with its params and tags; returns its id."""
        run = self._mlflow.create_run(self.experiment_id(), run_name=run_name, tags=dict(tags))
        run_id = str(run.info.run_id)
        for key, value in params.items():
            self._mlflow.log_param(run_id, key, str(value)[:6000])
        return run_id

    def metrics(self, run_id: str, values: Mapping[str, float], step: int | None = None) -> None:
        for key, value in values.items():
            self._mlflow.log_metric(run_id, key, float(value), step=step or 0)

    def tags(self, run_id: str, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._mlflow.set_tag(run_id, key, value)

    def artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self._mlflow.log_artifact(run_id, str(path), folder)

    def end(self, run_id: str, *, failed: bool = False) -> None:
        self._mlflow.set_terminated(run_id, "FAILED" if failed else "FINISHED")

    def run(self, run_id: str) -> Any:
        """The MLflow run (params, metrics, tags), for the API and tests."""
        return self._mlflow.get_run(run_id)

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """A metric's ``(step, value)`` history."""
        return [(int(m.step), float(m.value)) for m in self._mlflow.get_metric_history(run_id, key)]
