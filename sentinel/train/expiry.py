"""Retention periods of annotation datasets and training artifacts (issue 16, derived data).

``ArtifactSweeper.sweep`` runs inside the retention sweep (``storage.datasets_days``,
``storage.training_days``; both off by default, like the other derived-data periods):

- a **dataset version** created before ``datasets_days`` ago is deleted (row marked
  ``deleted``, its files under ``datasets/<name>/v<n>/`` removed), even if old training runs
  used it, unless it is *protected*: a model that must be kept (below) was trained or gated on
  it, it is the regression set (``train.regression_dataset`` at its pinned version, else its
  newest), or one of its frames lies in a camera range under an active legal hold;
- a **training run** that ended before ``training_days`` ago loses its Ray Train checkpoints
  (``<train storage>/sentinel-<run id>``), its MLflow run (artifacts deleted, run marked deleted)
  and the registered versions made from it, unless it made a model that must be kept.

The models that must be kept are the registry's ``champion`` and ``challenger`` aliases and the
serving state's champion, canary and rollback versions (``previous``): rolling back to a version
whose ONNX file was deleted would fail. When the registry or the serving state cannot be read,
nothing is deleted that round (the sweep never guesses what is in use). Every deletion is
audited (actor ``retention``) and listed in the report, and so is what was kept and why.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.engine import Engine

from sentinel.config import StorageSettings, TrainSettings
from sentinel.domain.holds import HeldRange, holding
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.dataset_repo import DatasetNotFound, DatasetRepo, DatasetVersion
from sentinel.store.model_repo import ModelServingRepository
from sentinel.store.objects import ObjectNotFound, ObjectStore
from sentinel.store.sql import as_utc
from sentinel.store.training_repo import TrainingRun, TrainingRunRepository
from sentinel.train.datasets import DatasetManifest, version_prefix
from sentinel.train.registry import CHALLENGER, CHAMPION, ModelRegistry, ModelVersion

__all__ = [
    "ArtifactReport",
    "ArtifactSweeper",
    "Registry",
    "artifact_sweeper",
    "kept_model_versions",
]

logger = logging.getLogger(__name__)

AUDIT_ACTOR = "retention"
_PAGE = 1000
_FINAL = frozenset({"succeeded", "failed"})


class Registry(Protocol):
    """What the sweep needs of ``sentinel.train.registry.ModelRegistry``."""

    def alias(self, name: str) -> ModelVersion | None: ...
    def versions(self) -> list[ModelVersion]: ...
    def delete_version(self, version: int) -> None: ...
    def run_active(self, run_id: str) -> bool | None: ...
    def delete_run(self, run_id: str) -> int: ...


@dataclass(slots=True)
class ArtifactReport:
    """What one round removed and what it kept past its period (and why)."""

    datasets_deleted: list[str] = field(default_factory=list)  # "name:vN"
    dataset_files: int = 0
    datasets_kept: dict[str, list[str]] = field(default_factory=dict)  # reason -> versions
    training_runs_cleared: list[str] = field(default_factory=list)  # training run ids
    checkpoint_dirs: int = 0
    mlflow_runs: int = 0
    mlflow_files: int = 0
    model_versions_deleted: list[int] = field(default_factory=list)
    training_kept: list[str] = field(default_factory=list)  # runs of models kept
    failed: int = 0
    error: str = ""  # why a part was not swept this round

    def keep(self, reason: str, label: str) -> None:
        self.datasets_kept.setdefault(reason, []).append(label)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kept_model_versions(registry: Registry | None, serving: Mapping[str, Any] | None) -> set[int]:
    """The registered versions whose runs and datasets stay: the champion and challenger
    aliases, and the serving state's champion, canary and rollback (``previous``) versions."""
    kept: set[int] = set()
    if registry is not None:
        for alias in (CHAMPION, CHALLENGER):
            found = registry.alias(alias)
            if found is not None:
                kept.add(found.version)
    if serving:
        for role in ("champion", "canary"):
            model = serving.get(role)
            if isinstance(model, Mapping) and model.get("version") is not None:
                kept.add(int(model["version"]))
        for model in serving.get("previous") or ():
            if isinstance(model, Mapping) and model.get("version") is not None:
                kept.add(int(model["version"]))
    return kept


