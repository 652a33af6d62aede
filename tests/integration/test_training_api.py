"""The training-runs API over a real store (SQLite and PostgreSQL): starting a run checks the
dataset version is ready (by its row), records it queued and hands it to the launcher; reading
shows progress and the gate report; scopes: models:admin to start, models:read to read. A run
takes its version with ``lock_dataset`` (the job's own call): locked, the delete route answers
409, and a manifest that differs from its row is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import Services, TrainingServices
from sentinel.config import TrainSettings
from sentinel.gateway.roles import Role
from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.objects import LocalObjectStore
from sentinel.store.training_repo import TrainingRunRepository
from sentinel.train.dataset_store import lock_dataset
from sentinel.train.datasets import DatasetError, manifest_key
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import RecordingLauncher, make_services
from tests.utils.training import register_dataset


@pytest.fixture
def launcher() -> RecordingLauncher:
    return RecordingLauncher()


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path, launcher: RecordingLauncher) -> Services:
    objects = LocalObjectStore(tmp_path / "objects")
    datasets = DatasetRepo(store_engine)
    for _ in (1, 2):  # ready versions 1 and 2 (empty), then 3 still building
        register_dataset(objects, datasets, "site", lambda version: [])
    datasets.reserve("site", manifest_key, labels=["person"], created_by="tests")
    training = TrainingServices(
        runs=TrainingRunRepository(store_engine),
        control=launcher,
        defaults=TrainSettings(epochs=4, batch_size=8, input_size=640),
    )
    return make_services(store_engine, tmp_path, objects=objects, training=training)


def test_start_a_run_and_follow_it(
    client: TestClient, admin: AuthedUser, services: Services, launcher: RecordingLauncher
) -> None:
    r = client.post(
        "/api/v1/training/runs",
        json={"dataset": "site", "epochs": 2, "input_size": 320},
        headers=admin.headers,
    )
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["status"] == "queued" and run["dataset_version"] is None
    assert run["progress"] == {
        "epoch": 0, "epochs": 2, "step": 0, "total_steps": None, "fraction": 0.0,
        "checkpoint_epoch": None, "loss": None,
    }  # fmt: skip
    assert run["params"] == {"batch_size": 8, "input_size": 320, "lr": 0.0002}
    assert launcher.started == [run["id"]]
    assert "worker_pid" not in run

    # The job's writes show up as progress.
    assert services.training is not None
    repo = services.training.runs
    repo.set_status(run["id"], "training", dataset_version=2, mlflow_run_id="abc", total_steps=10)
    repo.attempt(run["id"], resumed_epoch=None, resumed_step=None)
    repo.progress(run["id"], epoch=1, step=5, loss=2.5, worker_pid=123)
    got = client.get(f"/api/v1/training/runs/{run['id']}", headers=admin.headers).json()
    assert got["status"] == "training" and got["mlflow_run_id"] == "abc"
    assert got["progress"]["fraction"] == 0.5 and got["progress"]["loss"] == 2.5
    assert got["attempts"] == 1
    gate = {"passed": False, "reason": "validation: challenger does not beat champion"}
    repo.finish(run["id"], gate=gate, gate_passed=False, challenger_version=3)
    got = client.get(f"/api/v1/training/runs/{run['id']}", headers=admin.headers).json()
    assert got["status"] == "succeeded" and got["gate_passed"] is False
    assert got["gate"] == gate and got["challenger_version"] == 3
    assert got["progress"]["fraction"] == 1.0 and got["finished_at"]
    listed = client.get("/api/v1/training/runs", headers=admin.headers).json()
    assert [r["id"] for r in listed] == [run["id"]]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"dataset": "nope"}, "dataset 'nope' has no ready version"),
        ({"dataset": "nope", "version": 1}, "dataset 'nope' has no ready version"),
        # Version 3 is still building: not ready.
        (
            {"dataset": "site", "version": 3},
            "dataset 'site' has no ready version 3 (it has [1, 2])",
        ),
        (
            {"dataset": "site", "version": 9},
            "dataset 'site' has no ready version 9 (it has [1, 2])",
        ),
    ],
)
def test_a_missing_dataset_is_refused_with_the_reason(
    client: TestClient,
    admin: AuthedUser,
    launcher: RecordingLauncher,
    body: dict[str, Any],
    detail: str,
) -> None:
    r = client.post("/api/v1/training/runs", json=body, headers=admin.headers)
    assert r.status_code == 422 and r.json()["detail"] == detail
    assert launcher.started == []


def test_a_run_locks_its_version_and_the_delete_route_refuses_it(
    client: TestClient, admin: AuthedUser, services: Services, launcher: RecordingLauncher
) -> None:
    assert services.annotation is not None
    datasets = services.annotation.datasets
    manifest = lock_dataset(datasets, services.objects, "site", None, "run-1")
    assert (manifest.name, manifest.version, manifest.locked_by) == ("site", 2, ["run-1"])
    row = datasets.get("site", 2)
    assert row is not None and row.locked_by == ("run-1",)
    assert lock_dataset(datasets, services.objects, "site", 2, "run-1").locked_by == ["run-1"]
    r = client.delete("/api/v1/datasets/site/2", headers=admin.headers)
    assert r.status_code == 409 and "run-1" in r.json()["detail"], r.text
    assert services.objects.exists(manifest_key("site", 2))
    # An unlocked version can go; then neither a run nor the API finds it.
    assert client.delete("/api/v1/datasets/site/1", headers=admin.headers).status_code == 204
    with pytest.raises(DatasetError, match=r"has no ready version 1 \(it has \[2\]\)"):
        lock_dataset(datasets, services.objects, "site", 1, "run-2")
    r = client.post(
        "/api/v1/training/runs", json={"dataset": "site", "version": 1}, headers=admin.headers
    )
    assert r.status_code == 422 and r.json()["detail"] == (
        "dataset 'site' has no ready version 1 (it has [2])"
    )
    assert launcher.started == []


def test_a_manifest_that_is_not_the_recorded_one_is_refused(services: Services) -> None:
    assert services.annotation is not None
    datasets = services.annotation.datasets
    key = manifest_key("site", 2)
    services.objects.put(key, services.objects.get(key) + b" ")  # same JSON, other bytes
    with pytest.raises(DatasetError, match="sha256 does not match the recorded one"):
        lock_dataset(datasets, services.objects, "site", 2, "run-1")
    services.objects.delete(key)
    with pytest.raises(DatasetError, match="is missing"):
        lock_dataset(datasets, services.objects, "site", 2, "run-1")


@pytest.mark.parametrize(
    "body",
    [
        {"dataset": "../etc"},
        {"dataset": "site", "epochs": 0},
        {"dataset": "site", "input_size": 100},
        {"dataset": "site", "lr": -1},
        {"dataset": "site", "surprise": 1},
        {"dataset": "site", "version": 2**63},  # past any INTEGER column (found by the fuzz test)
    ],
)
def test_bad_bodies_are_422(client: TestClient, admin: AuthedUser, body: dict[str, Any]) -> None:
    r = client.post("/api/v1/training/runs", json=body, headers=admin.headers)
    assert r.status_code == 422, r.text


def test_scopes(client: TestClient, services: Services, launcher: RecordingLauncher) -> None:
    operator = add_user(services.security, "op", Role.OPERATOR)
    viewer = add_user(services.security, "viewer", Role.VIEWER)
    r = client.post("/api/v1/training/runs", json={"dataset": "site"}, headers=operator.headers)
    assert r.status_code == 403
    assert client.get("/api/v1/training/runs", headers=operator.headers).status_code == 200
    assert client.get("/api/v1/training/runs", headers=viewer.headers).status_code == 403
    assert client.get("/api/v1/training/runs").status_code == 401
    r = client.get("/api/v1/training/runs/nope", headers=operator.headers)
    assert r.status_code == 404
    assert launcher.started == []
