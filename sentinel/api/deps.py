"""What the routes depend on, as protocols: Ray-backed in production, fakes in tests."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import Depends, Request
from numpy.typing import NDArray
from sqlalchemy.engine import Engine

from sentinel.api.gateway import SecurityServices
from sentinel.config import CameraConfig, NotifySettings, TrainSettings
from sentinel.notify.channels import Sender
from sentinel.notify.webpush import VapidKey
from sentinel.retention.archive import Restorer
from sentinel.retention.face_index import FaceIndex
from sentinel.rules.rulegen import RuleGenSettings, Suggestion
from sentinel.search.ask import AskSettings, ChatLLM
from sentinel.search.index import IndexReader
from sentinel.search.kb import KnowledgeBase
from sentinel.search.service import SearchService
from sentinel.search.voice import AudioLimits, Recognize
from sentinel.store.alert_repo import AlertRepository, ExperimentRepository, PromptRepository
from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.audit_anchors import S3AnchorStore
from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.export_repo import ExportRepository
from sentinel.store.objects import ObjectStore
from sentinel.store.repo import CameraRepository, EventRepository
from sentinel.store.segment_repo import SegmentRepository
from sentinel.store.training_repo import TrainingRunRepository
from sentinel.train.mine_service import MiningService


class CameraControl(Protocol):
    """Starts, stops and inspects running cameras."""

    async def started(self, camera: CameraConfig) -> None:
        """Called after the camera row was written: start it now."""

    async def removed(self, camera_id: str) -> None:
        """Called after the camera row was deleted: stop it now."""

    async def status(self, camera_id: str) -> dict[str, Any] | None: ...

    async def statuses(self) -> dict[str, dict[str, Any]]: ...

    async def latest_jpeg(self, camera_id: str) -> bytes | None: ...


class DetectorProbe(Protocol):
    async def ready(self) -> bool: ...


class AgentControl(Protocol):
    async def backends(self) -> list[dict[str, Any]]: ...

    async def worker_stats(self) -> dict[str, Any] | None: ...


class StorageProbe(Protocol):
    """The retention sweeper's settings and last sweep (``GET /api/v1/storage``)."""

    async def status(self) -> dict[str, Any] | None: ...


