"""Configuration: process settings (env / YAML) and the operator-facing camera config.

Process settings come from ``SENTINEL_*`` environment variables and an optional YAML file; every
field has an embedded default so ``sentinel demo`` needs no setup. Camera configs are strict
pydantic models (``extra="forbid"``) shared by the YAML file and ``POST /api/v1/cameras``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sentinel.domain.events import EventConfig
from sentinel.domain.geometry import polygon_problem
from sentinel.domain.incidents import IncidentConfig
from sentinel.domain.masks import ObjectMask
from sentinel.domain.motion import MotionConfig
from sentinel.domain.pipeline import PipelineConfig
from sentinel.domain.regions import RegionConfig
from sentinel.domain.scene import CrossDirection
from sentinel.domain.sources import SourceKind, classify_source
from sentinel.domain.strict import StrictModel, TimeZoneName
from sentinel.domain.tracking import StationaryConfig, TrackerConfig
from sentinel.domain.zones import Line, Zone
from sentinel.store.audit_anchors import AuditAnchorSettings
from sentinel.store.s3 import ObjectStoreSettings

CAMERA_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# Zone and line names: what rules refer to them by.
SCENE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_POLYGON_POINTS = 64
MAX_SCENE_ITEMS = 32  # zones, lines, motion masks and object masks, each


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sentinel"


class MotionSettings(StrictModel):
    enabled: bool = Field(True, description="Skip the detector when nothing moves or is tracked.")
    threshold: float = Field(
        0.003, ge=0.0, le=1.0, description="Fraction of changed pixels that counts as motion."
    )
    pixel_delta: int = Field(18, ge=1, le=255, description="Gray-level change of one pixel.")
    max_idle_s: float = Field(
        10.0, gt=0, le=3600, description="Run the detector at least this often anyway."
    )


class RegionSettings(StrictModel):
    """Motion regions: detect on a few square crops around motion and tracks, not the frame."""

    enabled: bool = Field(
        True, description="Detect on regions around motion and tracked objects when cheaper."
    )
    input_sizes: list[Annotated[int, Field(ge=32, le=2048, multiple_of=32)]] = Field(
        default_factory=lambda: [256],
        min_length=1,
        max_length=4,
        description="Model input sides of the regions (native resolution when one fits).",
    )
    max_regions: int = Field(4, ge=1, le=16, description="More regions: merged or whole frame.")
    track_margin: float = Field(
        0.15, ge=0, le=2, description="Margin around tracked objects (fraction of their size)."
    )
    lookahead_s: float = Field(
        0.3, ge=0, le=5, description="Extend tracked boxes along their motion this far."
    )
    min_blob_px: int = Field(2, ge=1, le=10000, description="Smaller motion blobs are noise.")
    full_frame_motion: float = Field(
        0.25, gt=0, le=1, description="Changed fraction of the frame that sends it whole."
    )
    max_cost: float = Field(
        0.8, gt=0, le=1, description="Regions costing this fraction of the frame: send it whole."
    )
    full_frame_every_s: float = Field(
        10.0, ge=0, le=3600, description="Send the whole frame at least this often (0: never)."
    )

    @field_validator("input_sizes")
    @classmethod
    def _distinct_sizes(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"input_sizes must be distinct, but got {value}")
        return value

    def region_config(self, full_size: int = 640) -> RegionConfig:
        """The planner's view of these settings (``full_size``: the detector's input size)."""
        return RegionConfig(
            enabled=self.enabled,
            input_sizes=tuple(self.input_sizes),
            full_size=full_size,
            track_margin=self.track_margin,
            lookahead_s=self.lookahead_s,
            min_blob_px=self.min_blob_px,
            max_regions=self.max_regions,
            full_frame_motion=self.full_frame_motion,
            max_cost=self.max_cost,
            full_frame_every_s=self.full_frame_every_s,
        )


class TrackerSettings(StrictModel):
    high_score: float = Field(0.5, gt=0, le=1, description="Score that can start a track.")
    low_score: float = Field(0.15, gt=0, le=1, description="Lowest score that keeps a track.")
    match_iou: float = Field(0.3, gt=0, le=1, description="IoU to associate a box to a track.")
    min_hits: int = Field(3, ge=1, le=50, description="Consecutive hits that confirm a track.")

    @model_validator(mode="after")
    def _scores_ordered(self) -> TrackerSettings:
        if self.low_score > self.high_score:
            raise ValueError(
                f"low_score must be <= high_score, but got {self.low_score} > {self.high_score}"
            )
        return self


class StationarySettings(StrictModel):
    """Objects that stay put (a parked car) keep their events without a detector call per
    frame; they are re-checked on motion in their box or every ``recheck_s``."""

    enabled: bool = Field(True, description="Let still objects rest the detector.")
    after_s: float = Field(
        10.0, ge=0, le=3600, description="Seconds an object must stay put to be stationary."
    )
    min_iou: float = Field(
        0.7, gt=0, le=1, description="IoU with its settled box that still counts as not moved."
    )
    max_shift: float = Field(
        0.2, ge=0, le=10, description="Centre shift (fraction of the box's smaller side) allowed."
    )
    recheck_s: float = Field(
        20.0, gt=0, le=3600, description="Re-check stationary objects at least this often."
    )
    margin: float = Field(
        0.15, ge=0, le=2, description="Motion this close to a box (fraction of its size) wakes it."
    )
    touch_pixels: int = Field(
        3, ge=1, le=1000, description="Changed motion-mask pixels in a box that count as motion."
    )


class EventSettings(StrictModel):
    close_after_s: float = Field(
        5.0, gt=0, le=3600, description="An event ends when its object is gone this long."
    )
    rejoin_s: float = Field(3.0, ge=0, le=3600, description="A returning object rejoins.")
    stationary_rejoin_s: float = Field(
        600.0, ge=0, le=86400, description="Rejoin window for stationary objects (parked cars)."
    )


class IncidentSettings(StrictModel):
    """How this camera's overlapping events are grouped into incidents (alerts are per incident)."""

    quiet_gap_s: float = Field(
        30.0, ge=0, le=3600, description="An incident closes after this long with no activity."
    )
    max_length_s: float = Field(
        600.0, gt=0, le=86400, description="Longer incidents continue in a linked new one."
    )
    dwell_thresholds_s: list[float] = Field(
        default_factory=lambda: [30.0, 120.0],
        max_length=10,
        description="A member in view past one of these is a material change (agent re-judges).",
    )
    labels: list[str] | None = Field(
        None, max_length=80, description="Labels that may open an incident; null: every label."
    )

    def incident_config(self) -> IncidentConfig:
        """The pure grouping's view of these settings (validated again there)."""
        return IncidentConfig(
            quiet_gap_s=self.quiet_gap_s,
            max_length_s=self.max_length_s,
            dwell_thresholds_s=tuple(self.dwell_thresholds_s),
            labels=frozenset(self.labels) if self.labels is not None else None,
        )


