"""Assembling and running Sentinel on a Ray cluster: Serve app, supervisor, cameras."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import serve

from sentinel.actors.agent_worker import AGENT_WORKER_NAME, AgentWorkerActor
from sentinel.actors.indexer import INDEXER_NAME, IndexerActor
from sentinel.actors.notifier import NOTIFIER_NAME, NotifierActor
from sentinel.actors.retention import RETENTION_NAME, RetentionActor
from sentinel.actors.rulegen_schedule import RULEGEN_NAME, RuleGenActor
from sentinel.actors.supervisor import get_or_create_supervisor
from sentinel.config import Settings, load_settings
from sentinel.domain.boxes import COCO_LABELS
from sentinel.domain.placement import Demand, camera_demand, infeasible_demands
from sentinel.gateway.keys import KeyRing
from sentinel.gateway.secretbox import open_secret_box
from sentinel.models.embedder import minilm_dir, verify_minilm
from sentinel.models.faces import face_model_paths
from sentinel.models.gguf import verify_gguf
from sentinel.models.whisper import verify_whisper
from sentinel.models.yolo import verify_model
from sentinel.retention.archive import make_archive_store
from sentinel.search.voice import recognizer_options
from sentinel.serve.agent_deployment import AgentDeployment
from sentinel.serve.detector import MODEL_CONTROLLER, build_detector, detector_options
from sentinel.serve.embedder import build_embedder
from sentinel.serve.ingress import Ingress
from sentinel.serve.llm import build_llm
from sentinel.serve.models import ModelController
from sentinel.serve.transcriber import build_transcriber
from sentinel.store.camera_secrets import seal_camera
from sentinel.store.db import make_engine, migrate
from sentinel.store.objects import unwrapped
from sentinel.store.repo import CameraRepository
from sentinel.store.s3 import S3ObjectStore, make_object_store
from sentinel.train.registry import ModelRegistry

logger = logging.getLogger(__name__)

MODEL_POLL_S = 1.0  # how often the champion's replicas ask which version to serve


def runtime_of(settings: Settings) -> dict[str, Any]:
    """The plain-dict settings actors and deployments receive (no pydantic across Ray)."""
    return {
        "db_url": settings.db_url,
        # The model itself (not a JSON dump): its secret key must travel, not its mask.
        "objects": settings.objects,
        "app_name": settings.app_name,
        "namespace": settings.namespace,
        "reconcile_interval_s": settings.reconcile_interval_s,
        "data_dir": str(settings.data_dir.resolve()),
        "event_journal_bytes": int(settings.event_journal_mb * 1024 * 1024),
        # Cameras letterbox their frames to the detector's input themselves.
        "detector_input_size": settings.detector.input_size,
        # The labels annotations may use (class index = position in a dataset's labels).
        "detector_labels": list(settings.detector.labels or COCO_LABELS),
        "redis_url": settings.redis_url,
        "auth": settings.auth.model_dump(mode="json"),
        "agent": settings.agent.model_dump(mode="json"),
        "storage": settings.storage.model_dump(mode="json"),
        "audit_anchors": settings.audit_anchors,  # the model: its secret key must travel
        "archive": settings.archive,  # the model: its secret key must travel
        "rulegen": settings.rulegen.model_dump(mode="json"),
        "search": settings.search.model_dump(mode="json"),
        "voice": settings.voice.model_dump(mode="json"),
        "faces": settings.faces.model_dump(mode="json"),
        "cluster": settings.cluster.model_dump(mode="json"),
        "notify": settings.notify.model_dump(mode="json"),
        "detector": settings.detector.model_dump(mode="json"),
        "train": settings.train.model_dump(mode="json"),
        "canary_app_suffix": settings.train.canary_app_suffix,
        "model_poll_s": MODEL_POLL_S,
        "detector_model": str(settings.onnx_model_path().resolve()),
    }


def wants_embedded_llm(settings: Settings) -> bool:
    agent = settings.agent
    return agent.enabled and agent.llm.enabled and any(b.kind == "embedded" for b in agent.backends)


def verify_models(settings: Settings) -> None:
    """Checks every model file the settings will load against its recorded sha256.

    Raises:
        ModelFileError: a model file is missing, has no recorded digest, or differs from it.
    """
    verify_model(settings.onnx_model_path().resolve())
    if wants_embedded_llm(settings):
        verify_gguf(settings.gguf_model_path().resolve())
    if settings.search.enabled:
        verify_minilm(minilm_dir())
    if settings.voice.enabled:
        verify_whisper(
            settings.whisper_model_path().resolve(), pinned=settings.voice.model_path is None
        )
    if settings.faces.enabled:
        face_model_paths()  # dlib's landmark and embedding models, by their pinned sha256


def serve_champion(settings: Settings) -> tuple[Path, dict[str, Any] | None]:
    """The detector's model: the registry's champion (the bundled model registered as version 1
    on first start), fetched and checked against its registered sha256; with
    ``train.serve_registry`` off, ``detector.model_path`` as is.

    Raises:
        ModelFileError: the champion's file fails its digest.
    """
    model_path = settings.onnx_model_path().resolve()
    if not settings.train.serve_registry:
        return model_path, None
    registry = ModelRegistry.of(settings.train, settings.data_dir)
    labels = settings.detector.labels or list(COCO_LABELS)
    champion = registry.bootstrap_champion(model_path, labels, settings.detector.input_size)
    path = registry.fetch_onnx(champion.version, settings.models_dir / "registry")
    model = {
        "version": champion.version,
        "sha256": champion.sha256,
        "labels": list(champion.labels),
        "input_size": champion.input_size,
    }
    return path, model


def build_application(settings: Settings) -> Any:
    """The bound Serve application, after checking every model file against its sha256.

    Raises:
        ModelFileError: a model file is missing, has no recorded digest, or differs from it.
    """
    verify_models(settings)
    model_path, model = serve_champion(settings)
    controller = (
        {"namespace": settings.namespace, "poll_s": MODEL_POLL_S} if model is not None else None
    )
    detector = build_detector(settings.detector, model_path, model, controller)
    llm = None
    if wants_embedded_llm(settings):
        gguf = settings.gguf_model_path().resolve()
        llm_cfg = settings.agent.llm
        llm = build_llm(
            gguf, threads=llm_cfg.threads, num_cpus=llm_cfg.num_cpus, ctx_size=llm_cfg.ctx_size
        )
    agent = None
    if settings.agent.enabled:
        scaling = settings.agent.autoscaling
        deployment: Any = (
            AgentDeployment.options(autoscaling_config=scaling.serve_config())  # type: ignore[attr-defined]
            if scaling is not None
            else AgentDeployment
        )
        agent = deployment.bind(settings.agent.model_dump(mode="json"), llm)
    search = settings.search
    embedder = (
        build_embedder(search.threads, search.num_cpus, search.max_batch_size)
        if search.enabled
        else None
    )
    voice = settings.voice
    transcriber = (
        build_transcriber(
            settings.whisper_model_path().resolve(),
            recognizer_options(voice, pinned=voice.model_path is None),
            voice.num_cpus,
        )
        if voice.enabled
        else None
    )
    return Ingress.bind(detector, runtime_of(settings), agent, llm, embedder, transcriber)  # type: ignore[attr-defined]


def placement_demands(settings: Settings, nodes: list[dict[str, Any]]) -> dict[str, Demand]:
    """What the configured cameras, the detector and the embedded LLM ask of a node."""
    slot = settings.cluster.camera_slot_resource
    demands = {
        f"camera {c.id}": camera_demand(c.placement.resources, c.placement.labels, slot, nodes)
        for c in settings.cameras
        if c.enabled
    }
    det = settings.detector
    det_resources = {"CPU": det.num_cpus, "GPU": det.num_gpus}
    demands["detector replica"] = Demand({k: v for k, v in det_resources.items() if v > 0})
    if wants_embedded_llm(settings) and settings.agent.llm.num_cpus > 0:
        demands["LLM replica"] = Demand({"CPU": settings.agent.llm.num_cpus})
    if settings.voice.enabled and settings.voice.num_cpus > 0:
        demands["transcriber replica"] = Demand({"CPU": settings.voice.num_cpus})
    return demands


def check_placement(settings: Settings, nodes: list[dict[str, Any]]) -> None:
    """Fails when the config asks for resources or labels no alive node has.

    Raises:
        ValueError: naming each camera or deployment no node can run, and why.
    """
    problems = infeasible_demands(placement_demands(settings, nodes), nodes)
    if problems:
        lines = "; ".join(f"{name}: {reason}" for name, reason in problems.items())
        raise ValueError(
            f"the config asks for what no node of this Ray cluster has: {lines}. Add such "
            "nodes, change the placement, or set cluster.check_resources: false where the "
            "autoscaler adds them on demand"
        )


def prepare_storage(settings: Settings) -> None:
    """Creates the data dir and brings the database schema to head."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Also makes the objects' master key file, when encryption is on and it is missing.
    store = unwrapped(make_object_store(settings.objects, settings.data_dir))
    if isinstance(store, S3ObjectStore):
        store.ensure_bucket()  # fail at start, not at the first snapshot
    else:
        settings.objects_dir.mkdir(parents=True, exist_ok=True)
    if settings.archive.enabled:
        archive = unwrapped(make_archive_store(settings.archive, settings.data_dir))
        if isinstance(archive, S3ObjectStore):
            archive.ensure_bucket()  # fail at start, not at the first archive pass
    migrate(settings.db_url)
    # Keys are made here, once, so that ingress replicas only ever load them.
    if not settings.auth.jwt_private_keys:
        KeyRing.load_or_create(settings.data_dir / "keys" / "jwt")
    open_secret_box(settings.auth.secret_key, settings.data_dir)


