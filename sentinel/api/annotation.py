"""The annotation queue: frames to label, annotators' boxes, reviews and annotator quality.

Annotators (``annotations:write``) take items from the queue (ranked by the miner's expected
value), read the frame and its pre-labels, and submit boxes with the item ``version`` they saw
(409 when someone saved first). Boxes outside the image, degenerate or smaller than 2 px, or
with a label the model does not know are refused with 422, each naming the box and the reason.
Reviewers (``annotations:review``) accept a submission (final; it goes into datasets) or return
it to its annotator, and can turn an accepted item into a hidden gold item: the same frame,
queued again, whose submissions are scored against the accepted boxes (the reference is never
shown). ``GET /annotation/annotators`` reports each annotator's quality with the counts behind
it. Camera limits apply everywhere: an item of a hidden camera is a 404. Every change is
audited (``AuditMutations``) with the item, version and decision in the entry's detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, Security, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import AnnotationServices, Services, ServicesDep
from sentinel.api.records import RecordView
from sentinel.api.security import allowed_cameras, authorize, require_camera
from sentinel.config import CAMERA_ID_PATTERN
from sentinel.domain.annotation import LabeledBox
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import ANNOTATIONS_REVIEW, ANNOTATIONS_WRITE, Principal
from sentinel.store.annotation_repo import (
    Annotation,
    AnnotationItem,
    InvalidTransition,
    ItemNotFound,
    Review,
    StaleVersion,
)
from sentinel.store.objects import ObjectNotFound
from sentinel.train.annotations import MAX_BOXES, InvalidAnnotationError, validate_boxes
from sentinel.train.quality import annotator_quality, match_gold

router = APIRouter(prefix="/annotation", tags=["annotation"])

ItemId = Annotated[str, PathParam(max_length=64)]
Writer = Annotated[Principal, Security(authorize, scopes=[ANNOTATIONS_WRITE])]
Reviewer = Annotated[Principal, Security(authorize, scopes=[ANNOTATIONS_REVIEW])]

_NOT_FOUND = "item not found"


class BoxIn(StrictModel):
    """A box in source-image pixels."""

    label: str = Field(min_length=1, max_length=64, description="One of the model's labels.")
    x1: float = Field(allow_inf_nan=False)
    y1: float = Field(allow_inf_nan=False)
    x2: float = Field(allow_inf_nan=False)
    y2: float = Field(allow_inf_nan=False)


class BoxOut(BaseModel):
    """A box; ``score`` is the detector's confidence of a pre-label (None: a person's box)."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float | None = None


def _boxes_out(boxes: Sequence[LabeledBox]) -> list[BoxOut]:
    return [BoxOut(label=b.label, x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, score=b.score) for b in boxes]


class AnnotationIn(StrictModel):
    """The boxes of a frame, and the item ``version`` they were drawn on."""

    boxes: list[BoxIn] = Field(max_length=MAX_BOXES)
    version: int = Field(ge=0, le=2**31 - 1, description="The item's `version` when it was read.")


class ReviewIn(StrictModel):
    """Accept the item's latest annotation (final) or return it to its annotator."""

    decision: Literal["accept", "return"]
    note: str | None = Field(default=None, max_length=2000)
    version: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The version reviewed; a newer one answers 409.",
    )


class GoldIn(StrictModel):
    """Reference boxes of the gold copy; default: the item's accepted annotation."""

    boxes: list[BoxIn] | None = Field(default=None, max_length=MAX_BOXES)


class ItemPublic(RecordView):
    """A queued frame. ``gold`` is shown to reviewers only (None for annotators)."""

    record = AnnotationItem
    hidden = frozenset({"image_key", "phash", "is_gold", "gold_boxes"})
    derived = frozenset({"gold"})

    id: str
    camera_id: str
    frame_ts: datetime
    frame_index: int | None
    source: str
    width: int
    height: int
    score: float
    reasons: list[str]
    prelabels: list[BoxOut]
    status: str
    version: int
    assignee: str | None
    created_at: datetime
    updated_at: datetime
    gold: bool | None