class AlertPolicySettings(StrictModel):
    """Rule-based first decision for this camera's events (the LLM verdict follows)."""

    enabled: bool = Field(True, description="Make alerts from this camera's events.")
    labels: list[str] = Field(default_factory=lambda: ["person"], max_length=80)
    armed_hours: list[tuple[int, int]] | None = Field(
        None, description="Local [start, end) hours when armed, e.g. [[22, 6]]; null = always."
    )
    min_dwell_s: float = Field(0.0, ge=0, le=86400, description="Alert once in view this long.")
    severity: str = Field("medium", pattern="^(info|low|medium|high|critical)$")

    @field_validator("armed_hours")
    @classmethod
    def _hours(cls, value: list[tuple[int, int]] | None) -> list[tuple[int, int]] | None:
        for start, end in value or []:
            if not (0 <= start <= 23 and 0 <= end <= 24):
                raise ValueError(f"armed hours must be within 0..24, but got [{start}, {end}]")
        return value


class PrivacySettings(StrictModel):
    """A camera's privacy: faces blurred on what leaves it as pictures (issue 16).

    With ``blur_faces``, every event snapshot is stored with its faces pixelated (dlib's HOG
    face detector on the whole frame, in a writer thread off the camera's loop) and every
    export is re-encoded with faces pixelated in every frame. Recordings themselves stay as
    recorded (stream copy). A blurring camera gets no face prints (``faces.*``): its stored
    snapshots show no face to scan, and the operator asked for its faces not to be kept.
    Needs no face prints either: it works with ``faces.enabled`` off.
    """

    blur_faces: bool = Field(
        False, description="Pixelate faces on this camera's event snapshots and exports."
    )
    export_detect_every: int = Field(
        5,
        ge=1,
        le=300,
        description="Exports: look for faces every this many frames; each frame between is "
        "blurred where faces were at the detections before and after it (1: every frame, "
        "slowest).",
    )


class RecordSettings(StrictModel):
    """Recording: the camera's own packets remuxed into segments (H.264 kept as is)."""

    mode: str = Field("off", pattern="^(off|continuous|events)$")
    pre_roll_s: float = Field(5.0, ge=0, le=60, description="Seconds before an event.")
    post_roll_s: float = Field(5.0, ge=0, le=300, description="Seconds after an event.")
    segment_s: float = Field(10.0, ge=2, le=600, description="Target segment length.")
    retention_days: float | None = Field(
        None, gt=0, le=36500, description="Delete continuous footage older than this; null: keep."
    )
    event_retention_days: float | None = Field(
        None, gt=0, le=36500, description="Delete event footage older than this; null: keep."
    )
    archive_after_days: float | None = Field(
        None,
        gt=0,
        le=36500,
        description="Move footage older than this to the archive (when archive.enabled); "
        "null: archive.after_days.",
    )


Coordinate = Annotated[float, Field(ge=0.0, le=1.0)]
ScenePoint = Annotated[
    tuple[Coordinate, Coordinate],
    Field(
        description="[x, y], normalised: [0, 0] is the top-left corner, [1, 1] the bottom-right."
    ),
]
PolygonPoints = Annotated[
    list[ScenePoint],
    Field(
        min_length=3,
        max_length=MAX_POLYGON_POINTS,
        description="Vertices in order, normalised; not self-intersecting.",
    ),
]


def _valid_polygon(polygon: list[tuple[float, float]], what: str) -> None:
    problem = polygon_problem(polygon)
    if problem is not None:
        raise ValueError(f"{what}: {problem}")


class ZoneConfig(StrictModel):
    """An area of the frame: objects standing in it (bottom centre of their box) are in it."""

    name: str = Field(..., pattern=SCENE_NAME_PATTERN, description="Unique per camera.")
    polygon: PolygonPoints
    inertia: int = Field(
        3,
        ge=1,
        le=100,
        description="Consecutive analysed frames inside (outside) to enter (leave).",
    )
    labels: list[str] | None = Field(
        None, max_length=80, description="Labels the zone tracks; null: every label."
    )

    @model_validator(mode="after")
    def _polygon(self) -> ZoneConfig:
        _valid_polygon(self.polygon, f"zone {self.name!r}")
        return self


class LineConfig(StrictModel):
    """A segment objects cross; "in" is its left as drawn, looking from a towards b on screen."""

    name: str = Field(..., pattern=SCENE_NAME_PATTERN, description="Unique per camera.")
    a: ScenePoint
    b: ScenePoint
    direction: Literal["both", "in", "out"] = Field(
        "both", description="Crossings reported: towards the in side, the out side, or both."
    )

    @model_validator(mode="after")
    def _length(self) -> LineConfig:
        if math.dist(self.a, self.b) < 1e-6:
            raise ValueError(
                f"line {self.name!r}: a and b are the same point, but a line needs a length"
            )
        return self


class MaskConfig(StrictModel):
    """A motion mask: motion in this polygon does not wake the detector."""

    polygon: PolygonPoints

    @model_validator(mode="after")
    def _polygon(self) -> MaskConfig:
        _valid_polygon(self.polygon, "motion mask")
        return self


class ObjectMaskConfig(StrictModel):
    """An object mask: detections standing in this polygon are ignored."""

    polygon: PolygonPoints
    labels: list[str] | None = Field(
        None, max_length=80, description="Labels ignored here; null: every label."
    )

    @model_validator(mode="after")
    def _polygon(self) -> ObjectMaskConfig:
        _valid_polygon(self.polygon, "object mask")
        return self


class CameraScene(StrictModel):
    """A camera's zones, lines and masks: part of its config, or edited on its own through
    ``PUT /api/v1/cameras/{id}/scene``."""

    zones: list[ZoneConfig] = Field(
        default_factory=list, max_length=MAX_SCENE_ITEMS, description="Named areas for rules."
    )
    lines: list[LineConfig] = Field(
        default_factory=list, max_length=MAX_SCENE_ITEMS, description="Named lines for rules."
    )
    motion_masks: list[MaskConfig] = Field(
        default_factory=list, max_length=MAX_SCENE_ITEMS, description="Ignored by the motion gate."
    )
    object_masks: list[ObjectMaskConfig] = Field(
        default_factory=list,
        max_length=MAX_SCENE_ITEMS,
        description="Detections standing in these are ignored.",
    )

    @field_validator("zones", "lines")
    @classmethod
    def _unique_names(
        cls, items: list[ZoneConfig] | list[LineConfig]
    ) -> list[ZoneConfig] | list[LineConfig]:
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                kind = "zone" if isinstance(item, ZoneConfig) else "line"
                raise ValueError(f"{kind} names must be unique, but {item.name!r} appears twice")
            seen.add(item.name)
        return items


