"""Response models of the HTTP API (table rows never leave through a route as they are)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from sentinel.api.records import RecordView
from sentinel.config import (
    CameraConfig,
    CameraPlacement,
    LineConfig,
    MaskConfig,
    ObjectMaskConfig,
    ZoneConfig,
)
from sentinel.domain.sources import redact_source
from sentinel.store.repo import StoredEvent


class EventPublic(RecordView):
    record = StoredEvent
    hidden = frozenset({"hits", "path", "snapshot_key", "updated_at"})
    derived = frozenset({"snapshot_url"})

    id: str
    camera_id: str
    label: str
    score: float = Field(description="Best detection score over the event.")
    track_id: int
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while the object is still tracked.")
    last_seen_at: datetime
    box: list[float] = Field(description="[x1, y1, x2, y2] of the best frame, in pixels.")
    best_at: datetime
    zones: list[str] = Field(description="The camera's zones it was in, in order first entered.")
    model_version: int | None = Field(
        None, description="The detector's registry version that found it (null: unknown)."
    )
    snapshot_url: str | None

    @classmethod
    def of(cls, ev: StoredEvent) -> EventPublic:
        return cls.of_record(
            ev,
            score=round(ev.score, 4),
            box=[round(v, 1) for v in ev.box.as_list()],
            snapshot_url=f"/api/v1/events/{ev.id}/snapshot.jpg" if ev.snapshot_key else None,
        )


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class CameraNodePublic(BaseModel):
    node_id: str = Field(description="The Ray node id the camera's actor runs on.")
    ip: str
    labels: dict[str, str] = Field(default_factory=dict, description="The node's Ray labels.")


class CameraStatusPublic(BaseModel):
    state: str = Field(
        description="starting, running, reconnecting, finished, failed, stopped, unschedulable "
        "(no alive node meets its placement: last_error says which)"
    )
    last_error: str | None = None
    restarts: int = 0
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    counters: dict[str, int] = Field(default_factory=dict)
    recording: dict[str, Any] | None = Field(
        None, description="mode, state (recording, storage_full, ...), transcoded, segments"
    )
    node: CameraNodePublic | None = Field(None, description="Where it runs; null: not running.")

    @classmethod
    def of(cls, status: dict[str, Any] | None) -> CameraStatusPublic:
        if status is None:
            return cls(state="starting")
        return cls(
            state=status.get("state", "starting"),
            last_error=status.get("last_error"),
            restarts=status.get("restarts", 0),
            codec=status.get("codec"),
            width=status.get("width"),
            height=status.get("height"),
            fps=status.get("fps"),
            counters=status.get("counters", {}),
            recording=status.get("recording"),
            node=CameraNodePublic(**status["node"]) if status.get("node") else None,
        )


class CameraPublic(BaseModel):
    id: str
    name: str | None
    source: str = Field(description="The source URL with any password redacted.")
    detect_fps: float
    realtime: bool
    enabled: bool
    detect: bool
    labels: list[str] | None
    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)
    motion_masks: list[MaskConfig] = Field(default_factory=list)
    object_masks: list[ObjectMaskConfig] = Field(default_factory=list)
    placement: CameraPlacement = Field(default_factory=CameraPlacement)
    status: CameraStatusPublic

    @classmethod
    def of(cls, cfg: CameraConfig, status: dict[str, Any] | None) -> CameraPublic:
        return cls(
            id=cfg.id,
            name=cfg.name,
            source=redact_source(cfg.source),
            detect_fps=cfg.detect_fps,
            realtime=cfg.realtime,
            enabled=cfg.enabled,
            detect=cfg.detect,
            labels=cfg.labels,
            zones=cfg.zones,
            lines=cfg.lines,
            motion_masks=cfg.motion_masks,
            object_masks=cfg.object_masks,
            placement=cfg.placement,
            status=CameraStatusPublic.of(status),
        )


class HealthReport(BaseModel):
    status: str = Field(description="`ok` when alive; see `ready` for readiness.")
    ready: bool
    database: str
    detector: str
    cameras: dict[str, str]
    search_backlog: int | None = Field(
        None, description="Items waiting to be indexed for search; null when search is off."
    )