class AnnotationPublic(RecordView):
    """One submitted version of an item's boxes."""

    record = Annotation

    item_id: str
    version: int
    annotator: str
    boxes: list[BoxOut]
    created_at: datetime


class SubmittedPublic(AnnotationPublic):
    """A stored submission and the item's status after it."""

    derived = frozenset({"status"})

    status: str


class ReviewPublic(RecordView):
    """A reviewer's decision on one annotation version."""

    record = Review

    id: str
    item_id: str
    version: int
    annotator: str
    reviewer: str
    decision: str
    note: str | None
    created_at: datetime


class ReviewedPublic(ReviewPublic):
    """A review and the item's status after it."""

    derived = frozenset({"status"})

    status: str


class ItemDetail(ItemPublic):
    """An item with its latest annotation (a gold item: the caller's own), its reviews and
    the labels the model knows (for the label picker)."""

    derived = frozenset({"gold", "annotation", "reviews", "labels"})

    annotation: AnnotationPublic | None
    reviews: list[ReviewPublic]
    labels: list[str]


class AnnotatorPublic(BaseModel):
    """An annotator's quality score and the counts behind it (see ``sentinel.train.quality``)."""

    annotator: str = Field(description="The subject (user id or apikey:<id>).")
    username: str | None
    submitted: int = Field(description="Annotation versions submitted.")
    reviewed: int = Field(description="Reviews of their work by someone else.")
    accepted: int
    returned: int
    gold_items: int = Field(description="Gold items they submitted on.")
    review_agreement: float | None = Field(description="accepted / reviewed.")
    gold_f1: float | None = Field(description="Mean F1 (IoU >= 0.5) against gold references.")
    score: float | None = Field(description="Mean of the two parts that have data.")


def annotation_services(services: Services) -> AnnotationServices:
    """The annotation stores; 404 while the learning loop is not configured."""
    if services.annotation is None:
        raise HTTPException(404, "annotation is not enabled")
    return services.annotation


async def _visible_item(item_id: str, services: Services, principal: Principal) -> AnnotationItem:
    ann = annotation_services(services)
    item = await run_in_threadpool(ann.repo.get, item_id)
    allowed = await allowed_cameras(principal, services)
    if item is None or (allowed is not None and item.camera_id not in allowed):
        raise HTTPException(404, _NOT_FOUND)
    return item


def _item_public(item: AnnotationItem, principal: Principal) -> ItemPublic:
    reviewer = principal.has(ANNOTATIONS_REVIEW)
    return ItemPublic.of_record(
        item, prelabels=_boxes_out(item.prelabels), gold=item.is_gold if reviewer else None
    )


def _annotation_public(annotation: Annotation) -> AnnotationPublic:
    return AnnotationPublic.of_record(annotation, boxes=_boxes_out(annotation.boxes))


def _checked_boxes(
    boxes: Sequence[BoxIn], item: AnnotationItem, labels: Sequence[str]
) -> list[LabeledBox]:
    """The boxes, or a FastAPI-shaped 422 naming each refused box and why."""
    try:
        return validate_boxes(
            [LabeledBox(b.label, b.x1, b.y1, b.x2, b.y2) for b in boxes],
            width=item.width,
            height=item.height,
            labels=labels,
        )
    except InvalidAnnotationError as exc:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", "boxes", r.index],
                    "msg": f"box {r.index}: {r.reason}",
                    "type": "value_error",
                }
                for r in exc.rejections
            ],
        ) from exc


def _audit(request: Request, **detail: Any) -> None:
    request.state.audit_detail = detail