SCENE_FIELDS = tuple(CameraScene.model_fields)


class CameraPlacement(StrictModel):
    """Where the camera's actor may run: pinned to a site node (by label or custom resource).

    Empty: any node. A camera whose pinned node is gone is reported ``unschedulable`` with the
    reason and started when such a node comes back; it is never moved elsewhere.
    """

    labels: dict[Annotated[str, Field(min_length=1, max_length=63)], str] = Field(
        default_factory=dict,
        max_length=16,
        description="Ray node labels the node must carry (e.g. {site: gate}; `ray start "
        "--labels site=gate`).",
    )
    resources: dict[Annotated[str, Field(min_length=1, max_length=63)], float] = Field(
        default_factory=dict,
        max_length=16,
        description="Ray custom resources the actor asks for (e.g. {site_gate: 0.01}).",
    )

    @field_validator("resources")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for key, amount in value.items():
            if not (0 < amount <= 10000) or not math.isfinite(amount):
                raise ValueError(f"resource {key!r} must be in (0, 10000], but got {amount}")
        return value


class CameraConfig(CameraScene):
    """One camera, as written in the YAML file or posted to ``/api/v1/cameras``."""

    id: Annotated[str, Field(pattern=CAMERA_ID_PATTERN, description="Unique camera id.")]
    name: str | None = Field(None, max_length=200, description="Display name.")
    description: str = Field(
        "", max_length=2000, description="What the camera sees (context for the agent)."
    )
    source: str = Field(
        ..., min_length=1, max_length=2048, description="File path, rtsp:// or http(s):// URL."
    )
    detect_fps: float = Field(5.0, gt=0, le=30, description="Frames per second analysed.")
    realtime: bool = Field(
        True,
        description="Files only: true paces at the native rate and loops like a live camera; "
        "false processes as fast as possible and ends as `finished`.",
    )
    groups: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Camera groups, for access scopes (a user limited to `group:lobby`).",
    )
    enabled: bool = Field(True, description="A disabled camera is kept but not run.")
    detect: bool = Field(True, description="Run the detector (false: decode and gate only).")
    labels: list[str] | None = Field(
        default_factory=lambda: ["person", "car", "truck", "bus", "motorcycle", "bicycle"],
        max_length=80,
        description="Labels that make events; null means every label the model knows.",
    )
    min_score: float = Field(0.4, ge=0.01, le=1, description="Detections below are ignored.")
    motion: MotionSettings = Field(default_factory=MotionSettings)
    regions: RegionSettings = Field(default_factory=RegionSettings)
    tracker: TrackerSettings = Field(default_factory=TrackerSettings)
    stationary: StationarySettings = Field(default_factory=StationarySettings)
    events: EventSettings = Field(default_factory=EventSettings)
    alerts: AlertPolicySettings = Field(default_factory=AlertPolicySettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    record: RecordSettings = Field(default_factory=RecordSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    max_reconnect_attempts: int = Field(
        0, ge=0, le=100000, description="Network sources: give up after this many (0 = never)."
    )
    placement: CameraPlacement = Field(default_factory=CameraPlacement)

    @field_validator("source")
    @classmethod
    def _source_allowed(cls, value: str) -> str:
        classify_source(value)  # raises ValueError naming the accepted forms
        return value

    @property
    def kind(self) -> SourceKind:
        return classify_source(self.source)

    def pipeline_config(self) -> PipelineConfig:
        """The pure pipeline's view of this camera."""
        return PipelineConfig(
            motion=MotionConfig(
                enabled=self.motion.enabled,
                threshold=self.motion.threshold,
                pixel_delta=self.motion.pixel_delta,
                max_idle_s=self.motion.max_idle_s,
                masks=tuple(tuple(m.polygon) for m in self.motion_masks),
            ),
            tracker=TrackerConfig(
                high_score=self.tracker.high_score,
                low_score=self.tracker.low_score,
                match_iou=self.tracker.match_iou,
                min_hits=self.tracker.min_hits,
                max_lost_s=self.events.close_after_s,
                stationary=StationaryConfig(**self.stationary.model_dump()),
            ),
            events=EventConfig(
                close_after_s=self.events.close_after_s,
                rejoin_s=self.events.rejoin_s,
                stationary_rejoin_s=self.events.stationary_rejoin_s,
            ),
            labels=frozenset(self.labels) if self.labels is not None else None,
            min_score=self.min_score,
            zones=tuple(
                Zone(
                    name=z.name,
                    polygon=tuple(z.polygon),
                    inertia=z.inertia,
                    labels=frozenset(z.labels) if z.labels is not None else None,
                )
                for z in self.zones
            ),
            lines=tuple(
                Line(
                    name=ln.name,
                    a=ln.a,
                    b=ln.b,
                    direction=None if ln.direction == "both" else CrossDirection(ln.direction),
                )
                for ln in self.lines
            ),
            object_masks=tuple(
                ObjectMask(
                    polygon=tuple(m.polygon),
                    labels=frozenset(m.labels) if m.labels is not None else None,
                )
                for m in self.object_masks
            ),
        )


class AutoscalingSettings(StrictModel):
    """Serve autoscaling of a deployment, driven by its ongoing requests per replica."""

    min_replicas: int = Field(1, ge=0, le=64)
    max_replicas: int = Field(2, ge=1, le=64)
    target_ongoing_requests: float = Field(
        2.0, gt=0, le=1000, description="Ongoing requests per replica the autoscaler aims at."
    )
    upscale_delay_s: float = Field(10.0, ge=0, le=3600)
    downscale_delay_s: float = Field(60.0, ge=0, le=3600)
    metrics_interval_s: float = Field(2.0, gt=0, le=60)
    look_back_period_s: float = Field(10.0, gt=0, le=600)

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self

    def serve_config(self) -> dict[str, Any]:
        """Serve's ``autoscaling_config`` for these settings."""
        return self.model_dump()


class DetectorSettings(StrictModel):
    model_path: Path | None = Field(
        None, description="YOLO-format ONNX model; default: the one `sentinel models init` made."
    )
    labels: list[str] | None = Field(None, description="Class names; default COCO's 80.")
    input_size: int = Field(640, ge=32, le=2048, multiple_of=32)
    conf_threshold: float = Field(0.25, gt=0, le=1)
    iou_threshold: float = Field(0.45, gt=0, le=1)
    threads: int = Field(2, ge=1, le=64, description="ONNX Runtime intra-op threads per replica.")
    spin_wait: bool = Field(
        False,
        description="Let ONNX Runtime's intra-op threads busy-wait between parallel sections "
        "(its own default). Off: they sleep, and the cores they would spin on go to the "
        "cameras and the replica's own request handling (served/bare 0.91x with spinning, "
        "0.97x without, benchmarks/detector.py on 2 cores). Turn on for a replica with cores "
        "of its own.",
    )
    num_cpus: float = Field(1.0, ge=0, le=64, description="Ray CPUs reserved per replica.")
    num_gpus: float = Field(0.0, ge=0, le=8)
    replicas: int = Field(1, ge=1, le=64, description="Fixed replicas (without autoscaling).")
    autoscaling: AutoscalingSettings | None = Field(
        None, description="Scale replicas with load instead of a fixed count (replicas unused)."
    )
    max_batch_size: int = Field(4, ge=1, le=64)
    batch_wait_timeout_s: float = Field(
        0.05,
        ge=0,
        le=1,
        description="How long a batch waits for more frames: longer fills batches across "
        "cameras (0.05 s gave full batches of 4 here), shorter cuts a lone camera's latency.",
    )


class AuthSettings(StrictModel):
    issuer: str = Field("sentinel", description="`iss` of access tokens.")
    audience: str = Field("sentinel-api", description="`aud` of access tokens.")
    access_ttl_s: int = Field(900, ge=60, le=86400, description="Access-token lifetime.")
    refresh_ttl_s: int = Field(14 * 86400, ge=3600, le=90 * 86400)
    jwt_private_keys: list[str] = Field(
        default_factory=list,
        description="RS256 private keys (PEM), newest first; default: generated in the data dir.",
    )
    secret_key: str | None = Field(
        None, description="base64 AES-256 key for secrets at rest; default: in the data dir."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list, description="CIDRs whose X-Forwarded-For is believed."
    )
    metrics_public: bool = Field(
        False,
        description="Serve /metrics without authentication, for a Prometheus scraper: every "
        "camera's series (ids included) to anyone who reaches it, with or without credentials. "
        "Off, /metrics needs `metrics:read` and a camera-limited caller sees only its cameras; "
        "give the scraper an API key with no camera limit.",
    )
    secure_cookies: bool = Field(False, description="Mark session cookies Secure (HTTPS).")
    rate_per_s: float = Field(20.0, gt=0, le=10000, description="Requests/s per user & route.")
    rate_burst: int = Field(60, ge=1, le=100000)
    login_attempts: int = Field(5, ge=1, le=1000, description="Per account per 5 minutes.")
    login_attempts_per_client: int = Field(20, ge=1, le=10000)
    max_body_bytes: int = Field(1 << 20, ge=1024, le=1 << 30)
    max_query_bytes: int = Field(4096, ge=256, le=1 << 16)


class BackendSettings(StrictModel):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: str = Field("openai", pattern="^(openai|embedded)$")
    base_url: str | None = Field(None, description="OpenAI-compatible base URL (…/v1).")
    model: str = "default"
    api_key: str = Field("not-needed", description="Sent as the bearer key to the backend.")
    priority: int = Field(0, ge=0, le=100, description="Lower is tried first.")
    weight: float = Field(1.0, gt=0, le=1000)
    timeout_s: float = Field(60.0, gt=0, le=600)
    max_tokens: int = Field(320, ge=16, le=4096)
    structured: bool = Field(
        True, description="Ask for the decision's JSON schema (constrained decoding)."
    )
    authority: Literal["decide", "summarise"] | None = Field(
        None,
        description="decide: the backend's verdict may withdraw or re-grade the rule alert; "
        "summarise: the rule decision stands and the backend only writes its summary. "
        "Default: summarise for the embedded model (its alert decisions measured at the rules' "
        "F1 or below on benchmarks/agent_quality.py), decide for other backends.",
    )

    @property
    def decides(self) -> bool:
        """Whether this backend's verdict may change the rule decision."""
        if self.authority is None:
            return self.kind != "embedded"
        return self.authority == "decide"


class LlmSettings(StrictModel):
    enabled: bool = Field(True, description="Run the embedded LLM deployment.")
    model_path: Path | None = Field(None, description="GGUF file; default: the bundled Qwen.")
    threads: int = Field(2, ge=1, le=64)
    num_cpus: float = Field(1.0, ge=0, le=64)
    ctx_size: int = Field(2048, ge=512, le=32768)


class AgentSettings(StrictModel):
    enabled: bool = Field(True, description="Send events to the LLM agent after the rules.")
    backends: list[BackendSettings] = Field(
        default_factory=lambda: [BackendSettings(name="embedded", kind="embedded")]
    )
    daily_token_budget: int | None = Field(None, ge=1, description="Tokens per UTC day.")
    max_backlog: int = Field(50, ge=1, le=100000, description="Shed to rules beyond this.")
    max_age_s: float = Field(300.0, gt=0, description="Events waiting longer are shed.")
    max_attempts: int = Field(
        3, ge=1, le=20, description="Tries of an item whose backends all failed (timeouts)."
    )
    retry_delay_s: float = Field(
        20.0, ge=0, le=3600, description="Wait before a retry, times the attempts so far."
    )
    site_notes: str = Field("", max_length=4000, description="What the agent should know.")
    timezone: str = Field("UTC", description="Local time zone of the site (IANA name).")
    poll_interval_s: float = Field(0.5, gt=0, le=60)
    rejudge_interval_s: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="Re-judge an incident on a material change at most this often.",
    )
    llm: LlmSettings = Field(default_factory=LlmSettings)
    autoscaling: AutoscalingSettings | None = Field(
        None, description="Scale the Agent deployment with load (default: one replica)."
    )


class StorageSettings(StrictModel):
    """The recordings' storage: a size budget and the free space to keep on the store's disk."""

    budget_bytes: int | None = Field(
        None, ge=1, description="Delete the oldest footage beyond this many bytes; null: none."
    )
    min_free_bytes: int = Field(
        512 << 20, ge=0, description="Delete the oldest footage while the disk has less free."
    )
    sweep_interval_s: float = Field(60.0, gt=0, le=86400, description="Time between sweeps.")
    events_days: float | None = Field(
        None,
        gt=0,
        le=36500,
        description="Delete ended events (their snapshots and search entries with them) this "
        "many days old; null: follow each camera's event footage retention.",
    )
    incidents_days: float | None = Field(
        None,
        gt=0,
        le=36500,
        description="Delete ended incidents this many days old; null: follow each camera's "
        "event footage retention.",
    )
    alerts_days: float | None = Field(
        None, gt=0, le=36500, description="Delete alerts this many days old; null: keep them."
    )
    snapshots_days: float | None = Field(
        None,
        gt=0,
        le=36500,
        description="Delete event snapshots this many days old, keeping the events; null: "
        "as long as their events.",
    )
    datasets_days: float | None = Field(
        None,
        gt=0,
        le=36500,
        description="Delete annotation dataset versions this many days old with their files, "
        "except those the serving or candidate models were trained on, the regression set "
        "(train.regression_dataset) and those holding a frame under a legal hold; null: keep.",
    )
    training_days: float | None = Field(
        None,
        gt=0,
        le=36500,
        description="Delete the checkpoints and MLflow artifacts (and registered versions) of "
        "training runs that ended this many days ago, except the runs of the champion, the "
        "challenger, a canary and the rollback versions; null: keep.",
    )


ArchiveStorageClass = Literal[
    "STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"
]


class ArchiveSettings(StrictModel):
    """Tiering: footage older than a camera's archive age moves from the object store to an
    archive store (S3, a storage class of its own) and is restored on demand for playback.

    Only storage classes that read back at once are offered: each archived copy is verified
    by reading it back, and a playback restore is a plain read (GLACIER and DEEP_ARCHIVE need
    a restore request that takes hours).
    """

    enabled: bool = Field(False, description="Archive footage, and play archived footage.")
    after_days: float | None = Field(
        30.0,
        gt=0,
        le=36500,
        description="Archive footage this many days old (a camera's record.archive_after_days "
        "wins); null: only cameras that set it.",
    )
    objects: ObjectStoreSettings = Field(
        default_factory=ObjectStoreSettings,
        description="The archive store (kind s3; local: <data dir>/archive/objects).",
    )
    storage_class: ArchiveStorageClass = Field(
        "STANDARD_IA", description="The S3 storage class of archived objects."
    )
    restore_ttl_s: float = Field(
        86400.0,
        ge=1,
        le=90 * 86400,
        description="A restored segment's local copy is removed this long after its last play.",
    )
    restore_wait_s: float = Field(
        3.0,
        ge=0,
        le=60,
        description="A playback request waits this long for a restore, then answers 202.",
    )
    max_per_sweep: int = Field(
        2000, ge=1, le=100_000, description="Segments archived per sweep at most."
    )

    def store_settings(self) -> ObjectStoreSettings:
        """The archive store's settings, with the storage class on every put."""
        return self.objects.model_copy(update={"storage_class": self.storage_class})

    def archive_dir(self, data_dir: Path) -> Path:
        """The data dir ``make_object_store`` gets (a local archive: ``<this>/objects``)."""
        return data_dir / "archive"


class RuleGenConfig(StrictModel):
    """RuleGen: mines the event and verdict history for masks, rules and tightenings, on a
    schedule (``POST /api/v1/rulegen/run`` runs it at any time)."""

    enabled: bool = Field(True, description="Run RuleGen every interval_s.")
    interval_s: float = Field(
        86400.0, ge=60, le=30 * 86400, description="Time between scheduled runs."
    )
    first_run_after_s: float = Field(
        900.0,
        ge=0,
        le=30 * 86400,
        description="On a store RuleGen never ran on, the first run waits this long after "
        "the platform starts (it is starting its cameras, and there is no history yet).",
    )
    engine: Literal["ray", "pandas"] = Field(
        "ray", description="ray: Ray Data over the cluster; pandas: one process."
    )
    history_days: float | None = Field(
        28.0, gt=0, le=3650, description="History read (days, ending now); null: all of it."
    )
    timezone: TimeZoneName = Field("UTC", description="The site's IANA zone (local hours).")
    parallelism: int = Field(2, ge=1, le=256, description="Read shards and blocks (ray).")


class SearchSettings(StrictModel):
    """Search over events and incidents: the embedder deployment, the index, the indexer."""

    enabled: bool = Field(
        True, description="Run the embedder and the indexer, and serve /api/v1/search."
    )
    chroma_url: str | None = Field(
        None,
        max_length=2048,
        description="A Chroma server (http://host:port) shared by several nodes; null: an "
        "embedded persistent index in <data dir>/search.",
    )
    timezone: TimeZoneName = Field("UTC", description="The site's IANA zone (time phrases).")
    threads: int = Field(1, ge=1, le=64, description="torch threads of the embedder replica.")
    num_cpus: float = Field(
        0.0,
        ge=0,
        le=64,
        description="CPUs reserved for the embedder (0: it shares the cores; the detector and "
        "the LLM reserve one each, which on 2 cores leaves nothing to reserve).",
    )
    max_batch_size: int = Field(32, ge=1, le=256, description="Texts per embedder batch.")
    batch: int = Field(32, ge=1, le=256, description="Queue items the indexer leases at once.")
    lease_s: float = Field(120.0, gt=0, le=3600, description="How long a lease holds.")
    poll_interval_s: float = Field(1.0, gt=0, le=60, description="Idle wait of the indexer.")
    exact_shard_max_items: int = Field(
        20_000,
        ge=0,
        le=1_000_000,
        description="A search limited to a few cameras searches each camera's items exactly in "
        "memory when it has at most this many (one matrix product: faster than Chroma's HNSW "
        "there, and exact); larger cameras go to Chroma. 0: always Chroma.",
    )
    exact_max_items: int = Field(
        100_000,
        ge=0,
        le=10_000_000,
        description="The most items held in memory for exact search per process (about 2.5 KiB "
        "each, vector, text and metadata); the least recently searched cameras are let go first.",
    )

    @field_validator("chroma_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s:]+(:\d+)?/?$", value):
            raise ValueError(f"chroma_url must be http(s)://host[:port], but got {value!r}")
        return value


class VoiceSettings(StrictModel):
    """Spoken questions: the transcriber deployment (Whisper base on faster-whisper) and the
    routes /api/v1/ask/voice and /api/v1/transcribe."""

    enabled: bool = Field(
        True, description="Run the transcriber and serve /ask/voice and /transcribe."
    )
    model_path: Path | None = Field(
        None,
        description="A CTranslate2 Whisper folder with a SHA256SUMS file; null: the bundled "
        "Whisper base, assembled under <data dir>/models/whisper-base by `sentinel models init`.",
    )
    language: str | None = Field(
        "en",
        pattern=r"^[a-z]{2,3}$",
        description="Language spoken (Whisper code); null: detected per request.",
    )
    threads: int = Field(2, ge=1, le=64, description="CTranslate2 threads of the replica.")
    num_cpus: float = Field(
        0.0,
        ge=0,
        le=64,
        description="CPUs reserved for the transcriber (0: it shares the cores, like the "
        "embedder; it only works while someone speaks to it).",
    )
    compute_type: Literal["int8", "int8_float32", "float32"] = Field(
        "int8", description="CTranslate2 compute type on the CPU."
    )
    beam_size: int = Field(1, ge=1, le=10, description="Beam width (1: greedy, fastest).")
    max_bytes: int = Field(
        10 << 20, ge=1024, le=200 << 20, description="Largest audio upload, in bytes."
    )
    min_seconds: float = Field(0.3, ge=0, le=10, description="Shortest audio accepted.")
    max_seconds: float = Field(30.0, gt=1, le=600, description="Longest audio accepted.")
    speak_voice: str = Field(
        "en-us",
        pattern=r"^[a-z]{2,3}(-[a-z0-9]{1,8}){0,3}$",
        description="espeak-ng voice of spoken answers (?speak=true).",
    )
    speak_timeout_s: float = Field(10.0, gt=0, le=120, description="espeak-ng's time limit.")

    @model_validator(mode="after")
    def _durations(self) -> VoiceSettings:
        if self.min_seconds >= self.max_seconds:
            raise ValueError(
                f"min_seconds ({self.min_seconds}) must be below max_seconds ({self.max_seconds})"
            )
        return self


class FaceSettings(StrictModel):
    """Face prints (issue 16): faces on person events' snapshots kept only as sealed
    embeddings in keyed buckets, searchable by an admin with a photo. Off by default: face
    embeddings are biometric data, so turning this on is the operator's decision."""

    enabled: bool = Field(
        False,
        description="Scan ended events' snapshots for faces (the retention actor) and answer "
        "POST /api/v1/privacy/faces/search; off: neither.",
    )
    labels: list[str] = Field(
        default_factory=lambda: ["person"],
        min_length=1,
        max_length=16,
        description="Event labels whose snapshots are scanned.",
    )
    interval_s: float = Field(30.0, ge=1, le=86400, description="Seconds between scans.")
    batch: int = Field(20, ge=1, le=1000, description="Events scanned per round at most.")
    tolerance: float = Field(
        0.6,
        ge=0.2,
        le=1.0,
        description="Largest embedding distance counted as the same person (dlib: 0.6).",
    )
    probe_radius: int = Field(
        3,
        ge=0,
        le=8,
        description="Buckets searched: the query's and those within this Hamming distance "
        "(0: 1 of 256, 1: 9, 2: 37, 3: 93, 8: all); higher finds more photos of a person "
        "(measured: 2 photos of one person within 2: 82%, within 3: 95%), reads more.",
    )
    max_upload_bytes: int = Field(
        8 << 20, ge=1024, le=64 << 20, description="Largest photo a search accepts, in bytes."
    )
    max_side: int = Field(
        1600,
        ge=200,
        le=8000,
        description="Photos and snapshots larger than this (pixels, longest side) are scaled "
        "down before detection, which costs time in proportion to the pixels.",
    )


class ClusterSettings(StrictModel):
    """Placement on a multi-node Ray cluster."""

    camera_slot_resource: str | None = Field(
        "sentinel_camera_slot",
        min_length=1,
        max_length=63,
        description="Each camera actor takes one unit of this custom resource when some node "
        "advertises it (a per-node camera budget: `ray start --resources "
        "'{\"sentinel_camera_slot\": 8}'`); no node has it: no budget. null: never.",
    )
    check_resources: bool = Field(
        True,
        description="At start, fail when a camera, the detector or the LLM asks for resources "
        "or labels no node has. Turn off where the autoscaler adds such nodes on demand.",
    )
    serve_proxy: Literal["haproxy", "ray"] = Field(
        "haproxy",
        description="HTTP in front of the ingress on a head Sentinel starts itself: haproxy "
        "(Ray's bundled HAProxy straight to the ingress replicas, about 1.4x the requests/s "
        "of ray on a read route here; the replicas then also listen on all interfaces, ports "
        "30000-31000) or ray (Serve's Python proxy). On a cluster you start, set "
        "RAY_SERVE_ENABLE_HA_PROXY=1 in `ray start`'s environment instead.",
    )
    haproxy_stats_port: int = Field(
        8404,
        ge=1,
        le=65535,
        description="HAProxy's stats page (serve_proxy haproxy). Two Sentinels on one machine "
        "need different ports, or the second's HAProxy cannot start.",
    )
    haproxy_metrics_port: int = Field(
        9101, ge=1, le=65535, description="HAProxy's Prometheus metrics (serve_proxy haproxy)."
    )
    worker_niceness: int = Field(
        0,
        ge=0,
        le=19,
        description="The nice value of the Ray worker processes on a cluster Sentinel starts "
        "itself (`sentinel up`, `sentinel demo`, a notebook's local cluster). Ray's own default "
        "is 15, which keeps its daemons ahead of the workers on a shared host; here the "
        "workers are the product (cameras, detector, training), and at 15 any other process "
        "on the box takes their cores first (Ray Train ran at 0.65x the same loop in plain "
        "torch beside other load, benchmarks/training.py). On a cluster you start, set "
        "RAY_worker_niceness in `ray start`'s environment instead.",
    )


class SmtpSettings(StrictModel):
    """The SMTP server email notifications go through."""

    host: str = Field("127.0.0.1", min_length=1, max_length=255)
    port: int = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = Field(
        "none", description="none: plain; starttls: upgrade after EHLO; tls: implicit TLS."
    )
    username: str | None = Field(
        None, max_length=255, description="SMTP AUTH user (sent only over TLS)."
    )
    password: str | None = Field(None, max_length=1024, repr=False)
    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA(s) trusted for the server's certificate (STARTTLS, "
        "TLS): when set, only these; unset, the system's. Verification is never turned off.",
    )
    sender: str = Field("sentinel@localhost", min_length=3, max_length=255)
    timeout_s: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _no_plaintext_credentials(self) -> SmtpSettings:
        if self.username and self.security == "none":
            raise ValueError(
                "SMTP credentials are sent only over TLS: set notify.smtp.security to "
                "starttls or tls, or remove notify.smtp.username"
            )
        return self


