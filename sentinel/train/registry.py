"""The detector's model registry: MLflow registered-model versions with aliases, checked by sha256.

Ray-free. Each version of the registered model ``sentinel-detector`` carries its ONNX file and
the file's ``.sha256`` as run artifacts (``model/model.onnx``), and its sha256, class labels,
input size, metrics and gate report as version tags. Aliases name the roles: ``champion``
(served by the Detector deployment) and ``challenger`` (the candidate, served by the canary).

The embedded default is MLflow's SQLite store under the data dir
(``sqlite:///<data_dir>/mlflow/mlflow.db``, artifacts under ``<data_dir>/mlflow/artifacts``);
a tracking server is a URI like any other. :meth:`ModelRegistry.fetch_onnx` refuses an
artifact whose sha256 is not the one recorded when it was registered, so a file changed in the
artifact store is never served.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.config import TrainSettings, mlflow_artifacts_of, mlflow_tracking_uri_of
from sentinel.models.files import ModelFileError, sha256_file, verify_recorded_digest

logger = logging.getLogger(__name__)

MODEL_NAME = "sentinel-detector"
EXPERIMENT = "sentinel-models"
ARTIFACT_DIR = "model"
ONNX_NAME = "model.onnx"
CHAMPION = "champion"
CHALLENGER = "challenger"
# Version tags this module owns; everything else in ``tags`` is the caller's (gate report, …).
TAG_SHA256 = "sha256"
TAG_LABELS = "labels"
TAG_INPUT_SIZE = "input_size"
METRIC_PREFIX = "metric."
_OWN_TAGS = {TAG_SHA256, TAG_LABELS, TAG_INPUT_SIZE}


class RegistryError(RuntimeError):
    """A registry request that cannot be met (no such version, a bad argument)."""


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of the detector."""

    version: int
    sha256: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    tags: dict[str, str]
    run_id: str | None
    created_at: datetime
    labels: tuple[str, ...]
    input_size: int
    source: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "aliases": list(self.aliases),
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat(),
            "labels": list(self.labels),
            "input_size": self.input_size,
        }


