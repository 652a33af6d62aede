"""Data-subject requests decided without I/O: resolution helpers, the erasure plan under
legal holds, and steps/report honesty (``sentinel.retention.subjects``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sentinel.domain.holds import HeldRange, HoldView
from sentinel.retention.subjects import (
    ACCESS_STORES,
    ERASURE_STORES,
    AlertRef,
    DatasetRef,
    EventRef,
    ExportRef,
    Held,
    IncidentRef,
    ItemRef,
    Resolved,
    RunRef,
    SegmentRef,
    Step,
    Subject,
    event_spans,
    items_in_spans,
    new_steps,
    overall_status,
    overlaps_any,
    plan_erasure,
    query_windows,
    report_of,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ev(event_id: str, camera: str, start: float, end: float, snap: bool = True) -> EventRef:
    return EventRef(event_id, camera, at(start), at(end), f"snap/{event_id}.jpg" if snap else None)


def resolved() -> Resolved:
    """Subject: e1, e2 on gate (minutes 0-2, 10-12), e3 on dock (5-6).
    inc-a has e1 and a bystander's e9 (kept, e1 detached); inc-b only e2 (deleted)."""
    return Resolved(
        events=[ev("e1", "gate", 0, 2), ev("e2", "gate", 10, 12), ev("e3", "dock", 5, 6)],
        incidents=[
            IncidentRef("inc-a", "gate", at(0), at(3), ("e1", "e9")),
            IncidentRef("inc-b", "gate", at(10), at(12), ("e2",)),
        ],
        alerts=[
            AlertRef("al-1", "gate", "e1", None),
            AlertRef("al-b", "gate", "e2", "inc-b"),
            AlertRef("al-3", "dock", "e3", None),
        ],
        segments=[
            SegmentRef("s1", "gate", at(0), at(5), "rec/gate/s1.mp4", None),
            SegmentRef("s2", "gate", at(10), at(15), "rec/gate/s2.mp4", "arch/gate/s2.mp4"),
            SegmentRef("s3", "dock", at(5), at(10), "rec/dock/s3.mp4", None),
        ],
        items=[
            ItemRef("it-1", "gate", at(1), "frames/it-1.jpg"),
            ItemRef("it-3", "dock", at(5.5), "frames/it-3.jpg"),
        ],
        datasets=[DatasetRef("people", 1, ("it-1", "it-3"), ("run-1",))],
        runs=[RunRef("run-1", "mlf-1", "people", 1)],
        face_prints=3,
        exports=[
            ExportRef("x-gate", "gate", at(0), at(3), "exports/gate/x-gate.mp4"),
            ExportRef("x-dock", "dock", at(5), at(6), "exports/dock/x-dock.mp4"),
        ],
    )


def test_event_spans_merge_per_camera_and_items_fall_in_them() -> None:
    spans = event_spans(
        [ev("a", "gate", 0, 2), ev("b", "gate", 1, 4), ev("c", "gate", 6, 7), ev("d", "dock", 0, 1)]
    )
    assert spans == {"gate": [(at(0), at(4)), (at(6), at(7))], "dock": [(at(0), at(1))]}
    items = [
        ItemRef("in", "gate", at(3), "k"),
        ItemRef("gap", "gate", at(5), "k"),
        ItemRef("edge", "gate", at(7), "k"),
        ItemRef("other-camera", "yard", at(3), "k"),
    ]
    assert [i.id for i in items_in_spans(items, spans)] == ["in", "edge"]


def test_query_windows_group_nearby_spans_and_overlaps_any() -> None:
    spans = [(at(0), at(2)), (at(30), at(31)), (at(200), at(201)), (at(1), at(5))]
    assert query_windows(spans) == [(at(0), at(31)), (at(200), at(201))]
    assert query_windows(spans, gap=timedelta(minutes=10)) == [
        (at(0), at(5)), (at(30), at(31)), (at(200), at(201))
    ]  # fmt: skip
    assert overlaps_any(at(3), at(4), spans) and overlaps_any(at(31), at(40), spans)
    assert not overlaps_any(at(10), at(20), spans)


def test_plan_without_holds_erases_everything_and_detaches_shared_incidents() -> None:
    plan = plan_erasure(resolved(), {})
    assert [e.id for e in plan.events] == ["e1", "e2", "e3"]
    assert plan.incidents_deleted == ["inc-b"]
    assert plan.incidents_detached == {"inc-a": ["e1"]}
    assert plan.search_reindex == ["inc-a"]
    assert sorted(plan.alerts) == ["al-1", "al-3", "al-b"]
    assert [s.id for s in plan.segments] == ["s1", "s2", "s3"]
    assert [x.id for x in plan.exports] == ["x-gate", "x-dock"]
    assert [i.id for i in plan.items] == ["it-1", "it-3"]
    assert plan.datasets == {("people", 1): ["it-1", "it-3"]}
    assert [r.id for r in plan.runs] == ["run-1"]
    assert plan.search_ids == ["e1", "e2", "e3", "inc-b"]
    assert plan.held == {}


