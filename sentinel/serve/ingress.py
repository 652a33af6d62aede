"""The Ray Serve FastAPI ingress: the API app with Ray-backed services."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import ray
from numpy.typing import NDArray
from ray import serve
from ray.exceptions import RayActorError, RayError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from sqlalchemy.engine import Engine

from sentinel.actors.agent_worker import AGENT_WORKER_NAME
from sentinel.actors.camera import camera_actor_name
from sentinel.actors.indexer import ActorIndex
from sentinel.actors.mining import RayMiningService
from sentinel.actors.retention import RetentionProbe
from sentinel.actors.rulegen import run_rulegen
from sentinel.actors.supervisor import SUPERVISOR_NAME
from sentinel.actors.training_launch import TrainingLauncher
from sentinel.api.app import create_app
from sentinel.api.deps import (
    AgentServices,
    AnnotationServices,
    MiningServices,
    NotifyServices,
    RuleGenServices,
    SearchServices,
    Services,
    TrainingServices,
    VoiceServices,
    install_services,
)
from sentinel.api.setup import build_security
from sentinel.config import (
    ArchiveSettings,
    AuthSettings,
    CameraConfig,
    DetectorSettings,
    FaceSettings,
    MiningSettings,
    NotifySettings,
    RuleGenConfig,
    SearchSettings,
    Settings,
    TrainSettings,
    VoiceSettings,
)
from sentinel.domain.boxes import COCO_LABELS
from sentinel.live.bus import make_bus
from sentinel.live.hub import LiveHub
from sentinel.models.llm_runner import await_or_cancel
from sentinel.models.whisper import Transcript
from sentinel.notify.relay import make_senders, secrets_of, vapid_of
from sentinel.retention.archive import Restorer, make_archive_store
from sentinel.retention.face_index import open_face_index
from sentinel.rules.rulegen import RuleGenSettings, Suggestion
from sentinel.search.kb import KnowledgeBase
from sentinel.search.service import open_search
from sentinel.search.voice import VoiceUnavailableError, limits_of
from sentinel.serve.models import RayModelControl
from sentinel.store.alert_repo import AlertRepository, ExperimentRepository, PromptRepository
from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.audit_anchors import make_anchor_store
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.db import make_engine
from sentinel.store.export_repo import ExportRepository
from sentinel.store.kb_repo import KbRepository
from sentinel.store.live_repo import LiveChangesRepo
from sentinel.store.objects import ObjectStore
from sentinel.store.repo import CameraRepository, EventRepository
from sentinel.store.s3 import make_object_store
from sentinel.store.segment_repo import SegmentRepository
from sentinel.store.training_repo import TrainingRunRepository

logger = logging.getLogger(__name__)

app = create_app()


def rulegen_services(db_url: str, config: RuleGenConfig) -> RuleGenServices:
    """``POST /rulegen/run`` with the configured engine: Ray Data on this cluster ("ray") or
    the API's own process ("pandas")."""

    def run(settings: RuleGenSettings, since: datetime | None) -> list[Suggestion]:
        return run_rulegen(
            db_url,
            since=since,
            parallelism=config.parallelism,
            engine=config.engine,
            settings=settings,
        )

    return RuleGenServices(
        settings=RuleGenSettings(timezone=config.timezone),
        history_days=config.history_days,
        engine=config.engine,
        run=run,
        interval_s=config.interval_s if config.enabled else None,
    )


def training_services(engine: Engine, runtime: dict[str, Any]) -> TrainingServices:
    """The training routes: runs in the database, each started as a Ray task on this cluster
    (``sentinel.actors.training``) with the settings it needs."""
    settings = Settings(
        data_dir=Path(runtime["data_dir"]),
        database_url=runtime["db_url"],
        objects=runtime["objects"],
        detector=DetectorSettings(**runtime.get("detector", {})),
        train=TrainSettings(**runtime.get("train", {})),
    )
    return TrainingServices(
        runs=TrainingRunRepository(engine),
        control=TrainingLauncher(settings),
        defaults=settings.train,
        mlflow_uri=settings.mlflow_tracking_uri(),
    )


def notify_services(settings: NotifySettings, data_dir: Path) -> NotifyServices:
    """The notification routes' settings, secrets (shared with the notifier actor through the
    data dir) and channels."""
    webhook_secret, link_secret = secrets_of(settings, data_dir)
    return NotifyServices(
        settings=settings,
        webhook_secret=webhook_secret,
        link_secret=link_secret,
        senders=lambda: make_senders(settings, webhook_secret),
        vapid=vapid_of(settings, data_dir),
    )


