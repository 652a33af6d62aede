"""The notebooks run top to bottom against the running platform (the session stack), with the
credentials a user would give them in the environment, and find the data the API holds.

The learning-loop notebooks also get the platform's config file (``SENTINEL_CONFIG_FILE``:
where its object store and MLflow are, the curation settings) and the session's Ray cluster
(``RAY_ADDRESS``): they join it as a second driver, never start one.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import ray
import yaml
from nbclient import NotebookClient

from sentinel.client import AsyncSentinelClient, SentinelClient
from sentinel.domain.annotation import LabeledBox
from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.db import make_engine
from sentinel.store.s3 import make_object_store
from sentinel.train.registry import ModelRegistry
from sentinel.train.tracking import Tracker
from tests.integration.conftest import ClientDemo, wait_for
from tests.utils import annotation as annotation_factory
from tests.utils import training as pets

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
CELL_TIMEOUT_S = 180


def _run(name: str, tmp_path: Path, timeout: int = CELL_TIMEOUT_S) -> tuple[Any, dict[str, Any]]:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    nbformat.write(nb, tmp_path / name)  # type: ignore[no-untyped-call]
    printed = [
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "stream"
    ]
    lines = [ln for text in printed for ln in text.splitlines() if ln.startswith("SUMMARY ")]
    assert len(lines) == 1, printed
    return nb, json.loads(lines[0].removeprefix("SUMMARY "))


@pytest.fixture
def notebook_env(client_demo: ClientDemo, monkeypatch: pytest.MonkeyPatch) -> ClientDemo:
    """The kernel inherits these: the stack's URL, a viewer's API key, the demo camera."""
    monkeypatch.setenv("SENTINEL_URL", client_demo.stack.url)
    monkeypatch.setenv("SENTINEL_API_KEY", client_demo.viewer_key)
    monkeypatch.delenv("SENTINEL_TOKEN", raising=False)
    monkeypatch.setenv("SENTINEL_CAMERA", client_demo.camera_id)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # plots go inline, into the outputs
    return client_demo


def test_events_notebook(notebook_env: ClientDemo, tmp_path: Path) -> None:
    demo = notebook_env
    nb, summary = _run("events-and-incidents.ipynb", tmp_path)
    with SentinelClient(demo.stack.url, api_key=demo.viewer_key) as sc:
        events = list(sc.iter_events(camera_id=demo.camera_id))
        incidents = list(sc.iter_incidents(camera_id=demo.camera_id))
    assert summary == {
        "events": len(events),
        "incidents": len(incidents),
        "cameras": [demo.camera_id],
    }
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {}) or "image/jpeg" in out.get("data", {})
    ]
    assert len(images) >= 3  # the two plots and an incident's key frame


def test_search_notebook(notebook_env: ClientDemo, tmp_path: Path) -> None:
    demo = notebook_env
    with SentinelClient(demo.stack.url, api_key=demo.viewer_key) as sc:

        def indexed() -> Any:
            # Every incident closed and everything indexed: the answers stay put from here.
            incidents = list(sc.iter_incidents(camera_id=demo.camera_id))
            if any(i.status != "closed" for i in incidents):
                return None
            r = sc.search("a person walking", camera_id=demo.camera_id, limit=5)
            return r if r.items and r.index_backlog == 0 else None

        expected = wait_for(indexed, timeout=180, what="the demo camera closed and indexed")
    _, summary = _run("search.ipynb", tmp_path)
    assert summary["questions"] == 3
    assert summary["hits"]["a person walking"] == [h.id for h in expected.items]
    best = next(h for h in expected.items if h.kind == "event")
    assert summary["best"] == best.id


# The learning loop ------------------------------------------------------------------------

LEARN_CAMERA = "notebook-plaza"
DATASET = "notebook-site"
# Frames of the sample (PETS09 boxes, 1-400 only) 3 s apart: labelled and accepted...
ACCEPTED_FRAMES = [1, 31, 61, 91, 121, 151, 181, 211, 241, 271, 301, 331, 361, 391]
# ...and still waiting in the queue, each with the miner's reasons and score.
QUEUED = {
    16: (("near_threshold",), 0.91),
    106: (("disagreement", "flicker"), 0.74),
    196: (("false_positive",), 0.52),
    286: (("calibration",), 0.33),
}
REGRESSION_FRAMES = [20, 140, 260, 380]  # the fixed regression set (train.regression_dataset)


@dataclass(frozen=True)
class LearningDemo:
    demo: ClientDemo
    config_file: Path
    queued: dict[str, tuple[tuple[str, ...], float]]  # item id -> (reasons, score)
    version: int  # of DATASET


@pytest.fixture(scope="module")
def learning_demo(
    client_demo: ClientDemo, tmp_path_factory: pytest.TempPathFactory
) -> LearningDemo:
    """Queue items of ``LEARN_CAMERA`` (real frames, the detector's boxes as pre-labels),
    most labelled with the true boxes and accepted by a reviewer, the rest left queued; a
    dataset version built from them through the API; the regression set; and the platform's
    config file, as an operator would hand it to a notebook user."""
    began = time.monotonic()
    stack = client_demo.stack
    settings = stack.settings
    objects = make_object_store(settings.objects, settings.data_dir)
    engine = make_engine(settings.db_url)
    repo = AnnotationRepo(engine, objects)
    truth = pets.ground_truth()
    numbers = sorted([*ACCEPTED_FRAMES, *QUEUED])
    images = pets.frames(numbers)
    rng = np.random.default_rng(14)
    candidates = []
    for n in numbers:
        boxes = truth.get(n, [])
        reasons, score = QUEUED.get(n, (("near_threshold",), 0.6))
        base = annotation_factory.candidate(
            n,
            camera=LEARN_CAMERA,
            score=score,
            # Pre-labels: the true boxes, shifted and with a doubtful score, as a weak model's.
            prelabels=tuple(
                LabeledBox("person", b.x1 + 3, b.y1 + 3, b.x2 + 3, b.y2, score=0.35)
                for b in boxes[:3]
            ),
            # Random 64-bit hashes: far apart (a static camera's real dHashes are close).
            phash=int(rng.integers(0, 2**63)),
        )
        candidates.append(
            replace(
                base,
                frame_ts=pets.T0 + timedelta(seconds=(n - 1) / pets.FPS),
                frame_index=n - 1,
                width=pets.WIDTH,
                height=pets.HEIGHT,
                reasons=reasons,
                image_jpeg=pets.jpeg(images[n]),
            )
        )
    ids = repo.enqueue(candidates)
    assert len(ids) == len(numbers)
    by_number = dict(zip(numbers, ids, strict=True))
    for n in ACCEPTED_FRAMES:
        item = repo.get(by_number[n])
        assert item is not None
        repo.submit(item.id, truth.get(n, []), version=item.version, annotator="nb-annotator")
        repo.review(item.id, decision="accept", reviewer="nb-reviewer")
    r = stack.http.post("/api/v1/datasets", json={"name": DATASET, "camera_ids": [LEARN_CAMERA]})
    assert r.status_code == 201, r.text
    built = r.json()
    assert built["items"] == len(ACCEPTED_FRAMES), built
    regression = settings.train.regression_dataset
    assert regression is not None
    pets.build_dataset(objects, DatasetRepo(engine), regression, REGRESSION_FRAMES)
    config = tmp_path_factory.mktemp("notebook-config") / "sentinel.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(settings.data_dir),
                "database_url": settings.db_url,
                "objects": settings.objects.model_dump(mode="json", exclude_none=True),
                "train": settings.train.model_dump(mode="json", exclude_none=True),
            }
        )
    )
    queued = {by_number[n]: QUEUED[n] for n in QUEUED}
    print(f"learning demo seeded in {time.monotonic() - began:.1f} s")
    return LearningDemo(client_demo, config, queued, int(built["version"]))


@pytest.fixture
def learning_env(learning_demo: LearningDemo, monkeypatch: pytest.MonkeyPatch) -> LearningDemo:
    """An admin's key (queue, datasets, training), the config file and the session's cluster."""
    demo = learning_demo.demo
    monkeypatch.setenv("SENTINEL_URL", demo.stack.url)
    monkeypatch.setenv("SENTINEL_API_KEY", demo.admin_key)
    monkeypatch.delenv("SENTINEL_TOKEN", raising=False)
    monkeypatch.setenv("SENTINEL_CAMERA", LEARN_CAMERA)
    monkeypatch.setenv("SENTINEL_DATASET", DATASET)
    monkeypatch.setenv("SENTINEL_CONFIG_FILE", str(learning_demo.config_file))
    monkeypatch.setenv("RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    return learning_demo


def _images(nb: Any) -> int:
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    )


def _shown(nb: Any) -> str:
    """Everything the notebook printed or displayed as text."""
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            texts.append(out.get("text", ""))
            texts.append(out.get("data", {}).get("text/plain", ""))
            texts.append(out.get("data", {}).get("text/html", ""))
    return "\n".join(t if isinstance(t, str) else "".join(t) for t in texts)


@pytest.mark.timeout(600)
def test_curation_notebook(learning_env: LearningDemo, tmp_path: Path) -> None:
    nb, summary = _run("hard-examples-and-curation.ipynb", tmp_path)
    # The queue as the API ranks it: the items left queued, best first, with their reasons.
    ranked = sorted(learning_env.queued.items(), key=lambda kv: -kv[1][1])
    assert summary["queue"] == [[i, list(reasons), score] for i, (reasons, score) in ranked]
    assert summary["dataset"] == [DATASET, learning_env.version]
    # The training run's own curation rules, on Ray Data: every frame read, split by time.
    counts = summary["counts"]
    assert counts["items"] == len(ACCEPTED_FRAMES) and counts["unreadable"] == 0
    assert counts["duplicates"] == 0
    assert counts["train"] + counts["validation"] + counts["dropped_at_borders"] == len(
        ACCEPTED_FRAMES
    )
    assert counts["validation"] >= 1 and counts["train"] >= 6
    assert set(counts["boxes_per_label"]) == {"person"}
    assert summary["boxes_per_class"] == counts["boxes_per_label"]
    assert summary["split"]["train"] == counts["train"]
    assert summary["split"]["validation"] == counts["validation"]
    assert summary["augmented"][1:] == [224, 224, 3]
    assert _images(nb) >= 3  # the hardest frame, the split, the augmented samples
    # The async client reads the same queue and dataset version.
    demo = learning_env.demo

    async def read() -> tuple[list[str], int]:
        async with AsyncSentinelClient(demo.stack.url, api_key=demo.admin_key) as ac:
            queue = await ac.annotation_queue(camera_id=LEARN_CAMERA)
            detail = await ac.dataset(DATASET, learning_env.version)
            return [i.id for i in queue], len(detail.manifest["items"])

    assert asyncio.run(read()) == ([q[0] for q in summary["queue"]], len(ACCEPTED_FRAMES))


# One epoch of a few frames at 224 px (test_training_ray.py's smallest settings).
@pytest.mark.timeout(900)
def test_training_notebook(
    learning_env: LearningDemo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = learning_env.demo
    # The notebook's own wait for the run, then the cell's (a loaded machine is slow).
    monkeypatch.setenv("SENTINEL_TRAIN_TIMEOUT_S", "500")
    nb, summary = _run("training-in-mlflow.ipynb", tmp_path, timeout=600)
    with SentinelClient(demo.stack.url, api_key=demo.admin_key) as sc:
        run = sc.training_run(summary["run"])
    assert run.status == "succeeded", run.error
    assert run.dataset == DATASET and run.params["input_size"] == 224 and run.progress.epochs == 1
    assert run.gate is not None
    # The notebook showed the gate report the API holds, pass or fail, and why.
    assert summary["gate_passed"] is run.gate_passed
    assert summary["gate_reason"] == run.gate["reason"]
    shown = _shown(nb)
    for split in run.gate["splits"]:
        assert split["reason"] in shown
    assert summary["splits"] == [s["split"] for s in run.gate["splits"]]
    # What it read from MLflow is what the run logged there, and the registry's versions.
    settings = demo.stack.settings
    mlrun = Tracker(settings.mlflow_tracking_uri()).run(run.mlflow_run_id or "")
    assert summary["mlflow_run_id"] == run.mlflow_run_id
    assert summary["challenger_map50"] == pytest.approx(
        mlrun.data.metrics["challenger.validation.map50"]
    )
    registry = ModelRegistry(settings.mlflow_tracking_uri(), settings.mlflow_artifacts_dir())
    version = registry.get(run.challenger_version or 0)
    assert summary["challenger_version"] == version.version
    assert version.tags["gate.reason"] == summary["gate_reason"]
    champion = registry.alias("champion")
    assert champion is not None and summary["champion_version"] == champion.version
    assert _images(nb) >= 1  # champion against challenger: mAP@0.5 and errors per split
    print(f"training notebook: run {run.id}, gate passed {run.gate_passed}: {run.gate['reason']}")
