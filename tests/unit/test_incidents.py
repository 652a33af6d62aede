"""Incident grouping, pure: table-driven scenarios, ids, replays, adoption, agent context."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sentinel.domain.alerts import Severity
from sentinel.domain.incident_context import (
    MAX_MEMBER_LINES,
    incident_context,
    incident_rule_decision,
)
from sentinel.domain.incidents import (
    Incident,
    IncidentChange,
    IncidentChangeKind,
    IncidentConfig,
    IncidentStatus,
    IncidentTracker,
    MaterialKind,
    incident_id,
)
from sentinel.domain.policy import AlertPolicy
from sentinel.domain.prompts import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE, render
from sentinel.domain.types import Box, EventChange, EventChangeKind, EventState

T0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
CFG = IncidentConfig(quiet_gap_s=30.0, max_length_s=600.0, dwell_thresholds_s=(30.0, 120.0))


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def ev(
    key: str,
    start: float,
    last: float,
    end: float | None = None,
    *,
    label: str = "person",
    camera: str = "cam",
    score: float = 0.8,
) -> EventState:
    return EventState(
        id=f"ev-{key}",
        camera_id=camera,
        label=label,
        track_id=1,
        started_at=at(start),
        last_seen_at=at(last),
        score=score,
        box=Box(10, 20, 40, 120),
        best_at=at(start),
        ended_at=None if end is None else at(end),
        path=[(25.0, 70.0), (125.0, 70.0)],
    )


def opened(e: EventState) -> EventChange:
    return EventChange(EventChangeKind.OPENED, e, new_best=True)


def updated(e: EventState) -> EventChange:
    return EventChange(EventChangeKind.UPDATED, e)


def closed(e: EventState) -> EventChange:
    return EventChange(EventChangeKind.CLOSED, e)


# A step is (wall second, event changes); an empty list is a tick with no changes.
Step = tuple[float, list[EventChange]]


@dataclass(frozen=True)
class Expected:
    members: tuple[str, ...]
    start: float
    end: float | None
    continues: int | None = None  # index (in this list) of the incident it continues


def run(steps: list[Step], config: IncidentConfig = CFG) -> list[IncidentChange]:
    tracker = IncidentTracker("cam", "epoch-1", config)
    out: list[IncidentChange] = []
    for wall, changes in steps:
        if changes:
            out += tracker.on_changes(changes, at(wall))
        else:
            out += tracker.tick(at(wall))
    return out


def final_states(changes: list[IncidentChange]) -> list[Incident]:
    latest: dict[str, Incident] = {}
    for change in changes:
        latest[change.incident.id] = change.incident
    return list(latest.values())


a0 = ev("a", 0, 0)
b5 = ev("b", 5, 5)
CASES: dict[str, tuple[list[Step], list[Expected]]] = {
    "one event: opens, closes a quiet gap after it ended": (
        [(0, [opened(a0)]), (10, [closed(ev("a", 0, 10, 10))]), (39, []), (40, [])],
        [Expected(("a",), 0, 10)],
    ),
    "overlapping events form one incident": (
        [
            (0, [opened(a0)]),
            (5, [opened(b5)]),
            (10, [closed(ev("a", 0, 10, 10))]),
            (20, [closed(ev("b", 5, 20, 20))]),
            (50, []),
        ],
        [Expected(("a", "b"), 0, 20)],
    ),
    "an event within the quiet gap joins": (
        [
            (0, [opened(a0)]),
            (10, [closed(ev("a", 0, 10, 10))]),
            (35, [opened(ev("b", 35, 35))]),
            (40, [closed(ev("b", 35, 40, 40))]),
            (70, []),
        ],
        [Expected(("a", "b"), 0, 40)],
    ),
    "an event after the quiet gap opens a new incident": (
        [
            (0, [opened(a0)]),
            (10, [closed(ev("a", 0, 10, 10))]),
            (45, [opened(ev("b", 45, 45))]),
            (50, [closed(ev("b", 45, 50, 50))]),
            (80, []),
        ],
        [Expected(("a",), 0, 10), Expected(("b",), 45, 50)],
    ),
    "the gap is closed on the event's own time, without a tick": (
        [(0, [opened(a0)]), (10, [closed(ev("a", 0, 10, 10))]), (41, [opened(ev("b", 41, 41))])],
        [Expected(("a",), 0, 10), Expected(("b",), 41, None)],
    ),
    "overlong incident splits into a linked continuation": (
        [
            (0, [opened(a0)]),
            (300, [updated(ev("a", 0, 300))]),
            (601, [updated(ev("a", 0, 601))]),
            (700, [closed(ev("a", 0, 700, 700))]),
            (731, []),
        ],
        [Expected(("a",), 0, 601), Expected(("a",), 601, 700, continues=0)],
    ),
    "a replayed batch changes nothing": (
        [(0, [opened(a0)]), (0, [opened(a0)]), (9, [closed(ev("a", 0, 9, 9))]), (40, [])],
        [Expected(("a",), 0, 9)],
    ),
}


@pytest.mark.parametrize("steps, expected", list(CASES.values()), ids=list(CASES))
def test_grouping(steps: list[Step], expected: list[Expected]) -> None:
    states = final_states(run(steps))
    assert len(states) == len(expected)
    for got, want in zip(states, expected, strict=True):
        assert got.members == tuple(f"ev-{k}" for k in want.members)
        assert got.started_at == at(want.start)
        assert got.ended_at == (None if want.end is None else at(want.end))
        assert got.status is (IncidentStatus.OPEN if want.end is None else IncidentStatus.CLOSED)
        prev = None if want.continues is None else states[want.continues].id
        assert got.previous_id == prev


@pytest.mark.parametrize(
    "labels, events, members",
    [
        ({"person"}, [ev("c", 0, 0, label="car")], None),  # a car alone opens nothing
        (
            {"person"},
            [ev("c", 0, 0, label="car"), ev("p", 3, 3)],
            ("ev-p", "ev-c"),  # the active car joins the person's incident
        ),
        (None, [ev("c", 0, 0, label="car")], ("ev-c",)),  # every label may open one
    ],
)
def test_qualifying_labels(
    labels: set[str] | None, events: list[EventState], members: tuple[str, ...] | None
) -> None:
    config = replace(CFG, labels=None if labels is None else frozenset(labels))
    tracker = IncidentTracker("cam", "e", config)
    for e in events:
        tracker.on_changes([opened(e)], e.last_seen_at)
    current = tracker.current
    assert (current.members if current else None) == members


def test_other_cameras_events_never_join() -> None:
    tracker = IncidentTracker("cam", "e", CFG)
    tracker.on_changes([opened(a0)], at(0))
    out = tracker.on_changes([opened(ev("x", 2, 2, camera="other"))], at(2))
    assert out == []
    assert tracker.current is not None and tracker.current.members == ("ev-a",)


def test_ids_are_deterministic_and_continuations_linked() -> None:
    steps: list[Step] = [(0, [opened(a0)]), (601, [updated(ev("a", 0, 601))])]
    first, second = final_states(run(steps)), final_states(run(steps))
    assert [i.id for i in first] == [i.id for i in second]
    assert first[0].id == incident_id("cam", "epoch-1", "ev-a")
    assert first[1].id == incident_id("cam", "epoch-1", "ev-a", previous_id=first[0].id)
    assert first[0].id != first[1].id


def test_revisions_grow_with_every_emitted_state() -> None:
    changes = run([(0, [opened(a0)]), (5, [opened(b5)]), (6, [updated(ev("a", 0, 6))])])
    assert [c.kind for c in changes] == [IncidentChangeKind.OPENED] + [
        IncidentChangeKind.UPDATED
    ] * 2
    assert [c.incident.revision for c in changes] == [1, 2, 3]


def test_material_changes_new_label_and_dwell_once() -> None:
    tracker = IncidentTracker("cam", "e", CFG)
    assert tracker.on_changes([opened(a0)], at(0))[0].material == ()
    car = tracker.on_changes([opened(ev("c", 4, 4, label="car"))], at(4))
    assert [(m.kind, m.label) for m in car[0].material] == [(MaterialKind.NEW_LABEL, "car")]
    assert tracker.on_changes([opened(ev("d", 5, 5))], at(5))[0].material == ()  # same label
    dwell = tracker.on_changes([updated(ev("a", 0, 31))], at(31))
    assert [(m.kind, m.event_id) for m in dwell[0].material] == [(MaterialKind.DWELL, "ev-a")]
    again = tracker.on_changes([updated(ev("a", 0, 40))], at(40))
    assert again[0].material == ()
    longer = tracker.on_changes([updated(ev("a", 0, 121))], at(121))
    assert "120 s" in longer[0].material[0].detail


def zoned(key: str, last: float, zones: list[str], **kw: Any) -> EventState:
    return replace(ev(key, 0, last, **kw), zones=list(zones))


@pytest.mark.parametrize(
    ("updates", "zones", "material"),
    [
        ([], (), []),
        ([["gate"]], ("gate",), ["gate"]),
        (  # each zone once, in the order first entered
            [["gate"], ["gate", "path"], ["gate", "path"]],
            ("gate", "path"),
            ["gate", "path"],
        ),
    ],
)
def test_zones_entered_by_members(
    updates: list[list[str]], zones: tuple[str, ...], material: list[str]
) -> None:
    tracker = IncidentTracker("cam", "e", CFG)
    tracker.on_changes([opened(a0)], at(0))
    changes = [
        c
        for i, member_zones in enumerate(updates, start=1)
        for c in tracker.on_changes([updated(zoned("a", i, member_zones))], at(i))
    ]
    assert all(c.kind is IncidentChangeKind.UPDATED for c in changes)
    assert [m.detail.rsplit(" ", 1)[-1].strip("'") for c in changes for m in c.material] == material
    assert all(m.kind is MaterialKind.ZONE for c in changes for m in c.material)
    assert tracker.current is not None and tracker.current.zones == zones


def test_zones_of_an_opening_member_other_cameras_and_adoption() -> None:
    tracker = IncidentTracker("cam", "e", CFG)
    (first,) = tracker.on_changes([opened(zoned("a", 0, ["gate"]))], at(0))
    assert first.incident.zones == ("gate",) and first.material == ()  # it opens: judged anyway
    assert tracker.on_changes([updated(zoned("x", 1, ["pool"], camera="other"))], at(1)) == []
    after = IncidentTracker("cam", "run-2", CFG)
    after.adopt([(first.incident, [zoned("a", 8, ["gate", "path"])])], at(10))
    assert after.current is not None and after.current.zones == ("gate", "path")


def test_key_frames_are_the_best_members() -> None:
    tracker = IncidentTracker("cam", "e", replace(CFG, key_frames=2))
    batch = [opened(ev(k, 0, 0, score=s)) for k, s in (("a", 0.5), ("b", 0.9), ("c", 0.7))]
    out = tracker.on_changes(batch, at(0))
    assert [(k.event_id, k.score) for k in out[-1].incident.key_frames] == [
        ("ev-b", 0.9),
        ("ev-c", 0.7),
    ]


def test_adoption_continues_the_stored_incident() -> None:
    before = IncidentTracker("cam", "run-1", CFG)
    stored = before.on_changes([opened(a0)], at(0))[-1].incident
    after = IncidentTracker("cam", "run-2", CFG)
    leftover = replace(stored, id="older", started_at=at(-100), last_seen_at=at(-90))
    out = after.adopt([(stored, [ev("a", 0, 8)]), (leftover, [ev("z", -100, -90)])], at(10))
    assert [(c.kind, c.incident.id, c.incident.ended_at) for c in out] == [
        (IncidentChangeKind.CLOSED, "older", at(-90))
    ]
    assert after.current is not None and after.current.id == stored.id
    # A new event of the new run joins the adopted incident; ids do not change with the epoch.
    joined = after.on_changes([opened(ev("b", 12, 12))], at(12))
    assert joined[-1].incident.id == stored.id
    assert joined[-1].incident.members == ("ev-a", "ev-b")
    assert joined[-1].incident.revision > stored.revision
    after.on_changes([closed(ev("a", 0, 8, 8)), closed(ev("b", 12, 14, 14))], at(15))
    end = after.tick(at(44))
    assert [(c.kind, c.incident.id, c.incident.ended_at) for c in end] == [
        (IncidentChangeKind.CLOSED, stored.id, at(14))
    ]


def test_adoption_ignores_other_cameras_and_closed_incidents() -> None:
    tracker = IncidentTracker("cam", "e", CFG)
    inc = Incident("i", "other", at(0), at(1), None, ("ev-a",), ("person",))
    done = Incident("j", "cam", at(0), at(1), at(1), ("ev-a",), ("person",))
    assert tracker.adopt([(inc, [a0]), (done, [a0])], at(5)) == []
    assert tracker.current is None


def test_close_all_ends_an_active_incident_now() -> None:
    tracker = IncidentTracker("cam", "e", CFG)
    tracker.on_changes([opened(a0)], at(0))
    out = tracker.close_all(at(7))
    assert [(c.kind, c.incident.ended_at) for c in out] == [(IncidentChangeKind.CLOSED, at(7))]
    assert tracker.current is None and tracker.close_all(at(8)) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quiet_gap_s": -1.0},
        {"max_length_s": 0.0},
        {"key_frames": 0},
        {"dwell_thresholds_s": (60.0, 30.0)},
        {"dwell_thresholds_s": (0.0,)},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        IncidentConfig(**kwargs)  # type: ignore[arg-type]


# --- what the rules and the agent judge ----------------------------------------------------


def _incident() -> tuple[Incident, list[EventState]]:
    tracker = IncidentTracker("cam", "e", CFG)
    car = ev("c", 0, 0, label="car", score=0.6)
    person = ev("p", 2, 50, score=0.91)
    tracker.on_changes([opened(car), opened(person)], at(2))
    out = tracker.on_changes([closed(ev("c", 0, 20, 20, label="car", score=0.6))], at(20))
    return out[-1].incident, [ev("c", 0, 20, 20, label="car", score=0.6), person]


def test_incident_context_holds_members_labels_time_and_history() -> None:
    incident, members = _incident()
    tz = ZoneInfo("Europe/Paris")
    recent = Incident("old", "cam", at(-600), at(-590), at(-590), ("ev-x",), ("dog",))
    ctx = incident_context(
        incident,
        members,
        event_id="ev-p",
        camera_name="Yard",
        camera_description="the back yard",
        tz=tz,
        site_notes="nobody works at night",
        recent=[recent, incident],
    )
    assert ctx.incident_id == incident.id and ctx.event_id == "ev-p"
    assert ctx.label == "car, person"
    assert ctx.score == pytest.approx(0.91)
    lines = ctx.path_summary.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("- car from 23:00:00 until 23:00:20, in view 20 s")
    assert "person from 23:00:02 still in view, in view 48 s, confidence 0.91" in lines[1]
    assert "moved 100 px" in lines[1]
    assert ctx.recent_events == ("22:50:00 dog (1 object(s), 10 s)",)
    assert ctx.local_time == "Sunday 23:00 CET"
    variables = ctx.variables()
    assert variables["site_notes"] == "nobody works at night"
    assert variables["camera_description"] == "the back yard"
    zoned = incident_context(
        replace(incident, zones=("gate", "shed")),
        members,
        event_id="ev-p",
        camera_name="Yard",
        camera_description="the back yard",
        tz=tz,
    )
    assert zoned.path_summary.splitlines()[2] == "- zones entered: gate, shed"


def test_incident_context_needs_a_member() -> None:
    incident, _ = _incident()
    with pytest.raises(ValueError):
        incident_context(incident, [], event_id="x", camera_name="c", camera_description="", tz=UTC)


@pytest.mark.parametrize(
    "policy, expected",
    [
        (AlertPolicy(labels=frozenset({"person"})), "ev-p"),
        (AlertPolicy(labels=frozenset({"car", "person"})), "ev-c"),  # the first member decides
        (AlertPolicy(labels=frozenset({"person"}), min_dwell_s=60.0), None),  # dwell 48 s
        (AlertPolicy(labels=frozenset({"person"}), armed_hours=((8, 18),)), None),
        (AlertPolicy(labels=frozenset({"dog"})), None),
    ],
)
def test_incident_rule_decision(policy: AlertPolicy, expected: str | None) -> None:
    incident, members = _incident()
    got = incident_rule_decision(policy, incident, members, camera_name="Yard", tz=UTC)
    if expected is None:
        assert got is None
        return
    assert got is not None
    member, decision = got
    assert member == expected
    assert decision.alert and decision.severity is Severity.MEDIUM
    assert "The incident has 2 objects (car, person)." in decision.summary


def test_a_busy_incident_fits_a_small_context_window() -> None:
    """A whole video of passers-by is one incident: its context must stay bounded."""
    members = [ev(f"p{i}", i, i + 5 + i % 7, i + 5 + i % 7, score=0.5 + i / 100) for i in range(30)]
    members.append(ev("car", 0, 200, 200, label="car", score=0.8))
    incident = Incident(
        "big", "cam", at(0), at(200), at(200), tuple(m.id for m in members), ("car", "person")
    )
    ctx = incident_context(
        incident, members, event_id="p0", camera_name="Yard", camera_description="", tz=UTC
    )
    lines = ctx.path_summary.splitlines()
    assert len(lines) == MAX_MEMBER_LINES + 1
    assert lines[-1] == "- and 23 more, each in view for less time: 23 person"
    assert any(line.startswith("- car from") for line in lines)  # the longest-seen is kept
    rendered = render(DEFAULT_USER_TEMPLATE, ctx.variables()) + DEFAULT_SYSTEM_PROMPT
    assert len(rendered) < 4000  # ≈ 1000 tokens: room for the answer in 2048
