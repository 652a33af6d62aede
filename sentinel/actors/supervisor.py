"""The supervisor: reconciles the cameras in the database with running CameraActors.

It is a detached, named actor, so it outlives the process that started it (``sentinel up``),
and Ray restarts it if it dies; on start it adopts the camera actors that are still running.
Desired state lives in the database, never only in this actor's memory.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from sentinel.actors.camera import CameraActor, camera_actor_name
from sentinel.config import AuthSettings, CameraConfig
from sentinel.domain.placement import Demand, camera_demand, unschedulable_reason
from sentinel.domain.restarts import RestartPolicy
from sentinel.domain.stats import CameraState, CameraStats
from sentinel.gateway.secretbox import SecretError, open_secret_box
from sentinel.store.camera_secrets import public_camera, unseal_camera
from sentinel.store.db import make_engine
from sentinel.store.repo import CameraRepository

logger = logging.getLogger(__name__)

SUPERVISOR_NAME = "sentinel-supervisor"
_CALL_TIMEOUT_S = 5.0
_FINAL_STATES = {CameraState.FINISHED.value, CameraState.FAILED.value}


@dataclass(slots=True)
class _Camera:
    config: dict[str, Any]
    actor: Any | None = None
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    restarts: int = 0
    restart_at: float | None = None
    status: dict[str, Any] | None = None
    given_up: str | None = None
    unschedulable: str | None = None


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=16)  # type: ignore[call-overload]
class Supervisor:
    """Keeps one CameraActor per enabled camera row; restarts crashed ones with backoff."""

    def __init__(self, runtime: dict[str, Any]) -> None:
        self.runtime = runtime
        self.namespace: str = runtime["namespace"]
        self.interval_s: float = runtime.get("reconcile_interval_s", 2.0)
        self.cameras = CameraRepository(make_engine(runtime["db_url"]))
        self.box = open_secret_box(
            AuthSettings(**runtime["auth"]).secret_key, Path(runtime["data_dir"])
        )
        self.running: dict[str, _Camera] = {}
        self.lock = threading.RLock()
        self.stopped = threading.Event()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self.thread.start()

    # -- public methods -------------------------------------------------------------------

    def ping(self) -> bool:
        return True

    def reconcile(self) -> None:
        """Brings running actors in line with the database now."""
        with self.lock:
            if self.stopped.is_set():
                return
            desired = {
                cid: self._unseal(cid, cfg)
                for cid, cfg in self.cameras.list()
                if cfg.get("enabled", True)
            }
            for cid in list(self.running):
                if cid not in desired:
                    self._stop(cid)
            for cid, cfg in desired.items():
                self._reconcile_one(cid, cfg)

    def statuses(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {cid: self._status_of(cid, cam) for cid, cam in self.running.items()}

    def status(self, camera_id: str) -> dict[str, Any] | None:
        with self.lock:
            cam = self.running.get(camera_id)
            return None if cam is None else self._status_of(camera_id, cam)

    def shutdown(self) -> None:
        """Stops every camera (closing their open events) and the reconcile loop."""
        self.stopped.set()
        self.wake.set()
        with self.lock:
            for cid in list(self.running):
                self._stop(cid)

    # -- machinery ------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                self.reconcile()
            except Exception:
                logger.exception("reconcile failed")
            self.wake.wait(self.interval_s)
            self.wake.clear()

    def _unseal(self, cid: str, cfg: dict[str, Any]) -> dict[str, Any]:
        try:
            return unseal_camera(cfg, self.box)
        except SecretError:
            # Keep the row (never lose the operator's config) but do not run it.
            logger.error("camera %s: its credentials do not decrypt with this key", cid)
            return {**public_camera(cfg), "enabled": False}

    def _status_of(self, cid: str, cam: _Camera) -> dict[str, Any]:
        status = dict(cam.status) if cam.status else CameraStats(camera_id=cid).to_dict()
        if cam.given_up:
            status["state"] = CameraState.FAILED.value
            status["last_error"] = cam.given_up
        elif cam.unschedulable:
            status["state"] = CameraState.UNSCHEDULABLE.value
            status["last_error"] = cam.unschedulable
            status.pop("node", None)
        elif cam.restart_at is not None:
            status["state"] = CameraState.STARTING.value
        status["restarts"] = cam.restarts
        status.pop("crashed", None)
        return status

    def _reconcile_one(self, cid: str, cfg: dict[str, Any]) -> None:
        cam = self.running.get(cid)
        if cam is not None and cam.config != cfg:
            self._stop(cid)  # config changed: a fresh actor with a fresh restart budget
            cam = None
        if cam is None:
            cam = _Camera(config=cfg, actor=self._adopt(cid, cfg))
            self.running[cid] = cam
            if cam.actor is None:
                self._start(cid, cam)
            return
        if cam.given_up:
            return
        if cam.actor is None:
            if cam.unschedulable or (
                cam.restart_at is not None and time.monotonic() >= cam.restart_at
            ):
                self._start(cid, cam)
            return
        try:
            cam.status = ray.get(cam.actor.status.remote(), timeout=_CALL_TIMEOUT_S)
        except GetTimeoutError:
            return  # busy, not dead: ask again next round
        except RayActorError as exc:
            self._on_crash(cid, cam, f"camera actor died: {exc}")
            return
        if cam.status and cam.status.get("crashed"):
            self._kill(cam)
            self._on_crash(cid, cam, str(cam.status.get("last_error")))

    def _on_crash(self, cid: str, cam: _Camera, reason: str) -> None:
        cam.actor = None
        delay = cam.policy.record(time.monotonic())
        logger.warning("camera %s crashed (%s); restart in %s", cid, reason[:200], delay)
        if delay is None:
            cam.given_up = (
                f"crashed {cam.policy.recent} times within {cam.policy.window_s:.0f}s, "
                f"not restarted; last error: {reason[:300]}"
            )
            return
        cam.restarts += 1
        cam.restart_at = time.monotonic() + delay

    def _adopt(self, cid: str, cfg: dict[str, Any]) -> Any | None:
        """A camera actor left running by a previous supervisor, if its config still matches."""
        try:
            actor = ray.get_actor(camera_actor_name(cid), namespace=self.namespace)
            running_cfg = cast(
                dict[str, Any], ray.get(actor.camera_config.remote(), timeout=_CALL_TIMEOUT_S)
            )
        except (ValueError, RayActorError, GetTimeoutError):
            return None
        if running_cfg != CameraConfig(**cfg).model_dump(mode="json"):
            self._kill_actor(actor)
            return None
        logger.info("adopted running camera actor %s", cid)
        return actor

    def _start(self, cid: str, cam: _Camera) -> None:
        cam.restart_at = None
        try:
            camera = CameraConfig(**cam.config).model_dump(mode="json")
        except ValueError as exc:
            cam.given_up = f"invalid camera config: {exc}"
            return
        nodes = ray.nodes()  # type: ignore[no-untyped-call]
        demand = self._demand(camera, nodes)
        cam.unschedulable = unschedulable_reason(demand, nodes)
        if cam.unschedulable:
            # Pinned to a node that is gone (or never was): wait for it, never move elsewhere.
            logger.warning("camera %s is unschedulable: %s", cid, cam.unschedulable)
            return
        actor = CameraActor.options(  # type: ignore[attr-defined]
            name=camera_actor_name(cid),
            namespace=self.namespace,
            lifetime="detached",
            get_if_exists=False,
            **demand.actor_options(),
        ).remote(camera, self.runtime)
        try:
            ray.get(actor.start.remote(), timeout=60)
        except (RayActorError, GetTimeoutError) as exc:
            self._kill_actor(actor)
            self._on_crash(cid, cam, f"camera actor failed to start: {exc}")
            return
        cam.actor = actor

    def _demand(self, camera: dict[str, Any], nodes: list[dict[str, Any]]) -> Demand:
        """The camera's placement, plus a camera slot where the cluster has a budget."""
        placement = camera.get("placement") or {}
        slot = (self.runtime.get("cluster") or {}).get("camera_slot_resource")
        return camera_demand(
            placement.get("resources", {}), placement.get("labels", {}), slot, nodes
        )

    def _stop(self, cid: str) -> None:
        cam = self.running.pop(cid, None)
        if cam is None or cam.actor is None:
            return
        try:
            ray.get(cam.actor.stop.remote(), timeout=15)
        except (RayActorError, GetTimeoutError) as exc:
            logger.warning("camera %s did not stop cleanly: %s", cid, exc)
        self._kill(cam)

    def _kill(self, cam: _Camera) -> None:
        if cam.actor is not None:
            self._kill_actor(cam.actor)
            cam.actor = None

    @staticmethod
    def _kill_actor(actor: Any) -> None:
        with contextlib.suppress(RayActorError, ValueError):
            ray.kill(actor, no_restart=True)


def get_or_create_supervisor(runtime: dict[str, Any]) -> Any:
    """The cluster's supervisor actor, created (detached) if it does not exist yet."""
    return Supervisor.options(  # type: ignore[attr-defined]
        name=SUPERVISOR_NAME,
        namespace=runtime["namespace"],
        lifetime="detached",
        get_if_exists=True,
    ).remote(runtime)
