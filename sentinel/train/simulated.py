"""The simulated annotator: answers queue items of the sample video from its ground truth.

For tests and benchmarks of the learning loop. The ground truth is PETS 2009 S2.L1 view 001
in MOTChallenge format (``benchmarks/data/pets09-s2l1-gt-0001-0400.txt``): one box a line,
``frame, track_id, x, y, w, h, flag, wx, wy, wz``, frames counted from 1, ``flag`` 0 = an
ignore region (not a person to label). It covers frames 1-400 only: frames 401-795 are held
out to judge the loop, so the annotator refuses them (:class:`HeldOutFrame`) rather than
answering "no person" there.

Frame numbering: a queue item's ``frame_index`` is 0-based (its position in the video, as
decord counts), so item ``frame_index = i`` is ground-truth frame ``i + 1``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sentinel.domain.annotation import LabeledBox, QueueCandidate

__all__ = [
    "LAST_ANSWERABLE_FRAME",
    "GroundTruth",
    "HeldOutFrame",
    "SimulatedAnnotator",
    "load_ground_truth",
]

LAST_ANSWERABLE_FRAME = 400  # ground-truth frames 1..400 (0-based indices 0..399)
PERSON = "person"


class HeldOutFrame(ValueError):  # noqa: N818 - the caller learns what the frame is
    """The frame is outside the ground truth the annotator may use (frames 401+)."""


@dataclass(frozen=True)
class GroundTruth:
    """Boxes per 0-based frame index: the persons, and the ignore regions (flag 0)."""

    persons: Mapping[int, tuple[LabeledBox, ...]]
    ignored: Mapping[int, tuple[LabeledBox, ...]]
    frames: int  # frames covered: indices 0..frames-1


def load_ground_truth(path: Path, *, last_frame: int = LAST_ANSWERABLE_FRAME) -> GroundTruth:
    """Reads a MOTChallenge ground-truth file of frames ``1..last_frame``.

    Raises:
        HeldOutFrame: If the file holds a frame past ``last_frame`` (held-out truth is
            never loaded).
        ValueError: If a line is malformed (with its number).
    """
    persons: dict[int, list[LabeledBox]] = {}
    ignored: dict[int, list[LabeledBox]] = {}
    with path.open(newline="") as fh:
        for number, row in enumerate(csv.reader(fh), start=1):
            if not row or not "".join(row).strip():
                continue
            try:
                frame = int(float(row[0]))
                x, y, w, h = (float(v) for v in row[2:6])
                flag = int(float(row[6]))
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}:{number}: not a MOTChallenge line: {row!r}") from exc
            if frame < 1:
                raise ValueError(f"{path}:{number}: frames count from 1, but got {frame}")
            if frame > last_frame:
                raise HeldOutFrame(
                    f"{path}:{number}: frame {frame} is held out (only 1..{last_frame} are used)"
                )
            box = LabeledBox(PERSON, x, y, x + w, y + h)
            (ignored if flag == 0 else persons).setdefault(frame - 1, []).append(box)
    return GroundTruth(
        persons={k: tuple(v) for k, v in persons.items()},
        ignored={k: tuple(v) for k, v in ignored.items()},
        frames=last_frame,
    )


class SimulatedAnnotator:
    """Answers like a careful annotator who draws every person (nothing else) of a frame."""

    def __init__(self, truth: GroundTruth) -> None:
        self.truth = truth
        self.answered = 0

    @classmethod
    def from_file(cls, path: Path) -> SimulatedAnnotator:
        return cls(load_ground_truth(path))

    def boxes(self, frame_index: int) -> list[LabeledBox]:
        """The persons of the frame at 0-based ``frame_index``.

        Raises:
            HeldOutFrame: For a frame outside the ground truth (index >= 400, or negative).
        """
        if not 0 <= frame_index < self.truth.frames:
            raise HeldOutFrame(
                f"frame index {frame_index} (frame {frame_index + 1}) is outside the ground "
                f"truth of frames 1..{self.truth.frames}; the simulated annotator refuses it"
            )
        self.answered += 1
        return list(self.truth.persons.get(frame_index, ()))

    def answer(self, item: QueueCandidate) -> list[LabeledBox]:
        """The boxes for a queued frame of the sample video (its ``frame_index`` must be set).

        Raises:
            HeldOutFrame: For a frame outside the ground truth.
            ValueError: If the item has no ``frame_index`` (a frame the truth cannot place).
        """
        if item.frame_index is None:
            raise ValueError("the simulated annotator needs the item's frame_index")
        return self.boxes(item.frame_index)