def seed_cameras(settings: Settings) -> None:
    """Writes the config file's cameras into the database (the supervisor's desired state)."""
    repo = CameraRepository(make_engine(settings.db_url))
    box = open_secret_box(settings.auth.secret_key, settings.data_dir)
    for camera in settings.cameras:
        repo.upsert(camera.id, seal_camera(camera.model_dump(mode="json"), box))


def head_env(settings: Settings) -> dict[str, str]:
    """Environment for the Ray processes of a head Sentinel starts: the workers' nice value
    (``cluster.worker_niceness``) and Serve's HTTP proxy (:func:`serve_env`)."""
    return {"RAY_worker_niceness": str(settings.cluster.worker_niceness), **serve_env(settings)}


def serve_env(settings: Settings) -> dict[str, str]:
    """Environment for the Ray processes of a head Sentinel starts: Serve's HTTP proxy.

    With ``cluster.serve_proxy == "haproxy"`` Serve runs Ray's bundled HAProxy, which sends
    requests straight to the ingress replicas' own HTTP servers instead of through the Python
    proxy actor (``benchmarks/ingress.py``). Its files go to a directory of this data dir's
    own, so two Sentinels on one machine never share them; under /tmp and short, since Serve
    adds a 56-character directory and HAProxy takes socket paths of at most 97 bytes.
    """
    if settings.cluster.serve_proxy != "haproxy":
        return {}
    digest = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:8]
    base = Path("/tmp") / f"snt-hap-{digest}"  # noqa: S108 (per data dir, not shared)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        # A replica leaving waits this long for HAProxy to stop sending it requests; Ray's 30 s
        # default would hold every stop of this one-node cluster for 30 s.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(base / "metrics.sock"),
        # Ports are per machine, not per data dir: settings give a second Sentinel its own.
        "RAY_SERVE_HAPROXY_STATS_PORT": str(settings.cluster.haproxy_stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(settings.cluster.haproxy_metrics_port),
    }