class LlmControl(Protocol):
    """The embedded LLM behind the OpenAI-compatible routes."""

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """A ``chat.completion``; ValueError for a bad request."""

    def chat_stream(self, request: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The ``chat.completion.chunk`` objects of a ``stream: true`` request, as generated;
        ValueError (raised by the first iteration) for a bad request."""

    async def models(self) -> list[dict[str, Any]]:
        """The served models as OpenAI ``model`` objects (``id``, ``created``, ``owned_by``)."""


@dataclass
class AgentServices:
    """The alert agent's stores, and its deployments when they run."""

    alerts: AlertRepository
    prompts: PromptRepository
    experiments: ExperimentRepository
    control: AgentControl | None = None
    llm: LlmControl | None = None


@dataclass
class SearchServices:
    """Search: the service (documents, the queue's lag), the index queries read (default:
    the service's own; in the platform a proxy to the indexer actor, which owns the embedded
    index), and optionally an async embedder (the Serve deployment's handle) that embeds
    queries instead of the service's own ``embed`` on a worker thread; the knowledge base and
    the LLM that ask answers with."""

    service: SearchService
    index: IndexReader | None = None
    embed_async: Callable[[list[str]], Awaitable[NDArray[np.float32]]] | None = None
    kb: KnowledgeBase | None = None  # None: no knowledge base (its routes answer 404)
    llm: ChatLLM | None = None  # ask's LLM (the alert agent's backends); None: retrieval only
    ask: AskSettings = field(default_factory=AskSettings)

    @property
    def reader(self) -> IndexReader:
        return self.index if self.index is not None else self.service.index


@dataclass
class VoiceServices:
    """Voice: the recogniser (in the platform the Transcriber deployment's handle; a runner on
    a worker thread in tests), the upload limits, and how answers are spoken."""

    recognize: Recognize
    limits: AudioLimits = field(default_factory=AudioLimits)
    speak_voice: str = "en-us"
    speak_timeout_s: float = 10.0


RuleGenRunner = Callable[[RuleGenSettings, datetime | None], list[Suggestion]]
"""Runs RuleGen's mining and backtests over the history since a time (None: all of it)."""


@dataclass
class RuleGenServices:
    """How ``POST /rulegen/run`` and ``POST /rules/{id}/backtest`` read the history.

    Attributes:
        settings: Time zone and thresholds (frame sizes come from the cameras' statuses).
        history_days: The history window in days, ending now; None: all of it.
        engine: The engine's name, as reported ("pandas" or "ray").
        run: The mining engine; None: the pandas engine on the API's own process.
        interval_s: Seconds between the scheduled runs; None: no schedule.
    """

    settings: RuleGenSettings = field(default_factory=RuleGenSettings)
    history_days: float | None = 28.0
    engine: str = "pandas"
    run: RuleGenRunner | None = None
    interval_s: float | None = None


@dataclass
class NotifyServices:
    """What the notification routes need: the settings, the secrets and the channels.

    Attributes:
        settings: The notifier's settings.
        webhook_secret: Signs webhooks (test notifications too).
        link_secret: Verifies the signed media links.
        senders: Builds the channels for a test notification (closed after it).
        resolver: Resolves host names for the outbound guard's save-time check; None: the
            system's resolver (tests pass one that never leaves the machine).
        vapid: The Web Push VAPID key (shared with the notifier actor through the data dir);
            None: web push is off (its routes answer 503).
    """

    settings: NotifySettings
    webhook_secret: str
    link_secret: str
    senders: Callable[[], dict[str, Sender]]
    resolver: Callable[[str, int], list[str]] | None = None
    vapid: VapidKey | None = None


class TrainingControl(Protocol):
    """Starts a recorded training run (the platform: a Ray task running
    ``sentinel.actors.training.run_training``)."""

    async def start(self, run_id: str) -> None: ...


@dataclass
class TrainingServices:
    """What the training routes need: the runs' repository, the launcher, the defaults, and
    the MLflow tracking URI (subject erasure deletes the artifacts of runs; None: unknown)."""

    runs: TrainingRunRepository
    control: TrainingControl
    defaults: TrainSettings
    mlflow_uri: str | None = None


@dataclass
class AnnotationServices:
    """The learning loop's stores: the annotation queue, the dataset versions, and the labels
    the model knows (the detector's; an annotation's labels must be among them)."""

    repo: AnnotationRepo
    datasets: DatasetRepo
    labels: tuple[str, ...]


@dataclass
class MiningServices:
    """Hard-example mining (``POST /annotation/mine``): the service that runs jobs (Ray tasks
    in the platform, this process in tests) and the limits of one job."""

    service: MiningService
    max_span_h: float = 24.0
    max_budget: int = 500


@dataclass
class Services:
    """Everything the API needs, injected by the ingress (or by a test)."""

    engine: Engine
    events: EventRepository
    cameras: CameraRepository
    objects: ObjectStore
    control: CameraControl
    detector: DetectorProbe
    security: SecurityServices
    agent: AgentServices
    segments: SegmentRepository | None = None  # None: recording is not configured
    storage: StorageProbe | None = None  # None: no retention sweeper to ask
    exports: ExportRepository | None = None  # None: exports are not configured
    rulegen: RuleGenServices = field(default_factory=RuleGenServices)
    search: SearchServices | None = None  # None: search is off
    voice: VoiceServices | None = None  # None: voice is off
    faces: FaceIndex | None = None  # None: face search is off (404)
    notify: NotifyServices | None = None  # None: the notifier's routes answer 503
    annotation: AnnotationServices | None = None  # None: annotation and dataset routes: 404
    audit_anchors: S3AnchorStore | None = None  # None: audit anchoring is off
    # The model controller (api.models.ModelControl); None: model serving is off (503).
    models: Any | None = None
    training: TrainingServices | None = None  # None: the training routes answer 503
    mining: MiningServices | None = None  # None: the mining routes answer 503
    archive: Restorer | None = None  # None: tiering is off (archived footage does not play)
    # The live hub (sentinel.live.hub.LiveHub); None: an in-process one is made on first use.
    live: Any | None = None
    # The system sampler (sentinel.dashboard.sampler.SystemSampler); None: made on first use.
    dashboard: Any | None = None


_process_services: Services | None = None


def install_services(services: Services) -> None:
    """Makes ``services`` the default of this process.

    Ray Serve rebuilds the ingress's FastAPI app inside the replica, so the deployment cannot
    reach "its" app object; it installs its services process-wide instead.
    """
    global _process_services
    _process_services = services


def current_services(scope: Any) -> Services | None:
    """The services of the app serving an ASGI ``scope`` (for middleware)."""
    app = scope.get("app")
    found: Services | None = getattr(getattr(app, "state", None), "services", None)
    return found or _process_services


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None) or _process_services
    if services is None:
        raise RuntimeError("the API was started without its services")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