class SmsSettings(StrictModel):
    """A Twilio-shaped SMS API (``POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json``)."""

    base_url: str = Field("https://api.twilio.com", min_length=8, max_length=500)
    account_sid: str = Field("", max_length=128)
    auth_token: str = Field("", max_length=256, repr=False)
    sender: str = Field("", max_length=32, description="The From number.")


class MqttSettings(StrictModel):
    """The MQTT broker alerts are published to, in the shape of Frigate's topics."""

    enabled: bool = True
    host: str = Field("127.0.0.1", min_length=1, max_length=255)
    port: int = Field(1883, ge=1, le=65535)
    prefix: str = Field("sentinel", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_/-]+$")
    username: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=1024, repr=False)
    timeout_s: float = Field(10.0, gt=0, le=120)


class NotifySettings(StrictModel):
    """The notifier: channels, outbound safety, signing, retries and rate limits."""

    enabled: bool = True
    webhook_secret: str = Field(
        "", max_length=512, repr=False, description="Signs webhooks; empty: derived per site."
    )
    link_secret: str = Field("", max_length=512, repr=False, description="Signs media links.")
    public_url: str = Field(
        "http://127.0.0.1:8000", max_length=500, description="Base of links in messages."
    )
    link_ttl_s: float = Field(86400.0, gt=0, le=30 * 86400)
    allow_http: bool = Field(False, description="Allow plain-http outbound URLs.")
    allow_hosts: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Hosts or IPs exempt from the private-address guard (local sinks, tests).",
    )
    max_response_bytes: int = Field(65536, ge=1024, le=16 << 20)
    timeout_s: float = Field(10.0, gt=0, le=120)
    max_attempts: int = Field(12, ge=1, le=100)
    backoff_base_s: float = Field(1.0, gt=0, le=3600)
    backoff_cap_s: float = Field(300.0, gt=0, le=86400)
    channel_rate_per_s: float = Field(200.0, gt=0, le=100000)
    channel_burst: int = Field(400, ge=1, le=100000)
    recipient_rate_per_s: float = Field(5.0, gt=0, le=100000)
    recipient_burst: int = Field(20, ge=1, le=100000)
    poll_interval_s: float = Field(0.2, gt=0, le=60)
    lease_s: float = Field(30.0, gt=0, le=3600)
    batch: int = Field(100, ge=1, le=5000)
    workers: int = Field(8, ge=1, le=128, description="Concurrent sends.")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    sms: SmsSettings = Field(default_factory=SmsSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    push_enabled: bool = Field(
        True,
        description="Web Push to subscribed browsers (VAPID key made in the data dir).",
    )
    push_subject: str = Field(
        "mailto:sentinel@localhost",
        max_length=500,
        pattern=r"^(mailto:[^\s@]+@[^\s@]+|https://\S+)$",
        description="The VAPID ``sub``: a contact push services may use (mailto: or https:); "
        "some (Apple's) refuse a localhost address, so set a real one.",
    )
    push_ttl_s: int = Field(
        43200,
        ge=0,
        le=2419200,
        description="How long a push service keeps a push for an offline browser (TTL).",
    )


class MiningSettings(StrictModel):
    """Hard-example mining (``POST /api/v1/annotation/mine``)."""

    low_threshold: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="The detector's threshold while mining: what lies just "
        "below the operating threshold must be seen to be scored.",
    )
    threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="The operating threshold scores are near; default: detector.conf_threshold.",
    )
    near_band: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Half-width of the band around the operating threshold "
        "where a detection counts as uncertain (0.1 picked the most detector errors on the "
        "sample's frames 1-400; the full threshold, 0.25, picked fewer).",
    )
    sample_fps: float = Field(2.0, gt=0, le=30, description="Frames scanned per second of video.")
    labels: list[str] | None = Field(
        default_factory=lambda: ["person", "car", "truck", "bus", "motorcycle", "bicycle"],
        max_length=80,
        description="Labels that count; null means every label the model knows.",
    )
    prelabel_threshold: float = Field(
        0.2, gt=0, le=1, description="Detections at or above it become a frame's pre-labels."
    )
    calibration_share: float = Field(
        0.1, ge=0, le=1, description="Share of the budget drawn at random (seeded), to calibrate."
    )
    seed: int = Field(0, description="Seed of the calibration sample.")
    duplicate_bits: int = Field(
        6, ge=0, le=32, description="Scene-hash Hamming distance of a near-duplicate."
    )
    task_num_cpus: float = Field(0.5, gt=0, le=64, description="Ray CPUs per scan task.")
    threads: int = Field(1, ge=1, le=64, description="ONNX Runtime threads per scan task.")
    max_span_h: float = Field(24.0, gt=0, le=24 * 31, description="Longest stretch one job mines.")
    max_budget: int = Field(500, ge=1, le=10_000, description="Most frames one job may queue.")


