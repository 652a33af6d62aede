"""The supervisor's reconcile steps on a node loss and a full cluster, with a fake ``ray``.

The supervisor class runs here as a plain object: ``ray`` and ``CameraActor`` in its module
are replaced by fakes that answer as Ray 2.60 does (measured on a real two-node cluster in
tests/integration/test_failover.py): a camera whose node was killed first times out, then is
``ActorUnavailableError`` for ~10 s until Ray's health checks declare the node dead
(``ActorDiedError``), and its name stays taken until then.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError

from sentinel.actors import supervisor as sup
from sentinel.actors.camera import camera_actor_name
from sentinel.domain.stats import CameraState

SLOT = "sentinel_camera_slot"


@dataclass
class Ref:
    value: Any = None
    error: BaseException | None = None
    done: bool = True


@dataclass
class Method:
    answer: Any

    def remote(self, *_: Any) -> Ref:
        ref: Ref = self.answer() if callable(self.answer) else self.answer
        return ref


@dataclass
class Actor:
    name: str
    options: dict[str, Any]
    started: Ref = field(default_factory=lambda: Ref(done=False))
    health: Ref = field(default_factory=lambda: Ref({"state": "running", "node": {"ip": "a"}}))
    killed: bool = False

    def __post_init__(self) -> None:
        self.start = Method(lambda: self.started)
        self.status = Method(lambda: self.health)
        self.stop = Method(Ref({}))


class FakeRay:
    """What the supervisor calls of ``ray``: nodes, free resources, wait, get, kill."""

    def __init__(self) -> None:
        self.nodes_: list[dict[str, Any]] = []
        self.free: dict[str, float] = {}
        self.names: dict[str, Actor] = {}
        self.created: list[Actor] = []
        self.waits: list[tuple[int, float | None]] = []

    def node(self, node_id: str, resources: dict[str, float], *, alive: bool = True) -> None:
        self.nodes_ = [n for n in self.nodes_ if n["NodeID"] != node_id]
        self.nodes_.append(
            {"NodeID": node_id, "Alive": alive, "Resources": resources, "Labels": {}}
        )

    def nodes(self) -> list[dict[str, Any]]:
        return self.nodes_

    def available_resources(self) -> dict[str, float]:
        return self.free

    def wait(
        self, refs: list[Ref], num_returns: int = 1, timeout: float | None = None
    ) -> tuple[list[Ref], list[Ref]]:
        self.waits.append((len(refs), timeout))
        return [r for r in refs if r.done], [r for r in refs if not r.done]

    def get(self, ref: Ref, timeout: float) -> Any:
        if not ref.done:
            assert timeout == 0, "the supervisor must never block on a pending call"
            raise GetTimeoutError()
        if ref.error is not None:
            raise ref.error
        return ref.value

    def get_actor(self, name: str, namespace: str) -> Actor:
        raise ValueError(f"no actor {name}")  # nothing left by a previous supervisor

    def kill(self, actor: Actor, no_restart: bool = True) -> None:
        actor.killed = True
        if self.names.get(actor.name) is actor:
            del self.names[actor.name]

    def camera_actor(self) -> Any:
        fake = self

        class CameraActor:
            @staticmethod
            def options(**options: Any) -> Any:
                class Creator:
                    @staticmethod
                    def remote(*_: Any) -> Actor:
                        name = options["name"]
                        if name in fake.names:
                            raise ValueError(f"The name {name} is already taken.")
                        actor = Actor(name, options)
                        fake.names[name] = actor
                        fake.created.append(actor)
                        return actor

                return Creator()

        return CameraActor


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRay:
    fake = FakeRay()
    monkeypatch.setattr(sup, "ray", fake)
    monkeypatch.setattr(sup, "CameraActor", fake.camera_actor())
    return fake


def supervisor() -> sup.CameraSupervisor:
    s = object.__new__(sup.CameraSupervisor)
    s.runtime = {"namespace": "t", "cluster": {"camera_slot_resource": SLOT}}
    s.namespace = "t"
    s.interval_s = 0.5
    s.running = {}
    s.lock = threading.RLock()
    s.stopped = threading.Event()
    return s


CAM = {"id": "cam", "source": "/videos/a.mp4"}


def test_a_start_waiting_for_a_slot_does_not_block_and_says_why(fake: FakeRay) -> None:
    fake.node("a", {SLOT: 1.0})
    fake.free = {SLOT: 0.0}  # the only slot is taken
    s = supervisor()
    s._reconcile_one("cam", CAM)
    actor = fake.created[-1]
    assert actor.options["resources"] == {SLOT: 1.0}
    s._reconcile_one("cam", CAM)  # returns at once (the fake's wait asserts timeout=0)
    status = s.status("cam")
    assert status is not None and status["state"] == CameraState.STARTING.value
    assert f"free {SLOT}>=1 (0 free)" in status["last_error"]
    # Waiting does not count as a slow start, however long it lasts.
    s.running["cam"].start_clock -= 10 * sup.START_TIMEOUT_S
    s._reconcile_one("cam", CAM)
    assert not actor.killed and s.running["cam"].restarts == 0
    # A slot frees up: the actor is placed, its start answers, it runs.
    fake.free = {SLOT: 1.0}
    actor.started.done = True
    s._reconcile_one("cam", CAM)
    s._reconcile_one("cam", CAM)
    status = s.status("cam")
    assert status is not None and status["state"] == "running" and not status.get("last_error")


def test_a_placed_actor_that_never_starts_is_restarted(fake: FakeRay) -> None:
    fake.node("a", {SLOT: 1.0})
    fake.free = {SLOT: 1.0}
    s = supervisor()
    s._reconcile_one("cam", CAM)
    first = fake.created[-1]
    s.running["cam"].start_clock -= sup.START_TIMEOUT_S + 1
    s._reconcile_one("cam", CAM)
    assert first.killed and s.running["cam"].restarts == 1
    assert "did not start within" in s.status("cam")["last_error"]  # type: ignore[index]


def test_a_lost_node_is_waited_out_then_the_camera_moves(fake: FakeRay) -> None:
    fake.node("a", {SLOT: 1.0})
    fake.node("b", {SLOT: 1.0})
    fake.free = {SLOT: 2.0}
    s = supervisor()
    s._reconcile_one("cam", CAM)
    first = fake.created[-1]
    first.started.done = True
    s._reconcile_one("cam", CAM)
    assert s.status("cam")["state"] == "running"  # type: ignore[index]

    # Node a is killed: its actor is unreachable before Ray declares it dead. No second
    # incarnation meanwhile (the first might still run), and the restart budget is untouched.
    first.health = Ref(error=ActorUnavailableError("connection refused", None))
    for _ in range(3):
        s._reconcile_one("cam", CAM)
    assert len(fake.created) == 1 and s.running["cam"].restarts == 0
    assert "unreachable" in s.status("cam")["last_error"]  # type: ignore[index]

    # Declared dead: restarted, on whatever node has a slot (b).
    fake.node("a", {SLOT: 1.0}, alive=False)
    first.health = Ref(error=ActorDiedError())
    del fake.names[first.name]  # Ray releases a dead actor's name
    s._reconcile_one("cam", CAM)
    assert s.running["cam"].restarts == 1
    s.running["cam"].restart_at = 0.0  # the backoff is over
    s._reconcile_one("cam", CAM)
    assert len(fake.created) == 2 and fake.created[-1].options["resources"] == {SLOT: 1.0}


def test_a_name_still_held_by_the_dead_incarnation_is_retried(fake: FakeRay) -> None:
    fake.node("b", {SLOT: 1.0})
    fake.free = {SLOT: 1.0}
    s = supervisor()
    ghost = Actor(camera_actor_name("cam"), {})
    fake.names[ghost.name] = ghost  # e.g. a crash seen before Ray released the name
    s.running["cam"] = sup._Camera(config=CAM, restart_at=0.0)
    s._reconcile_one("cam", CAM)  # must not raise out of reconcile
    cam = s.running["cam"]
    assert cam.actor is None and cam.restart_at is not None
    assert "previous camera actor" in s.status("cam")["last_error"]  # type: ignore[index]
    del fake.names[ghost.name]
    cam.restart_at = 0.0
    s._reconcile_one("cam", CAM)
    assert fake.created and cam.starting is not None


def test_a_pinned_camera_whose_node_goes_while_it_waits_is_unschedulable(fake: FakeRay) -> None:
    fake.node("gate", {"site_gate": 1.0})
    fake.free = {"site_gate": 0.0}
    pinned = {**CAM, "placement": {"resources": {"site_gate": 1.0}}}
    s = supervisor()
    s._reconcile_one("cam", pinned)
    actor = fake.created[-1]
    fake.node("gate", {"site_gate": 1.0}, alive=False)
    s._reconcile_one("cam", pinned)
    assert actor.killed
    status = s.status("cam")
    assert status is not None and status["state"] == "unschedulable"
    assert "site_gate>=1" in status["last_error"]


def test_one_round_waits_once_for_all_cameras_on_a_lost_node(fake: FakeRay) -> None:
    """Cameras on a node that stopped answering cost a round one timeout, not one each."""
    fake.node("a", {SLOT: 3.0})
    fake.free = {SLOT: 3.0}
    s = supervisor()
    s.cameras = type("Rows", (), {"list": lambda self: [(c, {**CAM, "id": c}) for c in "xyz"]})()
    s._unseal = lambda cid, cfg: cfg  # type: ignore[method-assign]
    s.reconcile()
    for actor in fake.created:
        actor.started.done = True
    s.reconcile()  # the starts are seen; each camera's status is asked at once
    for actor in fake.created:
        actor.health = Ref(done=False)  # the node went silent: no answer within the wait
    fake.waits.clear()
    s.reconcile()
    assert fake.waits == [(3, sup._CALL_TIMEOUT_S)]
    assert all(s.status(c)["state"] == "running" for c in "xyz")  # type: ignore[index]