class ArtifactSweeper:
    """Applies ``datasets_days`` and ``training_days`` (see the module doc).

    Args:
        engine: A migrated database (datasets, training runs, serving state, audit log).
        objects: Where dataset files are.
        datasets_days: Period of dataset versions; None: kept.
        training_days: Period of training artifacts; None: kept.
        registry: Opens the model registry (MLflow; slow to import, so opened on first use);
            None: no registry (datasets are then protected through the serving state only,
            and no MLflow run is touched).
        train_storage: Ray Train's run storage (checkpoints); None or remote: not swept.
        regression: The regression set's name and pinned version (None: its newest).
    """

    def __init__(
        self,
        engine: Engine,
        objects: ObjectStore,
        *,
        datasets_days: float | None,
        training_days: float | None,
        registry: Callable[[], Registry] | None = None,
        train_storage: Path | None = None,
        regression: tuple[str, int | None] | None = None,
    ) -> None:
        self.datasets = DatasetRepo(engine)
        self.runs = TrainingRunRepository(engine)
        self.serving = ModelServingRepository(engine)
        self.audit = AuditRepository(engine)
        self.objects = objects
        self.datasets_days = datasets_days
        self.training_days = training_days
        self._open_registry = registry
        self._registry: Registry | None = None
        self.train_storage = train_storage
        self.regression = regression

    @property
    def enabled(self) -> bool:
        return self.datasets_days is not None or self.training_days is not None

    def _registry_now(self) -> Registry | None:
        if self._registry is None and self._open_registry is not None:
            self._registry = self._open_registry()
        return self._registry

    def sweep(self, now: datetime, held: Mapping[str, Sequence[HeldRange]]) -> ArtifactReport:
        """One round; deletions that fail are logged, counted and tried again next round."""
        report = ArtifactReport()
        if not self.enabled:
            return report
        try:
            registry = self._registry_now()
            stored = self.serving.get()
            kept_versions = kept_model_versions(registry, None if stored is None else stored.state)
            runs = self._all_runs()
            versions = registry.versions() if registry is not None else []
            kept_runs = _runs_of(kept_versions, runs, versions)
        except Exception as exc:  # never delete without knowing what is in use
            report.error = f"models in use not known: {type(exc).__name__}: {exc}"[:500]
            logger.exception("artifact retention skipped: the models in use are not known")
            return report
        if self.datasets_days is not None:
            cutoff = now - timedelta(days=self.datasets_days)
            self._sweep_datasets(cutoff, kept_runs, held, report, now)
        if self.training_days is not None:
            cutoff = now - timedelta(days=self.training_days)
            self._sweep_training(
                cutoff, runs, kept_runs, (versions, kept_versions), registry, report, now
            )
        return report

    def _all_runs(self) -> list[TrainingRun]:
        out: list[TrainingRun] = []
        while True:
            page = self.runs.list(limit=_PAGE, offset=len(out))
            out.extend(page)
            if len(page) < _PAGE:
                return out

    # -- datasets ---------------------------------------------------------------------------

    def _regression_version(self) -> tuple[str, int] | None:
        if self.regression is None:
            return None
        name, version = self.regression
        if version is not None:
            return name, version
        newest = self.datasets.latest(name)
        return None if newest is None else (name, newest.version)

    def _sweep_datasets(
        self,
        cutoff: datetime,
        kept_runs: set[str],
        held: Mapping[str, Sequence[HeldRange]],
        report: ArtifactReport,
        now: datetime,
    ) -> None:
        regression = self._regression_version()
        ready = self.datasets.list(status="ready")
        for version in sorted(ready, key=lambda v: (v.name, v.version)):
            if version.created_at >= cutoff:
                continue
            label = f"{version.name}:v{version.version}"
            used = sorted(set(version.locked_by) & kept_runs)
            if used:
                report.keep("model", label)
                continue
            if (version.name, version.version) == regression:
                report.keep("regression", label)
                continue
            try:
                hold = self._hold_on(version, held)
            except Exception:
                logger.exception("dataset %s kept: its manifest does not read", label)
                report.keep("unreadable", label)
                report.failed += 1
                continue
            if hold is not None:
                report.keep("hold", label)
                continue
            self._expire_dataset(version, label, report, now)

    def _hold_on(
        self, version: DatasetVersion, held: Mapping[str, Sequence[HeldRange]]
    ) -> str | None:
        """A hold keeping a frame of the version (its manifest says which cameras and times)."""
        if not any(held.get(camera) for camera in version.camera_ids):
            return None
        try:
            data = self.objects.get(version.manifest_key)
        except ObjectNotFound:
            return None  # nothing left to keep
        try:
            manifest = DatasetManifest.model_validate_json(data)
        except ValidationError as exc:
            raise ValueError(f"manifest of {version.name} v{version.version}: {exc}") from exc
        for item in manifest.items:
            found = holding(held, item.camera_id, item.frame_ts, item.frame_ts)
            if found is not None:
                return found
        return None

    def _expire_dataset(
        self, version: DatasetVersion, label: str, report: ArtifactReport, now: datetime
    ) -> None:
        try:
            gone = self.datasets.expire(version.name, version.version)
        except DatasetNotFound:
            return  # deleted meanwhile
        except Exception:
            logger.exception("dataset %s not expired", label)
            report.failed += 1
            return
        files = 0
        try:
            for key, _ in list(
                self.objects.iter_keys(version_prefix(version.name, version.version))
            ):
                self.objects.delete(key)
                files += 1
        except Exception:  # the row says deleted; leftover files are only space, retried never
            logger.exception("dataset %s: files not all deleted", label)
            report.failed += 1
        report.datasets_deleted.append(label)
        report.dataset_files += files
        self._audit(
            "dataset.expire",
            version_prefix(version.name, version.version),
            {
                "dataset": version.name,
                "version": version.version,
                "files": files,
                "created_at": version.created_at.isoformat(),
                "used_by_runs": list(gone.locked_by),
                "days": self.datasets_days,
            },
            now,
        )

    # -- training artifacts -----------------------------------------------------------------

    def _sweep_training(
        self,
        cutoff: datetime,
        runs: list[TrainingRun],
        kept_runs: set[str],
        models: tuple[list[ModelVersion], set[int]],
        registry: Registry | None,
        report: ArtifactReport,
        now: datetime,
    ) -> None:
        versions, kept_versions = models
        for run in runs:
            if run.status not in _FINAL or run.finished_at is None:
                continue
            if as_utc(run.finished_at, "finished_at") >= cutoff:
                continue
            if run.id in kept_runs:
                report.training_kept.append(run.id)
                continue
            try:
                done = self._clear_run(run, versions, kept_versions, registry, report)
            except Exception:
                logger.exception("training run %s: artifacts not all deleted", run.id)
                report.failed += 1
                continue
            if done:
                report.training_runs_cleared.append(run.id)
                self._audit("training.expire", f"training/{run.id}", done, now)

    def _clear_run(
        self,
        run: TrainingRun,
        versions: list[ModelVersion],
        kept_versions: set[int],
        registry: Registry | None,
        report: ArtifactReport,
    ) -> dict[str, Any]:
        """Deletes what is left of the run; returns what was deleted ({}: nothing was left)."""
        done: dict[str, Any] = {}
        if self.train_storage is not None:
            folder = self.train_storage / f"sentinel-{run.id}"
            if folder.is_dir():
                shutil.rmtree(folder)
                report.checkpoint_dirs += 1
                done["checkpoints"] = str(folder)
        if registry is not None and run.mlflow_run_id:
            made = [
                v.version
                for v in versions
                if v.run_id == run.mlflow_run_id or v.version == run.challenger_version
            ]
            for number in made:
                if number in kept_versions:  # belt and braces: kept runs never get here
                    raise RuntimeError(f"version {number} of run {run.id} is in use")
            for number in made:
                registry.delete_version(number)
                report.model_versions_deleted.append(number)
            if made:
                done["model_versions"] = made
            if registry.run_active(run.mlflow_run_id):
                files = registry.delete_run(run.mlflow_run_id)
                report.mlflow_runs += 1
                report.mlflow_files += files
                done["mlflow_run"] = run.mlflow_run_id
                done["mlflow_files"] = files
        if done:
            done["days"] = self.training_days
            if run.finished_at is not None:
                done["finished_at"] = as_utc(run.finished_at, "finished_at").isoformat()
        return done

    def _audit(self, action: str, target: str, detail: dict[str, Any], now: datetime) -> None:
        try:
            self.audit.append(
                actor=AUDIT_ACTOR,
                action=action,
                target=target,
                client="internal",
                outcome="success",
                detail=detail,
                at=now,
            )
        except Exception:  # the deletion happened; never undo it for the log
            logger.exception("audit append failed for %s %s", action, target)


