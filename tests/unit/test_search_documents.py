"""Search documents: named crop colours, time phrases, and the event/incident text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sentinel.domain.incidents import Incident
from sentinel.domain.types import Box
from sentinel.search.colours import CropColours, crop_colours, dominant_colours, name_pixels
from sentinel.search.documents import (
    CameraFacts,
    direction_phrase,
    dwell_phrase,
    event_document,
    incident_document,
    part_of_day,
    time_phrase,
)
from sentinel.store.repo import StoredEvent


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((0, 0, 0), "black"),
        ((20, 25, 30), "black"),
        ((250, 250, 250), "white"),
        ((128, 128, 128), "grey"),
        ((140, 135, 130), "grey"),
        ((200, 30, 30), "red"),
        ((230, 20, 60), "red"),
        ((240, 140, 20), "orange"),
        ((230, 220, 40), "yellow"),
        ((40, 170, 50), "green"),
        ((30, 40, 190), "blue"),
        ((20, 150, 200), "blue"),
        ((120, 40, 180), "purple"),
        ((230, 100, 180), "pink"),
        ((110, 60, 25), "brown"),
        ((120, 30, 30), "brown"),
    ],
)
def test_name_pixels(rgb: tuple[int, int, int], name: str) -> None:
    from sentinel.search.colours import COLOUR_NAMES

    pixel = np.array([[rgb]], dtype=np.uint8)
    assert COLOUR_NAMES[int(name_pixels(pixel)[0])] == name


def test_dominant_colours_orders_by_share_and_drops_small_ones() -> None:
    region = np.zeros((10, 10, 3), dtype=np.uint8)
    region[:6] = (30, 40, 190)  # 60 % blue
    region[6:9] = (250, 250, 250)  # 30 % white
    region[9:] = (200, 30, 30)  # 10 % red: under the 25 % share
    assert dominant_colours(region) == ["blue", "white"]
    assert dominant_colours(region, most=1) == ["blue"]
    assert dominant_colours(np.zeros((0, 0, 3), dtype=np.uint8)) == []


def test_dominant_colours_always_names_the_top_one() -> None:
    region = np.zeros((1, 5, 3), dtype=np.uint8)
    region[0] = [(200, 30, 30), (30, 40, 190), (40, 170, 50), (230, 220, 40), (250, 250, 250)]
    assert len(dominant_colours(region)) == 1


def _person_frame() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    frame = np.full((200, 200, 3), 128, dtype=np.uint8)  # grey background
    frame[20:45, 80:120] = (230, 200, 170)  # head
    frame[45:110, 80:120] = (200, 30, 30)  # red top
    frame[110:180, 80:120] = (30, 40, 190)  # blue trousers
    # The drawn box outline, in the snapshot's green, must not count.
    frame[20:180, 78:81] = (0, 255, 0)
    frame[20:180, 119:122] = (0, 255, 0)
    return frame, (80.0, 20.0, 120.0, 180.0)


def test_crop_colours_of_a_person_upper_and_lower() -> None:
    frame, box = _person_frame()
    colours = crop_colours(frame, box, "person")
    assert colours.upper == ("red",)
    assert colours.lower == ("blue",)
    assert colours.phrase("person") == "wearing red top, blue bottom (trousers, skirt)"


def test_crop_colours_of_a_vehicle_and_other_labels() -> None:
    frame = np.full((100, 200, 3), 30, dtype=np.uint8)
    frame[20:80, 20:180] = (245, 245, 245)
    colours = crop_colours(frame, (20.0, 20.0, 180.0, 80.0), "car")
    assert colours == CropColours(body=("white",))
    assert colours.phrase("car") == "white car"
    assert crop_colours(frame, (20.0, 20.0, 180.0, 80.0), "dog") == CropColours()


def test_crop_colours_clips_boxes_outside_the_frame() -> None:
    frame = np.full((50, 50, 3), 250, dtype=np.uint8)
    colours = crop_colours(frame, (-40.0, -40.0, 500.0, 500.0), "truck")
    assert colours.body == ("white",)


@pytest.mark.parametrize(
    ("hour", "part"),
    [(0, "night"), (4, "night"), (5, "morning"), (11, "morning"), (12, "afternoon"),
     (16, "afternoon"), (17, "evening"), (20, "evening"), (21, "night"), (23, "night")],
)  # fmt: skip
def test_part_of_day(hour: int, part: str) -> None:
    assert part_of_day(hour) == part


def test_time_phrase_uses_the_site_zone() -> None:
    at = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)  # a Tuesday, 23:30 UTC
    assert time_phrase(at) == "on Tuesday night at 23:30"
    # In Tokyo that is Wednesday 08:30.
    assert time_phrase(at, "Asia/Tokyo") == "on Wednesday morning at 08:30"
    with pytest.raises(ValueError):
        time_phrase(datetime(2026, 12, 1, 10, 0))


@pytest.mark.parametrize(
    ("seconds", "phrase"),
    [(2, "passed briefly"), (40, "stayed 40 seconds"), (150, "stayed 2 minutes"),
     (7200, "stayed 2.0 hours")],
)  # fmt: skip
def test_dwell_phrase(seconds: float, phrase: str) -> None:
    assert dwell_phrase(seconds) == phrase


@pytest.mark.parametrize(
    ("path", "phrase"),
    [([(500, 300), (100, 320)], "moving left"), ([(100, 300), (400, 250)], "moving right"),
     ([(300, 500), (310, 200)], "moving away"), ([(300, 100), (300, 400)],
     "moving towards the camera"), ([(300, 300), (305, 302)], "standing still"),
     ([(1, 1)], "")],
)  # fmt: skip
def test_direction_phrase(path: list[tuple[float, float]], phrase: str) -> None:
    assert direction_phrase(path) == phrase


T0 = datetime(2026, 12, 1, 14, 5, tzinfo=UTC)  # Tuesday afternoon


def _event(**kw: object) -> StoredEvent:
    fields: dict[str, object] = {
        "id": "e1",
        "camera_id": "gate",
        "label": "person",
        "score": 0.9,
        "track_id": 3,
        "started_at": T0,
        "ended_at": T0 + timedelta(seconds=125),
        "last_seen_at": T0 + timedelta(seconds=125),
        "box": Box(80, 20, 120, 180),
        "best_at": T0,
        "hits": 20,
        "path": ((600.0, 400.0), (200.0, 420.0)),
        "snapshot_key": "snapshots/gate/e1.jpg",
        "updated_at": T0,
        "zones": ("car_park", "entrance"),
    }
    fields.update(kw)
    return StoredEvent(**fields)  # type: ignore[arg-type]


def test_event_document_text_and_metadata() -> None:
    camera = CameraFacts("gate", "Front gate", "Looks at the car park and the main entrance.")
    doc = event_document(
        _event(),
        camera,
        colours=CropColours(upper=("red",), lower=("blue",)),
        summary="Visitor walked to the door. ",
    )
    assert doc.text == (
        "person, wearing red top, blue bottom (trousers, skirt), walking left, "
        "in car park, entrance, seen by camera Front gate (Looks at the car park and the main "
        "entrance), on Tuesday afternoon at 14:05, stayed 2 minutes. "
        "Summary: Visitor walked to the door."
    )
    assert doc.metadata == {
        "kind": "event",
        "camera_id": "gate",
        "label": "person",
        "start": int(T0.timestamp()),
        "snapshot": True,
    }


def test_event_document_of_a_vehicle_without_snapshot_or_name() -> None:
    ev = _event(label="car", path=((100.0, 100.0), (102.0, 101.0)), snapshot_key=None, zones=())
    doc = event_document(ev, CameraFacts("lot"), colours=CropColours(body=("white",)))
    assert doc.text.startswith("white car, standing still, seen by camera lot, on Tuesday")
    assert doc.metadata["snapshot"] is False
    plain = event_document(ev, CameraFacts("lot"))
    assert plain.text.startswith("car, standing still, seen by camera lot")


def test_incident_document() -> None:
    incident = Incident(
        id="i1",
        camera_id="gate",
        started_at=T0,
        last_seen_at=T0 + timedelta(minutes=10),
        ended_at=T0 + timedelta(minutes=10),
        members=("e1", "e2", "e3"),
        labels=("person", "car"),
        zones=("car_park",),
    )
    doc = incident_document(incident, CameraFacts("gate", "Front gate"), timezone="Europe/Paris")
    assert doc.text == (
        "incident with 3 objects: person and car, in car park, seen by camera Front gate, "
        "on Tuesday afternoon at 15:05, lasted 10 minutes."
    )
    assert doc.metadata["kind"] == "incident"
    assert doc.metadata["label"] == "person"
    assert doc.metadata["members"] == 3
    assert doc.metadata["snapshot_event"] == ""


def test_appearance_vectors_are_unit_and_their_cosine_is_the_bhattacharyya_mean() -> None:
    from sentinel.domain.appearance import appearance, similarity
    from sentinel.search.appearance import appearance_vector

    frame, box = _person_frame()
    other = frame.copy()
    other[45:110, 80:120] = (40, 170, 50)  # a green top instead
    b = Box(*box)
    va, vb = appearance_vector(frame, b), appearance_vector(other, b)
    assert va is not None and vb is not None
    assert np.linalg.norm(va) == pytest.approx(1.0, abs=1e-5)
    ha, hb = appearance(frame, b), appearance(other, b)
    assert ha is not None and hb is not None
    assert float(va @ vb) == pytest.approx(similarity(ha, hb), abs=1e-5)
    assert float(va @ va) > float(va @ vb)
    assert appearance_vector(frame, Box(5, 5, 6, 5.5)) is None


def test_unreadable_snapshot_is_a_value_error_even_with_ultralytics_loaded() -> None:
    """Ultralytics wraps PIL's Image.open on import and turns an unreadable file into an
    ImportError of its HEIF plugin; the search service must still see "unreadable"."""
    import ultralytics  # noqa: F401  (its import patches Image.open)

    from sentinel.search.service import _decode

    with pytest.raises(ValueError, match="unreadable image"):
        _decode(b"not an image at all")