def connect_ray(settings: Settings, address: str | None = None) -> None:
    """Joins ``address`` (else ``RAY_ADDRESS``) when set, else starts a local cluster."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # "local" starts a private cluster on loopback; None would join any cluster that `ray start`
    # left on this machine.
    local: dict[str, Any] = (
        {}
        if address
        else {
            "_node_ip_address": "127.0.0.1",
            "_system_config": {"worker_niceness": settings.cluster.worker_niceness},
        }
    )
    ray.init(
        address=address or "local",
        **local,
        namespace=settings.namespace,
        include_dashboard=False,
        configure_logging=True,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the child sent SIGTERM when its parent dies (Linux), or None.

    prctl is looked up here, in the parent: the child, between fork and exec, only calls it.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_pdeathsig() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return set_pdeathsig


def _session_members(sid: int) -> list[int]:
    """The live processes of session ``sid`` (from /proc; none where there is no /proc)."""
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after "(comm)": state ppid pgrp session ...; comm itself may hold spaces.
        state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(session) == sid and state not in {"Z", "X"}:  # a zombie is dead already
            pids.append(int(entry))
    return pids


class LocalHead:
    """A Ray head node this process started, in a session of its own.

    ``ray.init()`` without an address starts GCS, raylet and workers in the caller's process
    group, so a signal to the group (Ctrl-C in a terminal, a service manager's stop) reaches
    them together with the driver: GCS dies first and the driver's orderly stop then hangs
    for a minute trying to reach it. ``ray start --head --block`` in a new session keeps
    them out of the group; the driver stops them itself, last, with :meth:`stop`. The head
    also dies with its parent (``PR_SET_PDEATHSIG``), so a killed CLI leaves no cluster.
    """

    def __init__(self, process: subprocess.Popen[bytes], address: str) -> None:
        self.process = process
        self.address = address

    @classmethod
    def start(
        cls, log_path: Path, *, timeout_s: float = 120.0, env: dict[str, str] | None = None
    ) -> LocalHead:
        """Starts the head (``env`` added to its environment) and returns once its GCS
        accepts connections."""
        port = _free_port()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ]
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
                env={**os.environ, **(env or {})},
            )
        head = cls(process, f"127.0.0.1:{port}")
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the local Ray head exited with status {process.returncode}; see {log_path}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                return head
            except OSError:
                if time.monotonic() > deadline:
                    head.stop()
                    raise RuntimeError(
                        f"the local Ray head did not start within {timeout_s:.0f}s; see {log_path}"
                    ) from None
                time.sleep(0.2)

    def stop(self, timeout_s: float = 8.0) -> None:
        """Stops the head and every process of its session; SIGKILL what outlives timeout_s."""
        sid = self.process.pid
        if self.process.poll() is None:
            # `ray start --block` stops GCS, raylet and the rest on SIGTERM.
            self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(max(0.1, deadline - time.monotonic()))
        # Workers have process groups of their own but stay in the head's session.
        while (members := _session_members(sid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def start(settings: Settings, *, timeout_s: float = 180.0) -> Any:
    """Deploys the Serve app and the supervisor; returns the supervisor handle.

    Raises:
        ModelFileError: a model file fails its sha256 check; nothing has been started then.
    """
    # First, before any storage, Ray or Serve work: a tampered model stops the start here.
    app = build_application(settings)
    prepare_storage(settings)
    seed_cameras(settings)
    connect_ray(settings)
    if settings.cluster.check_resources:
        check_placement(settings, ray.nodes())  # type: ignore[no-untyped-call]
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(app, name=settings.app_name, route_prefix="/")
    return start_actors(settings, timeout_s=timeout_s)


def start_actors(settings: Settings, *, timeout_s: float = 180.0) -> Any:
    """Starts (or finds) the platform's detached actors next to a running Serve app.

    The model controller, agent worker, retention, notifier, RuleGen and indexer, then the
    supervisor (and through it the cameras).
    ``start`` calls it; where the app is deployed by ``serve deploy`` or KubeRay instead,
    ``sentinel actors`` calls it once against the cluster (idempotent: running actors are
    kept). Returns the supervisor handle.
    """
    # The cameras last: everything their frames feed (the model controller, which loads
    # MLflow, the agent worker, the notifier, the indexer…) is up before the first event, and a
    # signal once frames flow finds the start already done. Cameras read their model route
    # from the store at start.
    if settings.train.serve_registry:
        _start_detached(ModelController, MODEL_CONTROLLER, settings, timeout_s)
    if settings.agent.enabled:
        _start_detached(AgentWorkerActor, AGENT_WORKER_NAME, settings, timeout_s)
    _start_detached(RetentionActor, RETENTION_NAME, settings, timeout_s)
    if settings.notify.enabled:
        _start_detached(NotifierActor, NOTIFIER_NAME, settings, timeout_s)
    if settings.rulegen.enabled:
        _start_detached(RuleGenActor, RULEGEN_NAME, settings, timeout_s)
    if settings.search.enabled:
        _start_detached(IndexerActor, INDEXER_NAME, settings, timeout_s)
    supervisor = get_or_create_supervisor(runtime_of(settings))
    ray.get(supervisor.ping.remote(), timeout=timeout_s)
    ray.get(supervisor.reconcile.remote(), timeout=timeout_s)
    return supervisor


APP_IMPORT_PATH = "sentinel.platform:app_builder"


def app_builder(args: dict[str, Any]) -> Any:
    """The application builder ``serve run`` / ``serve deploy`` / KubeRay import.

    ``args``: ``config``, the path of the Sentinel YAML on every node (``SENTINEL_*`` env
    vars override it, as for ``sentinel up``). Checks the models, migrates the database and
    seeds the config's cameras, then returns the bound app. The detached actors (supervisor
    and cameras, agent worker, retention, RuleGen) are not started here: run
    ``sentinel actors --config PATH`` once the app is up.
    """
    config = args.get("config")
    settings = load_settings(Path(config) if config else None)
    app = build_application(settings)
    prepare_storage(settings)
    seed_cameras(settings)
    return app


def serve_config(settings: Settings, config_path: str) -> dict[str, Any]:
    """The Serve config (``serve deploy`` / KubeRay ``serveConfigV2``) of these settings.

    It names the builder and the config file; the deployments' sizing (replicas or
    autoscaling, CPUs, GPUs) is spelled out so that it can be tuned in place.
    """
    detector = {"name": "Detector", **detector_options(settings.detector)}
    deployments: list[dict[str, Any]] = [
        {"name": "Ingress", "max_ongoing_requests": 256},
        detector,
    ]
    if settings.agent.enabled and settings.agent.autoscaling is not None:
        deployments.append(
            {"name": "Agent", "autoscaling_config": settings.agent.autoscaling.serve_config()}
        )
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": settings.host, "port": settings.port},
        "applications": [
            {
                "name": settings.app_name,
                "route_prefix": "/",
                "import_path": APP_IMPORT_PATH,
                "args": {"config": config_path},
                "deployments": deployments,
            }
        ],
    }


def _start_detached(actor_class: Any, name: str, settings: Settings, timeout_s: float) -> None:
    """Gets or creates the named detached actor of the platform and starts its loop."""
    actor = actor_class.options(
        name=name, namespace=settings.namespace, lifetime="detached", get_if_exists=True
    ).remote(runtime_of(settings))
    ray.get(actor.start.remote(), timeout=timeout_s)


def stop(
    settings: Settings,
    supervisor: Any | None = None,
    *,
    timeout_s: float = 60.0,
    delete_app: bool = True,
) -> None:
    """Stops cameras (closing their events), the supervisor and (``delete_app``) the Serve
    app; ``timeout_s`` bounds the cameras' stop."""
    t0 = time.monotonic()
    try:
        if supervisor is not None:
            ray.get(supervisor.shutdown.remote(), timeout=timeout_s)
            ray.kill(supervisor, no_restart=True)
    except Exception as exc:
        logger.warning("supervisor did not shut down cleanly: %s", exc)
    with contextlib.suppress(ValueError):  # no agent worker when the agent is disabled
        ray.kill(ray.get_actor(AGENT_WORKER_NAME, namespace=settings.namespace), no_restart=True)
    with contextlib.suppress(ValueError):  # not started (start() failed before it)
        ray.kill(ray.get_actor(RETENTION_NAME, namespace=settings.namespace), no_restart=True)
    with contextlib.suppress(ValueError):  # not started (disabled, or start() failed before)
        ray.kill(ray.get_actor(NOTIFIER_NAME, namespace=settings.namespace), no_restart=True)
    with contextlib.suppress(ValueError):  # not started (disabled, or start() failed before)
        ray.kill(ray.get_actor(RULEGEN_NAME, namespace=settings.namespace), no_restart=True)
    with contextlib.suppress(ValueError):  # not started (disabled, or start() failed before)
        ray.kill(ray.get_actor(INDEXER_NAME, namespace=settings.namespace), no_restart=True)
    with contextlib.suppress(ValueError):  # not started (disabled, or start() failed before)
        ray.kill(ray.get_actor(MODEL_CONTROLLER, namespace=settings.namespace), no_restart=True)
    if delete_app:
        with contextlib.suppress(Exception):  # no canary running
            serve.delete(f"{settings.app_name}{settings.train.canary_app_suffix}")
        try:
            serve.delete(settings.app_name)
        except Exception as exc:
            logger.warning("serve app did not delete cleanly: %s", exc)
    logger.info("stopped in %.1fs", time.monotonic() - t0)