class CanaryGuardSettings(StrictModel):
    """When a canary is rolled back by itself: its live figures against the champion's."""

    enabled: bool = Field(True, description="Check the canary's figures and roll back on a trip.")
    interval_s: float = Field(5.0, ge=0.5, le=3600, description="Seconds between checks.")
    min_frames: int = Field(
        20, ge=1, le=1_000_000, description="Frames each model must have served before a check."
    )
    detections_ratio_min: float = Field(
        0.5, ge=0, le=1, description="Trip below this share of the champion's detections/frame."
    )
    detections_ratio_max: float = Field(
        2.0, ge=1, le=100, description="Trip above this multiple of the champion's detections."
    )
    latency_ratio_max: float = Field(
        3.0, ge=1, le=100, description="Trip when the mean latency passes this multiple."
    )
    fp_margin: float = Field(
        0.10,
        ge=0,
        le=1,
        description="Trip when operators' false-positive rate passes the champion's + margin.",
    )
    min_judged: int = Field(
        5, ge=1, le=100_000, description="Verdicts each model needs before the FP rate counts."
    )


class TrainSettings(StrictModel):
    """The learning loop: Ray Train, curation, the gate and MLflow; the registry and the canary."""

    mlflow_uri: str | None = Field(
        None,
        max_length=2048,
        description="MLflow tracking server (http://host:port); null: the embedded store, "
        "sqlite:///<data dir>/mlflow/mlflow.db with artifacts in <data dir>/mlflow/artifacts.",
    )
    num_workers: int = Field(1, ge=1, le=256, description="Ray Train workers.")
    use_gpu: bool = Field(False, description="One GPU per worker (a cluster with GPUs).")
    cpus_per_worker: float = Field(
        1.0, ge=0, le=64, description="CPUs each Ray Train worker reserves."
    )
    threads: int = Field(
        2,
        ge=1,
        le=64,
        description="torch threads per worker, set explicitly: a 1-CPU Ray worker gets 1 "
        "thread otherwise (~1.8x slower steps on 2 cores).",
    )
    epochs: int = Field(4, ge=1, le=1000)
    batch_size: int = Field(8, ge=1, le=256)
    input_size: int = Field(640, ge=64, le=2048, multiple_of=32)
    lr: float = Field(2e-4, gt=0, le=1, description="AdamW learning rate (1e-3 hurt here).")
    max_failures: int = Field(
        2, ge=1, le=100, description="Worker failures a run recovers from (last checkpoint)."
    )
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="Share held out by time.")
    time_blocks: int = Field(5, ge=2, le=1000, description="Time blocks per camera for the split.")
    split_gap_s: float = Field(
        2.0, ge=0, le=86400, description="Frames this close to the other side are dropped."
    )
    max_repeat: int = Field(3, ge=1, le=100, description="Most copies class balancing makes.")
    gate_margin: float = Field(
        0.005, ge=0, le=1, description="mAP@0.5 a challenger must gain on every split."
    )
    regression_dataset: str | None = Field(
        "regression",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="The fixed regression set (a dataset name); null or missing: no model "
        "passes the gate.",
    )
    regression_version: int | None = Field(None, ge=1, description="Its version; null: the newest.")
    eval_conf_threshold: float = Field(
        0.25, gt=0, le=1, description="Score threshold of the precision/recall figures."
    )
    storage_path: Path | None = Field(
        None,
        description="Ray Train's run storage (checkpoints); null: <data dir>/train. On a "
        "multi-node cluster: a shared path or s3:// URI.",
    )

    serve_registry: bool = Field(
        True,
        description="Serve the registry's champion (the bundled YOLOv8n registered as version 1 "
        "on first start) with canary, promote and rollback; off: serve detector.model_path as "
        "is, without the models API.",
    )
    canary_app_suffix: str = Field(
        "-canary",
        pattern=r"^-[a-z0-9-]{1,24}$",
        description="Serve app of the canary: <app><this>.",
    )
    swap_timeout_s: float = Field(
        60.0, ge=1, le=600, description="How long a promotion waits for the detector's replicas."
    )
    canary_num_cpus: float = Field(
        0.0,
        ge=0,
        le=64,
        description="CPUs the canary's replica reserves (0: it shares the cores; it serves "
        "frames the champion would otherwise serve). GPUs as detector.num_gpus.",
    )
    guard: CanaryGuardSettings = Field(default_factory=CanaryGuardSettings)
    mining: MiningSettings = Field(default_factory=MiningSettings)

    @field_validator("mlflow_uri")
    @classmethod
    def _tracking_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(https?|sqlite|postgresql|file)://", value):
            raise ValueError(f"mlflow_uri must be an http(s)/sqlite/postgresql URI, got {value!r}")
        return value


