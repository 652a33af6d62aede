"""Retention periods of dataset versions and training artifacts (SQLite and PostgreSQL, a real
embedded MLflow registry, a local object store and Ray Train's checkpoint folders).

Old versions and runs go with their files; those the champion, the challenger, a rollback
version, the regression set or a legal hold need stay; the report and the audit log say which.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sentinel.actors.retention import RetentionSweeper
from sentinel.api.storage import _sweep_for
from sentinel.config import StorageSettings, TrainSettings
from sentinel.domain.holds import HeldRange
from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.model_repo import ModelServingRepository
from sentinel.store.objects import LocalObjectStore
from sentinel.store.security_tables import AUDIT_LOG
from sentinel.store.training_repo import TrainingRunRepository
from sentinel.train.datasets import DatasetManifest, ManifestItem, manifest_key, sha256_hex
from sentinel.train.expiry import ArtifactSweeper, artifact_sweeper
from sentinel.train.registry import CHALLENGER, CHAMPION, ModelRegistry
from sentinel.train.tracking import Tracker

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=100)
RECENT = NOW - timedelta(days=2)
HELD_AT = OLD - timedelta(days=1)  # the held dataset's frames were taken then


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(b"not really onnx: the registry keeps files, it does not run them")
    return path


class World:
    """A deployment's datasets, runs and registry, most of them 100 days old."""

    def __init__(self, engine: Engine, tmp: Path, onnx: Path) -> None:
        self.engine = engine
        self.objects = LocalObjectStore(tmp / "objects")
        self.uri = f"sqlite:///{tmp / 'mlflow' / 'mlflow.db'}"
        self.registry = ModelRegistry(self.uri, tmp / "mlflow" / "artifacts")
        self.tracker = Tracker(self.uri, tmp / "mlflow" / "artifacts")
        self.storage = tmp / "train"
        self.onnx = onnx
        self.runs: dict[str, str] = {}  # role -> training run id
        self.mlflow: dict[str, str] = {}  # role -> MLflow run id
        self.versions: dict[str, int] = {}  # role -> registered version

    def dataset(self, name: str, at: datetime, *, camera: str = "plaza") -> str:
        repo = DatasetRepo(self.engine, clock=lambda: at)
        reserved = repo.reserve(name, manifest_key, labels=["person"], created_by="tests")
        prefix = f"datasets/{name}/v{reserved.version}/"
        image = b"\xff\xd8 a frame"
        self.objects.put(prefix + "images/f0001.jpg", image)
        self.objects.put(prefix + "labels/f0001.txt", b"")
        item = ManifestItem(
            id="f0001",
            image="images/f0001.jpg",
            label="labels/f0001.txt",
            image_sha256=sha256_hex(image),
            label_sha256=sha256_hex(b""),
            camera_id=camera,
            frame_ts=HELD_AT,
            width=64,
            height=48,
            boxes=0,
        )
        body = DatasetManifest(
            name=name, version=reserved.version, created_at=at, labels=["person"], items=[item]
        ).to_json()
        self.objects.put(reserved.manifest_key, body)
        repo.finish(
            name,
            reserved.version,
            manifest_sha256=sha256_hex(body),
            items=1,
            boxes=0,
            camera_ids={camera},
        )
        return f"{name}:v{reserved.version}"

    def run(self, role: str, ended: datetime, uses: list[tuple[str, int]]) -> str:
        """A finished training run that used ``uses``, logged to MLflow with a gate report,
        registered as a version, with a Ray Train checkpoint folder."""
        runs = TrainingRunRepository(self.engine, clock=lambda: ended)
        run = runs.create(uses[0][0], epochs=1, params={}, created_by="tests")
        for name, version in uses:
            DatasetRepo(self.engine).lock(name, version, run.id)
        mlflow_run = self.tracker.start(run.id, {"epochs": 1}, {"sentinel.run_id": run.id})
        report = self.storage.parent / f"gate-{role}.json"
        report.write_text('{"passed": true}')
        self.tracker.artifact(mlflow_run, report, "gate")
        runs.set_status(run.id, "training", mlflow_run_id=mlflow_run)
        version = self.registry.register(
            self.onnx, labels=["person"], input_size=64, run_id=mlflow_run
        ).version
        runs.finish(run.id, gate_passed=True, challenger_version=version)
        folder = self.storage / f"sentinel-{run.id}" / "checkpoint_000001"
        folder.mkdir(parents=True)
        (folder / "model.pt").write_bytes(b"weights")
        self.runs[role], self.mlflow[role], self.versions[role] = run.id, mlflow_run, version
        return run.id

    def sweeper(self, **periods: float | None) -> ArtifactSweeper:
        return ArtifactSweeper(
            self.engine,
            self.objects,
            datasets_days=periods.get("datasets_days", 30.0),
            training_days=periods.get("training_days", 30.0),
            registry=lambda: self.registry,
            train_storage=self.storage,
            regression=("regression", None),
        )

    def files(self, label: str) -> int:
        name, version = label.split(":v")
        return sum(1 for _ in self.objects.iter_keys(f"datasets/{name}/v{version}/"))


