"""The evaluation gate: a challenger is deployable only if it beats the champion on every split.

The splits are the site's validation split (held out by time from the run's dataset) and a
fixed regression set (a dataset version that does not change between runs, so a model that
forgets what the old one knew is caught). "Beats" means the challenger's mAP@0.5 is at least
``margin`` above the champion's on each split, and it makes no more errors (false positives
+ misses at the serving threshold) than the champion there: a higher mAP bought with a flood
of low-score false alarms is not better for an operator. A missing split fails the gate. The
report says which split failed and by how much, and is stored as the model version's tags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sentinel.train.evaluate import EvalReport

REQUIRED_SPLITS: tuple[str, ...] = ("validation", "regression")


@dataclass(frozen=True)
class SplitVerdict:
    split: str
    challenger: float | None
    champion: float | None
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateReport:
    """Whether the challenger may be deployed, and why (one verdict per required split)."""

    passed: bool
    margin: float
    verdicts: tuple[SplitVerdict, ...]

    @property
    def reason(self) -> str:
        return "; ".join(v.reason for v in self.verdicts)

    def as_tags(self) -> dict[str, str]:
        """The report as registry/MLflow tags (strings)."""
        tags = {
            "gate.passed": "true" if self.passed else "false",
            "gate.margin": f"{self.margin:g}",
            "gate.reason": self.reason[:4000],
        }
        for v in self.verdicts:
            if v.challenger is not None:
                tags[f"gate.{v.split}.challenger_map50"] = f"{v.challenger:.4f}"
            if v.champion is not None:
                tags[f"gate.{v.split}.champion_map50"] = f"{v.champion:.4f}"
            tags[f"gate.{v.split}.passed"] = "true" if v.passed else "false"
        return tags

    def as_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "margin": self.margin,
            "reason": self.reason,
            "splits": [
                {
                    "split": v.split,
                    "challenger_map50": v.challenger,
                    "champion_map50": v.champion,
                    "passed": v.passed,
                    "reason": v.reason,
                }
                for v in self.verdicts
            ],
        }


def gate(
    challenger: Mapping[str, EvalReport],
    champion: Mapping[str, EvalReport],
    *,
    margin: float,
    splits: Sequence[str] = REQUIRED_SPLITS,
) -> GateReport:
    """Judge ``challenger`` against ``champion`` on every split in ``splits``.

    Raises:
        ValueError: If ``margin`` is negative or ``splits`` is empty.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, but got {margin}")
    if not splits:
        raise ValueError("at least one split is required")
    verdicts = []
    for split in splits:
        ch, cp = challenger.get(split), champion.get(split)
        if ch is None or cp is None:
            who = "challenger" if ch is None else "champion"
            verdicts.append(
                SplitVerdict(
                    split,
                    None if ch is None else ch.map50,
                    None if cp is None else cp.map50,
                    False,
                    f"{split}: no evaluation of the {who} (the split is missing or empty)",
                )
            )
            continue
        if ch.images == 0:
            verdicts.append(
                SplitVerdict(split, ch.map50, cp.map50, False, f"{split}: the split is empty")
            )
            continue
        delta = ch.map50 - cp.map50
        ch_errors, cp_errors = ch.errors(), cp.errors()
        passed = delta >= margin and ch_errors <= cp_errors
        verb = "beats" if delta >= margin else "does not beat"
        reason = (
            f"{split}: challenger mAP@0.5 {ch.map50:.4f} {verb} champion {cp.map50:.4f} "
            f"by the margin {margin:g} (delta {delta:+.4f})"
        )
        if ch_errors > cp_errors:
            reason += (
                f", and makes more errors (false positives + misses: {ch_errors} against "
                f"{cp_errors})"
            )
        verdicts.append(SplitVerdict(split, ch.map50, cp.map50, passed, reason))
    return GateReport(
        passed=all(v.passed for v in verdicts), margin=margin, verdicts=tuple(verdicts)
    )
