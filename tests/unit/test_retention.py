"""plan_sweep: retention per kind, budget and free space oldest-first, exports kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from sentinel.domain.retention import Deletion, Policies, SegmentView, plan_sweep, row_cutoffs

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MB = 1 << 20


def seg(
    sid: str, age_days: float, kind: str = "continuous", cam: str = "a", size: int = MB,
    exported: bool = False,
) -> SegmentView:  # fmt: skip
    start = NOW - timedelta(days=age_days)
    return SegmentView(sid, cam, kind, start, start + timedelta(seconds=10), size, exported)


@dataclass
class Case:
    name: str
    segments: list[SegmentView]
    expected: list[tuple[str, str]]  # (segment id, reason), in order
    policies: Policies = field(default_factory=dict)
    budget: int | None = None
    free: int | None = None
    min_free: int = 0


CASES = [
    Case("nothing to do", [seg("s1", 10), seg("s2", 1)], []),
    Case(
        "continuous retention only",
        [seg("c-old", 8), seg("c-new", 6), seg("e-old", 8, "event")],
        [("c-old", "retention")],
        policies={"a": (7.0, None)},
    ),
    Case(
        "event retention only",
        [seg("c-old", 40), seg("e-old", 31, "event"), seg("e-new", 29, "event")],
        [("e-old", "retention")],
        policies={"a": (None, 30.0)},
    ),
    Case(
        "retention per camera",
        [seg("a1", 3, cam="a"), seg("b1", 3, cam="b"), seg("c1", 3, cam="c")],
        [("a1", "retention")],
        policies={"a": (2.0, 2.0), "b": (5.0, 5.0)},
    ),
    Case(
        "a segment still partly inside retention is kept",
        [seg("edge", 1.0 + 5 / 86400)],  # ends 5 s inside the 1-day window
        [],
        policies={"a": (1.0, None)},
    ),
    Case(
        "budget deletes oldest first across cameras",
        [seg("a3", 1, cam="a"), seg("b5", 5, cam="b"), seg("a4", 4, cam="a"), seg("b2", 2)],
        [("b5", "budget"), ("a4", "budget")],
        budget=2 * MB,
    ),
    Case(
        "continuous before event, even when the event footage is older",
        [seg("e9", 9, "event"), seg("c1", 1), seg("c2", 2)],
        [("c2", "budget"), ("c1", "budget"), ("e9", "budget")],
        budget=0,
    ),
    Case(
        "exports are never deleted, not even past retention or over budget",
        [seg("x", 50, exported=True), seg("c", 1), seg("e", 50, "event", exported=True)],
        [("c", "budget")],
        policies={"a": (7.0, 7.0)},
        budget=0,
    ),
    Case(
        "retention frees enough: no budget deletion",
        [seg("old", 10), seg("mid", 5), seg("new", 1)],
        [("old", "retention")],
        policies={"a": (7.0, None)},
        budget=2 * MB,
    ),
    Case(
        "low free space deletes oldest until min free is met",
        [seg("n", 1), seg("o", 3), seg("m", 2), seg("e", 4, "event")],
        [("o", "low_space"), ("m", "low_space")],
        free=MB // 2,
        min_free=2 * MB,
    ),
    Case(
        "unknown free space (S3) is not checked",
        [seg("o", 3)],
        [],
        free=None,
        min_free=10 * MB,
    ),
    Case(
        "budget first, then low space",
        [seg("s1", 4), seg("s2", 3), seg("s3", 2), seg("s4", 1)],
        [("s1", "budget"), ("s2", "low_space")],
        budget=3 * MB,
        free=0,
        min_free=2 * MB,
    ),
    Case(
        "limits that cannot be met delete everything deletable, nothing more",
        [seg("a", 2), seg("x", 3, exported=True)],
        [("a", "low_space")],
        free=0,
        min_free=100 * MB,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan_sweep(case: Case) -> None:
    plan = plan_sweep(
        case.segments,
        now=NOW,
        policies=case.policies,
        used_bytes=sum(s.size for s in case.segments),
        budget_bytes=case.budget,
        free_bytes=case.free,
        min_free_bytes=case.min_free,
    )
    assert [(d.segment_id, d.reason) for d in plan] == case.expected
    by_id = {s.id: s for s in case.segments}
    for d in plan:
        assert d == Deletion(d.segment_id, by_id[d.segment_id].camera_id, d.reason, MB)


def test_used_bytes_count_exports_toward_the_budget() -> None:
    segments = [seg("x", 9, exported=True, size=3 * MB), seg("c", 1)]
    plan = plan_sweep(
        segments, now=NOW, policies={}, used_bytes=4 * MB, budget_bytes=3 * MB,
        free_bytes=None, min_free_bytes=0,
    )  # fmt: skip
    assert [d.segment_id for d in plan] == ["c"]


@pytest.mark.parametrize(("used", "budget", "min_free"), [(-1, None, 0), (0, -1, 0), (0, None, -1)])
def test_negative_byte_counts_are_refused(used: int, budget: int | None, min_free: int) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        plan_sweep(
            [], now=NOW, policies={}, used_bytes=used, budget_bytes=budget, free_bytes=None,
            min_free_bytes=min_free,
        )  # fmt: skip


def test_rows_follow_the_event_footage_retention() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    cutoffs = row_cutoffs({"a": (1.0, 2.0), "b": (1.0, None), "c": (None, 0.5)}, now)
    assert cutoffs == {"a": now - timedelta(days=2), "c": now - timedelta(hours=12)}


def test_derived_cutoffs_per_kind() -> None:
    from sentinel.domain.retention import DerivedCutoffs, derived_cutoffs

    def ago(days: float) -> datetime:
        return NOW - timedelta(days=days)

    policies: Policies = {"a": (1.0, 10.0), "b": (1.0, None)}
    # Nothing of their own: events and incidents follow the event footage, snapshots go with
    # their events, alerts stay; a camera with no policy keeps everything.
    assert derived_cutoffs(policies, ["c"], now=NOW) == {
        "a": DerivedCutoffs(ago(10), ago(10), ago(10), None),
        "b": DerivedCutoffs(None, None, None, None),
        "c": DerivedCutoffs(None, None, None, None),
    }
    own = derived_cutoffs(
        policies, ["c"], now=NOW, events_days=30, incidents_days=60, snapshots_days=2,
        alerts_days=90,
    )  # fmt: skip
    assert own["a"] == DerivedCutoffs(ago(30), ago(60), ago(2), ago(90))
    assert own["c"] == own["b"] == own["a"]
    # A snapshot never outlives its event.
    assert derived_cutoffs(policies, [], now=NOW, snapshots_days=20)["a"].snapshots == ago(10)
    with pytest.raises(ValueError, match="alerts_days must be > 0"):
        derived_cutoffs(policies, [], now=NOW, alerts_days=0)
