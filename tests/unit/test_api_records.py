"""Response models built from their records: a field added or renamed on one side is refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from sentinel.api.alerts import AlertPublic
from sentinel.api.exports import ExportPublic
from sentinel.api.prompts import ExperimentPublic, PromptPublic, VariantReportPublic
from sentinel.api.records import RecordView, ViewMismatch
from sentinel.api.schemas import EventPublic
from sentinel.domain.experiments import VariantOutcome, report
from sentinel.domain.types import Box
from sentinel.store.repo import StoredEvent

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Thing:
    id: str
    secret: str
    size: int


@pytest.mark.parametrize(
    ("fields", "hidden", "derived", "problem"),
    [
        ({"id": str}, {"secret"}, set(), r"record fields neither shown nor hidden: \['size'\]"),
        (
            {"id": str, "size": int, "sise": int},
            {"secret"},
            set(),
            r"response fields neither on the record nor derived: \['sise'\]",
        ),
        ({"id": str, "size": int}, {"secret", "gone"}, set(), r"not record fields: \['gone'\]"),
        (
            {"id": str, "size": int, "secret": str},
            {"secret"},
            set(),
            "hidden fields that are shown",
        ),
        ({"id": str, "size": int}, {"secret"}, {"url"}, r"not response fields: \['url'\]"),
        ({"id": str, "size": int}, {"secret"}, {"size"}, r"that are record fields: \['size'\]"),
    ],
)
def test_a_view_that_disagrees_with_its_record_is_refused(
    fields: dict[str, type], hidden: set[str], derived: set[str], problem: str
) -> None:
    namespace = {
        "__annotations__": dict(fields),
        "record": Thing,
        "hidden": frozenset(hidden),
        "derived": frozenset(derived),
        "__module__": __name__,
    }
    with pytest.raises(ViewMismatch, match=problem):
        type("ThingPublic", (RecordView,), namespace)


class ThingPublic(RecordView):
    record = Thing
    hidden = frozenset({"secret"})
    derived = frozenset({"url"})

    id: str
    size: int
    url: str


def test_of_record_copies_shown_fields_and_needs_the_derived_ones() -> None:
    thing = Thing("t1", "hunter2", 3)
    assert ThingPublic.of_record(thing, url="/t1").model_dump() == {
        "id": "t1",
        "size": 3,
        "url": "/t1",
    }
    with pytest.raises(ViewMismatch, match=r"needs the derived fields \['url'\]"):
        ThingPublic.of_record(thing)
    with pytest.raises(ViewMismatch, match="shows Thing, but got str"):
        ThingPublic.of_record("t1", url="/t1")


@pytest.mark.parametrize(
    "view",
    [AlertPublic, EventPublic, ExperimentPublic, ExportPublic, PromptPublic, VariantReportPublic],
)
def test_every_record_field_is_shown_or_deliberately_hidden(view: type[RecordView]) -> None:
    record_fields = {f.name for f in dataclasses.fields(view.record)}
    assert record_fields == (set(view.model_fields) - view.derived) | view.hidden


def test_variant_report_keeps_its_public_name_false_alarm_ci95() -> None:
    outcomes = [
        VariantOutcome("a", True, True, False, 10.0, 5, v)
        for v in ("false_positive", "true_positive", "true_positive")
    ]
    body = VariantReportPublic.of_record(report(outcomes)[0]).model_dump()
    low, high = body["false_alarm_ci95"]
    assert 0 < low < 1 / 3 < high < 1


def test_event_view_rounds_and_links_the_snapshot() -> None:
    ev = StoredEvent(
        id="e1", camera_id="a", label="person", score=0.123456, track_id=1, started_at=T0,
        ended_at=None, last_seen_at=T0, box=Box(1.04, 2.06, 3.0, 4.0), best_at=T0, hits=3,
        path=((1.0, 2.0),), snapshot_key="snapshots/a/e1.jpg", updated_at=T0,
    )  # fmt: skip
    body = EventPublic.of(ev).model_dump()
    assert body["score"] == 0.1235 and body["box"] == [1.0, 2.1, 3.0, 4.0]
    assert body["snapshot_url"] == "/api/v1/events/e1/snapshot.jpg"
    assert "path" not in body and "snapshot_key" not in body