@pytest.fixture
def world(store_engine: Engine, tmp_path: Path, onnx: Path) -> World:
    w = World(store_engine, tmp_path, onnx)
    w.dataset("people", OLD)  # v1: used by an old run only
    w.dataset("people", OLD)  # v2: the champion was trained on it
    w.dataset("people", OLD, camera="gate")  # v3: a frame under a legal hold
    w.dataset("people", OLD)  # v4: the challenger's
    w.dataset("regression", OLD)  # v1: the regression set
    w.dataset("people", RECENT)  # v5: recent
    w.run("old", OLD, [("people", 1), ("regression", 1)])
    w.run("champion", OLD, [("people", 2)])
    w.run("challenger", OLD, [("people", 4)])
    w.run("rollback", OLD, [("people", 4)])
    w.run("recent", RECENT, [("people", 5)])
    w.registry.set_alias(CHAMPION, w.versions["champion"])
    w.registry.set_alias(CHALLENGER, w.versions["challenger"])
    champion = {"version": w.versions["champion"]}
    state = {"champion": champion, "previous": [{"version": w.versions["rollback"]}]}
    ModelServingRepository(store_engine).put({**state, "canary": None, "route": 1}, None)
    return w


HOLD = {"gate": [HeldRange("hold-1", "gate", HELD_AT - timedelta(hours=1), None)]}


def test_old_datasets_and_runs_go_and_those_in_use_stay(world: World) -> None:
    sweeper = world.sweeper()
    report = sweeper.sweep(NOW, HOLD)
    assert report.error == "" and report.failed == 0
    assert report.datasets_deleted == ["people:v1"]
    assert report.dataset_files == 3 and world.files("people:v1") == 0
    assert report.datasets_kept == {
        "model": ["people:v2", "people:v4"],
        "hold": ["people:v3"],
        "regression": ["regression:v1"],
    }
    for kept in ("people:v2", "people:v3", "people:v4", "people:v5", "regression:v1"):
        assert world.files(kept) == 3, kept
    datasets = DatasetRepo(world.engine)
    v1 = datasets.get("people", 1)
    assert v1 is not None and v1.status == "deleted"  # the number is never given again

    old = world.runs["old"]
    assert report.training_runs_cleared == [old]
    assert sorted(report.training_kept) == sorted(
        world.runs[r] for r in ("champion", "challenger", "rollback")
    )
    assert report.model_versions_deleted == [world.versions["old"]]
    assert (report.checkpoint_dirs, report.mlflow_runs, report.mlflow_files) == (1, 1, 3)
    assert not (world.storage / f"sentinel-{old}").exists()
    assert world.registry.run_active(world.mlflow["old"]) is False
    remaining = [v.version for v in world.registry.versions()]
    assert world.versions["old"] not in remaining
    for role in ("champion", "challenger", "rollback", "recent"):
        assert (world.storage / f"sentinel-{world.runs[role]}").is_dir(), role
        assert world.registry.run_active(world.mlflow[role]) is True, role
        assert world.versions[role] in remaining, role
    alias = world.registry.alias(CHAMPION)
    assert alias is not None and alias.version == world.versions["champion"]

    with world.engine.connect() as conn:
        rows = conn.execute(
            sa.select(AUDIT_LOG.c.action, AUDIT_LOG.c.target, AUDIT_LOG.c.actor).order_by(
                AUDIT_LOG.c.seq
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("dataset.expire", "datasets/people/v1/", "retention"),
        ("training.expire", f"training/{old}", "retention"),
    ]

    # Again: nothing left to remove. Then the hold is released: its dataset goes too.
    again = sweeper.sweep(NOW, HOLD)
    assert again.datasets_deleted == [] and again.training_runs_cleared == []
    assert again.model_versions_deleted == []
    assert sweeper.sweep(NOW, {}).datasets_deleted == ["people:v3"]


def test_periods_off_keep_everything_and_an_unknown_registry_deletes_nothing(
    world: World,
) -> None:
    off = world.sweeper(datasets_days=None, training_days=None)
    assert not off.enabled and off.sweep(NOW, {}).to_dict()["datasets_deleted"] == []
    only_datasets = world.sweeper(training_days=None).sweep(NOW, {})
    assert only_datasets.datasets_deleted == ["people:v1", "people:v3"]
    assert only_datasets.training_runs_cleared == []

    def broken() -> ModelRegistry:
        raise OSError("the tracking server is down")

    blind = ArtifactSweeper(
        world.engine,
        world.objects,
        datasets_days=1.0,
        training_days=1.0,
        registry=broken,
        train_storage=world.storage,
    )
    report = blind.sweep(NOW, {})
    assert "tracking server is down" in report.error
    assert report.datasets_deleted == [] and report.training_runs_cleared == []
    assert (world.storage / f"sentinel-{world.runs['old']}").is_dir()


def test_the_retention_sweep_reports_and_respects_holds(world: World, tmp_path: Path) -> None:
    HoldRepository(world.engine).create(
        kind="camera_range",
        camera_id="gate",
        reason="case 7",
        created_by="tests",
        start_at=HELD_AT - timedelta(hours=1),
    )
    storage = StorageSettings(datasets_days=30, training_days=30)
    train = TrainSettings(mlflow_uri=world.uri, storage_path=world.storage)
    built = artifact_sweeper(world.engine, world.objects, storage, train, tmp_path)
    assert built is not None and built.regression == ("regression", None)
    assert artifact_sweeper(world.engine, world.objects, StorageSettings(), train, tmp_path) is None
    sweeper = RetentionSweeper(world.engine, world.objects, storage, artifacts=built)
    report = sweeper.sweep(NOW).to_dict()
    artifacts = report["artifacts"]
    assert artifacts["datasets_deleted"] == ["people:v1"]
    assert artifacts["datasets_kept"]["hold"] == ["people:v3"]
    assert artifacts["training_runs_cleared"] == [world.runs["old"]]
    assert artifacts["model_versions_deleted"] == [world.versions["old"]]
    # A caller limited to some cameras sees the sweep without it (names span cameras).
    assert "artifacts" not in (_sweep_for(report, {"gate"}) or {})
    assert _sweep_for(report, None) == report
