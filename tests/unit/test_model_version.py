"""Events record the detector's model version: stamped when they open, journalled, kept."""

from __future__ import annotations

import json
from dataclasses import replace

from sentinel.actors.runner import stamp_model
from sentinel.domain.types import Box, EventChange, EventChangeKind, EventState
from sentinel.store.journal import decode_change, encode_change
from tests.utils.factories import T0


def _state(event_id: str, version: int | None = None) -> EventState:
    return EventState(
        id=event_id,
        camera_id="gate",
        label="person",
        track_id=1,
        started_at=T0,
        last_seen_at=T0,
        score=0.8,
        box=Box(1, 2, 30, 80),
        best_at=T0,
        model_version=version,
    )


def test_only_events_opening_in_the_frame_take_its_model() -> None:
    opened = EventChange(EventChangeKind.OPENED, _state("a"))
    updated = EventChange(EventChangeKind.UPDATED, _state("b"))
    earlier = EventChange(EventChangeKind.OPENED, _state("c", version=1))
    stamp_model([opened, updated, earlier], 2)
    assert opened.event.model_version == 2
    assert updated.event.model_version is None  # opened on an earlier frame's model
    assert earlier.event.model_version == 1  # never overwritten


def test_the_journal_keeps_the_model_version() -> None:
    change = EventChange(EventChangeKind.OPENED, _state("a", version=3), new_best=True)
    assert decode_change(encode_change(change)).event.model_version == 3
    # A line journalled before events had a model version still reads.
    record = json.loads(encode_change(replace(change, event=_state("a"))))
    del record["event"]["model_version"]
    assert decode_change(json.dumps(record).encode()).event.model_version is None