@router.get("/queue", response_model=list[ItemPublic], summary="The queue, best first")
async def queue(
    services: ServicesDep,
    principal: Writer,
    camera_id: Annotated[str | None, Query(pattern=CAMERA_ID_PATTERN)] = None,
    status: Annotated[
        Literal["queued", "submitted", "accepted", "returned"] | None, Query()
    ] = "queued",
    mine: Annotated[bool, Query(description="Only items held by the caller.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ItemPublic]:
    """Items ranked by expected value (score), of the cameras the caller may see.

    Gold items an annotator already answered are left out of their queue. `mine`: the items
    the caller submitted or that were returned to them.
    """
    ann = annotation_services(services)
    if camera_id is not None:
        await require_camera(principal, services, camera_id)
    allowed = await allowed_cameras(principal, services)
    items = await run_in_threadpool(
        lambda: ann.repo.list(
            cameras=allowed,
            camera_id=camera_id,
            status=status,
            assignee=principal.subject if mine else None,
            hide_gold_done_by=principal.subject,
            limit=limit,
            offset=offset,
        )
    )
    return [_item_public(i, principal) for i in items]


@router.get(
    "/items/{item_id}",
    response_model=ItemDetail,
    summary="An item, its pre-labels and latest annotation",
    responses={404: {"description": "Not found or not visible"}},
)
async def get_item(item_id: ItemId, services: ServicesDep, principal: Writer) -> ItemDetail:
    ann = annotation_services(services)
    item = await _visible_item(item_id, services, principal)
    if item.is_gold:  # only the caller's own answer: others' would give the reference away
        latest = await run_in_threadpool(
            lambda: ann.repo.latest(item.id, annotator=principal.subject)
        )
        reviews: list[Review] = []
    else:
        latest = await run_in_threadpool(ann.repo.latest, item.id)
        reviews = await run_in_threadpool(ann.repo.reviews, item.id)
    base = _item_public(item, principal)
    return ItemDetail.model_validate(
        {
            **base.model_dump(),
            "annotation": None if latest is None else _annotation_public(latest),
            "reviews": [ReviewPublic.of_record(r) for r in reviews],
            "labels": list(ann.labels),
        }
    )


@router.get(
    "/items/{item_id}/frame",
    response_class=Response,
    summary="The item's frame (JPEG)",
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "Not found"}},
)
async def get_frame(item_id: ItemId, services: ServicesDep, principal: Writer) -> Response:
    item = await _visible_item(item_id, services, principal)
    try:
        data = await run_in_threadpool(services.objects.get, item.image_key)
    except ObjectNotFound as exc:
        raise HTTPException(404, "the item's frame is missing") from exc
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.put(
    "/items/{item_id}/annotation",
    response_model=SubmittedPublic,
    summary="Submit the boxes of an item",
    responses={
        404: {"description": "Not found or not visible"},
        409: {"description": "Stale version, accepted item, or held by another annotator"},
        422: {"description": "A box outside the image, degenerate, too small or unknown label"},
    },
)
async def submit_annotation(
    item_id: ItemId,
    body: AnnotationIn,
    request: Request,
    services: ServicesDep,
    principal: Writer,
) -> SubmittedPublic:
    """Stores a new annotation version; the item becomes `submitted` (waiting for review).

    Send the item's `version` as read: if someone saved since, the answer is 409 and nothing is
    stored. A returned item goes back to its annotator: only they (or a reviewer) submit on it.
    """
    ann = annotation_services(services)
    item = await _visible_item(item_id, services, principal)
    boxes = _checked_boxes(body.boxes, item, ann.labels)
    gold: tuple[float, int, int, int] | None = None
    if item.is_gold:
        m = match_gold(boxes, item.gold_boxes or ())
        gold = (m.f1, m.matched, m.submitted, m.reference)
    try:
        saved = await run_in_threadpool(
            lambda: ann.repo.submit(
                item.id,
                boxes,
                version=body.version,
                annotator=principal.subject,
                may_take_over=principal.has(ANNOTATIONS_REVIEW),
                gold=gold,
            )
        )
    except ItemNotFound as exc:
        raise HTTPException(404, _NOT_FOUND) from exc
    except (StaleVersion, InvalidTransition) as exc:
        raise HTTPException(409, str(exc)) from exc
    detail: dict[str, Any] = {"item_id": item.id, "version": saved.version, "boxes": len(boxes)}
    if gold is not None:
        detail["gold_f1"] = f"{gold[0]:.4f}"  # a string: audit details hold no floats
    _audit(request, **detail)
    # A gold item stays queued for others; to its annotator it reads as any submission.
    return SubmittedPublic.of_record(saved, boxes=_boxes_out(saved.boxes), status="submitted")


@router.post(
    "/items/{item_id}/review",
    response_model=ReviewedPublic,
    summary="Accept or return an item's latest annotation",
    responses={
        404: {"description": "Not found or not visible"},
        409: {"description": "Not waiting for review, or a newer version than the one reviewed"},
    },
)
async def review_item(
    item_id: ItemId,
    body: ReviewIn,
    request: Request,
    services: ServicesDep,
    principal: Reviewer,
) -> ReviewedPublic:
    """`accept`: final, the boxes go into the next dataset. `return`: back to its annotator,
    with the note; their next submission is reviewed again."""
    ann = annotation_services(services)
    item = await _visible_item(item_id, services, principal)
    try:
        review = await run_in_threadpool(
            lambda: ann.repo.review(
                item.id,
                decision=body.decision,
                reviewer=principal.subject,
                note=body.note,
                version=body.version,
            )
        )
    except ItemNotFound as exc:
        raise HTTPException(404, _NOT_FOUND) from exc
    except (StaleVersion, InvalidTransition) as exc:
        raise HTTPException(409, str(exc)) from exc
    _audit(request, item_id=item.id, version=review.version, decision=review.decision)
    after = "accepted" if review.decision == "accept" else "returned"
    return ReviewedPublic.of_record(review, status=after)


@router.post(
    "/items/{item_id}/gold",
    response_model=ItemPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Queue a hidden gold copy of an item",
    responses={
        404: {"description": "Not found or not visible"},
        409: {"description": "No reference: the item is not accepted, or is gold itself"},
        422: {"description": "A reference box is invalid"},
    },
)
async def make_gold(
    item_id: ItemId,
    body: GoldIn,
    request: Request,
    services: ServicesDep,
    principal: Reviewer,
) -> ItemPublic:
    """The same frame, queued again for annotators who do not know it is gold; their boxes are
    scored against the reference (`boxes`, default: the item's accepted annotation)."""
    ann = annotation_services(services)
    item = await _visible_item(item_id, services, principal)
    if body.boxes is not None:
        reference = _checked_boxes(body.boxes, item, ann.labels)
    else:
        if item.status != "accepted":
            raise HTTPException(409, "only an accepted item gives a reference; or send `boxes`")
        latest = await run_in_threadpool(ann.repo.latest, item.id)
        reference = list(latest.boxes) if latest is not None else []
    try:
        gold = await run_in_threadpool(ann.repo.add_gold, item.id, reference)
    except ItemNotFound as exc:
        raise HTTPException(404, _NOT_FOUND) from exc
    except InvalidTransition as exc:
        raise HTTPException(409, str(exc)) from exc
    _audit(request, item_id=item.id, gold_item_id=gold.id, boxes=len(reference))
    return _item_public(gold, principal)


@router.get(
    "/annotators",
    response_model=list[AnnotatorPublic],
    summary="Quality score per annotator",
)
async def annotators(services: ServicesDep, principal: Reviewer) -> list[AnnotatorPublic]:
    """Agreement with reviewers (accepted / reviewed, self-reviews aside) and with hidden gold
    items (mean F1 at IoU 0.5), combined, with the counts behind them; over the work on the
    cameras the caller may see."""
    ann = annotation_services(services)
    allowed = await allowed_cameras(principal, services)
    counts = await run_in_threadpool(lambda: ann.repo.annotator_counts(cameras=allowed))

    def username(subject: str) -> str | None:
        user = services.security.users.get(subject)
        return None if user is None else user.username

    out = []
    for c in counts:
        q = annotator_quality(
            c.annotator,
            submitted=c.submitted,
            accepted=c.accepted,
            returned=c.returned,
            gold_f1s=c.gold_f1s,
        )
        name = (
            None
            if c.annotator.startswith("apikey:")
            else await run_in_threadpool(username, c.annotator)
        )
        out.append(
            AnnotatorPublic(
                annotator=q.annotator,
                username=name,
                submitted=q.submitted,
                reviewed=q.reviewed,
                accepted=q.accepted,
                returned=q.returned,
                gold_items=q.gold_items,
                review_agreement=q.review_agreement,
                gold_f1=q.gold_f1,
                score=q.score,
            )
        )
    return out