def _mlflow_client(uri: str) -> Any:
    # Imported here: mlflow takes seconds to import, and only registry users need it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in logs
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class ModelRegistry:
    """The ``sentinel-detector`` registered model in an MLflow tracking/registry store.

    Args:
        uri: The MLflow tracking and registry URI (``sqlite:///…`` or ``http(s)://…``).
        artifacts: Where a new experiment keeps its artifacts (ignored by a tracking server
            that serves artifacts itself and by an experiment that exists already).
        name: The registered model's name.
    """

    def __init__(self, uri: str, artifacts: Path, name: str = MODEL_NAME) -> None:
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.uri = uri
        self.artifacts = artifacts
        self.name = name
        self._client = _mlflow_client(uri)
        self._ensure_model()

    @classmethod
    def of(cls, train: TrainSettings, data_dir: Path, name: str = MODEL_NAME) -> ModelRegistry:
        """The configured registry: ``train.mlflow_uri``, else the embedded one in the data dir."""
        return cls(mlflow_tracking_uri_of(train, data_dir), mlflow_artifacts_of(data_dir), name)

    @classmethod
    def embedded(cls, data_dir: Path, name: str = MODEL_NAME) -> ModelRegistry:
        """The registry of the embedded store under ``data_dir``."""
        return cls.of(TrainSettings(), data_dir, name)

    # -- reading ----------------------------------------------------------------------------

    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        found = self._client.search_model_versions(f"name = '{self.name}'")
        # search_model_versions omits aliases on some stores: read each version fully.
        return sorted(
            (self.get(int(mv.version)) for mv in found), key=lambda version: version.version
        )

    def get(self, version: int) -> ModelVersion:
        """One version.

        Raises:
            RegistryError: there is no such version.
        """
        from mlflow.exceptions import MlflowException

        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RegistryError(f"a model version is a positive integer, but got {version!r}")
        try:
            mv = self._client.get_model_version(self.name, str(version))
        except MlflowException as exc:
            raise RegistryError(f"{self.name} has no version {version}") from exc
        return _to_version(mv)

    def alias(self, name: str) -> ModelVersion | None:
        """The version an alias points at, or None."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self._client.get_model_version_by_alias(self.name, name)
        except MlflowException:
            return None
        return _to_version(mv)

    # -- writing ----------------------------------------------------------------------------

    def register(
        self,
        onnx_path: Path,
        *,
        labels: Sequence[str],
        input_size: int,
        run_id: str | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Registers an ONNX detector as a new version.

        The file and its ``.sha256`` are logged as artifacts of ``run_id`` (a training run), or
        of a new run of the ``sentinel-models`` experiment; the sha256 becomes a version tag.

        Raises:
            ModelFileError: the file is missing, or its recorded ``.sha256`` (when present)
                differs from its content.
            RegistryError: bad labels, input size, metric or tag.
        """
        if not onnx_path.is_file():
            raise ModelFileError(f"cannot register {onnx_path}: no such file")
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise RegistryError("labels must be a non-empty list of class names")
        if isinstance(input_size, bool) or input_size < 32 or input_size % 32:
            raise RegistryError(f"input_size must be a multiple of 32 >= 32, but got {input_size}")
        metric_tags = {f"{METRIC_PREFIX}{k}": repr(float(v)) for k, v in (metrics or {}).items()}
        extra = dict(tags or {})
        clash = sorted(_OWN_TAGS & extra.keys()) + sorted(
            k for k in extra if k.startswith(METRIC_PREFIX)
        )
        if clash:
            raise RegistryError(f"tags {clash} are set by the registry itself")
        digest_file = onnx_path.with_name(onnx_path.name + ".sha256")
        digest = verify_recorded_digest(onnx_path) if digest_file.is_file() else None
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / ONNX_NAME
            shutil.copyfile(onnx_path, staged)
            actual = sha256_file(staged)
            if digest is not None and actual != digest:  # changed while being copied
                raise ModelFileError(f"{onnx_path} changed while it was being registered")
            Path(tmp, ONNX_NAME + ".sha256").write_text(f"{actual}  {ONNX_NAME}\n")
            owned_run = run_id is None
            if run_id is None:
                run_id = self._client.create_run(self._experiment_id()).info.run_id
            self._client.log_artifacts(run_id, tmp, ARTIFACT_DIR)
            if owned_run:
                self._client.set_terminated(run_id)
        source = f"{self._client.get_run(run_id).info.artifact_uri}/{ARTIFACT_DIR}"
        all_tags = {
            **extra,
            **metric_tags,
            TAG_SHA256: actual,
            TAG_LABELS: json.dumps(list(labels)),
            TAG_INPUT_SIZE: str(int(input_size)),
        }
        mv = self._client.create_model_version(self.name, source, run_id=run_id, tags=all_tags)
        logger.info("registered %s version %s (sha256 %s)", self.name, mv.version, actual)
        return self.get(int(mv.version))

    def set_alias(self, name: str, version: int) -> None:
        """Points an alias at a version (moving it from another one)."""
        self.get(version)  # a clear error for a missing version
        self._client.set_registered_model_alias(self.name, name, str(version))

    def delete_alias(self, name: str) -> None:
        """Removes an alias (no error when it is not set)."""
        if self.alias(name) is not None:
            self._client.delete_registered_model_alias(self.name, name)

    def set_tags(self, version: int, tags: Mapping[str, str]) -> ModelVersion:
        """Sets version tags (a gate report, …); the registry's own tags cannot be changed.

        Raises:
            RegistryError: no such version, or a tag the registry owns.
        """
        clash = sorted(k for k in tags if k in _OWN_TAGS or k.startswith(METRIC_PREFIX))
        if clash:
            raise RegistryError(f"tags {clash} are set by the registry itself")
        self.get(version)
        for key, value in tags.items():
            self._client.set_model_version_tag(self.name, str(version), key, str(value))
        return self.get(version)

    def delete_version(self, version: int) -> None:
        """Deletes a registered version (its aliases go with it; its run's files stay)."""
        self.get(version)
        self._client.delete_model_version(self.name, str(version))

    def run_active(self, run_id: str) -> bool | None:
        """Whether an MLflow run exists and is not deleted (None: no such run)."""
        from mlflow.exceptions import MlflowException

        try:
            run = self._client.get_run(run_id)
        except MlflowException:
            return None
        return str(run.info.lifecycle_stage) != "deleted"

    def delete_run(self, run_id: str) -> int:
        """Deletes an MLflow run's artifacts, then the run (MLflow marks it deleted); returns
        how many artifact files there were."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        run = self._client.get_run(run_id)
        repo = get_artifact_repository(run.info.artifact_uri)
        files = _count_artifacts(repo, None)
        if files:
            repo.delete_artifacts()  # type: ignore[no-untyped-call]
        self._client.delete_run(run_id)
        return files

    # -- files ------------------------------------------------------------------------------

    def fetch_onnx(self, version: int, dest_dir: Path) -> Path:
        """The version's ONNX file under ``dest_dir``, verified against its sha256 tag.

        A copy already there is reused when it still matches; otherwise the artifact is
        downloaded. The ``.sha256`` written beside it records the tag, so the detector's
        loader checks the same digest again.

        Returns:
            ``dest_dir / "sentinel-detector-v<version>.onnx"``.

        Raises:
            ModelFileError: the artifact is missing or its sha256 is not the recorded one.
            RegistryError: there is no such version.
        """
        mv = self.get(version)
        if len(mv.sha256) != 64:
            raise ModelFileError(f"{self.name} version {version} has no sha256 recorded")
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"{self.name}-v{version}.onnx"
        digest_file = dest.with_name(dest.name + ".sha256")
        if dest.is_file() and sha256_file(dest) == mv.sha256:
            digest_file.write_text(f"{mv.sha256}  {dest.name}\n")
            return dest
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
            try:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=f"{mv.source}/{ONNX_NAME}",
                        dst_path=tmp,
                        tracking_uri=self.uri,
                    )
                )
            except Exception as exc:  # mlflow raises several kinds for a missing artifact
                raise ModelFileError(
                    f"cannot fetch {self.name} version {version} from {mv.source}: {exc}"
                ) from exc
            actual = sha256_file(local)
            if actual != mv.sha256:
                raise ModelFileError(
                    f"refusing {self.name} version {version}: the artifact's sha256 is "
                    f"{actual}, but the registry records {mv.sha256}"
                )
            os.replace(local, dest)
        digest_file.write_text(f"{mv.sha256}  {dest.name}\n")
        return dest

    def bootstrap_champion(
        self, onnx_path: Path, labels: Sequence[str], input_size: int
    ) -> ModelVersion:
        """Registers the bundled detector as the champion of an empty registry (idempotent).

        With versions already there, the champion stays; a registry without a champion gets
        the version holding ``onnx_path``'s bytes (registered if none does).
        """
        champion = self.alias(CHAMPION)
        if champion is not None:
            return champion
        digest = (
            verify_recorded_digest(onnx_path)
            if onnx_path.with_name(onnx_path.name + ".sha256").is_file()
            else sha256_file(onnx_path)
        )
        same = [v for v in self.versions() if v.sha256 == digest]
        version = (
            same[0]
            if same
            else self.register(
                onnx_path,
                labels=labels,
                input_size=input_size,
                tags={"source": "bundled", "gate": "baseline"},
            )
        )
        self.set_alias(CHAMPION, version.version)
        return self.get(version.version)

    # -- internals --------------------------------------------------------------------------

    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(self.name)
        except MlflowException:
            try:
                self._client.create_registered_model(self.name)
            except MlflowException:  # another process created it meanwhile
                self._client.get_registered_model(self.name)

    def _experiment_id(self) -> str:
        found = self._client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return str(found.experiment_id)
        # A tracking server decides where artifacts go; a local store keeps them in ours.
        local = not self.uri.startswith(("http://", "https://", "databricks"))
        location = self.artifacts.resolve().as_uri() if local else None
        return str(self._client.create_experiment(EXPERIMENT, artifact_location=location))


def _count_artifacts(repo: Any, path: str | None) -> int:
    count = 0
    for info in repo.list_artifacts(path):
        count += _count_artifacts(repo, info.path) if info.is_dir else 1
    return count


def _to_version(mv: Any) -> ModelVersion:
    tags: dict[str, str] = dict(mv.tags or {})
    metrics: dict[str, float] = {}
    for key in list(tags):
        if key.startswith(METRIC_PREFIX):
            with contextlib.suppress(ValueError):
                metrics[key[len(METRIC_PREFIX) :]] = float(tags.pop(key))
    sha = tags.pop(TAG_SHA256, "")
    try:
        labels = tuple(str(label) for label in json.loads(tags.pop(TAG_LABELS, "[]")))
    except (ValueError, TypeError):
        labels = ()
    try:
        input_size = int(tags.pop(TAG_INPUT_SIZE, "0"))
    except ValueError:
        input_size = 0
    created_ms = int(mv.creation_timestamp or 0)
    return ModelVersion(
        version=int(mv.version),
        sha256=sha,
        aliases=tuple(sorted(getattr(mv, "aliases", None) or ())),
        metrics=metrics,
        tags=tags,
        run_id=mv.run_id or None,
        created_at=datetime.fromtimestamp(created_ms / 1000.0, UTC),
        labels=labels,
        input_size=input_size,
        source=str(mv.source or ""),
    )
