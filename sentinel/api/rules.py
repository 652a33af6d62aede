"""Alert rule routes: list, create, read, edit (versioned), delete, dry-run; the arming mode.

Reading rules needs ``alerts:read``; writing them needs ``admin``. Camera limits hold as
everywhere (see ``gateway/roles.py``): a camera-limited principal sees the rules that apply to
its cameras (rules for every camera included), with the camera list cut down to its own, and
gets 404 for any other rule; it may write only rules whose cameras are all its own (a rule for
every camera would act on cameras it cannot see: 403). The arming mode is one for the whole
site, so setting it is refused to camera-limited principals.

Every change is audited by the ``AuditMutations`` middleware; the routes add the rule version
written or the mode set to the entry's detail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.security import allowed_cameras, authorize, authorize_every_camera
from sentinel.domain.alerts import Severity
from sentinel.domain.rule_model import (
    ARMED_MODES,
    ArmingMode,
    Conditions,
    Rule,
    RuleAction,
    Schedule,
    never_matches,
    new_rule_id,
    unknown_zones,
)
from sentinel.domain.rules import RuleSet, describe_event, diagnose
from sentinel.domain.scene import CrossDirection, SceneEvent, SceneEventKind
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import ADMIN, ALERTS_READ, EVENTS_READ, Principal
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.repo import StoredEvent
from sentinel.store.rule_repo import ArmingState, RuleConflict, RuleRepository, StoredRule

router = APIRouter(tags=["rules"])

RuleId = Annotated[str, Path(max_length=64)]
Reader = Annotated[Principal, Security(authorize, scopes=[ALERTS_READ])]
Tester = Annotated[Principal, Security(authorize, scopes=[ALERTS_READ, EVENTS_READ])]
Admin = Annotated[Principal, Security(authorize, scopes=[ADMIN])]
SiteAdmin = Annotated[Principal, Security(authorize_every_camera, scopes=[ADMIN])]


class RuleIn(StrictModel):
    """A rule as written by an operator (the server assigns its id and version)."""

    name: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    cameras: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=256, description="Camera ids; empty = every camera."
    )
    severity: Severity = Severity.MEDIUM
    conditions: Conditions = Field(default_factory=Conditions)
    schedule: Schedule | None = Field(None, description="When it applies; null = always.")
    modes: list[ArmingMode] = Field(
        default_factory=lambda: sorted(ARMED_MODES), max_length=4, description="Arming modes."
    )
    cooldown_s: float = Field(60.0, ge=0, le=86400, description="Quiet time per object.")
    actions: list[RuleAction] = Field(
        default_factory=lambda: [RuleAction.ALERT], min_length=1, max_length=8
    )

    def to_rule(self, rule_id: str, version: int = 1) -> Rule:
        """The domain rule; what the rule model refuses beyond this schema is a 422."""
        try:
            return Rule(id=rule_id, version=version, **self.model_dump())
        except ValidationError as exc:
            raise RequestValidationError(
                [
                    {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors()
                ]
            ) from exc


class RuleUpdate(RuleIn):
    version: int = Field(
        ge=1, le=2**31 - 1, description="The version being edited (409 if it is not current)."
    )


class RulePublic(BaseModel):
    id: str
    name: str
    enabled: bool
    cameras: list[str] = Field(description="Empty = every camera (cut to yours if limited).")
    severity: Severity
    conditions: Conditions
    schedule: Schedule | None
    modes: list[ArmingMode]
    cooldown_s: float
    actions: list[RuleAction]
    version: int
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(
        cls, rule: Rule, allowed: set[str] | None, stored: StoredRule | None = None
    ) -> RulePublic:
        cams = [c for c in rule.cameras if allowed is None or c in allowed]
        return cls(
            **{**rule.model_dump(), "cameras": cams},
            created_at=stored.created_at if stored else None,
            updated_at=stored.updated_at if stored else None,
        )


class RuleVersionPublic(BaseModel):
    version: int
    changed_by: str
    at: datetime
    rule: RulePublic


class ArmingPublic(BaseModel):
    mode: ArmingMode
    revision: int = Field(description="Grows with every change of a rule or of the mode.")
    changed_by: str | None
    at: datetime | None

    @classmethod
    def of(cls, state: ArmingState) -> ArmingPublic:
        return cls(
            mode=state.mode, revision=state.revision, changed_by=state.changed_by, at=state.at
        )


class ArmingIn(StrictModel):
    mode: ArmingMode


class SceneEventIn(StrictModel):
    """A scene event to try a rule on."""

    kind: SceneEventKind
    camera_id: str = Field(min_length=1, max_length=64)
    track_id: int = 0
    label: str = Field(min_length=1, max_length=64)
    score: float = Field(ge=0, le=1)
    at: datetime = Field(description="With a timezone offset.")
    zone: str | None = Field(None, max_length=64)
    line: str | None = Field(None, max_length=64)
    direction: CrossDirection | None = None
    dwell_s: float = Field(0.0, ge=0)
    count: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _aware(self) -> SceneEventIn:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("at must carry a timezone offset")
        return self

    def to_event(self) -> SceneEvent:
        return SceneEvent(
            self.kind,
            self.camera_id,
            self.track_id,
            None,
            self.label,
            self.score,
            self.at,
            self.zone,
            self.line,
            self.direction,
            self.dwell_s,
            self.count,
        )


class DryRun(StrictModel):
    """Exactly one of ``event``, ``event_id`` or ``incident_id``."""

    event: SceneEventIn | None = None
    event_id: str | None = Field(None, max_length=64)
    incident_id: str | None = Field(None, max_length=64)
    mode: ArmingMode | None = Field(None, description="Arming mode to assume; null = current.")

    @model_validator(mode="after")
    def _one(self) -> DryRun:
        given = [x for x in (self.event, self.event_id, self.incident_id) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of event, event_id or incident_id")
        return self


class ReasonPublic(BaseModel):
    condition: str
    ok: bool
    detail: str


class TriedEvent(BaseModel):
    event: str = Field(description="The scene event, in words")
    kind: SceneEventKind
    camera_id: str
    label: str
    at: datetime
    zone: str | None
    matched: bool
    explanation: str | None = Field(description="What the alert would say, when matched")
    reasons: list[ReasonPublic]


class DryRunResult(BaseModel):
    matched: bool = Field(description="Whether the rule matches any of the scene events")
    mode: ArmingMode
    events: list[TriedEvent]
    note: str | None = Field(None, description="How stored events became scene events")


def _repo(services: Services) -> RuleRepository:
    return RuleRepository(services.engine)


def _visible(rule: Rule, allowed: set[str] | None) -> bool:
    return allowed is None or not rule.cameras or bool(allowed & set(rule.cameras))


def _check_writable(rule: Rule, allowed: set[str] | None) -> None:
    if allowed is None:
        return
    if not rule.cameras:
        raise HTTPException(403, "a rule for every camera needs access to every camera")
    if not set(rule.cameras) <= allowed:
        raise HTTPException(403, "the rule names cameras outside your access")


def _names(items: Any) -> set[str]:
    names = set()
    for item in items or []:
        name = (
            item
            if isinstance(item, str)
            else (item.get("name") if isinstance(item, Mapping) else getattr(item, "name", None))
        )
        if isinstance(name, str):
            names.add(name)
    return names


def camera_problems(rule: Rule, cameras: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Unknown cameras, and zone or line names the rule's cameras do not define (``cameras``:
    every camera's id and config)."""
    configs = dict(cameras)
    unknown = sorted(set(rule.cameras) - set(configs))
    if unknown:
        return [f"unknown camera {c!r}" for c in unknown]
    if rule.conditions.zone is None and rule.conditions.line is None:
        return []
    if not rule.cameras:  # every camera: the names must exist on at least one
        zones = set().union(*(_names(c.get("zones")) for c in configs.values()))
        lines = set().union(*(_names(c.get("lines")) for c in configs.values()))
        return unknown_zones(rule, zones, lines)
    per_camera = {
        cid: unknown_zones(
            rule, _names(configs[cid].get("zones")), _names(configs[cid].get("lines"))
        )
        for cid in rule.cameras
    }
    return [f"camera {cid!r}: {p}" for cid, problems in per_camera.items() for p in problems]


