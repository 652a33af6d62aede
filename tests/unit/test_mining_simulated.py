"""The simulated annotator answers frames 1-400 of the sample video from its ground truth and
refuses the held-out frames 401+."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sentinel.domain.annotation import QueueCandidate
from sentinel.train.simulated import HeldOutFrame, SimulatedAnnotator, load_ground_truth

GT = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "pets09-s2l1-gt-0001-0400.txt"


def item(frame_index: int | None) -> QueueCandidate:
    return QueueCandidate(
        camera_id="pets", frame_ts=datetime(2026, 1, 1, tzinfo=UTC), frame_index=frame_index,
        source="video", width=768, height=576, phash=0, score=1.0, image_key="k",
    )  # fmt: skip


def test_answers_from_the_ground_truth() -> None:
    annotator = SimulatedAnnotator.from_file(GT)
    rows = [line.split(",") for line in GT.read_text().splitlines() if line.strip()]
    first = [r for r in rows if int(r[0]) == 1 and int(r[6]) != 0]
    boxes = annotator.answer(item(0))  # frame index 0 is ground-truth frame 1
    assert len(boxes) == len(first) > 0
    x, y, w, h = (float(v) for v in first[0][2:6])
    assert (boxes[0].x1, boxes[0].y1, boxes[0].x2, boxes[0].y2) == (x, y, x + w, y + h)
    assert all(b.label == "person" and b.score is None for b in boxes)
    assert annotator.boxes(399)  # the last answerable frame
    assert annotator.answered == 2


@pytest.mark.parametrize("index", [400, 794, -1])
def test_refuses_held_out_frames(index: int) -> None:
    annotator = SimulatedAnnotator.from_file(GT)
    with pytest.raises(HeldOutFrame, match="refuses"):
        annotator.answer(item(index))
    with pytest.raises(ValueError, match="frame_index"):
        annotator.answer(item(None))


def test_ignore_regions_are_not_persons_and_held_out_rows_are_never_loaded(
    tmp_path: Path,
) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,20,30,40,1,-1,-1,-1\n1,2,100,100,20,20,0,-1,-1,-1\n")
    truth = load_ground_truth(gt)
    assert len(truth.persons[0]) == 1 and len(truth.ignored[0]) == 1
    gt.write_text("1,1,10,20,30,40,1,-1,-1,-1\n401,1,10,20,30,40,1,-1,-1,-1\n")
    with pytest.raises(HeldOutFrame, match="held out"):
        load_ground_truth(gt)
    gt.write_text("1,1,ten,20,30,40,1\n")
    with pytest.raises(ValueError, match=":1: not a MOTChallenge line"):
        load_ground_truth(gt)
