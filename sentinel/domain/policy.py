"""Rule-based alerting: the decision that needs no model, and the fallback when models fail."""

from __future__ import annotations

from dataclasses import dataclass

from sentinel.domain.alerts import AlertDecision, DecidedBy, EventContext, Severity

REVIEW_ACTION = "Review the clip."


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """When an event is alert-worthy by rules alone.

    Attributes:
        labels: Detector labels that may alert (exact match).
        armed_hours: Local-hour ranges ``[start, end)`` when the policy is armed; a range with
            ``start > end`` wraps midnight, e.g. ``((22, 6),)`` is 22:00 to 06:00. ``None``
            means always armed.
        min_dwell_s: Seconds the object must have been in view before it alerts.
        severity: Severity of rule alerts.
    """

    labels: frozenset[str] = frozenset({"person"})
    armed_hours: tuple[tuple[int, int], ...] | None = None
    min_dwell_s: float = 0.0
    severity: Severity = Severity.MEDIUM

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("labels must name at least one label, but got an empty set")
        if not self.min_dwell_s >= 0.0:  # also rejects NaN
            raise ValueError(f"min_dwell_s must be >= 0, but got {self.min_dwell_s}")
        if self.armed_hours is not None:
            if not self.armed_hours:
                raise ValueError("armed_hours must hold at least one range, or be None")
            for start, end in self.armed_hours:
                if not (0 <= start <= 23 and 0 <= end <= 24 and start != end):
                    raise ValueError(
                        "each armed_hours range must be (start, end) with 0 <= start <= 23, "
                        f"0 <= end <= 24 and start != end, but got ({start}, {end})"
                    )

    def armed_range(self, local_hour: int) -> tuple[int, int] | None:
        """Returns the armed range containing ``local_hour``, or None when disarmed.

        Always-armed policies return ``(0, 24)``.

        Raises:
            ValueError: If ``local_hour`` is not in 0..23.
        """
        if not 0 <= local_hour <= 23:
            raise ValueError(f"local_hour must be in 0..23, but got {local_hour}")
        if self.armed_hours is None:
            return (0, 24)
        for start, end in self.armed_hours:
            inside = (
                start <= local_hour < end
                if start < end
                else local_hour >= start or local_hour < end
            )
            if inside:
                return (start, end)
        return None


def rule_decision(policy: AlertPolicy, ctx: EventContext, local_hour: int) -> AlertDecision | None:
    """Decides an event by rules alone.

    Args:
        policy: The camera's alert policy.
        ctx: Grounded facts about the event.
        local_hour: Hour of day (0..23) at the camera's site.

    Returns:
        None when the event is not (yet) alert-worthy: its label is not listed, the policy is
        disarmed at ``local_hour``, or it has been in view for less than ``min_dwell_s``
        (it may qualify later). Otherwise an alert decided by rules, whose reasons list each
        rule that fired.

    Raises:
        ValueError: If ``local_hour`` is not in 0..23.
    """
    armed = policy.armed_range(local_hour)
    if ctx.label not in policy.labels or armed is None or ctx.dwell_s < policy.min_dwell_s:
        return None
    reasons = [f"label {ctx.label!r} is one of the alert labels"]
    if policy.armed_hours is None:
        reasons.append("the camera is always armed")
    else:
        reasons.append(
            f"local hour {local_hour:02d} is within armed hours {armed[0]:02d}:00-{armed[1]:02d}:00"
        )
    if policy.min_dwell_s > 0:
        reasons.append(
            f"in view for {ctx.dwell_s:.0f} s, at least the {policy.min_dwell_s:g} s minimum"
        )
    summary = (
        f"{ctx.label.capitalize()} detected on camera {ctx.camera_name} at {ctx.local_time} "
        f"(confidence {ctx.score:.2f}), in view for {ctx.dwell_s:.0f} s."
    )
    return AlertDecision(
        alert=True,
        severity=policy.severity,
        summary=summary,
        reasons=tuple(reasons),
        recommended_action=REVIEW_ACTION,
        decided_by=DecidedBy.RULES,
    )
