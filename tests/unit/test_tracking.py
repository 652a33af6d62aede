from __future__ import annotations

import numpy as np
import pytest

from sentinel.domain.tracking import Track, Tracker, TrackerConfig
from sentinel.domain.types import Detection
from tests.utils.factories import box_at, det


def confirmed_tracker(config: TrackerConfig | None = None) -> tuple[Tracker, Track]:
    tracker = Tracker(config or TrackerConfig())
    for i in range(3):
        update = tracker.update([det(100 + 2 * i, 200)], i * 0.1)
    (track,) = update.confirmed_now
    return tracker, track


@pytest.mark.parametrize("min_hits", [1, 2, 3, 5])
def test_confirmation_after_min_hits(min_hits: int) -> None:
    tracker = Tracker(TrackerConfig(min_hits=min_hits))
    for i in range(min_hits):
        update = tracker.update([det(100 + i, 200)], i * 0.1)
        assert [tr.id for tr in update.matched] == [1]
        expected = [1] if i == min_hits - 1 else []
        assert [tr.id for tr in update.confirmed_now] == expected
    update = tracker.update([det(100, 200)], 1.0)
    assert update.confirmed_now == []
    assert tracker.has_confirmed
    assert tracker.active[0].hits == min_hits + 1


def test_tentative_track_that_misses_is_dropped_silently() -> None:
    tracker = Tracker(TrackerConfig())
    tracker.update([det(100, 200)], 0.0)
    tracker.update([det(100, 200)], 0.1)
    update = tracker.update([], 0.2)
    assert (update.matched, update.confirmed_now, update.removed) == ([], [], [])
    assert tracker.active == []
    # A later detection there starts a fresh track with a fresh id.
    assert [tr.id for tr in tracker.update([det(100, 200)], 0.3).matched] == [2]


def test_jittering_detections_keep_one_track() -> None:
    rng = np.random.default_rng(7)
    tracker = Tracker(TrackerConfig())
    for i in range(100):
        jitter = rng.normal(0.0, 3.0, size=4)
        box = box_at(300, 200)
        d = Detection(
            box=type(box)(box.x1 + jitter[0], box.y1 + jitter[1], box.x2 + jitter[2],
                          box.y2 + jitter[3]),
            label="person",
            score=float(rng.uniform(0.55, 0.95)),
        )  # fmt: skip
        tracker.update([d], i * 0.1)
    assert [tr.id for tr in tracker.active] == [1]
    assert tracker.active[0].hits == 100


@pytest.mark.parametrize(
    ("dy", "occluded"),
    [
        (0.0, range(0)),
        (15.0, range(0)),
        (40.0, range(0)),
        (0.0, range(13, 18)),  # the walker behind is hidden for half a second
        (10.0, range(12, 20)),
    ],
)
def test_two_people_crossing_keep_their_ids(dy: float, occluded: range) -> None:
    tracker = Tracker(TrackerConfig())
    ids_a: set[int] = set()
    ids_b: set[int] = set()
    for i in range(31):
        t = i * 0.1
        a = det(50 + 10 * i, 200, score=0.9)  # walks right at 100 px/s
        b = det(350 - 10 * i, 200 + dy, score=0.8)  # walks left
        update = tracker.update([a] if i in occluded else [a, b], t)
        if i >= 3:
            # Identity, not equality: at the crossing both boxes are equal.
            ids_a |= {tr.id for tr in update.matched if tr.box is a.box}
            ids_b |= {tr.id for tr in update.matched if tr.box is b.box}
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b
    assert len(tracker.active) == 2


def test_lost_track_is_recovered() -> None:
    tracker, track = confirmed_tracker()
    for i in range(10):  # one second without detections
        update = tracker.update([], 0.3 + i * 0.1)
        assert update.removed == []
    assert track.lost and tracker.has_confirmed
    update = tracker.update([det(106, 200)], 1.3)
    assert [tr.id for tr in update.matched] == [track.id]
    assert not track.lost
    assert update.confirmed_now == []


def test_lost_track_is_removed_after_max_lost_s() -> None:
    tracker, track = confirmed_tracker(TrackerConfig(max_lost_s=3.0))
    removed: list[tuple[float, int]] = []
    for i in range(1, 50):
        t = 0.2 + i * 0.1
        removed += [(round(t, 1), tr.id) for tr in tracker.update([], t).removed]
    assert removed == [(3.3, track.id)]
    assert tracker.active == []
    assert not tracker.has_confirmed