def _within(what: str, timeout_s: float, fn: Callable[[], object]) -> bool:
    """Runs ``fn`` for at most ``timeout_s`` (in a daemon thread); logs, never raises.

    Returns:
        Whether ``fn`` finished; if not, it is still running in its thread.
    """

    def run() -> None:
        try:
            fn()
        except Exception as exc:
            logger.warning("%s failed: %s", what, exc)

    t0 = time.monotonic()
    worker = threading.Thread(target=run, name=f"stop-{what}", daemon=True)
    worker.start()
    worker.join(max(0.1, timeout_s))
    if worker.is_alive():
        logger.warning("%s did not finish within %.1fs; going on", what, timeout_s)
        return False
    logger.info("%s took %.1fs", what, time.monotonic() - t0)
    return True


def shutdown(
    settings: Settings,
    supervisor: Any | None,
    head: LocalHead | None,
    *,
    timeout_s: float = 10.0,
) -> None:
    """The CLI's orderly stop, bounded by ``timeout_s`` in all: cameras stop and close their
    events, then Serve, then the driver's connection, then the head (only one we started:
    a cluster joined through ``RAY_ADDRESS`` keeps running, with its other Serve apps)."""
    deadline = time.monotonic() + timeout_s

    def left(reserve: float) -> float:
        return deadline - time.monotonic() - reserve

    # Closing the events comes first and gets the most; Serve and the head are stopped
    # gracefully when there is time, else the head's stop kills what is left of them.
    finished = _within(
        "stopping cameras",
        left(4.5),
        # serve.shutdown below removes the app with the rest of Serve on our own head.
        lambda: stop(settings, supervisor, timeout_s=left(5.5), delete_app=head is None),
    )
    if head is not None:
        finished = _within("serve.shutdown", left(3.0), serve.shutdown) and finished
    if finished:
        _within("ray.shutdown", left(2.5), ray.shutdown)
    else:
        # A step still runs in its thread: shutting the driver down under it makes Ray's core
        # worker end the process with status 1. The process is about to exit anyway.
        logger.warning("skipping ray.shutdown: a stop step is still running")
    if head is not None:
        t0 = time.monotonic()
        head.stop(timeout_s=max(1.0, left(0.5)))
        logger.info("stopping the local Ray head took %.1fs", time.monotonic() - t0)
