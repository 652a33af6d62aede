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
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayError

from sentinel.actors.camera import CameraActor, camera_actor_name
from sentinel.config import AuthSettings, CameraConfig
from sentinel.domain.placement import Demand, camera_demand, unschedulable_reason, waiting_reason
from sentinel.domain.restarts import RestartPolicy
from sentinel.domain.stats import CameraState, CameraStats
from sentinel.gateway.secretbox import SecretError, open_secret_box
from sentinel.store.camera_secrets import public_camera, unseal_camera
from sentinel.store.db import make_engine
from sentinel.store.repo import CameraRepository

logger = logging.getLogger(__name__)

SUPERVISOR_NAME = "sentinel-supervisor"
_CALL_TIMEOUT_S = 5.0
# A camera actor that was placed but whose start() has not answered within this is given up
# on (killed and restarted like a crash). Time spent waiting for a free node does not count.
START_TIMEOUT_S = 60.0
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
    # The pending ``start()`` call of a new actor (never waited on under the lock: an actor
    # waiting for a free camera slot must not stall the other cameras).
    starting: Any | None = None
    demand: Demand | None = None
    start_clock: float = 0.0  # when start() was sent, moved on while the actor waits for a node
    waiting: str | None = None  # why a starting actor is not placed yet
    unreachable: str | None = None  # its actor does not answer (its node may be down)
    crash: str | None = None  # why the last incarnation ended, until the next one starts


class CameraSupervisor:
    """Keeps one CameraActor per enabled camera row; restarts crashed ones with backoff.

    The plain class (unit tests drive its reconcile steps with a fake ``ray``);
    :data:`Supervisor` is the Ray actor of it.
    """

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
            probes = self._probe(desired)
            for cid, cfg in desired.items():
                self._reconcile_one(cid, cfg, probes.get(cid))

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
        elif cam.restart_at is not None or cam.starting is not None:
            status["state"] = CameraState.STARTING.value
            status.pop("node", None)  # the last incarnation's node, or none yet
            if cam.waiting or cam.crash:
                status["last_error"] = cam.waiting or cam.crash
        elif cam.unreachable:
            status["last_error"] = cam.unreachable
        status["restarts"] = cam.restarts
        status.pop("crashed", None)
        return status

    def _probe(self, desired: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Asks every started camera for its status at once and waits for the answers
        together: cameras on a lost or busy node cost a round one timeout, not one each."""
        refs = {
            cid: cam.actor.status.remote()
            for cid, cam in self.running.items()
            if cam.actor is not None and cam.starting is None and cam.config == desired.get(cid)
        }
        if refs:
            ray.wait(list(refs.values()), num_returns=len(refs), timeout=_CALL_TIMEOUT_S)
        return refs

    def _reconcile_one(self, cid: str, cfg: dict[str, Any], probe: Any | None = None) -> None:
        """One camera's step; ``probe`` is its pending status call from :meth:`_probe`."""
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
        if cam.starting is not None and not self._check_start(cid, cam):
            return
        try:
            if probe is not None:  # already waited for, with the others
                cam.status = ray.get(probe, timeout=0)
            else:
                cam.status = ray.get(cam.actor.status.remote(), timeout=_CALL_TIMEOUT_S)
        except GetTimeoutError:
            return  # busy, not dead: ask again next round
        except ActorUnavailableError as exc:
            # Unreachable, not known dead: its node may be down, or the network. Ray declares
            # the actor dead once the node misses its health checks (ActorDiedError, next
            # branch); a second incarnation started before then could run beside the first.
            cam.unreachable = f"camera actor unreachable, its node may be down: {exc}"[:500]
            return
        except RayActorError as exc:
            self._on_crash(cid, cam, f"camera actor died: {exc}")
            return
        cam.unreachable = None
        if cam.status and cam.status.get("crashed"):
            self._kill(cam)
            self._on_crash(cid, cam, str(cam.status.get("last_error")))

    def _check_start(self, cid: str, cam: _Camera) -> bool:
        """Follows a new actor's pending ``start()`` without blocking on it; True once it
        has started."""
        assert cam.actor is not None and cam.demand is not None
        starting: Any = cam.starting
        ready, _ = ray.wait([starting], timeout=0)
        if ready:
            try:
                ray.get(starting, timeout=_CALL_TIMEOUT_S)
            except (RayError, GetTimeoutError) as exc:
                self._kill(cam)
                self._on_crash(cid, cam, f"camera actor failed to start: {exc}")
                return False
            cam.starting = cam.waiting = cam.crash = None
            return True
        nodes = ray.nodes()  # type: ignore[no-untyped-call]
        reason = unschedulable_reason(cam.demand, nodes)
        if reason:
            # Its pinned node went away while it waited: report it, do not leave it queued.
            self._kill(cam)
            cam.unschedulable = reason
            logger.warning("camera %s is unschedulable: %s", cid, reason)
            return False
        now = time.monotonic()
        cam.waiting = waiting_reason(cam.demand, ray.available_resources())  # type: ignore[no-untyped-call]
        if cam.waiting:
            cam.start_clock = now  # waiting for a free node is not a slow start
        elif now - cam.start_clock > START_TIMEOUT_S:
            self._kill(cam)
            self._on_crash(cid, cam, f"camera actor did not start within {START_TIMEOUT_S:.0f}s")
        return False

    def _on_crash(self, cid: str, cam: _Camera, reason: str) -> None:
        cam.actor = cam.starting = None
        cam.unreachable = cam.waiting = None
        cam.crash = reason[:500]
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
        try:
            actor = CameraActor.options(  # type: ignore[attr-defined]
                name=camera_actor_name(cid),
                namespace=self.namespace,
                lifetime="detached",
                get_if_exists=False,
                **demand.actor_options(),
            ).remote(camera, self.runtime)
        except ValueError as exc:
            # The name is still held by an incarnation Ray has not declared dead yet (its
            # node is being given up on): try again next round.
            cam.restart_at = time.monotonic() + self.interval_s
            cam.waiting = f"waiting for the previous camera actor to be released: {exc}"[:500]
            return
        cam.actor, cam.demand = actor, demand
        cam.starting = actor.start.remote()
        cam.start_clock = time.monotonic()
        cam.waiting = cam.unreachable = None

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
        if cam.starting is not None:
            # A start that finished since the last reconcile has a running camera, maybe with
            # open events already: stop it properly. One still starting has none: kill it.
            done, _ = ray.wait([cam.starting], timeout=0)
            if not done:
                self._kill(cam)
                return
        try:
            ray.get(cam.actor.stop.remote(), timeout=15)
        except (RayActorError, GetTimeoutError) as exc:
            logger.warning("camera %s did not stop cleanly: %s", cid, exc)
        self._kill(cam)

    def _kill(self, cam: _Camera) -> None:
        if cam.actor is not None:
            self._kill_actor(cam.actor)
            cam.actor = cam.starting = None

    @staticmethod
    def _kill_actor(actor: Any) -> None:
        with contextlib.suppress(RayActorError, ValueError):
            ray.kill(actor, no_restart=True)


Supervisor: Any = ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=16)(  # type: ignore[call-overload]
    CameraSupervisor
)


def get_or_create_supervisor(runtime: dict[str, Any]) -> Any:
    """The cluster's supervisor actor, created (detached) if it does not exist yet."""
    return Supervisor.options(
        name=SUPERVISOR_NAME,
        namespace=runtime["namespace"],
        lifetime="detached",
        get_if_exists=True,
    ).remote(runtime)