def test_expired_track_is_not_matched_again() -> None:
    tracker, track = confirmed_tracker(TrackerConfig(max_lost_s=3.0))
    update = tracker.update([det(104, 200)], 4.0)
    assert update.removed == [track]
    assert [tr.id for tr in update.matched] == [track.id + 1]


@pytest.mark.parametrize(
    ("score", "matched"),
    [
        (0.3, True),  # low-score second stage keeps the track
        (0.15, True),
        (0.1, False),  # below low_score: ignored
    ],
)
def test_low_score_second_stage(score: float, matched: bool) -> None:
    tracker, track = confirmed_tracker()
    for i in range(5):
        update = tracker.update([det(104, 200, score=score)], 0.3 + i * 0.1)
        assert [tr.id for tr in update.matched] == ([track.id] if matched else [])
    assert track.lost is not matched
    assert len(tracker.active) == 1  # low-score detections never start tracks
    assert track.best_score == pytest.approx(0.9)


def test_low_score_detection_does_not_extend_a_tentative_track() -> None:
    tracker = Tracker(TrackerConfig())
    tracker.update([det(100, 200)], 0.0)
    update = tracker.update([det(100, 200, score=0.3)], 0.1)
    assert update.matched == []
    assert tracker.active == []


def test_parked_car_with_occasional_misses_keeps_one_id() -> None:
    rng = np.random.default_rng(3)
    tracker = Tracker(TrackerConfig())
    ids: set[int] = set()
    for i in range(600):  # two minutes at 5 fps
        t = i * 0.2
        missed = (i % 7 == 3) or (100 <= i < 110)  # single misses and a 2 s gap
        score = float(rng.uniform(0.35, 0.9))
        detections = [] if missed else [det(600 + rng.normal(0, 2), 400, "car", score, 200, 120)]
        update = tracker.update(detections, t)
        assert update.removed == []
        ids |= {tr.id for tr in update.matched if tr.confirmed}
    assert len(ids) == 1
    assert len(tracker.active) == 1


def test_labels_never_match_each_other() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    tracker.update([det(100, 200, "person")], 0.0)
    update = tracker.update([det(100, 200, "dog")], 0.1)
    assert [(tr.id, tr.label) for tr in update.confirmed_now] == [(2, "dog")]
    assert [tr.lost for tr in tracker.active] == [True, False]


def test_age_out_removes_only_long_lost_tracks() -> None:
    tracker, track = confirmed_tracker(TrackerConfig(max_lost_s=3.0))
    tracker.update([det(300, 200)], 0.3)  # a tentative track elsewhere
    assert tracker.age_out(2.0) == []
    assert len(tracker.active) == 2
    assert tracker.age_out(3.4) == [track]  # the tentative one goes silently
    assert tracker.active == []


@pytest.mark.parametrize(
    ("velocity", "dt", "shift"),
    [
        ((60.0, 0.0), 0.5, (30.0, 0.0)),
        ((100.0, -20.0), 3.0, (100.0, -20.0)),  # horizon capped at 1 s
        ((200.0, 0.0), 1.0, (120.0, 0.0)),  # shift capped at three box widths
        ((0.0, -500.0), 1.0, (0.0, -300.0)),  # and three box heights
        ((100.0, 0.0), -1.0, (0.0, 0.0)),
    ],
)
def test_predicted_is_capped(
    velocity: tuple[float, float], dt: float, shift: tuple[float, float]
) -> None:
    track = Track(1, "person", box_at(100, 200), 0.9, 0.9, 3, 0.0, 10.0, velocity=velocity)
    assert track.predicted(10.0 + dt) == box_at(100 + shift[0], 200 + shift[1])


def test_velocity_follows_motion() -> None:
    tracker = Tracker(TrackerConfig())
    for i in range(10):
        tracker.update([det(100 + 5 * i, 200 - 2 * i)], i * 0.1)
    vx, vy = tracker.active[0].velocity
    assert vx == pytest.approx(50.0) and vy == pytest.approx(-20.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low_score": 0.6}, "low_score <= high_score"),
        ({"match_iou": 0.0}, "match_iou must be"),
        ({"min_hits": 0}, "min_hits must be"),
        ({"max_lost_s": -1.0}, "max_lost_s must be"),
    ],
)
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**kwargs)  # type: ignore[arg-type]