def mlflow_tracking_uri_of(train: TrainSettings, data_dir: Path) -> str:
    """``train.mlflow_uri``, or the embedded SQLite store under ``data_dir`` (``mlflow/``)."""
    if train.mlflow_uri:
        return train.mlflow_uri
    return f"sqlite:///{(data_dir / 'mlflow' / 'mlflow.db').resolve()}"


def mlflow_artifacts_of(data_dir: Path) -> Path:
    """Where the embedded MLflow store keeps artifacts (``<data dir>/mlflow/artifacts``)."""
    return (data_dir / "mlflow" / "artifacts").resolve()


class Settings(BaseSettings):
    """Process settings: ``SENTINEL_*`` env vars, then the YAML file, then the defaults."""

    # hide_input_in_errors: a validation error quotes no input, since settings hold secrets
    # (S3 and master keys, auth keys) and pydantic would print a slice of the offending dict.
    model_config = SettingsConfigDict(
        env_prefix="SENTINEL_", env_nested_delimiter="__", extra="forbid", hide_input_in_errors=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(None, description="Default: SQLite file in the data dir.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    app_name: str = "sentinel"
    namespace: str = "sentinel"
    redis_url: str | None = None
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    objects: ObjectStoreSettings = Field(
        default_factory=ObjectStoreSettings,
        description="Where snapshots (and later recordings) go: the data dir, or S3.",
    )
    agent: AgentSettings = Field(default_factory=AgentSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    archive: ArchiveSettings = Field(
        default_factory=ArchiveSettings,
        description="Tiering: old footage moves to an S3 archive, restored for playback.",
    )
    audit_anchors: AuditAnchorSettings = Field(
        default_factory=AuditAnchorSettings,
        description="Anchor the audit chain's head to an S3 Object Lock bucket.",
    )
    rulegen: RuleGenConfig = Field(default_factory=RuleGenConfig)
    search: SearchSettings = Field(default_factory=SearchSettings)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    faces: FaceSettings = Field(default_factory=FaceSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    cameras: list[CameraConfig] = Field(default_factory=list)
    reconcile_interval_s: float = Field(2.0, gt=0, le=300)
    max_request_limit: int = 500
    event_journal_mb: float = Field(
        64.0,
        gt=0,
        le=1_000_000,
        description=(
            "Disk budget per camera (MiB) for event changes kept in <data dir>/journal/ while "
            "the database is down; past it changes are dropped and counted (events_dropped)."
        ),
    )

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for cam in cameras:
            if cam.id in seen:
                raise ValueError(f"camera ids must be unique, but {cam.id!r} appears twice")
            seen.add(cam.id)
        return cameras

    @model_validator(mode="after")
    def _archive_elsewhere(self) -> Settings:
        a, o = self.archive.objects, self.objects
        same = (a.kind, a.bucket, a.prefix.strip("/"), a.endpoint_url) == (
            o.kind,
            o.bucket,
            o.prefix.strip("/"),
            o.endpoint_url,
        )
        if self.archive.enabled and a.kind == "s3" and same:
            raise ValueError(
                "archive.objects must name another bucket or prefix than objects: archiving "
                "deletes the local copy, which would be the archived one"
            )
        return self

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sentinel.db').resolve()}"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def gguf_model_path(self) -> Path:
        return self.agent.llm.model_path or self.models_dir / "qwen2.5-coder-0.5b-q4_k_m.gguf"

    def search_index_path(self) -> Path:
        """The embedded search index's folder (unused with ``search.chroma_url``)."""
        return self.data_dir / "search"

    def whisper_model_path(self) -> Path:
        """The speech-to-text model folder (the bundled Whisper base unless configured)."""
        return self.voice.model_path or self.models_dir / "whisper-base"

    def mlflow_dir(self) -> Path:
        """The embedded MLflow store's folder (sqlite file + artifacts)."""
        return self.data_dir / "mlflow"

    def mlflow_tracking_uri(self) -> str:
        """``train.mlflow_uri``, or the embedded SQLite store under the data dir."""
        return mlflow_tracking_uri_of(self.train, self.data_dir)

    def mlflow_artifacts_dir(self) -> Path:
        return mlflow_artifacts_of(self.data_dir)

    def train_storage_path(self) -> Path:
        """Where Ray Train keeps runs and checkpoints."""
        return self.train.storage_path or self.data_dir / "train"

    def onnx_model_path(self) -> Path:
        return self.detector.model_path or self.models_dir / "yolov8n.onnx"


_ENV_REF = re.compile(r"\$\{(SENTINEL_[A-Z0-9_]+)\}")


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional YAML file (``safe_load`` only), env vars and ``overrides``.

    Env vars win over the file, so a deployment can override one field without editing it.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read config file {path}: {exc.strerror}") from exc
        loaded = yaml.safe_load(text)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a mapping, but got {type(loaded)}")
        data.update(loaded)
    env_keys = {
        key[len("SENTINEL_") :].lower().split("__")[0]
        for key in os.environ
        if key.startswith("SENTINEL_")
    }
    for key in env_keys:
        data.pop(key, None)  # the env var wins; pydantic-settings reads it
    data.update(overrides)
    return Settings(**data)