class RayCameraControl:
    """Camera control through the detached supervisor and the camera actors."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _supervisor(self) -> Any | None:
        try:
            return ray.get_actor(SUPERVISOR_NAME, namespace=self.namespace)
        except ValueError:  # not created yet (startup) or already gone (shutdown)
            return None

    async def _call(self, method: str, *args: Any) -> Any:
        supervisor = self._supervisor()
        if supervisor is None:
            return None
        try:
            return await getattr(supervisor, method).remote(*args)
        except RayActorError:
            logger.warning("supervisor unavailable for %s", method)
            return None

    async def started(self, camera: CameraConfig) -> None:
        await self._call("reconcile")

    async def removed(self, camera_id: str) -> None:
        await self._call("reconcile")

    async def status(self, camera_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._call("status", camera_id)
        return result

    async def statuses(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] | None = await self._call("statuses")
        return result or {}

    async def latest_jpeg(self, camera_id: str) -> bytes | None:
        try:
            actor = ray.get_actor(camera_actor_name(camera_id), namespace=self.namespace)
            data: bytes | None = await actor.latest_jpeg.remote()
        except (ValueError, RayActorError):
            return None
        return data


class AgentHandleControl:
    def __init__(self, handle: DeploymentHandle[Any], namespace: str) -> None:
        self.handle = handle
        self.namespace = namespace

    async def backends(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.handle.backends.remote()
        return result

    async def worker_stats(self) -> dict[str, Any] | None:
        try:
            worker = ray.get_actor(AGENT_WORKER_NAME, namespace=self.namespace)
            stats: dict[str, Any] = await worker.stats.remote()
        except (ValueError, RayActorError):
            return None
        return stats


class LlmHandleControl:
    """The LLM deployment through its handle; streams through a streaming handle."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self.handle = handle
        self.streaming = handle.options(stream=True)

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await await_or_cancel(self.handle.chat.remote(request))
        return result

    async def info(self) -> dict[str, Any]:
        """The replica's model, settings and counts of completed and cancelled answers."""
        result: dict[str, Any] = await self.handle.info.remote()
        return result

    async def chat_stream(self, request: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        # A generator method through a stream=True handle answers a DeploymentResponseGenerator.
        chunks = cast(DeploymentResponseGenerator[Any], self.streaming.chat_stream.remote(request))
        finished = False
        try:
            async for chunk in chunks:
                yield chunk
            finished = True
        finally:
            if not finished:  # the reader left early: stop the replica generating for nobody
                chunks.cancel()  # type: ignore[no-untyped-call]

    async def models(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.handle.models.remote()
        return result


class DetectorHandleProbe:
    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self.handle = handle

    async def ready(self) -> bool:
        ok: bool = await self.handle.ready.remote()
        return ok


class AgentAnswerLlm:
    """Ask's LLM: the Agent deployment's ``answer_stream`` (its backends, breakers and token
    budget), through a streaming handle."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self.streaming = handle.options(stream=True)

    async def stream_text(self, messages: list[dict[str, str]], key: str) -> AsyncIterator[str]:
        pieces = cast(
            DeploymentResponseGenerator[Any], self.streaming.answer_stream.remote(messages, key)
        )
        finished = False
        try:
            async for piece in pieces:
                yield str(piece)
            finished = True
        finally:
            if not finished:  # the client left, or the stream failed: stop generating
                pieces.cancel()  # type: ignore[no-untyped-call]


def search_services(
    engine: Engine,
    runtime: dict[str, Any],
    objects: ObjectStore,
    embedder: Any | None,
    agent: DeploymentHandle[Any] | None = None,
) -> SearchServices | None:
    """Search in the ingress: queries embedded by the Embedder deployment and run on the
    indexer actor's index (it owns the embedded store), the knowledge base (its sections in
    the indexer's "kb" collection), and ask's LLM through the Agent deployment (None: ask
    answers from retrieval only); None when search is off."""
    settings = SearchSettings(**runtime.get("search", {}))
    if embedder is None or not settings.enabled:
        return None

    async def embed_async(texts: list[str]) -> NDArray[np.float32]:
        result: NDArray[np.float32] = await embedder.embed.remote(texts)
        return result

    def embed(texts: list[str]) -> NDArray[np.float32]:  # off the event loop only
        result: NDArray[np.float32] = embedder.embed.remote(texts).result()
        return result

    index = ActorIndex(runtime["namespace"])
    service = open_search(
        engine,
        settings,
        Path(runtime["data_dir"]) / "search",
        embed,
        objects=objects,
        index=index,
        appearance=ActorIndex(runtime["namespace"], "appearance"),
    )
    kb = KnowledgeBase(KbRepository(engine), ActorIndex(runtime["namespace"], "kb"), embed)
    llm = AgentAnswerLlm(agent) if agent is not None else None
    return SearchServices(service, index=index, embed_async=embed_async, kb=kb, llm=llm)


def voice_services(runtime: dict[str, Any], transcriber: Any | None) -> VoiceServices | None:
    """Voice in the ingress: uploads decoded and checked here, transcribed by the Transcriber
    deployment; None when voice is off."""
    settings = VoiceSettings(**runtime.get("voice", {}))
    if transcriber is None or not settings.enabled:
        return None

    async def recognize(samples: NDArray[np.float32]) -> Transcript:
        try:
            result: dict[str, Any] = await transcriber.transcribe.remote(samples)
        except RayError as exc:  # the replica died or failed: not the caller's fault
            logger.warning("transcriber failed: %s", exc)
            raise VoiceUnavailableError(
                f"the transcriber is unavailable ({type(exc).__name__})"
            ) from exc
        return Transcript.from_dict(result)

    return VoiceServices(
        recognize,
        limits=limits_of(settings),
        speak_voice=settings.speak_voice,
        speak_timeout_s=settings.speak_timeout_s,
    )


def restorer_of(runtime: dict[str, Any], engine: Engine, objects: ObjectStore) -> Restorer | None:
    """Playback's restores of archived footage; None while tiering is off."""
    settings = runtime.get("archive") or ArchiveSettings()
    if isinstance(settings, dict):
        settings = ArchiveSettings(**settings)
    if not settings.enabled:
        return None
    archive = make_archive_store(settings, Path(runtime["data_dir"]))
    segments = SegmentRepository(engine)
    return Restorer(segments, objects, archive, settings, audit=AuditRepository(engine))


def mining_services(runtime: dict[str, Any], engine: Engine) -> MiningServices:
    """Hard-example mining as Ray tasks run by the detached jobs actor, the jobs' statuses in
    the database."""
    mining = MiningSettings(**runtime.get("train", {}).get("mining", {}))
    return MiningServices(
        RayMiningService(runtime, engine),
        max_span_h=mining.max_span_h,
        max_budget=mining.max_budget,
    )


@serve.deployment(name="Ingress", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class Ingress:
    """HTTP entry point; the routes live in ``sentinel.api``."""

    def __init__(
        self,
        detector: DeploymentHandle[Any],
        runtime: dict[str, Any],
        agent: DeploymentHandle[Any] | None = None,
        llm: DeploymentHandle[Any] | None = None,
        embedder: DeploymentHandle[Any] | None = None,
        transcriber: DeploymentHandle[Any] | None = None,
    ) -> None:
        engine = make_engine(runtime["db_url"])
        objects = make_object_store(runtime["objects"], Path(runtime["data_dir"]))
        security = build_security(
            AuthSettings(**runtime["auth"]),
            engine,
            Path(runtime["data_dir"]),
            redis_url=runtime.get("redis_url"),
        )
        control = RayCameraControl(runtime["namespace"])
        install_services(
            Services(
                engine=engine,
                events=EventRepository(engine),
                cameras=CameraRepository(engine),
                objects=objects,
                control=control,
                detector=DetectorHandleProbe(detector),
                security=security,
                segments=SegmentRepository(engine),
                storage=RetentionProbe(runtime["namespace"]),
                archive=restorer_of(runtime, engine, objects),
                exports=ExportRepository(engine),
                rulegen=rulegen_services(
                    runtime["db_url"], RuleGenConfig(**runtime.get("rulegen", {}))
                ),
                notify=notify_services(
                    NotifySettings(**runtime.get("notify", {})), Path(runtime["data_dir"])
                ),
                agent=AgentServices(
                    alerts=AlertRepository(engine),
                    prompts=PromptRepository(engine),
                    experiments=ExperimentRepository(engine),
                    control=AgentHandleControl(agent, runtime["namespace"])
                    if agent is not None
                    else None,
                    llm=LlmHandleControl(llm) if llm is not None else None,
                ),
                search=search_services(engine, runtime, objects, embedder, agent),
                voice=voice_services(runtime, transcriber),
                faces=open_face_index(
                    engine,
                    objects,
                    FaceSettings(**runtime.get("faces", {})),
                    secret_key=AuthSettings(**runtime["auth"]).secret_key,
                    data_dir=Path(runtime["data_dir"]),
                ),
                annotation=AnnotationServices(
                    AnnotationRepo(engine, objects),
                    DatasetRepo(engine),
                    tuple(runtime.get("detector_labels") or COCO_LABELS),
                ),
                audit_anchors=make_anchor_store(runtime.get("audit_anchors")),
                models=RayModelControl(runtime["namespace"])
                if runtime.get("train", {}).get("serve_registry", True)
                else None,
                training=training_services(engine, runtime),
                mining=mining_services(runtime, engine),
                live=LiveHub(
                    make_bus(runtime.get("redis_url")), LiveChangesRepo(engine), control.statuses
                ),
            )
        )
