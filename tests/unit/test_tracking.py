from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.domain.appearance import FEATURE_SIZE, PART_BINS, similarity
from sentinel.domain.tracking import Track, Tracker, TrackerConfig, TrackerUpdate
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


# -- Kalman prediction -------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [0.1, 0.2, 0.5])  # 10, 5 and 2 analysed frames per second
@pytest.mark.parametrize(("vx", "vy"), [(50.0, 0.0), (-40.0, 20.0), (0.0, 0.0)])
def test_kalman_follows_a_jittery_walker(dt: float, vx: float, vy: float) -> None:
    """A 60x150 walker whose detections jitter by 3 px (one standard deviation)."""
    rng = np.random.default_rng(11)
    tracker = Tracker(TrackerConfig())
    steps = round(6.0 / dt)
    raw_err: list[float] = []
    kf_err: list[float] = []
    velocities: list[tuple[float, float]] = []
    for i in range(steps):
        t = i * dt
        true = (300 + vx * t, 250 + vy * t)
        noisy = (true[0] + rng.normal(0, 3.0), true[1] + rng.normal(0, 3.0))
        tracker.update([det(*noisy, w=60.0, h=150.0)], t)
        if i >= steps // 2:
            (track,) = tracker.active
            assert track.center is not None
            raw_err.append(float(np.hypot(noisy[0] - true[0], noisy[1] - true[1])))
            kf_err.append(float(np.hypot(track.center[0] - true[0], track.center[1] - true[1])))
            velocities.append(track.velocity)
    (track,) = tracker.active
    assert track.id == 1
    mean_vx, mean_vy = np.mean(velocities, axis=0)
    assert mean_vx == pytest.approx(vx, abs=8.0) and mean_vy == pytest.approx(vy, abs=8.0)
    # The filtered centre is closer to the truth than the detections it is built from (at 2
    # frames a second a walker may change pace between frames: little to smooth there)...
    assert np.mean(kf_err) < (0.9 if dt <= 0.2 else 1.0) * np.mean(raw_err)
    # ...and the prediction one analysed frame ahead lands on the walker, within a fifth of
    # the box width (not predicting motion misses the 50 px/s walker by 25 px at dt=0.5 s).
    t_next = steps * dt
    px, py = track.predicted(t_next).center
    assert np.hypot(px - (300 + vx * t_next), py - (250 + vy * t_next)) < 12.0


@pytest.mark.parametrize("dt", [0.1, 0.2, 0.5])
def test_kalman_velocity_settles_when_the_walker_stops(dt: float) -> None:
    tracker = Tracker(TrackerConfig())
    t = 0.0
    for i in range(round(3.0 / dt)):  # walks at 100 px/s for 3 s
        t = i * dt
        tracker.update([det(100 + 100 * t, 200)], t)
    stop_x, stopped_at = 100 + 100 * t, t
    while t < stopped_at + 2.0:  # then stands still
        t = round(t + dt, 6)
        tracker.update([det(stop_x, 200)], t)
    (track,) = tracker.active
    assert abs(track.velocity[0]) < 10.0
    assert track.predicted(t + dt).center[0] == pytest.approx(stop_x, abs=3.0)


# -- re-association of lost tracks by appearance ---------------------------------------------


def look(index: int) -> NDArray[np.float32]:
    """A descriptor of one colour (orthogonal to every other ``index``): similarity 1 or 0."""
    feature = np.zeros(FEATURE_SIZE, dtype=np.float32)
    feature[index] = feature[PART_BINS + index] = 1.0
    return feature


def seen(cx: float, cy: float, index: int | None, score: float = 0.9) -> Detection:
    return replace(det(cx, cy, score=score), appearance=None if index is None else look(index))


def walker_lost_then_seen(
    reappears: Detection, lost_s: float, config: TrackerConfig | None = None
) -> tuple[Tracker, Track, TrackerUpdate]:
    """Track 1 walks right at 100 px/s from x=100 for 1 s with look 0, is missed for
    ``lost_s`` seconds, then ``reappears`` is detected."""
    tracker = Tracker(config or TrackerConfig(max_lost_s=5.0))
    t = 0.0
    for i in range(6):
        t = i * 0.2
        tracker.update([seen(100 + 100 * t, 200, 0)], t)
    (track,) = tracker.active
    assert track.confirmed
    while t < 1.0 + lost_s - 1e-9:
        t = round(t + 0.2, 6)
        tracker.update([], t)
    return tracker, track, tracker.update([reappears], round(1.0 + lost_s + 0.2, 6))