async def _validate(rule: Rule, services: Services) -> None:
    reason = never_matches(rule)
    if reason is not None:
        raise _unprocessable([f"the rule would never match: {reason}"])
    problems = camera_problems(rule, await run_in_threadpool(services.cameras.list))
    if problems:
        raise _unprocessable(problems)


def _unprocessable(problems: list[str]) -> RequestValidationError:
    """A 422 shaped like FastAPI's own (a list of ``loc``/``msg``/``type``), as documented."""
    return RequestValidationError(
        [{"loc": ("body",), "msg": problem, "type": "value_error"} for problem in problems]
    )


async def _require_rule(
    rule_id: str, services: Services, principal: Principal
) -> tuple[StoredRule, set[str] | None]:
    stored = await run_in_threadpool(_repo(services).get, rule_id)
    allowed = await allowed_cameras(principal, services)
    if stored is None or not _visible(stored.rule, allowed):
        raise HTTPException(404, "rule not found")
    return stored, allowed


def _audit(request: Request, **detail: Any) -> None:
    request.state.audit_detail = detail


@router.get("/rules", response_model=list[RulePublic], summary="Alert rules, by name")
async def list_rules(services: ServicesDep, principal: Reader) -> list[RulePublic]:
    allowed = await allowed_cameras(principal, services)
    stored = await run_in_threadpool(
        _repo(services).list, camera_ids=None if allowed is None else sorted(allowed)
    )
    return [RulePublic.of(s.rule, allowed, s) for s in stored]


