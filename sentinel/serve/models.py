"""The model controller: a detached actor that runs :class:`ModelService` on the cluster.

It deploys the canary (a second Serve application, deployment ``DetectorCanary``, the same
:class:`Detector` class serving the challenger), pushes the cameras' route to every camera
actor, answers the champion's replicas which version to serve (they poll it), and checks the
guard every ``train.guard.interval_s``. The ingress reaches it by name
(:class:`RayModelControl`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray
from ray import serve

from sentinel.actors.camera import CANARY_DEPLOYMENT, camera_actor_name
from sentinel.api.models import ModelsUnavailableError
from sentinel.config import DetectorSettings, TrainSettings
from sentinel.serve.detector import MODEL_CONTROLLER, Detector, detector_options
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.db import make_engine
from sentinel.store.model_repo import ModelServingRepository
from sentinel.train.registry import ModelRegistry
from sentinel.train.serving import (
    ModelConflictError,
    ModelNotFoundError,
    ModelService,
)

logger = logging.getLogger(__name__)

CAMERA_PREFIX = camera_actor_name("")
_CALL_TIMEOUT_S = 10.0


def canary_app_name(runtime: Mapping[str, Any]) -> str:
    train = TrainSettings(**runtime.get("train", {}))
    return f"{runtime['app_name']}{train.canary_app_suffix}"


class RayServing:
    """:class:`sentinel.train.serving.Serving` on Ray Serve and the camera actors."""

    def __init__(self, runtime: Mapping[str, Any], replicas: dict[str, tuple[int | None, float]]):
        self.namespace = str(runtime["namespace"])
        self.app_name = str(runtime["app_name"])
        self.canary_app = canary_app_name(runtime)
        self.detector = DetectorSettings(**runtime.get("detector", {}))
        self.poll_s = float(runtime.get("model_poll_s", 1.0))
        self.canary_cpus = TrainSettings(**runtime.get("train", {})).canary_num_cpus
        self.replicas = replicas  # replica id -> (version, monotonic time of its last sync)

    def deploy_canary(self, model: Mapping[str, Any]) -> None:
        self._wait_gone(30.0)  # a canary being deleted cannot be replaced by one of that name
        sizing = {"autoscaling": None, "replicas": 1, "num_cpus": self.canary_cpus}
        options = detector_options(self.detector.model_copy(update=sizing))
        app = Detector.options(name=CANARY_DEPLOYMENT, **options).bind(  # type: ignore[attr-defined]
            self.detector.model_dump(mode="json"), str(model["path"]), dict(model), None
        )
        try:
            serve.run(app, name=self.canary_app, route_prefix=None)
        except Exception as exc:  # the replica refused the file, or could not start
            self.remove_canary()
            raise ModelConflictError(f"the canary deployment did not start: {exc}") from exc

    def remove_canary(self) -> None:
        with contextlib.suppress(Exception):  # not deployed: nothing to remove
            serve.delete(self.canary_app, _blocking=False)

    def _wait_gone(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            app = serve.status().applications.get(self.canary_app)
            if app is None or str(app.status) != "DELETING":
                return
            time.sleep(0.2)

    def _cameras(self) -> list[Any]:
        found = ray.util.list_named_actors(all_namespaces=True)
        names = [str(n["name"]) for n in found if n.get("namespace") == self.namespace]
        actors = []
        for name in names:
            if name.startswith(CAMERA_PREFIX):
                with contextlib.suppress(ValueError):
                    actors.append(ray.get_actor(name, namespace=self.namespace))
        return actors

    def _gather(self, method: str, *args: Any) -> list[Any]:
        refs = [getattr(actor, method).remote(*args) for actor in self._cameras()]
        out = []
        for ref in refs:
            try:
                out.append(ray.get(ref, timeout=_CALL_TIMEOUT_S))
            except Exception as exc:  # a camera being stopped: it reads the route at start
                logger.warning("camera did not answer %s: %s", method, exc)
        return out

    def push_route(self, route: Mapping[str, Any]) -> int:
        return sum(1 for ok in self._gather("set_model_route", dict(route)) if ok)

    def camera_tallies(self) -> list[dict[str, dict[str, float]]]:
        return [t for t in self._gather("model_tally") if isinstance(t, dict)]

    def _running_replicas(self) -> int:
        try:
            app = serve.status().applications[self.app_name]
            states = app.deployments["Detector"].replica_states
            return int(sum(n for s, n in states.items() if str(s).endswith("RUNNING")))
        except Exception:  # a status shape we do not know: trust the replicas' own reports
            return 1

    def wait_champion(self, version: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = time.monotonic()
            live = {r: v for r, (v, seen) in self.replicas.items() if now - seen < 3 * self.poll_s}
            served = live and all(v == version for v in live.values())
            if served and len(live) >= self._running_replicas():
                return True
            time.sleep(min(0.2, self.poll_s))
        return False


def _audit_fn(engine: Any) -> Any:
    audit = AuditRepository(engine)

    def append(actor: str, action: str, target: str, outcome: str, detail: dict[str, Any]) -> None:
        audit.append(
            actor=actor,
            action=action,
            target=target,
            client="cluster",
            outcome=outcome,
            detail=detail,
        )

    return append


def _answer(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Runs a service call; errors become data (they cross Ray as plain dicts)."""
    try:
        return {"ok": fn(*args, **kwargs)}
    except ModelNotFoundError as exc:
        return {"error": "not_found", "detail": str(exc)}
    except ModelConflictError as exc:
        return {"error": "conflict", "detail": str(exc)}
    except ValueError as exc:
        return {"error": "invalid", "detail": str(exc)}


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class ModelController:
    """Owns the detector's serving state on the cluster (one per namespace, detached)."""

    def __init__(self, runtime: dict[str, Any]) -> None:
        train = TrainSettings(**runtime.get("train", {}))
        data_dir = Path(runtime["data_dir"])
        engine = make_engine(runtime["db_url"])
        self.replicas: dict[str, tuple[int | None, float]] = {}
        self.serving = RayServing(runtime, self.replicas)
        self.service = ModelService(
            registry=ModelRegistry.of(train, data_dir),
            repo=ModelServingRepository(engine),
            serving=self.serving,
            audit=_audit_fn(engine),
            models_dir=data_dir / "models" / "registry",
            input_size=DetectorSettings(**runtime.get("detector", {})).input_size,
            guard=train.guard,
            swap_timeout_s=train.swap_timeout_s,
        )
        self.lock = threading.Lock()
        # The guard starts with the actor, not in start(): Ray restarts a crashed controller
        # (max_restarts=-1) by running this constructor again, and only the platform's first
        # start calls start(); a loop begun there would be lost with the first restart.
        self.stopped = threading.Event()
        self.guard_thread = threading.Thread(
            target=self.service.guard_forever, args=(self.stopped,), name="guard", daemon=True
        )
        self.guard_thread.start()

    async def start(self) -> None:
        """Records the serving state and brings back a canary a restart lost (the guard runs
        from the constructor on)."""
        state = await asyncio.to_thread(self.service.champion)
        current, _ = await asyncio.to_thread(self.service.state)
        if current.get("canary") is not None:
            status = await asyncio.to_thread(serve.status)
            if status.applications.get(self.serving.canary_app) is None:
                try:
                    await asyncio.to_thread(self.serving.deploy_canary, current["canary"])
                except ModelConflictError as exc:  # its cameras fall back to the champion
                    logger.error("model controller: canary not restored: %s", exc)
        logger.info("model controller: champion version %s", state["version"])

    async def replica_sync(self, replica: str, version: int | None) -> dict[str, Any]:
        """A champion replica reports what it serves; answers what it must serve."""
        self.replicas[replica] = (version, time.monotonic())
        champion: dict[str, Any] = await asyncio.to_thread(self.service.champion)
        return champion

    async def route(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.service.route)

    async def overview(self) -> dict[str, Any]:
        return await asyncio.to_thread(_answer, self.service.overview)

    async def canary(
        self, version: int, cameras: list[str], share: float, actor: str
    ) -> dict[str, Any]:
        return await asyncio.to_thread(
            _answer, self.service.canary, version, cameras=cameras, share=share, actor=actor
        )

    async def promote(self, version: int, actor: str) -> dict[str, Any]:
        return await asyncio.to_thread(_answer, self.service.promote, version, actor=actor)

    async def rollback(self, version: int | None, actor: str) -> dict[str, Any]:
        return await asyncio.to_thread(
            _answer, self.service.rollback, version, actor=actor, reason="requested"
        )

    async def check_guard(self) -> list[str]:
        return await asyncio.to_thread(self.service.check_guard)


class RayModelControl:
    """The models API's control, through the controller actor (see ``api.models``)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            actor = ray.get_actor(MODEL_CONTROLLER, namespace=self.namespace)
        except ValueError as exc:
            raise ModelsUnavailableError("the model controller is not running") from exc
        answer = await getattr(actor, method).remote(*args)
        return _unwrap(answer)

    async def overview(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("overview")
        return result

    async def canary(
        self, version: int, cameras: list[str], share: float, actor: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("canary", version, cameras, share, actor)
        return result

    async def promote(self, version: int, actor: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("promote", version, actor)
        return result

    async def rollback(self, version: int, actor: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("rollback", version, actor)
        return result


def _unwrap(answer: Any) -> Any:
    if isinstance(answer, dict) and "error" in answer:
        kind, detail = answer["error"], str(answer.get("detail", ""))
        if kind == "not_found":
            raise ModelNotFoundError(detail)
        if kind == "conflict":
            raise ModelConflictError(detail)
        raise ValueError(detail)
    if isinstance(answer, dict) and "ok" in answer:
        return answer["ok"]
    return answer