@pytest.mark.parametrize(
    ("lost_s", "x", "index", "same_track", "by_appearance"),
    [
        # Kept walking behind an occluder: 2 s later it is 1 s beyond the capped prediction.
        (2.0, 420.0, 0, True, True),
        (2.0, 420.0, 1, False, False),  # someone else there: a new track
        (2.0, 420.0, None, False, False),  # no descriptor: IoU only, as before
        (2.0, 900.0, 0, False, False),  # too far to have walked there
        (2.0, 160.0, 0, True, True),  # turned back
        (0.4, 230.0, 0, True, True),  # a short miss, slower than predicted
        (0.4, 260.0, 1, True, False),  # where predicted: IoU matches first, as before
    ],
)
def test_lost_track_reassociated_by_appearance(
    lost_s: float, x: float, index: int | None, same_track: bool, by_appearance: bool
) -> None:
    tracker, track, update = walker_lost_then_seen(seen(x, 200, index), lost_s)
    assert [tr.id == track.id for tr in update.matched] == [same_track]
    assert track.reassociations == int(by_appearance)
    assert track.lost is not same_track
    if same_track:
        assert track.box.center == (x, 200)
        assert len(tracker.active) == 1


@pytest.mark.parametrize(("mix", "same_track"), [(0.0, True), (0.2, True), (0.5, False)])
def test_reassociation_needs_reid_similarity(mix: float, same_track: bool) -> None:
    """Similarity of ``(1 - mix) * look 0 + mix * look 1`` to look 0: 1, 0.89, 0.71."""
    partly = ((1.0 - mix) * look(0) + mix * look(1)).astype(np.float32)
    _, track, update = walker_lost_then_seen(replace(det(420, 200), appearance=partly), 2.0)
    assert [tr.id == track.id for tr in update.matched] == [same_track]


def test_reassociation_is_off_at_similarity_one() -> None:
    config = TrackerConfig(max_lost_s=5.0, reid_similarity=1.0)
    _, track, update = walker_lost_then_seen(seen(420, 200, 0), 2.0, config)
    assert [tr.id for tr in update.matched] == [track.id + 1]


def test_two_lost_walkers_get_their_own_detections_back() -> None:
    tracker = Tracker(TrackerConfig(max_lost_s=5.0))
    for i in range(5):
        t = i * 0.2
        tracker.update([seen(100 + 20 * i, 200, 0), seen(400 - 20 * i, 220, 1)], t)
    a, b = tracker.active
    for i in range(5, 15):  # both hidden for 2 s, crossing behind something
        tracker.update([], i * 0.2)
    # Their predictions stop 1 s after they were lost, at x=280 (a) and x=220 (b). They
    # reappear away from both, each nearer the other's prediction: appearance decides.
    update = tracker.update([seen(150, 215, 0), seen(350, 205, 1)], 3.0)
    assert {(tr.id, tr.box.center) for tr in update.matched} == {
        (a.id, (150.0, 215.0)),
        (b.id, (350.0, 205.0)),
    }


def test_low_score_detection_does_not_reassociate() -> None:
    _, track, update = walker_lost_then_seen(seen(420, 200, 0, score=0.3), 2.0)
    assert update.matched == [] and track.lost


def test_crowded_detection_does_not_change_the_track_appearance() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    tracker.update([seen(100, 200, 0)], 0.0)
    (track,) = tracker.active
    # Someone else (look 1) overlaps the walker: its descriptor mixes both people.
    tracker.update([seen(102, 200, 1), seen(110, 200, 2)], 0.2)
    assert track.appearance is not None
    assert similarity(track.appearance, look(0)) == pytest.approx(1.0)
    tracker.update([seen(104, 200, 1)], 0.4)  # alone again: folded in
    assert similarity(track.appearance, look(0)) < 1.0


# -- the lost buffer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lost_s", "same_track"),
    [(1.0, True), (3.0, True), (4.6, True), (5.4, False)],
)
def test_long_lost_buffer_for_confirmed_tracks(lost_s: float, same_track: bool) -> None:
    """A confirmed track stays matchable for all of ``max_lost_s`` (the pipeline's
    ``close_after_s``), not only within the one-second prediction horizon: walking 100 px/s,
    after ``lost_s`` the walker is far from any IoU match, and appearance brings it back."""
    x = 200 + 100 * (lost_s + 0.2)
    tracker, track, update = walker_lost_then_seen(seen(x, 200, 0), lost_s)
    assert [tr.id == track.id for tr in update.matched] == [same_track]
    assert (track in tracker.active) is same_track


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reid_similarity": 1.5}, "reid_similarity must be"),
        ({"reid_speed": -1.0}, "reid_speed must be"),
    ],
)
def test_reid_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**kwargs)  # type: ignore[arg-type]
