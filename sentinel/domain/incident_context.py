"""What the rules and the agent judge an incident by: its members' facts, as an EventContext.

The agent's interface stays the one of events (``EventContext``): an incident's labels become
``label``, its members (label, time in view, confidence, path) become ``path_summary`` lines,
the camera's recent incidents become ``recent_events``. Everything is a fact of the stored
incident and its member events, so a summary can be checked against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import tzinfo

from sentinel.domain.alerts import AlertDecision, EventContext
from sentinel.domain.incidents import Incident, dwell_s
from sentinel.domain.policy import AlertPolicy, rule_decision
from sentinel.domain.types import EventState

# Members described one per line; the rest are counted by label. A busy scene (a whole video of
# passers-by is one incident) must still fit a small model's context window (2048 tokens with
# the system prompt and the answer): the longest-seen members say the most.
MAX_MEMBER_LINES = 8


def path_summary(event: EventState) -> str:
    """Where ``event``'s object went, in frame pixels, and how big it was."""
    path = list(event.path)
    box = event.box
    size = f"size about {box.width:.0f}x{box.height:.0f} px"
    if len(path) < 2:
        return f"stayed in one place; {size}"
    (x0, y0), (x1, y1) = path[0], path[-1]
    moved = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
    return (
        f"first seen around pixel ({x0:.0f}, {y0:.0f}), last seen around ({x1:.0f}, {y1:.0f}), "
        f"moved {moved:.0f} px; {size}"
    )


def member_line(event: EventState, tz: tzinfo) -> str:
    """One member of an incident as the agent reads it."""
    start = event.started_at.astimezone(tz)
    until = (
        "still in view"
        if event.ended_at is None
        else f"until {event.ended_at.astimezone(tz):%H:%M:%S}"
    )
    return (
        f"{event.label} from {start:%H:%M:%S} {until}, in view {dwell_s(event):.0f} s, "
        f"confidence {event.score:.2f}: {path_summary(event)}"
    )


def incident_line(incident: Incident, tz: tzinfo) -> str:
    """One past incident, for the camera's recent history."""
    end = incident.ended_at or incident.last_seen_at
    length = (end - incident.started_at).total_seconds()
    return (
        f"{incident.started_at.astimezone(tz):%H:%M:%S} {', '.join(incident.labels)} "
        f"({len(incident.members)} object(s), {length:.0f} s)"
    )


def _ordered(incident: Incident, members: Sequence[EventState]) -> list[EventState]:
    by_id = {m.id: m for m in members}
    return [by_id[i] for i in incident.members if i in by_id]


def _zones_line(incident: Incident) -> str:
    if not incident.zones:
        return ""
    return "\n- zones entered: " + ", ".join(incident.zones)


def members_summary(members: Sequence[EventState], tz: tzinfo) -> str:
    """One line per member, at most ``MAX_MEMBER_LINES`` (the longest in view, in incident
    order), then one line counting the others by label."""
    keep = sorted(members, key=lambda m: (-dwell_s(m), -m.score))[:MAX_MEMBER_LINES]
    kept = {m.id for m in keep}
    lines = [f"- {member_line(m, tz)}" for m in members if m.id in kept]
    rest: dict[str, int] = {}
    for m in members:
        if m.id not in kept:
            rest[m.label] = rest.get(m.label, 0) + 1
    if rest:
        counted = ", ".join(f"{n} {label}" for label, n in sorted(rest.items()))
        lines.append(f"- and {sum(rest.values())} more, each in view for less time: {counted}")
    return "\n".join(lines)


def incident_context(
    incident: Incident,
    members: Sequence[EventState],
    *,
    event_id: str,
    camera_name: str,
    camera_description: str,
    tz: tzinfo,
    site_notes: str = "",
    recent: Sequence[Incident] = (),
) -> EventContext:
    """The grounded facts about an incident, in the agent's context shape.

    Args:
        incident: The incident.
        members: Its member events' states (others are ignored; order follows the incident).
        event_id: The member event the incident's alert belongs to.
        camera_name: The camera's display name.
        camera_description: What the camera sees.
        tz: The site's time zone.
        site_notes: What the agent should know about the site.
        recent: The camera's recent incidents before this one (this one is left out).

    Raises:
        ValueError: If none of ``members`` belongs to the incident.
    """
    ordered = _ordered(incident, members)
    if not ordered:
        raise ValueError(f"incident {incident.id} has none of its members among {len(members)}")
    end = incident.ended_at or incident.last_seen_at
    local = incident.started_at.astimezone(tz)
    return EventContext(
        event_id=event_id,
        camera_id=incident.camera_id,
        camera_name=camera_name,
        camera_description=camera_description,
        label=", ".join(incident.labels),
        score=max(m.score for m in ordered),
        started_at=incident.started_at,
        last_seen_at=incident.last_seen_at,
        ended_at=incident.ended_at,
        local_time=local.strftime("%A %H:%M %Z"),
        dwell_s=max(0.0, (end - incident.started_at).total_seconds()),
        path_summary=members_summary(ordered, tz) + _zones_line(incident),
        recent_events=tuple(incident_line(r, tz) for r in recent if r.id != incident.id),
        site_notes=site_notes,
        incident_id=incident.id,
    )


def incident_rule_decision(
    policy: AlertPolicy,
    incident: Incident,
    members: Sequence[EventState],
    *,
    camera_name: str,
    tz: tzinfo,
) -> tuple[str, AlertDecision] | None:
    """Decide an incident by rules alone: the first member the policy alerts on decides.

    Each member is judged as an event (its label, its dwell, the local hour it appeared), in
    the order members joined; the decision's summary then describes the whole incident.

    Returns:
        ``(member event id, decision)``, or None while no member is alert-worthy.
    """
    ordered = _ordered(incident, members)
    for member in ordered:
        local = member.started_at.astimezone(tz)
        ctx = EventContext(
            event_id=member.id,
            camera_id=member.camera_id,
            camera_name=camera_name,
            camera_description="",
            label=member.label,
            score=member.score,
            started_at=member.started_at,
            last_seen_at=member.last_seen_at,
            ended_at=member.ended_at,
            local_time=local.isoformat(),
            dwell_s=dwell_s(member),
            path_summary="",
        )
        decision = rule_decision(policy, ctx, local.hour)
        if decision is None:
            continue
        others = len(ordered) - 1
        summary = decision.summary
        if others:
            summary += f" The incident has {len(ordered)} objects ({', '.join(incident.labels)})."
        return member.id, replace(decision, summary=summary)
    return None
