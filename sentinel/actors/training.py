"""Training on Ray Train: the fine-tuning job of one training run, end to end.

``run_training`` is the job (run in a Ray task by :class:`TrainingLauncher`): curate the
dataset on Ray Data, fine-tune on a ``TorchTrainer`` (one checkpoint per epoch; after a worker
dies, ``FailureConfig`` restarts the worker group and the loop resumes from the last
checkpoint), then export the challenger to ONNX, judge it against the champion on the
validation split and the regression set, register it with the gate report as tags, and alias it
``challenger`` only when the gate passed. MLflow records params, per-epoch metrics and
artifacts; the ``training_runs`` row records status and live progress for the API.

The loop's pieces are Ray-free (``sentinel.train``); only the wiring is here.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from sentinel.actors.training_data import StoreSpec, counts_json, curate, read_split
from sentinel.config import Settings
from sentinel.domain.boxes import COCO_LABELS
from sentinel.models.files import export_checkpoint, export_yolov8n
from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.db import make_engine
from sentinel.store.training_repo import TrainingRunRepository
from sentinel.train.batching import collate
from sentinel.train.dataset_store import lock_dataset
from sentinel.train.datasets import DatasetError, DatasetManifest
from sentinel.train.judging import OnnxModel, Split, judge
from sentinel.train.model import (
    TrainConfig,
    build_model,
    load_checkpoint,
    make_optimizer,
    restore,
    save_checkpoint,
    set_threads,
    to_torch,
    train_mode,
    train_step,
)
from sentinel.train.tracking import Tracker

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "model.pt"
PROGRESS_INTERVAL_S = 1.0


def _repo(settings: Settings) -> TrainingRunRepository:
    return TrainingRunRepository(make_engine(settings.db_url))


def train_loop(config: dict[str, Any]) -> None:
    """``train_loop_per_worker``: fine-tune, one checkpoint per epoch, resume if one exists."""
    import torch

    settings: Settings = config["settings"]
    cfg = TrainConfig(**config["train"])
    labels: list[str] = config["labels"]
    run_id: str = config["run_id"]
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    ctx = ray.train.get_context()
    rank0 = ctx.get_world_rank() == 0
    device = ray.train.torch.get_device()
    core = build_model(labels, freeze_backbone=cfg.freeze_backbone).to(device)
    optimizer = make_optimizer(core, cfg)
    start_epoch, step = 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start_epoch, step = restore(
                load_checkpoint(Path(folder) / CHECKPOINT_FILE), core, optimizer
            )
        logger.info("run %s resumes after epoch %d (step %d)", run_id, start_epoch, step)
    model: torch.nn.Module = core
    if ctx.get_world_size() > 1:
        model = ray.train.torch.prepare_model(core)
    repo = _repo(settings) if rank0 else None
    tracker = Tracker(settings.mlflow_tracking_uri()) if rank0 and config["mlflow_run_id"] else None
    if repo is not None:
        repo.attempt(
            run_id,
            resumed_epoch=start_epoch if checkpoint is not None else None,
            resumed_step=step if checkpoint is not None else None,
        )
        repo.progress(run_id, epoch=start_epoch, step=step, loss=None, worker_pid=os.getpid())
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(start_epoch, cfg.epochs):
        train_mode(core, freeze_backbone=cfg.freeze_backbone)
        sums: dict[str, float] = {}
        steps, samples, began, last_write = 0, 0, time.monotonic(), 0.0
        for batch in shard.iter_batches(
            batch_size=cfg.batch_size, batch_format="numpy", local_shuffle_buffer_size=64
        ):
            if len(batch["image"]) == 0:
                continue
            tensors = to_torch(collate(batch["image"], batch["targets"]), device)
            out = train_step(model, optimizer, tensors, core=core)
            step += 1
            steps += 1
            samples += len(batch["image"])
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + value
            now = time.monotonic()
            if repo is not None and now - last_write >= PROGRESS_INTERVAL_S:
                repo.progress(
                    run_id, epoch=epoch, step=step, loss=out["loss"], worker_pid=os.getpid()
                )
                last_write = now
        seconds = max(time.monotonic() - began, 1e-9)
        metrics = {f"train.{k}": v / max(steps, 1) for k, v in sums.items()}
        metrics["train.samples_per_s"] = samples / seconds
        with tempfile.TemporaryDirectory() as folder:
            if rank0:
                save_checkpoint(
                    Path(folder) / CHECKPOINT_FILE,
                    core,
                    optimizer=optimizer,
                    epoch=epoch + 1,
                    step=step,
                    labels=labels,
                    input_size=cfg.input_size,
                )
            if tracker is not None:  # before the report: a kill in between re-runs the epoch
                tracker.metrics(config["mlflow_run_id"], metrics, step=epoch + 1)
            ray.train.report(
                {"epoch": epoch + 1, "step": step, **metrics},
                checkpoint=ray.train.Checkpoint.from_directory(folder) if rank0 else None,
            )
        if repo is not None:
            loss = metrics.get("train.loss")
            repo.progress(run_id, epoch=epoch + 1, step=step, loss=loss, worker_pid=os.getpid())


class CheckpointProgress(ray.train.UserCallback):
    """On the Ray Train controller: records each checkpoint once Ray Train has registered it
    (a restarted worker group resumes from the last one registered, not the last one written)."""

    def __init__(self, settings: Settings, run_id: str) -> None:
        self.settings = settings
        self.run_id = run_id

    def after_report(
        self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any
    ) -> None:
        if checkpoint is not None and metrics:
            _repo(self.settings).checkpointed(self.run_id, epoch=int(metrics[0]["epoch"]))


def _champion(settings: Settings, registry: Any, folder: Path) -> OnnxModel:
    """The serving champion as an ONNX file (the registry's, else the bundled YOLOv8n)."""
    if registry is not None:
        version = registry.alias("champion")
        if version is None:
            onnx = export_yolov8n(settings.onnx_model_path())
            version = registry.bootstrap_champion(onnx, list(COCO_LABELS), 640)
        path = registry.fetch_onnx(version.version, folder / "champion")
        return OnnxModel(path, tuple(version.labels), int(version.input_size))
    onnx = export_yolov8n(settings.onnx_model_path())
    labels = tuple(settings.detector.labels or COCO_LABELS)
    return OnnxModel(onnx, labels, settings.detector.input_size)


def open_registry(settings: Settings) -> Any:
    """The MLflow model registry of ``settings`` (``sentinel.train.registry``)."""
    from sentinel.train.registry import ModelRegistry

    return ModelRegistry.of(settings.train, settings.data_dir)


def _lock_regression(
    settings: Settings, datasets: DatasetRepo, spec: StoreSpec, run_id: str
) -> tuple[DatasetManifest | None, str]:
    """The regression set's manifest, locked by the run like its dataset (None: there is none,
    and the note says why: then no challenger passes the gate)."""
    name = settings.train.regression_dataset
    if name is None:
        return None, "no regression set configured (train.regression_dataset)"
    try:
        manifest = lock_dataset(
            datasets, spec.open(), name, settings.train.regression_version, run_id
        )
    except DatasetError as exc:
        return None, str(exc)
    return manifest, ""


def _regression_split(
    manifest: DatasetManifest | None, note: str, spec: StoreSpec
) -> tuple[Split, str]:
    if manifest is None:
        return Split(), note
    split, unreadable = read_split(manifest, spec)
    return split, (
        f"{manifest.name} v{manifest.version}: {len(split)} frames, {unreadable} unreadable"
    )


def run_training(settings: Settings, run_id: str, *, registry: Any = None) -> dict[str, Any]:
    """Run training run ``run_id`` (a ``queued`` row) to its end; returns its summary.

    Never raises for a bad dataset or a failed fit: the run ends ``failed`` with the reason.
    """
    repo = _repo(settings)
    run = repo.get(run_id)
    if run is None:
        raise ValueError(f"no training run {run_id}")
    tracker = Tracker(settings.mlflow_tracking_uri(), settings.mlflow_artifacts_dir())
    mlflow_run_id: str | None = None
    try:
        params = run.params
        cfg = TrainConfig(
            epochs=run.epochs,
            batch_size=int(params.get("batch_size", settings.train.batch_size)),
            input_size=int(params.get("input_size", settings.train.input_size)),
            lr=float(params.get("lr", settings.train.lr)),
            threads=settings.train.threads,
        )
        spec = StoreSpec(settings.objects, str(settings.data_dir))
        # Both versions are locked by the run before anything reads their files: from here
        # on neither can be deleted, and the manifests read are the ones their rows record.
        datasets = DatasetRepo(make_engine(settings.db_url))
        manifest = lock_dataset(datasets, spec.open(), run.dataset, run.dataset_version, run_id)
        regression_manifest, regression_note = _lock_regression(settings, datasets, spec, run_id)
        repo.set_status(run_id, "curating", dataset_version=manifest.version)
        curated = curate(
            manifest,
            spec,
            size=cfg.input_size,
            validation_fraction=settings.train.validation_fraction,
            blocks=settings.train.time_blocks,
            gap_s=settings.train.split_gap_s,
            max_repeat=settings.train.max_repeat,
        )
        counts = counts_json(curated.counts)
        mlflow_run_id = tracker.start(
            run_id,
            {
                **cfg.as_params(),
                "dataset": manifest.name,
                "dataset_version": manifest.version,
                "labels": ",".join(manifest.labels),
                "num_workers": settings.train.num_workers,
                "use_gpu": settings.train.use_gpu,
                "max_failures": settings.train.max_failures,
            },
            {"sentinel.run_id": run_id},
        )
        tracker.metrics(
            mlflow_run_id,
            {f"curation.{k}": float(v) for k, v in counts.items() if isinstance(v, int)},
        )
        steps_per_epoch = -(-curated.train_rows // cfg.batch_size)
        repo.set_status(
            run_id,
            "training",
            dataset_version=manifest.version,
            mlflow_run_id=mlflow_run_id,
            counts=counts,
            total_steps=steps_per_epoch * cfg.epochs,
        )
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={
                # The model itself travels (pickled): a JSON dump would mask its secrets.
                "settings": settings,
                "train": cfg.__dict__,
                "labels": manifest.labels,
                "run_id": run_id,
                "mlflow_run_id": mlflow_run_id,
            },
            scaling_config=ScalingConfig(
                num_workers=settings.train.num_workers,
                use_gpu=settings.train.use_gpu,
                resources_per_worker={"CPU": settings.train.cpus_per_worker},
            ),
            run_config=RunConfig(
                name=f"sentinel-{run_id}",
                storage_path=str(settings.train_storage_path()),
                checkpoint_config=CheckpointConfig(num_to_keep=2),
                failure_config=FailureConfig(max_failures=settings.train.max_failures),
                # Ray Train V2's RunConfig takes UserCallbacks; the stubs name V1's type.
                callbacks=[CheckpointProgress(settings, run_id)],  # type: ignore[list-item]
            ),
            datasets={"train": curated.train},
        )
        result = trainer.fit()
        if result.checkpoint is None:
            raise RuntimeError("training ended without a checkpoint")
        repo.set_status(run_id, "evaluating")
        with tempfile.TemporaryDirectory() as tmp, result.checkpoint.as_directory() as folder:
            work = Path(tmp)
            challenger_onnx = export_checkpoint(
                Path(folder) / CHECKPOINT_FILE, work / "challenger.onnx", imgsz=cfg.input_size
            )
            registry = registry if registry is not None else open_registry(settings)
            champion = _champion(settings, registry, work)
            regression, regression_note = _regression_split(
                regression_manifest, regression_note, spec
            )
            judgement = judge(
                OnnxModel(challenger_onnx, tuple(manifest.labels), cfg.input_size),
                champion,
                {"validation": curated.validation, "regression": regression},
                manifest.labels,
                margin=settings.train.gate_margin,
                conf=settings.train.eval_conf_threshold,
                threads=settings.train.threads,
            )
            metrics = judgement.metrics()
            tags = {
                **judgement.gate.as_tags(),
                "regression_set": regression_note[:500],
                "dataset": f"{manifest.name}:v{manifest.version}",
                "sentinel.run_id": run_id,
            }
            tracker.metrics(mlflow_run_id, metrics)
            tracker.tags(mlflow_run_id, tags)
            report_file = work / "gate.json"
            report_file.write_text(json.dumps(judgement.gate.as_dict(), indent=2))
            tracker.artifact(mlflow_run_id, report_file, "gate")
            version = registry.register(
                challenger_onnx,
                labels=manifest.labels,
                input_size=cfg.input_size,
                run_id=mlflow_run_id,
                metrics=metrics,
                tags=tags,
            )
            if judgement.gate.passed:
                registry.set_alias("challenger", version.version)
        gate_doc = judgement.gate.as_dict()
        gate_doc["regression_set"] = regression_note
        gate_doc["reports"] = {
            "challenger": {k: v.as_dict() for k, v in judgement.challenger.items()},
            "champion": {k: v.as_dict() for k, v in judgement.champion.items()},
        }
        # MLflow first: a run the API calls finished is finished in MLflow too.
        tracker.end(mlflow_run_id)
        repo.finish(
            run_id,
            gate=gate_doc,
            gate_passed=judgement.gate.passed,
            challenger_version=version.version,
        )
        return {"run_id": run_id, "version": version.version, "gate": gate_doc}
    except Exception as exc:
        logger.error("training run %s failed: %s", run_id, traceback.format_exc())
        repo.finish(run_id, error=f"{type(exc).__name__}: {exc}")
        if mlflow_run_id is not None:
            tracker.end(mlflow_run_id, failed=True)
        return {"run_id": run_id, "error": str(exc)}


__all__ = ["open_registry", "run_training", "train_loop"]
