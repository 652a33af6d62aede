"""Assembling and running Sentinel on a Ray cluster: Serve app, supervisor, cameras."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

import ray
from ray import serve

from sentinel.actors.agent_worker import AGENT_WORKER_NAME, AgentWorkerActor
from sentinel.actors.retention import RETENTION_NAME, RetentionActor
from sentinel.actors.supervisor import get_or_create_supervisor
from sentinel.api.setup import secret_box
from sentinel.config import Settings
from sentinel.gateway.keys import KeyRing
from sentinel.serve.agent_deployment import AgentDeployment
from sentinel.serve.detector import build_detector
from sentinel.serve.ingress import Ingress
from sentinel.serve.llm import build_llm
from sentinel.serve.llm_model import verify_gguf
from sentinel.serve.yolo import verify_model
from sentinel.store.camera_secrets import seal_camera
from sentinel.store.db import make_engine, migrate
from sentinel.store.repo import CameraRepository
from sentinel.store.s3 import S3ObjectStore, make_object_store

logger = logging.getLogger(__name__)


def runtime_of(settings: Settings) -> dict[str, Any]:
    """The plain-dict settings actors and deployments receive (no pydantic across Ray)."""
    return {
        "db_url": settings.db_url,
        # The model itself (not a JSON dump): its secret key must travel, not its mask.
        "objects": settings.objects,
        "app_name": settings.app_name,
        "namespace": settings.namespace,
        "reconcile_interval_s": settings.reconcile_interval_s,
        "data_dir": str(settings.data_dir.resolve()),
        "redis_url": settings.redis_url,
        "auth": settings.auth.model_dump(mode="json"),
        "agent": settings.agent.model_dump(mode="json"),
        "storage": settings.storage.model_dump(mode="json"),
    }


def wants_embedded_llm(settings: Settings) -> bool:
    agent = settings.agent
    return agent.enabled and agent.llm.enabled and any(b.kind == "embedded" for b in agent.backends)


def build_application(settings: Settings) -> Any:
    model_path = settings.onnx_model_path().resolve()
    verify_model(model_path)
    detector = build_detector(settings.detector, model_path)
    llm = None
    if wants_embedded_llm(settings):
        gguf = settings.gguf_model_path().resolve()
        verify_gguf(gguf)
        llm_cfg = settings.agent.llm
        llm = build_llm(
            gguf, threads=llm_cfg.threads, num_cpus=llm_cfg.num_cpus, ctx_size=llm_cfg.ctx_size
        )
    agent = (
        AgentDeployment.bind(settings.agent.model_dump(mode="json"), llm)  # type: ignore[attr-defined]
        if settings.agent.enabled
        else None
    )
    return Ingress.bind(detector, runtime_of(settings), agent, llm)  # type: ignore[attr-defined]


def prepare_storage(settings: Settings) -> None:
    """Creates the data dir and brings the database schema to head."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = make_object_store(settings.objects, settings.data_dir)
    if isinstance(store, S3ObjectStore):
        store.ensure_bucket()  # fail at start, not at the first snapshot
    else:
        settings.objects_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.db_url)
    # Keys are made here, once, so that ingress replicas only ever load them.
    if not settings.auth.jwt_private_keys:
        KeyRing.load_or_create(settings.data_dir / "keys" / "jwt")
    secret_box(settings.auth, settings.data_dir)


def seed_cameras(settings: Settings) -> None:
    """Writes the config file's cameras into the database (the supervisor's desired state)."""
    repo = CameraRepository(make_engine(settings.db_url))
    box = secret_box(settings.auth, settings.data_dir)
    for camera in settings.cameras:
        repo.upsert(camera.id, seal_camera(camera.model_dump(mode="json"), box))


def connect_ray(settings: Settings) -> None:
    """Joins ``RAY_ADDRESS`` when set, else starts a local cluster."""
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or None
    ray.init(
        address=address,
        namespace=settings.namespace,
        include_dashboard=False,
        configure_logging=True,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )


def start(settings: Settings, *, timeout_s: float = 180.0) -> Any:
    """Deploys the Serve app and the supervisor; returns the supervisor handle."""
    prepare_storage(settings)
    seed_cameras(settings)
    connect_ray(settings)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings), name=settings.app_name, route_prefix="/")
    supervisor = get_or_create_supervisor(runtime_of(settings))
    ray.get(supervisor.ping.remote(), timeout=timeout_s)
    ray.get(supervisor.reconcile.remote(), timeout=timeout_s)
    if settings.agent.enabled:
        worker = AgentWorkerActor.options(  # type: ignore[attr-defined]
            name=AGENT_WORKER_NAME,
            namespace=settings.namespace,
            lifetime="detached",
            get_if_exists=True,
        ).remote(runtime_of(settings))
        ray.get(worker.start.remote(), timeout=timeout_s)
    retention = RetentionActor.options(  # type: ignore[attr-defined]
        name=RETENTION_NAME,
        namespace=settings.namespace,
        lifetime="detached",
        get_if_exists=True,
    ).remote(runtime_of(settings))
    ray.get(retention.start.remote(), timeout=timeout_s)
    return supervisor


def stop(settings: Settings, supervisor: Any | None = None) -> None:
    """Stops cameras (closing their events), the supervisor and the Serve app."""
    t0 = time.monotonic()
    try:
        if supervisor is not None:
            ray.get(supervisor.shutdown.remote(), timeout=60)
            ray.kill(supervisor, no_restart=True)
    except Exception as exc:
        logger.warning("supervisor did not shut down cleanly: %s", exc)
    with contextlib.suppress(ValueError):  # no agent worker when the agent is disabled
        ray.kill(ray.get_actor(AGENT_WORKER_NAME, namespace=settings.namespace), no_restart=True)
    with contextlib.suppress(ValueError):  # not started (start() failed before it)
        ray.kill(ray.get_actor(RETENTION_NAME, namespace=settings.namespace), no_restart=True)
    try:
        serve.delete(settings.app_name)
    except Exception as exc:
        logger.warning("serve app did not delete cleanly: %s", exc)
    logger.info("stopped in %.1fs", time.monotonic() - t0)