@router.post("/rules", response_model=RulePublic, status_code=201, summary="Create a rule")
async def create_rule(
    body: RuleIn, request: Request, services: ServicesDep, principal: Admin
) -> RulePublic:
    """422 with the reason when the rule could never match or names an unknown camera, zone
    or line."""
    rule = body.to_rule(new_rule_id())
    allowed = await allowed_cameras(principal, services)
    _check_writable(rule, allowed)
    await _validate(rule, services)
    created = await run_in_threadpool(_repo(services).create, rule, principal.subject)
    _audit(request, rule_id=created.id, version=created.version)
    stored = await run_in_threadpool(_repo(services).get, created.id)
    return RulePublic.of(created, allowed, stored)


@router.get("/rules/{rule_id}", response_model=RulePublic, summary="One rule")
async def get_rule(rule_id: RuleId, services: ServicesDep, principal: Reader) -> RulePublic:
    stored, allowed = await _require_rule(rule_id, services, principal)
    return RulePublic.of(stored.rule, allowed, stored)


@router.put("/rules/{rule_id}", response_model=RulePublic, summary="Edit a rule")
async def update_rule(
    rule_id: RuleId, body: RuleUpdate, request: Request, services: ServicesDep, principal: Admin
) -> RulePublic:
    """``version`` must be the rule's current version (409 otherwise: someone else edited it);
    the edit is stored as the next version."""
    stored, allowed = await _require_rule(rule_id, services, principal)
    _check_writable(stored.rule, allowed)
    rule = RuleIn(**body.model_dump(exclude={"version"})).to_rule(rule_id, body.version)
    _check_writable(rule, allowed)
    await _validate(rule, services)
    try:
        updated = await run_in_threadpool(
            _repo(services).update, rule, body.version, principal.subject
        )
    except RuleConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except LookupError as exc:
        raise HTTPException(404, "rule not found") from exc
    _audit(request, rule_id=rule_id, version=updated.version)
    return RulePublic.of(updated, allowed, await run_in_threadpool(_repo(services).get, rule_id))


@router.delete(
    "/rules/{rule_id}", status_code=204, response_class=Response, summary="Delete a rule"
)
async def delete_rule(
    rule_id: RuleId, request: Request, services: ServicesDep, principal: Admin
) -> Response:
    """Soft delete: the rule stops matching; its versions stay readable to admins."""
    stored, allowed = await _require_rule(rule_id, services, principal)
    _check_writable(stored.rule, allowed)
    try:
        await run_in_threadpool(_repo(services).delete, rule_id, stored.rule.version)
    except RuleConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except LookupError as exc:
        raise HTTPException(404, "rule not found") from exc
    _audit(request, rule_id=rule_id, version=stored.rule.version)
    return Response(status_code=204)


@router.get(
    "/rules/{rule_id}/versions",
    response_model=list[RuleVersionPublic],
    summary="Every version of a rule, oldest first",
)
async def rule_versions(
    rule_id: RuleId, services: ServicesDep, principal: Reader
) -> list[RuleVersionPublic]:
    _, allowed = await _require_rule(rule_id, services, principal)
    versions = await run_in_threadpool(_repo(services).versions, rule_id)
    return [
        RuleVersionPublic(
            version=v.rule.version,
            changed_by=v.changed_by,
            at=v.at,
            rule=RulePublic.of(v.rule, allowed),
        )
        for v in versions
        if _visible(v.rule, allowed)
    ]