def test_a_hold_on_the_dock_keeps_its_items_and_reports_them_in_every_store() -> None:
    ranges = {"dock": [HeldRange("hold-1", "dock", at(4), at(20))]}
    plan = plan_erasure(resolved(), ranges)
    assert [e.id for e in plan.events] == ["e1", "e2"]
    assert "al-3" not in plan.alerts
    assert [s.id for s in plan.segments] == ["s1", "s2"]
    assert [i.id for i in plan.items] == ["it-1"]
    assert plan.datasets == {("people", 1): ["it-1"]}  # the held frame stays in the dataset
    held = {store: [(h.id, h.hold_id) for h in items] for store, items in plan.held.items()}
    assert held == {
        "database": [("e3", "hold-1"), ("al-3", "hold-1")],
        "snapshots": [("e3", "hold-1")],
        "face_prints": [("e3", "hold-1")],
        "search_index": [("e3", "hold-1")],
        "clips": [("s3", "hold-1")],
        "exports": [("x-dock", "hold-1")],
        "annotations": [("it-3", "hold-1")],
        "datasets": [("people/v1/it-3", "hold-1")],
    }
    assert "e3" not in plan.search_ids


def test_an_export_held_by_name_stays() -> None:
    holds = [HoldView("h-x", "export", "gate", target_id="x-gate")]
    plan = plan_erasure(resolved(), {}, holds)
    assert [x.id for x in plan.exports] == ["x-dock"]
    assert [(h.id, h.hold_id) for h in plan.held["exports"]] == [("x-gate", "h-x")]
    assert [e.id for e in plan.events] == ["e1", "e2", "e3"]  # the footage itself is not held


def test_a_held_incident_keeps_itself_and_its_held_events() -> None:
    ranges = {"gate": [HeldRange("hold-inc", "gate", at(10), at(12))]}
    plan = plan_erasure(resolved(), ranges)
    assert [e.id for e in plan.events] == ["e1", "e3"]
    assert plan.incidents_deleted == []  # inc-b is held with its event
    assert ("inc-b", "hold-inc") in [(h.id, h.hold_id) for h in plan.held["database"]]
    assert [s.id for s in plan.segments] == ["s1", "s3"]


def test_a_dataset_with_only_held_items_is_left_and_its_runs_keep_their_artifacts() -> None:
    ranges = {
        "gate": [HeldRange("h1", "gate", at(0), None)],
        "dock": [HeldRange("h2", "dock", at(0), None)],
    }
    plan = plan_erasure(resolved(), ranges)
    assert plan.events == [] and plan.datasets == {} and plan.runs == []


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["done", "done"], "done"),
        (["done", "held"], "partial"),
        (["done", "pending"], "pending"),
        (["done", "failed", "pending"], "failed"),
        (["held", "failed"], "failed"),
    ],
)
def test_overall_status_never_says_done_for_an_unfinished_store(
    statuses: list[str], expected: str
) -> None:
    steps = [Step(f"s{i}", status=s) for i, s in enumerate(statuses)]
    assert overall_status(steps) == expected


def test_steps_report_and_json_round_trip() -> None:
    steps = new_steps("erasure")
    assert [s.store for s in steps] == list(ERASURE_STORES)
    assert [s.store for s in new_steps("access")] == list(ACCESS_STORES)
    steps[0].finish({"deleted": 3}, ["e1", "e2", "e3"])
    steps[1].finish({"deleted": 1}, ["e1"], [Held("e3", "hold-1")])
    steps[2].fail("OSError: disk gone")
    assert [s.status for s in steps[:4]] == ["done", "held", "failed", "pending"]
    assert steps[1].held == [{"id": "e3", "hold_id": "hold-1"}] and steps[1].counts["held"] == 1
    report = report_of("erasure", steps)
    assert report.startswith("erasure failed.")
    assert "search_index: done (deleted 3)" in report
    assert "face_prints: done except held items" in report
    assert "snapshots: FAILED: OSError: disk gone" in report
    assert "database: NOT DONE" in report
    assert [Step.from_json(s.to_json()) for s in steps] == steps
    with pytest.raises(ValueError, match="step status"):
        Step("x", status="finished")


def test_subject_and_resolved_json_round_trip_and_validation() -> None:
    subject = Subject("range", "gate", at(0), at(5))
    assert Subject.from_json(subject.to_json()) == subject
    face = Subject("face", event_ids=("e1",), distances=(0.41,))
    assert Subject.from_json(face.to_json()) == face
    with pytest.raises(ValueError, match="needs camera_id"):
        Subject("range", "gate", at(0))
    with pytest.raises(ValueError, match="after start_at"):
        Subject("range", "gate", at(5), at(5))
    with pytest.raises(ValueError, match="event_ids or incident_ids"):
        Subject("ids")
    data = resolved()
    assert Resolved.from_json(data.to_json()) == data
