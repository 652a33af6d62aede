"""The learning loop's training job on the shared Ray cluster, end to end and tiny.

A dataset of a few frames of the sample video (PETS09 boxes, frames 1-400 only; one corrupt
JPEG, two frames that point into a recorded H.264 segment) is curated on Ray Data and
fine-tuned on Ray Train for 3 short epochs at 224 px. The training worker is killed with
SIGKILL after its first checkpoint: the run must resume from that checkpoint (not from step 0)
and finish. Then MLflow must hold the run's params and per-epoch metrics, the challenger must be
registered with the gate report as tags, and the ``challenger`` alias must be set exactly when
the gate passed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import ray

from sentinel.actors.training import open_registry
from sentinel.actors.training_launch import training_task
from sentinel.config import Settings
from sentinel.store.dataset_repo import DatasetLocked, DatasetRepo
from sentinel.store.db import make_engine, migrate
from sentinel.store.s3 import make_object_store
from sentinel.store.training_repo import TrainingRun, TrainingRunRepository
from sentinel.train.tracking import Tracker
from tests.integration.conftest import Stack, wait_for
from tests.utils.media import h264_clip
from tests.utils.training import build_dataset

EPOCHS = 3
BATCH = 4
SITE_FRAMES = [1, 31, 61, 91, 121, 151, 181, 211, 241, 271, 301, 331, 361, 391]
CORRUPT = frozenset({151})
SEGMENT_FRAMES = [45, 46]  # in the first 12 s of the sample, re-encoded as H.264
REGRESSION_FRAMES = [20, 140, 260, 380]


@pytest.fixture
def settings(tmp_path: Path, onnx_model: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        detector={"model_path": onnx_model},
        train={
            "cpus_per_worker": 0.5,
            "threads": 2,
            "time_blocks": 4,
            "validation_fraction": 0.25,
            "max_failures": 2,
        },
    )


# ~90 s on an idle 2-core machine; the limit leaves room for a loaded one.
@pytest.mark.timeout(900)
def test_training_survives_a_killed_worker_and_gates_the_challenger(
    sentinel_stack: Stack, settings: Settings, tmp_path: Path
) -> None:
    engine = make_engine(settings.db_url)
    migrate(engine)
    store = make_object_store(settings.objects, settings.data_dir)
    clip = h264_clip(tmp_path / "clips", seconds=6).read_bytes()
    datasets = DatasetRepo(engine)
    site = build_dataset(
        store, datasets, "site", SITE_FRAMES, corrupt=CORRUPT, segment=(clip, SEGMENT_FRAMES)
    )
    regression = build_dataset(store, datasets, "regression", REGRESSION_FRAMES)
    repo = TrainingRunRepository(engine)
    run = repo.create(
        "site", epochs=EPOCHS, params={"batch_size": BATCH, "input_size": 224}, created_by="t"
    )
    began = time.monotonic()
    job = training_task.remote(settings, run.id)

    def first_checkpoint() -> TrainingRun | None:
        now = repo.get(run.id)
        assert now is not None and now.status != "failed", now
        # Registered by Ray Train (its controller's callback), not just written by the worker.
        return now if (now.checkpoint_epoch or 0) >= 1 and now.worker_pid else None

    at_kill = wait_for(first_checkpoint, timeout=600, interval=0.2, what="the first checkpoint")
    os.kill(at_kill.worker_pid, signal.SIGKILL)
    summary = ray.get(job, timeout=600)
    took = time.monotonic() - began

    done = repo.get(run.id)
    assert done is not None
    assert done.status == "succeeded", (done.error, summary)
    # The run locked the versions it used (the newest ready ones): they are immutable now.
    assert done.dataset_version == site.version
    for used in (site, regression):
        row = datasets.get(used.name, used.version)
        assert row is not None and row.locked_by == (run.id,)
        with pytest.raises(DatasetLocked):
            datasets.delete(used.name, used.version)
    # The killed worker was replaced and resumed from its last checkpoint, not from step 0.
    assert done.attempts == 2
    assert done.worker_pid != at_kill.worker_pid
    steps_per_epoch = done.total_steps // EPOCHS if done.total_steps else 0
    assert steps_per_epoch >= 2
    assert done.resumed_epoch is not None
    assert at_kill.checkpoint_epoch <= done.resumed_epoch < EPOCHS
    assert done.resumed_step == done.resumed_epoch * steps_per_epoch
    assert done.epoch == EPOCHS and done.step == EPOCHS * steps_per_epoch
    # Curation: the corrupt JPEG was skipped and counted; the segment frames were read.
    counts = done.counts or {}
    assert counts["unreadable"] == 1
    assert counts["items"] == len(SITE_FRAMES) + len(SEGMENT_FRAMES)
    assert counts["validation"] >= 2 and counts["train"] >= 6
    assert counts["train"] + counts["validation"] + counts["dropped_at_borders"] == (
        counts["items"] - counts["unreadable"] - counts["duplicates"]
    )

    # MLflow: params, one loss per epoch (the resumed epochs logged by the new worker).
    assert done.mlflow_run_id
    tracker = Tracker(settings.mlflow_tracking_uri())
    mlrun = tracker.run(done.mlflow_run_id)
    assert mlrun.data.params["epochs"] == str(EPOCHS)
    assert mlrun.data.params["lr"] == "0.0002"
    assert mlrun.data.params["dataset"] == "site"
    assert {s for s, _ in tracker.history(done.mlflow_run_id, "train.loss")} == {1, 2, 3}
    assert "challenger.validation.map50" in mlrun.data.metrics
    assert "champion.regression.map50" in mlrun.data.metrics
    assert mlrun.info.status == "FINISHED"

    # The gate judged both splits; the registry holds the version with the report as tags.
    gate = done.gate or {}
    assert [s["split"] for s in gate["splits"]] == ["validation", "regression"]
    assert all(s["challenger_map50"] is not None for s in gate["splits"])
    expected = all(
        s["challenger_map50"] - s["champion_map50"] >= settings.train.gate_margin
        for s in gate["splits"]
    ) and all(
        _errors(gate["reports"]["challenger"][s]) <= _errors(gate["reports"]["champion"][s])
        for s in ("validation", "regression")
    )
    assert done.gate_passed is expected
    registry = open_registry(settings)
    version = registry.get(done.challenger_version)
    assert version.tags["gate.passed"] == ("true" if expected else "false")
    assert version.tags["gate.reason"] == gate["reason"]
    assert version.labels == ("person",) and version.input_size == 224
    champion = registry.alias("champion")
    assert champion is not None and champion.version != version.version
    challenger = registry.alias("challenger")
    assert (challenger is not None and challenger.version == version.version) is expected
    # The registered ONNX file passes its digest check and loads in the detector's runner.
    from sentinel.models.yolo import YoloOnnx

    fetched = registry.fetch_onnx(version.version, tmp_path / "fetched")
    assert YoloOnnx(fetched, input_size=224).labels == ("person",)
    print(f"training e2e: {took:.1f} s, gate {gate['reason']}")


def _errors(report: dict[str, object]) -> int:
    classes = report["classes"]
    assert isinstance(classes, dict)
    return sum(int(c["false_positives"]) + int(c["false_negatives"]) for c in classes.values())


def test_a_dataset_that_does_not_exist_fails_the_run_with_the_reason(
    sentinel_stack: Stack, settings: Settings
) -> None:
    engine = make_engine(settings.db_url)
    migrate(engine)
    repo = TrainingRunRepository(engine)
    run = repo.create("nothing-here", epochs=1, params={}, created_by="t")
    summary = ray.get(training_task.remote(settings, run.id), timeout=120)
    done = repo.get(run.id)
    assert done is not None and done.status == "failed"
    assert done.error == "DatasetError: dataset 'nothing-here' has no ready version"
    assert "error" in summary