def _runs_of(kept: set[int], runs: list[TrainingRun], versions: list[ModelVersion]) -> set[str]:
    """The training runs that made the ``kept`` versions (by the run's challenger version, or
    by the version's MLflow run)."""
    mlflow_runs = {v.run_id for v in versions if v.version in kept and v.run_id}
    return {
        run.id
        for run in runs
        if run.challenger_version in kept or (run.mlflow_run_id or "") in mlflow_runs
    }


def artifact_sweeper(
    engine: Engine,
    objects: ObjectStore,
    storage: StorageSettings,
    train: TrainSettings,
    data_dir: Path,
) -> ArtifactSweeper | None:
    """The deployment's sweeper of datasets and training artifacts; None when both periods
    are off. The registry is the configured MLflow store (opened on the first sweep); Ray
    Train's storage is swept only when it is a local folder."""
    if storage.datasets_days is None and storage.training_days is None:
        return None
    storage_path = train.storage_path or data_dir / "train"
    local = "://" not in str(storage_path)
    return ArtifactSweeper(
        engine,
        objects,
        datasets_days=storage.datasets_days,
        training_days=storage.training_days,
        registry=lambda: ModelRegistry.of(train, data_dir),
        train_storage=Path(storage_path) if local else None,
        regression=(
            (train.regression_dataset, train.regression_version)
            if train.regression_dataset
            else None
        ),
    )
