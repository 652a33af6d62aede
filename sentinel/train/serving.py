"""Which model the detector serves: canary, promote, roll back, the guard. Ray-free.

:class:`ModelService` keeps the serving state (a document in the database, changed by
compare-and-set) and the registry's aliases in step, and drives a :class:`Serving` — the Ray
part (``sentinel/serve/models.py``) in production, a fake in API tests. Safety rules:

- a version is served only when its gate passed (tag ``gate`` = ``passed``; the bundled
  model's ``baseline``) and its ONNX file fetched from the registry matches the sha256
  recorded at registration (:meth:`ModelRegistry.fetch_onnx`); anything else is a
  :class:`ModelConflictError`;
- a rollback changes the cameras' route before anything else, in the same request: every
  camera is back on the champion when it returns; the canary deployment is removed after;
- a promotion routes every camera to the canary (which already serves the new model) while the
  champion's replicas load it, then back: no frame waits for a model to load;
- every step, and every guard trip, is audited.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sentinel.config import CanaryGuardSettings
from sentinel.models.files import ModelFileError
from sentinel.store.model_repo import ModelServingRepository, StaleStateError
from sentinel.train.canary import ModelFigures, collect_figures, guard_reasons
from sentinel.train.registry import (
    CHALLENGER,
    CHAMPION,
    ModelRegistry,
    ModelVersion,
    RegistryError,
)

logger = logging.getLogger(__name__)

DEPLOYABLE_GATES = frozenset({"passed", "baseline"})
AUDIT_ACTOR_GUARD = "guard"

__all__ = [
    "AuditFn",
    "ModelConflictError",
    "ModelNotFoundError",
    "ModelService",
    "Serving",
]


class ModelConflictError(RuntimeError):
    """The request cannot be met in the current state (HTTP 409): a version that failed its
    gate or its digest, nothing to roll back, …"""


class ModelNotFoundError(LookupError):
    """No such model version (HTTP 404)."""


class Serving(Protocol):
    """The Ray side: the canary deployment, the cameras' routes, the champion's replicas."""

    def deploy_canary(self, model: Mapping[str, Any]) -> None:
        """Deploys (or replaces) the canary deployment serving ``model``; returns once it
        answers."""

    def remove_canary(self) -> None: ...

    def push_route(self, route: Mapping[str, Any]) -> int:
        """Sends the route to every running camera; returns how many took it."""

    def wait_champion(self, version: int, timeout_s: float) -> bool:
        """Waits until every replica of the champion's deployment serves ``version``."""

    def camera_tallies(self) -> list[dict[str, dict[str, float]]]:
        """Each running camera's :meth:`ModelTally.to_dict`."""


AuditFn = Callable[[str, str, str, str, dict[str, Any]], None]
"""(actor, action, target, outcome, detail) -> appended to the audit log."""


@dataclass
class _Checked:
    version: ModelVersion
    path: Path

    def model(self) -> dict[str, Any]:
        return {
            "version": self.version.version,
            "sha256": self.version.sha256,
            "path": str(self.path),
            "labels": list(self.version.labels),
            "input_size": self.version.input_size,
        }