def _stored_scene_events(ev: StoredEvent, zones: Iterable[str] = ()) -> list[SceneEvent]:
    """A stored event as the scene events it stood for: seen (at its best frame, in view
    for its whole duration), and entering each zone given (an incident's zones)."""
    dwell = max(0.0, ((ev.ended_at or ev.last_seen_at) - ev.started_at).total_seconds())
    seen = SceneEvent(
        SceneEventKind.SEEN, ev.camera_id, ev.track_id, ev.id, ev.label, ev.score, ev.best_at
    )
    out = [seen]
    for zone in zones:
        out.append(
            SceneEvent(
                SceneEventKind.ENTER,
                ev.camera_id,
                ev.track_id,
                ev.id,
                ev.label,
                ev.score,
                ev.started_at,
                zone=zone,
            )
        )
        out.append(
            SceneEvent(
                SceneEventKind.DWELL,
                ev.camera_id,
                ev.track_id,
                ev.id,
                ev.label,
                ev.score,
                ev.started_at + timedelta(seconds=dwell),
                zone=zone,
                dwell_s=dwell,
            )
        )
    return out


async def _events_of(
    body: DryRun, services: Services, principal: Principal
) -> tuple[list[SceneEvent], str | None]:
    allowed = await allowed_cameras(principal, services)
    if body.event is not None:
        if allowed is not None and body.event.camera_id not in allowed:
            raise HTTPException(404, "camera not found")
        return [body.event.to_event()], None
    if body.event_id is not None:
        ev = await run_in_threadpool(services.events.get, body.event_id)
        if ev is None or (allowed is not None and ev.camera_id not in allowed):
            raise HTTPException(404, "event not found")
        return _stored_scene_events(ev), "a stored event is tried as one seen event"
    assert body.incident_id is not None
    inc = await run_in_threadpool(IncidentRepository(services.engine).get, body.incident_id)
    if inc is None or (allowed is not None and inc.camera_id not in allowed):
        raise HTTPException(404, "incident not found")
    members = await run_in_threadpool(
        lambda: [e for e in (services.events.get(m) for m in inc.members) if e is not None]
    )
    events = [s for ev in members for s in _stored_scene_events(ev, inc.zones)]
    note = "each member is tried as a seen event"
    if inc.zones:
        note += ", and as entering and dwelling in each of the incident's zones for its duration"
    return events, note


@router.post("/rules/{rule_id}/test", response_model=DryRunResult, summary="Dry-run a rule")
async def test_rule(
    rule_id: RuleId, body: DryRun, services: ServicesDep, principal: Tester
) -> DryRunResult:
    """Whether the rule matches a scene event, or a stored event or incident (turned into the
    seen, enter and dwell events it stood for), with every condition's verdict. Nothing is
    stored and no cooldown applies."""
    stored, _ = await _require_rule(rule_id, services, principal)
    events, note = await _events_of(body, services, principal)
    mode = body.mode or (await run_in_threadpool(_repo(services).arming)).mode
    rule = stored.rule
    tried = []
    for ev in events:
        d = diagnose(rule, ev, mode)
        matches = RuleSet([rule.model_copy(update={"cooldown_s": 0})], mode).evaluate([ev])
        tried.append(
            TriedEvent(
                event=describe_event(ev),
                kind=ev.kind,
                camera_id=ev.camera_id,
                label=ev.label,
                at=ev.at,
                zone=ev.zone,
                matched=d.matched,
                explanation=matches[0].explanation() if matches else None,
                reasons=[ReasonPublic(**r.to_dict()) for r in d.reasons],
            )
        )
    return DryRunResult(matched=any(t.matched for t in tried), mode=mode, events=tried, note=note)


@router.get("/arming", response_model=ArmingPublic, summary="The arming mode")
async def get_arming(services: ServicesDep, principal: Reader) -> ArmingPublic:
    return ArmingPublic.of(await run_in_threadpool(_repo(services).arming))


@router.post("/arming", response_model=ArmingPublic, summary="Set the arming mode")
async def set_arming(
    body: ArmingIn, request: Request, services: ServicesDep, principal: SiteAdmin
) -> ArmingPublic:
    """One mode for the whole site: refused (403) to camera-limited principals."""
    state = await run_in_threadpool(_repo(services).set_arming, body.mode, principal.subject)
    _audit(request, mode=state.mode.value, revision=state.revision)
    return ArmingPublic.of(state)
