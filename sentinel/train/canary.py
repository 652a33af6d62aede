"""The canary's pure parts: which frames the challenger serves, live figures per model, the guard.

No Ray, no database: the camera actor tallies what each model served with :class:`ModelTally`,
the model controller merges the cameras' tallies with the operators' verdicts
(:func:`collect_figures`) and asks :func:`guard_reasons` whether the challenger must be rolled
back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sentinel.config import CanaryGuardSettings

__all__ = [
    "ModelFigures",
    "ModelTally",
    "collect_figures",
    "frame_share",
    "guard_reasons",
    "serves_challenger",
]


def frame_share(camera_id: str, frame_no: int) -> float:
    """A stable number in [0, 1) for a camera's frame: the same frame always lands alike."""
    digest = hashlib.sha256(f"{camera_id}/{frame_no}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def serves_challenger(route: Mapping[str, Any] | None, camera_id: str, frame_no: int) -> bool:
    """Whether the canary serves this frame under ``route`` (a controller's route document).

    ``route["canary"]`` is None (no canary: the champion serves everything) or holds
    ``cameras`` (served wholly by the challenger), ``share`` (that share of every other
    camera's frames, chosen by :func:`frame_share`) and ``all`` (every frame, while a promotion
    swaps the champion's replicas).
    """
    canary = (route or {}).get("canary")
    if not canary:
        return False
    if canary.get("all") or camera_id in canary.get("cameras", ()):
        return True
    share = float(canary.get("share", 0.0))
    return share > 0.0 and frame_share(camera_id, frame_no) < share


class ModelTally:
    """A camera's count of what each model version served since the route last changed."""

    def __init__(self) -> None:
        self._by_version: dict[int, list[float]] = {}

    def observe(self, version: int | None, detections: int, latency_ms: float) -> None:
        if version is None:
            return
        tally = self._by_version.setdefault(version, [0, 0, 0.0])
        tally[0] += 1
        tally[1] += detections
        tally[2] += latency_ms

    def reset(self) -> None:
        self._by_version.clear()

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{"<version>": {"frames", "detections", "latency_ms_sum"}}`` (JSON keys)."""
        return {
            str(v): {"frames": int(t[0]), "detections": int(t[1]), "latency_ms_sum": t[2]}
            for v, t in self._by_version.items()
        }


class Verdicts(Protocol):
    @property
    def judged(self) -> int: ...

    @property
    def false_positives(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ModelFigures:
    """One model version's live figures over the cameras it served."""

    version: int
    frames: int = 0
    detections: int = 0
    latency_ms_sum: float = 0.0
    judged: int = 0
    false_positives: int = 0

    @property
    def detections_per_frame(self) -> float | None:
        return self.detections / self.frames if self.frames else None

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.frames if self.frames else None

    @property
    def fp_rate(self) -> float | None:
        """Operators' false positives over their verdicts (None before any verdict)."""
        return self.false_positives / self.judged if self.judged else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "frames": self.frames,
            "detections": self.detections,
            "detections_per_frame": self.detections_per_frame,
            "mean_latency_ms": self.mean_latency_ms,
            "judged": self.judged,
            "false_positives": self.false_positives,
            "fp_rate": self.fp_rate,
        }


def collect_figures(
    camera_tallies: Iterable[Mapping[str, Mapping[str, float]]],
    verdicts: Mapping[int, Verdicts],
) -> dict[int, ModelFigures]:
    """Sums the cameras' tallies (:meth:`ModelTally.to_dict`) per version, with the verdicts.

    A malformed tally (a key that is not a version, a missing count) is skipped.
    """
    sums: dict[int, list[float]] = {}
    for tallies in camera_tallies:
        for key, tally in (tallies or {}).items():
            try:
                version = int(key)
                row = [float(tally["frames"]), float(tally["detections"])]
                row.append(float(tally["latency_ms_sum"]))
            except (KeyError, TypeError, ValueError):
                continue
            acc = sums.setdefault(version, [0.0, 0.0, 0.0])
            for i, value in enumerate(row):
                acc[i] += value
    versions = set(sums) | set(verdicts)
    out: dict[int, ModelFigures] = {}
    for version in sorted(versions):
        frames, detections, latency = sums.get(version, [0.0, 0.0, 0.0])
        counted = verdicts.get(version)
        out[version] = ModelFigures(
            version,
            frames=int(frames),
            detections=int(detections),
            latency_ms_sum=latency,
            judged=counted.judged if counted else 0,
            false_positives=counted.false_positives if counted else 0,
        )
    return out


def guard_reasons(
    champion: ModelFigures | None, challenger: ModelFigures | None, guard: CanaryGuardSettings
) -> list[str]:
    """Why the challenger must be rolled back (empty: it may go on).

    Each figure is compared only once both models have enough of it: ``min_frames`` served
    frames for detections per frame and latency, ``min_judged`` verdicts for the operators'
    false-positive rate. A champion that detected nothing makes any detections of the
    challenger a trip only past ``detections_ratio_max`` detections per frame.
    """
    if champion is None or challenger is None or not guard.enabled:
        return []
    reasons: list[str] = []
    if champion.frames >= guard.min_frames and challenger.frames >= guard.min_frames:
        base = champion.detections_per_frame or 0.0
        mine = challenger.detections_per_frame or 0.0
        low, high = base * guard.detections_ratio_min, base * guard.detections_ratio_max
        if base > 0 and not low <= mine <= high:
            reasons.append(
                f"detections per frame {mine:.3f} outside [{low:.3f}, {high:.3f}] "
                f"(champion {base:.3f})"
            )
        elif base == 0 and mine > guard.detections_ratio_max:
            reasons.append(f"detections per frame {mine:.3f} where the champion found none")
        base_ms = champion.mean_latency_ms or 0.0
        mine_ms = challenger.mean_latency_ms or 0.0
        if base_ms > 0 and mine_ms > base_ms * guard.latency_ratio_max:
            reasons.append(
                f"mean latency {mine_ms:.1f} ms over {guard.latency_ratio_max:g}x the "
                f"champion's {base_ms:.1f} ms"
            )
    if champion.judged >= guard.min_judged and challenger.judged >= guard.min_judged:
        base_fp = champion.fp_rate or 0.0
        mine_fp = challenger.fp_rate or 0.0
        if mine_fp > base_fp + guard.fp_margin:
            reasons.append(
                f"operators' false-positive rate {mine_fp:.2f} over the champion's "
                f"{base_fp:.2f} + {guard.fp_margin:.2f}"
            )
    return reasons