@dataclass
class ModelService:
    """The serving state machine (one per controller; its methods are serialized).

    Args:
        registry: The model registry.
        repo: Where the serving state is kept.
        serving: The Ray side (or a fake).
        audit: Appends an audit entry.
        models_dir: Where verified ONNX files are fetched to.
        input_size: The side cameras letterbox frames to; a model of another size is refused.
        guard: The canary guard's thresholds.
        swap_timeout_s: How long a promotion or rollback waits for the champion's replicas.
    """

    registry: ModelRegistry
    repo: ModelServingRepository
    serving: Serving
    audit: AuditFn
    models_dir: Path
    input_size: int
    guard: CanaryGuardSettings = field(default_factory=CanaryGuardSettings)
    swap_timeout_s: float = 60.0
    last_guard: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- state ------------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, Any], int | None]:
        stored = self.repo.get()
        if stored is not None:
            return stored.state, stored.revision
        champion = self.registry.alias(CHAMPION)
        if champion is None:
            raise ModelConflictError("the registry has no champion (bootstrap it first)")
        checked = self._checked(champion, require_gate=False)
        return {"champion": checked.model(), "previous": [], "canary": None, "route": 0}, None

    def _save(self, state: dict[str, Any], revision: int | None) -> int:
        try:
            return self.repo.put(state, revision)
        except StaleStateError as exc:
            raise ModelConflictError(f"{exc}; try again") from exc

    def champion(self) -> dict[str, Any]:
        """The model the champion's replicas must serve (``version``, ``path``, ``sha256``,
        ``labels``, ``input_size``)."""
        stored = self.repo.get()  # no lock: the replicas poll this during a long promotion
        if stored is not None:
            champion: dict[str, Any] = stored.state["champion"]
            return champion
        with self._lock:
            state, revision = self.state()
            if revision is None:
                self._save(state, None)
            first: dict[str, Any] = state["champion"]
            return first

    def route(self) -> dict[str, Any]:
        """The cameras' route document (what a starting camera reads)."""
        state, _ = self.state()
        return route_of(state)

    # -- checks -----------------------------------------------------------------------------

    def _get(self, version: int) -> ModelVersion:
        try:
            return self.registry.get(version)
        except RegistryError as exc:
            raise ModelNotFoundError(str(exc)) from exc

    def _checked(self, mv: ModelVersion, *, require_gate: bool = True) -> _Checked:
        if require_gate and not gate_passed(mv.tags):
            verdict = mv.tags.get("gate", mv.tags.get("gate.passed", "missing"))
            reason = mv.tags.get("gate.reason", "")
            raise ModelConflictError(
                f"version {mv.version} is not deployable: its gate is {verdict!r} (needs a "
                f"pass){': ' + reason[:300] if reason else ''}"
            )
        if mv.input_size != self.input_size:
            raise ModelConflictError(
                f"version {mv.version} takes {mv.input_size}px input, the cameras send "
                f"{self.input_size}px"
            )
        try:
            path = self.registry.fetch_onnx(mv.version, self.models_dir)
        except ModelFileError as exc:
            raise ModelConflictError(f"version {mv.version} fails its digest: {exc}") from exc
        return _Checked(mv, path)

    # -- steps ------------------------------------------------------------------------------

    def canary(
        self, version: int, *, cameras: Sequence[str], share: float, actor: str
    ) -> dict[str, Any]:
        """Serves ``version`` to ``cameras`` and ``share`` of the other cameras' frames.

        Raises:
            ModelNotFoundError: no such version.
            ModelConflictError: it failed its gate or digest, it is the champion, or it takes
                another input size.
        """
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be within [0, 1], but got {share}")
        with self._lock:
            mv = self._get(version)
            state, revision = self.state()
            if version == state["champion"]["version"]:
                raise ModelConflictError(f"version {version} is the champion already")
            checked = self._checked(mv)
            current = state.get("canary")
            if current is None or current["version"] != version:
                self.serving.deploy_canary(checked.model())
            state["canary"] = {
                **checked.model(),
                "cameras": sorted(set(cameras)),
                "share": float(share),
                "started_at": datetime.now(UTC).isoformat(),
            }
            state["route"] = int(state.get("route", 0)) + 1
            self._save(state, revision)
            self.registry.set_alias(CHALLENGER, version)
            reached = self.serving.push_route(route_of(state))
            detail = {"cameras": state["canary"]["cameras"], "share": share, "reached": reached}
            self.audit(actor, "models.canary", f"version {version}", "success", detail)
            return self.overview()

    def promote(self, version: int, *, actor: str) -> dict[str, Any]:
        """Makes ``version`` the champion without a frame waiting on a model load.

        Raises:
            ModelNotFoundError: no such version.
            ModelConflictError: as for :meth:`canary`, or the replicas did not take it in time.
        """
        with self._lock:
            state, _ = self.state()
            if version == state["champion"]["version"]:
                raise ModelConflictError(f"version {version} is the champion already")
            canary = state.get("canary")
            if canary is None or canary["version"] != version:
                self.canary(version, cameras=[], share=0.0, actor=actor)
            state, revision = self.state()
            old = state["champion"]
            # Every camera on the canary (it serves the new model already) while the champion's
            # replicas load it, so no frame waits for a model load.
            state["canary"] = {**state["canary"], "all": True}
            state["route"] = int(state["route"]) + 1
            revision = self._save(state, revision)
            self.serving.push_route(route_of(state))
            new = {k: v for k, v in state["canary"].items() if k in old}
            state["champion"] = new
            state["previous"] = [*state.get("previous", []), old][-10:]
            revision = self._save(state, revision)
            self.registry.set_alias(CHAMPION, version)
            self.registry.delete_alias(CHALLENGER)
            swapped = self.serving.wait_champion(version, self.swap_timeout_s)
            if not swapped:
                # The canary keeps serving every camera: still the new model, frames flow.
                self.audit(actor, "models.promote", f"version {version}", "error", {"swap": False})
                raise ModelConflictError(
                    f"the champion's replicas did not load version {version} within "
                    f"{self.swap_timeout_s:.0f}s; every camera stays on the canary"
                )
            state["canary"] = None
            state["route"] = int(state["route"]) + 1
            self._save(state, revision)
            reached = self.serving.push_route(route_of(state))
            self.serving.remove_canary()
            self.audit(
                actor,
                "models.promote",
                f"version {version}",
                "success",
                {"previous": old["version"], "reached": reached},
            )
            return self.overview()

    def rollback(self, version: int | None, *, actor: str, reason: str = "") -> dict[str, Any]:
        """Returns every camera to the last champion.

        With a canary: the cameras' route changes first (every camera on the champion when
        this returns), then the canary deployment goes. Without one: the champion before the
        current one is served again (``version`` must be the current champion).

        Raises:
            ModelConflictError: ``version`` is neither the canary nor the champion, or there is
                nothing to roll back to.
        """
        with self._lock:
            state, revision = self.state()
            canary = state.get("canary")
            if canary is not None and version in (None, canary["version"]):
                rolled = int(canary["version"])
                state["canary"] = None
                state["route"] = int(state["route"]) + 1
                self._save(state, revision)
                reached = self.serving.push_route(route_of(state))
                self.registry.delete_alias(CHALLENGER)
                self.registry.set_tags(rolled, {"canary": "rolled_back"})
                self.audit(
                    actor,
                    "models.rollback",
                    f"version {rolled}",
                    "success",
                    {"to": state["champion"]["version"], "reason": reason, "reached": reached},
                )
                self.serving.remove_canary()
                return self.overview()
            current = int(state["champion"]["version"])
            if version not in (None, current):
                raise ModelConflictError(
                    f"version {version} is neither the canary nor the champion"
                )
            previous = list(state.get("previous", []))
            if not previous:
                raise ModelConflictError("there is no earlier champion to roll back to")
            back = previous.pop()
            self._checked(self._get(int(back["version"])), require_gate=False)
            state["champion"], state["previous"] = back, previous
            self._save(state, revision)
            self.registry.set_alias(CHAMPION, int(back["version"]))
            swapped = self.serving.wait_champion(int(back["version"]), self.swap_timeout_s)
            self.audit(
                actor,
                "models.rollback",
                f"version {current}",
                "success" if swapped else "error",
                {"to": back["version"], "reason": reason, "swap": swapped},
            )
            if not swapped:
                raise ModelConflictError(
                    f"the champion's replicas did not load version {back['version']} within "
                    f"{self.swap_timeout_s:.0f}s"
                )
            return self.overview()

    # -- figures and guard ------------------------------------------------------------------

    def figures(self) -> dict[int, ModelFigures]:
        """Live figures per model since the canary started (else over the cameras' tallies)."""
        state, _ = self.state()
        canary = state.get("canary")
        since = (
            datetime.fromisoformat(canary["started_at"])
            if canary
            else datetime.fromtimestamp(0, UTC)
        )
        return collect_figures(self.serving.camera_tallies(), self.repo.verdicts_by_model(since))

    def check_guard(self) -> list[str]:
        """Rolls the canary back, audited, when the guard trips; returns the reasons."""
        with self._lock:
            state, _ = self.state()
            canary = state.get("canary")
            if canary is None or canary.get("all") or not self.guard.enabled:
                return []
            figures = self.figures()
            champion = figures.get(int(state["champion"]["version"]))
            challenger = figures.get(int(canary["version"]))
            reasons = guard_reasons(champion, challenger, self.guard)
            self.last_guard = {
                "checked_at": datetime.now(UTC).isoformat(),
                "version": canary["version"],
                "reasons": reasons,
            }
            if reasons:
                detail = {
                    "reasons": reasons,
                    "champion": champion.to_dict() if champion else None,
                    "challenger": challenger.to_dict() if challenger else None,
                }
                self.audit(
                    AUDIT_ACTOR_GUARD,
                    "models.guard_trip",
                    f"version {canary['version']}",
                    "tripped",
                    detail,
                )
                self.rollback(
                    int(canary["version"]), actor=AUDIT_ACTOR_GUARD, reason="; ".join(reasons)
                )
            return reasons

    def guard_forever(self, stopped: threading.Event) -> None:
        """Checks the guard every ``guard.interval_s`` until ``stopped`` is set (a thread's
        body). A check that fails (the database or a camera busy) is logged; the next one
        tries again."""
        while not stopped.wait(self.guard.interval_s):
            try:
                reasons = self.check_guard()
            except Exception as exc:
                logger.warning("canary guard check failed: %s", exc)
                continue
            if reasons:
                logger.warning("canary guard tripped: %s", "; ".join(reasons))

    def overview(self) -> dict[str, Any]:
        """Versions with aliases, metrics and gate tags; the serving state; live figures."""
        state, _ = self.state()
        figures = self.figures()
        return {
            "versions": [
                {
                    **v.to_dict(),
                    "figures": figures[v.version].to_dict() if v.version in figures else None,
                }
                for v in self.registry.versions()
            ],
            "champion": state["champion"]["version"],
            "previous": [p["version"] for p in state.get("previous", [])],
            "canary": _public_canary(state.get("canary")),
            "guard": {**self.guard.model_dump(), "last": self.last_guard or None},
        }


def gate_passed(tags: Mapping[str, str]) -> bool:
    """Whether a version's tags record a gate pass: ``gate`` = ``passed`` (``baseline``: the
    bundled model), or the training run's report ``gate.passed`` = ``true``; any failure
    recorded, or none at all, is no pass."""
    if tags.get("gate") == "failed" or tags.get("gate.passed") == "false":
        return False
    return tags.get("gate") in DEPLOYABLE_GATES or tags.get("gate.passed") == "true"


def route_of(state: Mapping[str, Any]) -> dict[str, Any]:
    """The cameras' route document of a serving state."""
    canary = state.get("canary")
    return {
        "revision": int(state.get("route", 0)),
        "champion": int(state["champion"]["version"]),
        "canary": None
        if canary is None
        else {
            "version": int(canary["version"]),
            "cameras": list(canary.get("cameras", [])),
            "share": float(canary.get("share", 0.0)),
            "all": bool(canary.get("all", False)),
        },
    }


def _public_canary(canary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if canary is None:
        return None
    return {
        "version": canary["version"],
        "cameras": list(canary.get("cameras", [])),
        "share": canary.get("share", 0.0),
        "started_at": canary.get("started_at"),
        "promoting": bool(canary.get("all", False)),
    }
